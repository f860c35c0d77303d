"""Text helpers for replies and commands: splitting to Discord's 2000-character limit,
neutralising mentions, reading row numbers and message IDs, progress bars and ETAs, and the
mark that stands for a command prefix."""

from __future__ import annotations

import re

from trainerbot.errors import COMMAND, BadInput

MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

DISCORD_LIMIT = 2000

def with_prefix(text: str, prefix: str) -> str:
    """``text`` as an adapter shows it: each command mark (``errors.COMMAND``) replaced by ``prefix``."""
    return text.replace(COMMAND, prefix)


def split_message(text: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """Split on line boundaries into parts of at most ``limit`` characters.

    A single line longer than the limit is cut at its last space before the limit (or
    hard, when it has none). Empty text gives no parts.
    """
    parts: list[str] = []
    current = ""
    for line in text.splitlines():
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            head, line = line[:cut], line[cut:].lstrip(" ")
            if current:
                parts.append(current)
                current = ""
            parts.append(head)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        parts.append(current)
    return [p for p in parts if p.strip()]


def quote_user_text(text: str, limit: int = 200) -> str:
    """User text shown back inside a reply: shortened, backticks and mentions defused."""
    text = text.replace("`", "'").replace("@", "@\u200b")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def row_number(raw: str | int, usage: str) -> int:
    """A row's number as users type it (``12`` or ``#12``); ``BadInput`` with ``usage`` otherwise."""
    text = str(raw).strip().lstrip("#")
    if not text.isdigit() or len(text) > 12:
        raise BadInput(usage)
    return int(text)


def eta_text(seconds: float | None) -> str:
    """A remaining time as people read it: ``42s``, ``3m05s``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def read_message_id(raw: str) -> str:
    """A platform message ID as users paste it; ``BadInput`` otherwise."""
    raw = raw.strip()
    if not MESSAGE_ID.fullmatch(raw):
        raise BadInput("Give the ID of one of my replies (reply to it, or copy its message ID).")
    return raw


def bar(fraction: float, width: int = 16) -> str:
    """A progress bar of ``width`` blocks: ``████░░░░``."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


SPEAKER_CHARS = 32
_NOT_IN_NAMES = re.compile(r"[@<>`*_~|#:\[\]\\\x00-\x1f\x7f]+")


def speaker_name(name: str) -> str | None:
    """A display name as the model's history shows it: no mention, markup or line break can
    be made of it, at most ``SPEAKER_CHARS`` characters; None when nothing is left."""
    cleaned = " ".join(_NOT_IN_NAMES.sub(" ", name).split())[:SPEAKER_CHARS].strip()
    return cleaned or None

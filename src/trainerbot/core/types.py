"""Plain values that cross between the adapters and the core (no ``discord`` here)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from trainerbot.core.text import DISCORD_LIMIT, split_message, with_prefix
from trainerbot.errors import COMMAND


@dataclass(frozen=True)
class Caller:
    """Who asks, and where: enough for permissions, isolation and provenance.

    ``guild_id`` is the platform's server ID; a direct message uses ``dm-<user id>``,
    so each DM is its own isolated space. ``can_manage`` is Manage Server (or the
    console's trainer role); ``is_owner`` is the bot's owner.
    """

    guild_id: str
    user_id: str
    user_name: str = ""
    guild_name: str = ""
    channel_id: str = "default"
    roles: frozenset[str] = frozenset()
    can_manage: bool = False
    is_owner: bool = False
    is_dm: bool = False


@dataclass(frozen=True)
class Attachment:
    """An uploaded file: at most the size limit of bytes, read by the adapter."""

    filename: str
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class OutFile:
    """A file to send: ``path`` lies under the data folder; ``name`` is what the user sees."""

    name: str
    path: Path


@dataclass(frozen=True)
class EmbedField:
    name: str
    value: str
    inline: bool = True


@dataclass(frozen=True)
class Embed:
    """An embed as data; the Discord adapter renders it, the console prints it."""

    title: str
    description: str = ""
    fields: tuple[EmbedField, ...] = ()
    footer: str = ""

    def as_text(self) -> str:
        lines = [f"**{self.title}**"]
        if self.description:
            lines.append(self.description)
        lines.extend(f"{f.name}: {f.value}" for f in self.fields)
        if self.footer:
            lines.append(self.footer)
        return "\n".join(lines)

    def for_prefix(self, prefix: str) -> Embed:
        """This embed with each command mark replaced by ``prefix`` (see ``core.text.COMMAND``)."""
        return Embed(title=with_prefix(self.title, prefix), description=with_prefix(self.description, prefix),
                     fields=tuple(EmbedField(with_prefix(f.name, prefix), with_prefix(f.value, prefix), f.inline)
                                  for f in self.fields),
                     footer=with_prefix(self.footer, prefix))


@dataclass(frozen=True)
class JobRef:
    """A training job a command queued (or found queued already)."""

    job_id: int
    existing: bool = False


@dataclass(frozen=True)
class ReviewItem:
    """What ``review`` shows: a pending correction, or a reply flagged 👎 (its platform ID)."""

    kind: Literal["correction", "flagged"]
    correction_id: int | None = None  # the correction shown (of several for one question: the one picked)
    message_id: str | None = None
    proposals: tuple[int, ...] = ()  # every pending correction for the same question, oldest first
    labels: tuple[str, ...] = ()  # each proposal in a line (≤ 100 characters), for a menu


@dataclass(frozen=True)
class Decision:
    """An approve/reject: the status it set, or ``already`` when someone decided it first."""

    correction_id: int
    status: str | None
    already: bool = False
    superseded: tuple[int, ...] = ()  # the other answers to its question, closed by an approval


@dataclass(frozen=True)
class JobProgress:
    """A job as a progress line shows it: its status and share done, and its latest step."""

    status: str  # a JobStatus
    progress: float  # 0.0–1.0
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    eta_s: float | None = None


@dataclass(frozen=True)
class Reply:
    """What a command answers: message parts (each ≤ 2000 characters), files, an embed — and,
    typed, what an adapter acts on: the chat reply to bind to its platform message
    (``reply_id``), the answer alone to speak (``answer``), a queued job to watch (``job``), a
    job's status and progress, the review item shown, a review decision, the rating a reaction
    gave. Adapters read these, never ``data``, which holds the rest for tests and callers that
    inspect numbers."""

    messages: tuple[str, ...] = ()
    files: tuple[OutFile, ...] = ()
    embed: Embed | None = None
    data: dict[str, object] = field(default_factory=dict, compare=False)
    reply_id: int | None = None
    answer: str | None = None
    job: JobRef | None = None
    job_status: str | None = None
    review: ReviewItem | None = None
    decision: Decision | None = None
    progress: JobProgress | None = None
    rating: Literal["positive", "negative"] | None = None  # what a reaction put on a reply (None: taken off)

    @classmethod
    def text(cls, text: str, **kwargs: Any) -> Reply:
        return cls(messages=tuple(split_message(text)), **kwargs)

    @property
    def content(self) -> str:
        return "\n".join(self.messages)

    def for_prefix(self, prefix: str) -> Reply:
        """This reply as an adapter shows it: each command mark in its texts replaced by the
        adapter's ``prefix`` (see ``core.text.COMMAND``); a part that grows past Discord's limit
        (a prefix longer than one character) is split again."""
        if not any(COMMAND in m for m in self.messages) and self.embed is None:
            return self
        shown = [with_prefix(m, prefix) for m in self.messages]
        messages = tuple(part for m in shown for part in ([m] if len(m) <= DISCORD_LIMIT else split_message(m)))
        return replace(self, messages=messages, embed=None if self.embed is None else self.embed.for_prefix(prefix))

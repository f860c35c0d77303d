"""Counts in words: ``count(1, "example")`` is "1 example", ``count(3, "example")`` "3 examples".

The one helper every message with a number uses (a ground-floor module: it imports nothing
of the project, so every layer may use it). The bot's messages are English; Russian is the
language of speech and of the instructions file, which has no counts.
"""

from __future__ import annotations


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` with the noun in the right number (``plural`` for irregular ones:
    ``count(n, "reply", "replies")``)."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"

"""The plain record every dataset function speaks: one training example."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Label = Literal["positive", "negative"]
LABELS: tuple[Label, ...] = ("positive", "negative")


def as_label(word: str) -> Label:
    """A label read back from the store (which holds only these two words) as ``Label``."""
    for label in LABELS:
        if word == label:
            return label
    raise ValueError(f"not a label: {word[:20]!r}")


@dataclass(frozen=True)
class Example:
    """One example: a prompt and its answer, with the label and where it came from.

    ``rejected`` is set for corrections: the answer that was corrected (a DPO pair).
    ``history`` holds earlier turns as OpenAI-style ``{"role", "content"}`` dicts.
    """

    prompt: str
    response: str
    label: Label = "positive"
    rejected: str | None = None
    system: str | None = None
    history: tuple[dict[str, str], ...] = ()
    source_ref: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def key(self) -> tuple[str, str, str, str | None]:
        """What makes two examples duplicates of each other."""
        return (self.prompt, self.response, self.label, self.rejected)

    def prompt_messages(self) -> list[dict[str, str]]:
        """The conversation up to and including the prompt, as chat messages."""
        messages: list[dict[str, str]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.extend({"role": m["role"], "content": m["content"]} for m in self.history)
        messages.append({"role": "user", "content": self.prompt})
        return messages

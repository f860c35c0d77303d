"""Keeping what it knew: a shipped set of 40 simple general questions, each with the
keywords a right answer contains (whole words, case-insensitive; any one will do).

A pretrained model answers most of them before any teaching; a candidate that forgets how
to converse while it learns a community's facts scores lower, and is not promoted
(``training/versions``). The score is the share of answers that contain a keyword, in
percent. It measures recall of common facts, not style; a model built from scratch is not
expected to pass it. Blocking (the model runs here).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from trainerbot.evaluation.run import replies
from trainerbot.model.runtime import Runtime

MAX_TOKENS = 32  # the keyword comes early in a right answer; longer replies only cost time


@dataclass(frozen=True)
class GeneralQuestion:
    prompt: str
    keywords: tuple[str, ...]

    def answered_by(self, reply: str) -> bool:
        text = reply.casefold()
        return any(re.search(rf"(?<!\w){re.escape(k.casefold())}(?!\w)", text) for k in self.keywords)


@functools.cache
def questions() -> tuple[GeneralQuestion, ...]:
    text = resources.files("trainerbot.resources").joinpath("general.jsonl").read_text(encoding="utf-8")
    return tuple(GeneralQuestion(row["prompt"], tuple(row["keywords"])) for row in map(json.loads, text.splitlines()) if row)


def score(model: Runtime, *, limit: int | None = None, system: str | None = None,
          pause: Callable[[], object] | None = None) -> tuple[float, list[dict[str, object]]]:
    """(percent answered right, the rows: prompt, reply, right?). ``system``: the server's
    persona to ask under (None: the model's own default, as chat uses it); ``pause``: called
    before each question (the worker gives way to chat)."""
    head = [{"role": "system", "content": system}] if system else []
    asked = questions()[:limit]
    answers = replies(model, [[*head, {"role": "user", "content": q.prompt}] for q in asked], max_new_tokens=MAX_TOKENS,
                      pause=pause)
    rows: list[dict[str, object]] = [{"prompt": q.prompt, "reply": reply, "right": q.answered_by(reply)}
                                     for q, reply in zip(asked, answers, strict=True)]
    right = sum(1 for r in rows if r["right"])
    return (100.0 * right / len(rows) if rows else 0.0), rows

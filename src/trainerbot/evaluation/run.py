"""Run a model on test cases: each prediction with its match, chrF and the loss of the
expected answer; the summary over all of them. Blocking (the model runs here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from trainerbot.evaluation.cases import Case
from trainerbot.evaluation.metrics import Summary, chrf, exact_match, summarise
from trainerbot.model.runtime import Runtime


def score_cases(model: Runtime, cases: Sequence[Case], *, max_new_tokens: int, system: str | None = None,
                pause: Callable[[], object] | None = None) -> tuple[list[dict[str, Any]], Summary]:
    """Each case asked on its own; ``system``: the server's persona to ask under (None: the
    model's own default); ``pause``: called before each case (the worker gives way to chat)."""
    rows: list[dict[str, Any]] = []
    head = [{"role": "system", "content": system}] if system else []
    for case in cases:
        if pause is not None:
            pause()
        conversation = [*head, {"role": "user", "content": case.prompt}]
        prediction = model.reply(conversation, max_new_tokens=max_new_tokens)
        row: dict[str, Any] = {"prompt": case.prompt, "expected": case.expected, "prediction": prediction,
                               "match": None, "score": None, "loss": None}
        if case.expected is not None:
            row["match"] = exact_match(prediction, case.expected)
            row["score"] = round(chrf(prediction, case.expected), 2)
            loss = model.answer_loss(conversation, case.expected)
            row["loss"] = round(loss, 4) if loss is not None else None
        rows.append(row)
    return rows, summarise(rows)

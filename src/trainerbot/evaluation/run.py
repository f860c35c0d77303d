"""Run a model on test cases: each prediction with its match, chrF and the loss of the
expected answer; the summary over all of them. Blocking (the model runs here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from trainerbot.evaluation.cases import Case
from trainerbot.evaluation.scores import Summary, chrf, exact_match, summarise
from trainerbot.model.runtime import Runtime


def replies(model: Runtime, conversations: Sequence[list[dict[str, str]]], *, max_new_tokens: int,
            pause: Callable[[], object] | None = None) -> list[str]:
    """Each conversation's reply, in order. A model on this machine that writes several
    replies at once (llama.cpp's slots, decoded in one batch) is asked that many at a time;
    torch one at a time; a remote server one at a time too (its rate limits are its own).
    ``pause``: called before each (the worker gives way to chat)."""
    def one(conversation: list[dict[str, str]]) -> str:
        if pause is not None:
            pause()
        return model.reply(conversation, max_new_tokens=max_new_tokens)

    at_once = min(model.slots, len(conversations)) if model.source == "model" else 1
    if at_once <= 1:
        return [one(c) for c in conversations]
    with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="check") as pool:
        return list(pool.map(one, conversations))


def score_cases(model: Runtime, cases: Sequence[Case], *, max_new_tokens: int, system: str | None = None,
                pause: Callable[[], object] | None = None) -> tuple[list[dict[str, Any]], Summary]:
    """Each case asked on its own (several at once where the runtime batches, ``replies``);
    ``system``: the server's persona to ask under (None: the model's own default); ``pause``:
    called before each case (the worker gives way to chat)."""
    rows: list[dict[str, Any]] = []
    head = [{"role": "system", "content": system}] if system else []
    conversations = [[*head, {"role": "user", "content": case.prompt}] for case in cases]
    predictions = replies(model, conversations, max_new_tokens=max_new_tokens, pause=pause)
    for case, conversation, prediction in zip(cases, conversations, predictions, strict=True):
        row: dict[str, Any] = {"prompt": case.prompt, "expected": case.expected, "prediction": prediction,
                               "match": None, "score": None, "loss": None}
        if case.expected is not None:
            row["match"] = exact_match(prediction, case.expected)
            row["score"] = round(chrf(prediction, case.expected), 2)
            loss = model.answer_loss(conversation, case.expected)
            row["loss"] = round(loss, 4) if loss is not None else None
        rows.append(row)
    return rows, summarise(rows)

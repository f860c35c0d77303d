"""The held-out split every dataset keeps, and the promotion rule that uses it.

An example is held out when a hash of its normalised prompt falls under the configured
share — so the split is stable across snapshots, archives and re-imports, and every copy of
a question lands on the same side. Corrections are never held out (what someone teaches
must be learned), nor negative examples (nothing scores against them, and KTO needs them);
datasets under ``MIN_EXAMPLES`` hold nothing out. Training uses the
rest; after a job, the candidate model and the active one answer the held-out questions,
and the candidate goes live only when it is not worse by the configured metric.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from trainerbot.datasets.records import Example
from trainerbot.evaluation.cases import Case
from trainerbot.evaluation.scores import Summary
from trainerbot.store.keys import normalise

MIN_EXAMPLES = 10
HIGHER_IS_BETTER = {"chrf": True, "exact_match": True, "loss": False}


def _position(prompt: str) -> float:
    digest = hashlib.sha256(normalise(prompt).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def eligible(example: Example) -> bool:
    """Only good answers are held out (they are what the models are scored on); negatives all
    train (KTO needs them), and so do corrections."""
    return example.label == "positive" and example.extra.get("source") != "correction"


def is_heldout(example: Example, share: float) -> bool:
    """Whether the example falls in the held-out split (of a dataset of at least ``MIN_EXAMPLES``)."""
    return eligible(example) and _position(example.prompt) < share


def split(examples: Sequence[Example], share: float) -> tuple[list[Example], list[Example]]:
    """(training examples, held-out examples)."""
    if share <= 0 or len(examples) < MIN_EXAMPLES:
        return list(examples), []
    train: list[Example] = []
    held: list[Example] = []
    for ex in examples:
        (held if is_heldout(ex, share) else train).append(ex)
    if not train:  # never hold everything out
        return list(examples), []
    return train, held


def cases(held: Sequence[Example], limit: int) -> list[Case]:
    """The held-out questions with their good answers (one per prompt), at most ``limit``, in a stable order."""
    seen: dict[str, Case] = {}
    for ex in held:
        if ex.label == "positive":
            seen[normalise(ex.prompt)] = Case(ex.prompt, ex.response)  # later wins, as in taught facts
    ordered = sorted(seen.values(), key=lambda c: _position(c.prompt))
    return ordered[:limit]


def value(summary: Summary, metric: str) -> float | None:
    return {"chrf": summary.chrf, "exact_match": summary.exact_match, "loss": summary.loss}[metric]


def shown(metric: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.1%}" if metric == "exact_match" else f"{v:.3f}" if metric == "loss" else f"{v:.1f}"


def not_worse(metric: str, candidate: Summary, active: Summary, tolerance: float = 0.0) -> bool:
    c, a = value(candidate, metric), value(active, metric)
    if c is None or a is None:
        return True
    if math.isnan(c) or math.isnan(a):
        return not math.isnan(c)  # a broken (NaN) model is worse than anything that scores
    return c >= a - tolerance if HIGHER_IS_BETTER[metric] else c <= a + tolerance

"""Answer metrics: exact match, chrF (sacrebleu), and the loss a model puts on an answer.

Exact match compares answers after normalising them: Unicode NFKC, case folded, punctuation
dropped, whitespace collapsed — so "Quillport." matches "quillport". chrF is sacrebleu's
(character 6-grams, β = 2, 0–100), per answer and over the whole set (corpus chrF, from
summed statistics, as sacrebleu reports it).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

from sacrebleu.metrics import CHRF

from trainerbot.plural import count

_CHRF = CHRF()


def normalise_answer(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(kept.split())


def exact_match(prediction: str, expected: str) -> bool:
    return normalise_answer(prediction) == normalise_answer(expected)


def chrf(prediction: str, expected: str) -> float:
    return float(_CHRF.sentence_score(prediction, [expected]).score)


def corpus_chrf(pairs: list[tuple[str, str]]) -> float:
    """chrF over (prediction, expected) pairs."""
    if not pairs:
        return 0.0
    predictions, references = zip(*pairs, strict=True)
    return float(_CHRF.corpus_score(list(predictions), [list(references)]).score)


@dataclass(frozen=True)
class Summary:
    cases: int
    scored: int  # cases with an expected answer
    exact_match: float | None  # share 0–1
    chrf: float | None  # 0–100
    loss: float | None  # mean per-token loss of the expected answers
    perplexity: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"cases": self.cases, "scored": self.scored, "exact_match": self.exact_match, "chrf": self.chrf,
                "loss": self.loss, "perplexity": self.perplexity}

    def line(self) -> str:
        if not self.scored:
            return f"{count(self.cases, 'case')}, predictions only (no expected answers)"
        parts = [f"exact match {self.exact_match:.1%}", f"chrF {self.chrf:.1f}"]
        if self.loss is not None and self.perplexity is not None:
            parts.append(f"loss {self.loss:.3f} (perplexity {self.perplexity:.2f})")
        return f"{self.scored} scored cases: " + ", ".join(parts)


def summarise(rows: list[dict[str, object]]) -> Summary:
    """Rows with ``prediction``, ``expected`` (or None), ``match`` and ``loss`` (or None)."""
    scored = [r for r in rows if r.get("expected") is not None]
    if not scored:
        return Summary(len(rows), 0, None, None, None, None)
    em = sum(1 for r in scored if r["match"]) / len(scored)
    score = corpus_chrf([(str(r["prediction"]), str(r["expected"])) for r in scored])
    losses = [float(v) for r in scored if isinstance(v := r.get("loss"), (int, float))]
    loss = sum(losses) / len(losses) if losses else None
    return Summary(len(rows), len(scored), em, score, loss, math.exp(min(loss, 50.0)) if loss is not None else None)

"""Taught facts: answer at once when a message matches something the community taught.

An index over (prompt, answer) pairs — approved corrections and dataset answers. A
message matches when its normalised text equals a prompt, or when BM25 ranks a prompt
first and the two share their content words (F1 over the words that are not question or
function words ≥ threshold) — so "capital of Zorbia" finds "What is the capital of
Zorbia?", but "What is the capital of Quillport?" does not.
Later pairs win over earlier ones with the same prompt, so a correction overrides the
dataset answer it corrects.

For the model's context (``related``), words come first; where they find nothing, a
``Meaning`` (sentence embeddings of the taught questions, ``embeddings.py``) may add the one
fact closest in meaning, if its cosine reaches the threshold and the message names what the
fact is about (``anchored``): "Count the bridges that span the Tamsel" finds "How many
bridges cross the river Tamsel?", while "What is the capital of Japan?" finds no
"capital of Zorbia" (bench/retrieval.py). Messages in Cyrillic keep words alone (the
embedding model is English). The index itself is pure Python.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from trainerbot.store.keys import normalise

ANCHOR_SHARE = 0.9  # a fact's anchor words: its content words at least this rare (IDF) against its rarest
STOPWORDS = frozenset("""
a an the of in on at to for from by with and or is are was were be been do does did s what which who whom whose
where when why how please tell me you your i it its this that these those there can could would will
что кто как где когда какой какая какое какие каков у в во на и а ли это скажи пожалуйста мне ты вы я он она
""".split())


def tokens(text: str) -> list[str]:
    return normalise(text).split()


def content(words: list[str]) -> list[str]:
    return [w for w in words if w not in STOPWORDS]


def token_f1(a: list[str], b: list[str]) -> float:
    if not a or not b:
        return 0.0
    common = sum((Counter(a) & Counter(b)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class TaughtAnswer:
    answer: str
    prompt: str
    score: float  # 1.0 for a normalised exact match


CYRILLIC = re.compile(r"[\u0400-\u04ff]")


@dataclass(frozen=True)
class Meaning:
    """The taught questions' embeddings (one unit row per ``TaughtIndex.docs`` entry, a torch
    tensor) and how to embed a message like them."""

    encode: Callable[[Sequence[str]], Any]
    vectors: Any
    threshold: float = 0.7  # cosine; measured in bench/retrieval.py


class TaughtIndex:
    """BM25 (k1=1.5, b=0.75) over prompts, plus an exact-match table."""

    meaning: Meaning | None = None

    def __init__(self, pairs: Iterable[tuple[str, str]], *, threshold: float = 0.8, k1: float = 1.5, b: float = 0.75) -> None:
        self.threshold, self.k1, self.b = threshold, k1, b
        latest: dict[str, tuple[str, str]] = {}
        for prompt, answer in pairs:  # later pairs override earlier ones
            key = normalise(prompt)
            if key:
                latest.pop(key, None)
                latest[key] = (prompt, answer)
        self.exact = latest
        self.docs = [(key.split(), prompt, answer) for key, (prompt, answer) in latest.items()]
        self.avg_len = sum(len(d[0]) for d in self.docs) / len(self.docs) if self.docs else 0.0
        df: Counter[str] = Counter()
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for i, (toks, _, _) in enumerate(self.docs):
            for term, tf in Counter(toks).items():
                df[term] += 1
                self.postings.setdefault(term, []).append((i, tf))
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def __len__(self) -> int:
        return len(self.docs)

    def lookup(self, message: str) -> TaughtAnswer | None:
        key = normalise(message)
        if not key:
            return None
        if key in self.exact:
            prompt, answer = self.exact[key]
            return TaughtAnswer(answer=answer, prompt=prompt, score=1.0)
        query = key.split()
        scores = self._bm25(query)
        if not scores:
            return None
        best = max(scores, key=lambda i: (scores[i], i))
        toks, prompt, answer = self.docs[best]
        f1 = token_f1(content(query), content(toks))
        return TaughtAnswer(answer=answer, prompt=prompt, score=f1) if f1 >= self.threshold else None

    def related(self, message: str, k: int, *, min_share: float = 0.0, min_cover: float = 0.0) -> list[TaughtAnswer]:
        """Up to ``k`` facts whose questions share a content word with ``message``, best first
        (for the model's context; ``score`` is the BM25 score). With ``min_share``, only facts
        scoring at least that share of the best one's score: a fact that matches on a common
        word alone ("river") does not ride along with the one that names the place. With
        ``min_cover``, only facts whose question's content words (weighted by IDF) are at
        least that share in ``message``: "What do bees make?" covers 0.2 of
        "What does Zorco make?", which is not about bees, while "What goods does Zorco sell
        abroad?" covers its main word. When words leave nothing and the index has a
        ``meaning``, the one fact closest in meaning (``score``: its cosine), if any."""
        query = content(tokens(message))
        if not query or k <= 0:
            return []
        scores = self._bm25(query)
        best = sorted(scores, key=lambda i: (-scores[i], -i))[:k]
        if best:
            best = [i for i in best if scores[i] >= min_share * scores[best[0]]]
        if min_cover > 0:
            asked = set(query)
            best = [i for i in best if self._cover(asked, i) >= min_cover]
        if not best and self.meaning is not None and not CYRILLIC.search(message):
            return self._by_meaning(message, self.meaning)
        return [TaughtAnswer(answer=self.docs[i][2], prompt=self.docs[i][1], score=scores[i]) for i in best]

    def _by_meaning(self, message: str, meaning: Meaning) -> list[TaughtAnswer]:
        """The one fact closest in meaning, when it is close enough and anchored in the message."""
        if not self.docs:
            return []
        scores = meaning.vectors @ meaning.encode([message])[0]
        i = int(scores.argmax())
        score = float(scores[i])
        _, prompt, answer = self.docs[i]
        if score < meaning.threshold or not self.anchored(message, prompt):
            return []
        return [TaughtAnswer(answer=answer, prompt=prompt, score=score)]

    def anchored(self, message: str, prompt: str) -> bool:
        """Whether ``message`` holds one of the rarest content words (by IDF, within
        ``ANCHOR_SHARE`` of the rarest) of the taught question ``prompt``: what it is about
        ("Korrin" in "What is the name of the ferry to Korrin Island?"), which a question that
        only resembles it ("What is the capital of Japan?" beside "What is the capital of
        Zorbia?") lacks."""
        own = {t for t in content(tokens(prompt)) if t in self.idf}
        if not own:
            return False
        top = max(self.idf[t] for t in own)
        rare = {t for t in own if self.idf[t] >= ANCHOR_SHARE * top}
        return not rare.isdisjoint(tokens(message))

    def _cover(self, words: set[str], i: int) -> float:
        """The IDF-weighted share of fact ``i``'s question's content words that are in ``words``."""
        own = set(content(self.docs[i][0]))
        total = sum(self.idf[t] for t in own)
        return sum(self.idf[t] for t in own if t in words) / total if total else 0.0

    def _bm25(self, query: list[str]) -> dict[int, float]:
        scores: dict[int, float] = {}
        for term in set(query):
            for i, tf in self.postings.get(term, ()):
                length = len(self.docs[i][0])
                denom = tf + self.k1 * (1 - self.b + self.b * length / (self.avg_len or 1))
                scores[i] = scores.get(i, 0.0) + self.idf[term] * tf * (self.k1 + 1) / denom
        return scores

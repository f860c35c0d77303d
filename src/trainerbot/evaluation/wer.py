"""Word error rate: word-level edit distance over the reference length, after normalising
case, punctuation and small numbers (so "Open the door, please." matches "open the door
please" and "at 7" matches "at seven", as speech benchmarks' normalisers do)."""

from __future__ import annotations

import re

WORD = re.compile(r"[\w']+", re.UNICODE)


NUMBERS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
           "sixteen seventeen eighteen nineteen twenty").split()


def words(text: str) -> list[str]:
    out = []
    for w in WORD.findall(text.casefold().replace("ё", "е")):
        w = w.strip("'")
        if w.isdigit() and int(w) < len(NUMBERS):
            w = NUMBERS[int(w)]
        if w:
            out.append(w)
    return out


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference word count)."""
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1], len(ref)


def wer(reference: str, hypothesis: str) -> float:
    errors, n = word_errors(reference, hypothesis)
    return errors / n if n else float(bool(words(hypothesis)))


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    """Errors over all reference words, as speech benchmarks report it."""
    total_errors = total_words = 0
    for reference, hypothesis in pairs:
        errors, n = word_errors(reference, hypothesis)
        total_errors += errors
        total_words += n
    return total_errors / total_words if total_words else 0.0

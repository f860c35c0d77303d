"""How a question is keyed: its words, normalised as taught facts match them, hashed.

Corrections of one question are one review item, and the taught answers to one question
form one chain of revisions, because both carry this key. It lives in the store because it
is what the store indexes on (a migration keys the rows stored before it).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

WORD = re.compile(r"\w+", re.UNICODE)


def normalise(text: str) -> str:
    """Case, the accent of ё and punctuation aside: "What is the capital of Zorbia?" and
    "what is the capital of zorbia" read the same."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    return " ".join(WORD.findall(text))


def question_key(prompt: str) -> str:
    """``prompt``'s normalised words, hashed to fit an index (32 hex digits)."""
    return hashlib.sha256(normalise(prompt).encode("utf-8")).hexdigest()[:32]

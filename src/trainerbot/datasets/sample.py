"""Invented facts about invented places, in English and Russian: the shipped sample dataset
and the benchmark data.

``generate(n, seed)`` is deterministic: the same arguments give the same pairs. Every
place, person and thing is made up from syllables, so a model can only answer these
questions by having learned them. ``resources/sample.jsonl`` is ``python -m
trainerbot.datasets.sample`` written out (300 English and 100 Russian pairs).
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Iterator

from trainerbot.datasets.records import Example

SYLLABLES = ["zor", "bi", "quil", "port", "ves", "sa", "mar", "tel", "ka", "dun", "ri", "lo", "fen", "var", "os",
             "tri", "ga", "nel", "pu", "shan", "el", "dor", "mi", "ra", "thu", "ben", "co", "sil", "ya", "ker"]
SYLLABLES_RU = ["зор", "би", "квил", "порт", "вес", "са", "мар", "тель", "ка", "дун", "ри", "ло", "фен", "вар", "ос",
                "три", "га", "нель", "пу", "шан", "эль", "дор", "ми", "ра", "ту", "бен", "ко", "сил", "я", "кер"]
GOODS = ["copper", "amber", "salt", "wool", "tea", "glass", "silk", "timber", "honey", "marble", "pepper", "tin"]
GOODS_RU = ["медь", "янтарь", "соль", "шерсть", "чай", "стекло", "шёлк", "лес", "мёд", "мрамор", "перец", "олово"]


def _name(rng: random.Random, syllables: list[str], parts: int) -> str:
    return "".join(rng.choice(syllables) for _ in range(parts)).capitalize()


def _unique(rng: random.Random, syllables: list[str], parts: int, taken: set[str]) -> str:
    while True:
        name = _name(rng, syllables, parts)
        if name not in taken:
            taken.add(name)
            return name


def _english(rng: random.Random, taken: set[str]) -> Iterator[tuple[str, str]]:
    while True:
        country = _unique(rng, SYLLABLES, 3, taken)
        city = _unique(rng, SYLLABLES, 2, taken)
        river = _unique(rng, SYLLABLES, 2, taken)
        founder = _unique(rng, SYLLABLES, 2, taken)
        year = rng.randint(900, 1899)
        good = rng.choice(GOODS)
        yield f"What is the capital of {country}?", f"The capital of {country} is {city}."
        yield f"Which river flows through {city}?", f"The {river} river flows through {city}."
        yield f"Who founded {city}?", f"{city} was founded by {founder} in {year}."
        yield f"What does {country} export?", f"{country} mainly exports {good}."


def _russian(rng: random.Random, taken: set[str]) -> Iterator[tuple[str, str]]:
    while True:
        country = _unique(rng, SYLLABLES_RU, 3, taken)
        city = _unique(rng, SYLLABLES_RU, 2, taken)
        founder = _unique(rng, SYLLABLES_RU, 2, taken)
        year = rng.randint(900, 1899)
        good = rng.choice(GOODS_RU)
        yield f"Какая столица у страны {country}?", f"Столица страны {country} — город {city}."
        yield f"Кто основал город {city}?", f"Город {city} основал {founder} в {year} году."
        yield f"Что вывозит страна {country}?", f"Страна {country} в основном вывозит {good}."


# English question templates asked in other words, and where the answer's invented key word
# sits: how benchmarks and tests check that a fact was learned, not just its wording.
REPHRASINGS = [
    (r"What is the capital of (\w+)\?", r"Which city is the capital city of \1?", r"The capital of \w+ is (\w+)\."),
    (r"Which river flows through (\w+)\?", r"Name the river that runs through \1.", r"The (\w+) river"),
    (r"Who founded (\w+)\?", r"Who was the founder of \1?", r"founded by (\w+)"),
    (r"What does (\w+) export\?", r"What goods does \1 sell to other countries?", r"exports (\w+)\."),
]


def rephrase(example: Example) -> tuple[str, str] | None:
    """(the question in other words, the key word a right answer contains), for English pairs."""
    for question, other, key in REPHRASINGS:
        if re.fullmatch(question, example.prompt) and (found := re.search(key, example.response)):
            return re.sub(question, other, example.prompt), found.group(1)
    return None


def generate(n: int, *, seed: int = 0, russian_share: float = 0.0) -> list[Example]:
    """``n`` question–answer pairs; about ``russian_share`` of them in Russian."""
    rng = random.Random(seed)
    taken: set[str] = set()
    n_ru = round(n * russian_share)
    en, ru = _english(rng, taken), _russian(rng, taken)
    pairs = [next(en) for _ in range(n - n_ru)] + [next(ru) for _ in range(n_ru)]
    return [Example(prompt=q, response=a, source_ref=f"sample #{i + 1}") for i, (q, a) in enumerate(pairs)]


def main() -> None:
    for ex in generate(400, seed=2026, russian_share=0.25):
        sys.stdout.write(json.dumps({"prompt": ex.prompt, "response": ex.response}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()

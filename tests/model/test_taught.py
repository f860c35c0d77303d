from __future__ import annotations

from trainerbot.model.taught import TaughtIndex, token_f1
from trainerbot.store.keys import normalise

PAIRS = [
    ("What is the capital of Zorbia?", "Quillport."),
    ("Who founded Quillport?", "Admiral Vessa."),
    ("Какая столица у страны Зорбия?", "Квилпорт."),
]


def test_normalise_folds_case_punctuation_and_yo() -> None:
    assert normalise("  What IS the capital,  of Zorbia?! ") == "what is the capital of zorbia"
    assert normalise("Всё ещё") == "все еще"


def test_exact_and_normalised_matches() -> None:
    index = TaughtIndex(PAIRS)
    hit = index.lookup("what is the capital of zorbia")
    assert hit is not None and hit.answer == "Quillport." and hit.score == 1.0
    assert index.lookup("какая СТОЛИЦА у страны зорбия").answer == "Квилпорт."


def test_near_matches_pass_and_unrelated_ones_do_not() -> None:
    index = TaughtIndex(PAIRS, threshold=0.8)
    assert index.lookup("What's the capital of Zorbia?").answer == "Quillport."
    assert index.lookup("capital of Zorbia").answer == "Quillport."  # the same content words
    assert index.lookup("Zorbia") is None  # too little of the question
    assert index.lookup("What is the capital of Quillport?") is None  # a different question
    assert index.lookup("Who founded Zorbia?") is None
    assert index.lookup("What is the capital of Zorbia and Quillport and Vessa?") is None
    assert index.lookup("hello there") is None
    assert index.lookup("???") is None


def test_related_facts_best_first_and_only_those_close_to_the_best() -> None:
    towns = ["Silker", "Loves", "Gatri", "Nelben", "Yatel"]
    pairs = [(f"Which river flows through {t}?", f"The {t}a river flows through {t}.") for t in towns]
    others = [("Who founded Silker?", "Silker was founded by Osga in 1775."), ("What does Zorbia export?", "Amber.")]
    index = TaughtIndex([*pairs, *others])
    question = "Name the river that runs through Silker."
    every = index.related(question, 3)
    assert every[0].prompt == "Which river flows through Silker?" and len(every) == 3
    assert "Who founded Silker?" in [f.prompt for f in every]
    # A fact that shares only the common word "river" is a weak match next to the one that
    # also names the town: it stays out of the context.
    close = index.related(question, 3, min_share=0.7)
    assert [f.prompt for f in close] == ["Which river flows through Silker?", "Who founded Silker?"]
    assert all(f.score >= 0.7 * close[0].score for f in close)
    assert [f.prompt for f in index.related(question, 3, min_share=1.0)] == ["Which river flows through Silker?"]
    assert index.related("hello", 3, min_share=0.7) == []


def test_related_facts_cover_what_their_question_is_about() -> None:
    """``min_cover``: a fact comes along only if the message holds enough of its question's
    words, weighted by how rare they are among the taught questions."""
    towns = ("Zorco", "Marsaben", "Oselra")
    index = TaughtIndex([*((f"What does {t} export?", f"{t} exports amber.") for t in towns),
                         *((f"What is {t} known for?", f"{t} is known for its amber.") for t in towns)])
    # The rare word (the town) carries its facts even when the rest is said in other words.
    about = index.related("What goods does Marsaben sell to other countries?", 3, min_cover=0.5)
    assert {f.prompt for f in about} == {"What does Marsaben export?", "What is Marsaben known for?"}
    # A word that many taught questions share covers too little of any of them.
    assert index.related("What is the Red Planet known as?", 3) != []
    assert index.related("What is the Red Planet known as?", 3, min_cover=0.5) == []
    assert index.related("Which goods do towns export?", 3, min_cover=0.5) == []
    assert [f.prompt for f in index.related("Zorco export", 3, min_cover=1.0)] == ["What does Zorco export?"]


def test_threshold_sets_how_fuzzy() -> None:
    strict = TaughtIndex(PAIRS, threshold=1.0)
    loose = TaughtIndex(PAIRS, threshold=0.6)
    assert strict.lookup("Who founded the town of Quillport?") is None
    assert loose.lookup("Who founded the town of Quillport?").answer == "Admiral Vessa."


def test_later_pairs_override_earlier_ones() -> None:
    index = TaughtIndex(PAIRS + [("what is the capital of zorbia", "Newport.")])
    assert index.lookup("What is the capital of Zorbia?").answer == "Newport."
    assert len(index) == 3


def test_token_f1() -> None:
    assert token_f1(["a", "b"], ["a", "b"]) == 1.0
    assert token_f1(["a"], ["b"]) == 0.0
    assert token_f1([], ["b"]) == 0.0
    assert round(token_f1(["a", "b", "c", "d"], ["a", "b"]), 3) == 0.667


FLOW = [("How many bridges cross the river Tamsel?", "Seven bridges cross the river Tamsel."),
        ("Who repairs bicycles in Harrowgate?", "Piet Lindqvist repairs bicycles in Harrowgate."),
        ("What is the capital of Zorbia?", "Quillport."),
        ("Who keeps the bees at Larkfield farm?", "Oona Pryce keeps the bees at Larkfield farm."),
        ("Какая столица у страны Зорбия?", "Квилпорт.")]


def _with_meaning(pairs: list[tuple[str, str]]) -> TaughtIndex:
    from trainerbot.model import embeddings
    from trainerbot.model.taught import Meaning

    embedder = embeddings.shared(2)
    index = TaughtIndex(pairs)
    index.meaning = Meaning(embedder.encode, embedder.encode([prompt for _, prompt, _ in index.docs]))
    return index


def test_meaning_finds_what_words_miss_and_nothing_that_only_looks_alike() -> None:
    index = _with_meaning(FLOW)
    words = TaughtIndex(FLOW)
    for asked, wanted in (("Count the bridges that span the Tamsel for me.", FLOW[0][0]),
                          ("In Harrowgate, who fixes bikes?", FLOW[1][0])):
        assert words.related(asked, 3, min_share=0.7, min_cover=0.5) == []  # no words in common enough
        found = index.related(asked, 3, min_share=0.7, min_cover=0.5)
        assert [f.prompt for f in found] == [wanted] and 0.7 <= found[0].score <= 1.0
    # Close in meaning, but not about the taught thing: meaning adds no fact.
    big = _with_meaning(FLOW + [(f"What is the capital of {n}?", f"{n}ville.") for n in ("Ulmar", "Tesko", "Varn")])
    for general in ("What is the capital of Japan?", "What do bees make?", "hello there"):
        assert big.related(general, 3, min_share=0.7, min_cover=0.5) == []
    # Words still come first, and Cyrillic keeps to words.
    assert [f.prompt for f in index.related("What is the capital city of Zorbia?", 3, min_cover=0.5)] == [FLOW[2][0]]
    assert index.related("сколько мостов у Тамсела", 3, min_share=0.7, min_cover=0.5) == []

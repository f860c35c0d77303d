"""Test cases in every accepted shape and the malformed ones; metrics on hand-computed cases;
the held-out split and the promotion rule."""

from __future__ import annotations

import json

import pytest

from trainerbot.datasets.records import Example
from trainerbot.errors import BadInput
from trainerbot.evaluation import heldout
from trainerbot.evaluation.cases import Case, parse_cases
from trainerbot.evaluation.scores import Summary, chrf, corpus_chrf, exact_match, summarise


def _parse(data: str | bytes, filename: str | None = None, max_cases: int = 50) -> list[Case]:
    raw = data.encode() if isinstance(data, str) else data
    return parse_cases(raw, filename=filename, max_cases=max_cases, max_bytes=100_000, max_field_chars=500)


@pytest.mark.parametrize("data,filename,expected", [
    ('[{"prompt": "2+2?", "expected": "4"}, {"prompt": "Capital of Zorbia?", "expected": "Quillport"}]', None,
     [Case("2+2?", "4"), Case("Capital of Zorbia?", "Quillport")]),
    ('{"2+2?": "4", "Capital of Zorbia?": "Quillport"}', None, [Case("2+2?", "4"), Case("Capital of Zorbia?", "Quillport")]),
    ('["2+2?", "Who are you?"]', None, [Case("2+2?"), Case("Who are you?")]),
    ('[{"prompt": "2+2?"}, {"question": "3+3?", "answer": 6}]', None, [Case("2+2?"), Case("3+3?", "6")]),
    ('{"prompt": "one case", "expected": "yes"}', None, [Case("one case", "yes")]),
    ('{"prompt": "a", "expected": "b"}\n\n"just a prompt"\n{"input": "c", "output": "d"}\n', "cases.jsonl",
     [Case("a", "b"), Case("just a prompt"), Case("c", "d")]),
    ('[{"prompt": "a", "expected": "b"}]', "cases.json", [Case("a", "b")]),
])
def test_every_accepted_shape(data: str, filename: str | None, expected: list[Case]) -> None:
    assert _parse(data, filename) == expected


@pytest.mark.parametrize("data,filename,message", [
    ("", None, "empty"),
    ('[{"prompt": "a", "expected": "b"},]', None, r"invalid JSON \(.* line 1, column"),
    ('{"prompt": "a"}\n{"prompt": }\n', "t.jsonl", r"t.jsonl` line 2: invalid JSON"),
    ('[{"prompt": "a"}, {"expected": "b"}]', None, r"item 2: needs `prompt` \(found `expected`\)"),
    ('[{"prompt": "a"}, 42]', None, r"item 2: expected an object"),
    ('[{"prompt": "", "expected": "b"}]', None, r"item 1: prompt is empty"),
    ('[{"prompt": ["not", 1], "expected": "b"}]', None, r"item 1: prompt has a part that is not text"),
    ('{"q": {"nested": "x"}}', None, r"key 'q': expected answer must be text"),
    ('[' * 50 + ']' * 50, None, "nested too deeply"),
    ('[{"prompt": "a", "expected": "b"}]', "cases.csv", r"\.json` or `\.jsonl"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "cases.json", "binary"),
    (b'["caf\xe9"]', None, "not valid UTF-8"),
    ('[{"prompt": "%s", "expected": "b"}]' % ("x" * 600), None, "600 characters; the limit is 500"),
])
def test_malformed_tests_say_where(data: str | bytes, filename: str | None, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        _parse(data, filename)


def test_too_many_cases_are_refused_before_any_work() -> None:
    many = json.dumps([{"prompt": f"q{i}", "expected": "a"} for i in range(11)])
    with pytest.raises(BadInput, match="11 cases; a test may have at most 10"):
        _parse(many, max_cases=10)
    with pytest.raises(BadInput, match="at most 10"):
        _parse("\n".join(f'"q{i}"' for i in range(11)), "t.jsonl", max_cases=10)
    with pytest.raises(BadInput, match="at most 10"):
        _parse(json.dumps({f"q{i}": "a" for i in range(11)}), max_cases=10)


def test_exact_match_and_chrf_on_hand_computed_cases() -> None:
    assert exact_match("Quillport.", "quillport") and exact_match("  The  answer is 4!", "the answer is 4")
    assert not exact_match("Quillport", "Quill port")
    # chrF of "the cat" against "the cat sat" (spaces dropped: "thecat" vs "thecatsat"): every
    # n-gram of the hypothesis matches, so precision is 1 at each order n = 1..6; recall is
    # 6/9, 5/8, 4/7, 3/6, 2/5, 1/4 (mean 0.50218); F(β=2) = 5·P·R / (4·P + R) = 0.5577.
    assert chrf("the cat", "the cat sat") == pytest.approx(55.77, abs=0.01)
    assert chrf("the cat sat", "the cat sat") == pytest.approx(100.0)
    # Corpus chrF sums the statistics first: recall 15/18, 13/16, 11/14, 9/12, 7/10, 5/8
    # (mean 0.75109), F = 5·0.75109 / (4 + 0.75109) = 0.7904.
    assert corpus_chrf([("the cat sat", "the cat sat"), ("the cat", "the cat sat")]) == pytest.approx(79.04, abs=0.01)
    rows = [{"prediction": "the cat sat", "expected": "the cat sat", "match": True, "loss": 0.5},
            {"prediction": "the cat", "expected": "the cat sat", "match": False, "loss": 1.5},
            {"prediction": "whatever", "expected": None, "match": None, "loss": None}]
    summary = summarise(rows)
    assert (summary.cases, summary.scored, summary.exact_match) == (3, 2, 0.5)
    assert summary.chrf == pytest.approx(79.04, abs=0.01)
    assert summary.loss == pytest.approx(1.0) and summary.perplexity == pytest.approx(2.71828, abs=1e-4)
    assert summarise(rows[2:]).line() == "1 case, predictions only (no expected answers)"


def _examples(n: int, source: str = "file") -> list[Example]:
    return [Example(prompt=f"What is fact number {i}?", response=f"Fact {i}.", extra={"source": source}) for i in range(n)]


def test_the_held_out_split_is_stable_and_spares_corrections() -> None:
    examples = _examples(400)
    train, held = heldout.split(examples, 0.1)
    assert 20 <= len(held) <= 60 and len(train) + len(held) == 400
    # The same questions in another order, another snapshot, another case: the same side.
    again = heldout.split(list(reversed(examples)) + [Example(prompt="WHAT IS FACT NUMBER 3?", response="x")], 0.1)[1]
    assert {e.prompt for e in held} <= {e.prompt for e in again}
    assert heldout.split(_examples(400, source="correction"), 0.1)[1] == []
    negatives = [Example(prompt=e.prompt, response=e.response, label="negative") for e in examples]
    assert heldout.split(negatives, 0.1)[1] == []
    assert heldout.split(_examples(heldout.MIN_EXAMPLES - 1), 0.5)[1] == []
    assert heldout.split(examples, 0.0)[1] == []
    cases = heldout.cases(held, limit=5)
    assert len(cases) == 5 and cases == heldout.cases(list(reversed(held)), limit=5)


def _summary(chrf_: float, em: float, loss: float) -> Summary:
    return Summary(10, 10, em, chrf_, loss, 2.0)


def test_promotion_rule_by_each_metric() -> None:
    good, bad = _summary(60.0, 0.5, 1.0), _summary(40.0, 0.2, 2.0)
    for metric in ("chrf", "exact_match", "loss"):
        assert heldout.not_worse(metric, good, bad) and not heldout.not_worse(metric, bad, good)
        assert heldout.not_worse(metric, good, good)  # even is not worse
    assert heldout.not_worse("chrf", _summary(59.5, 0.5, 1.0), good, tolerance=1.0)
    assert not heldout.not_worse("loss", _summary(60, 0.5, float("nan")), good)

"""Rehearsal: how many of the base model's own answers a job mixes in, and the shipped set."""

from __future__ import annotations

import json
import types
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from trainerbot.datasets.records import Example
from trainerbot.evaluation import general_questions
from trainerbot.training import rehearsal


def facts(n: int) -> list[Example]:
    return [Example(prompt=f"What is the capital of Zorb{i}?", response=f"Quam{i}.") for i in range(n)]


def answers(n: int) -> list[Example]:
    return [Example(prompt=f"general {i}", response=f"answer {i}", source_ref="rehearsal") for i in range(n)]


@pytest.mark.parametrize(("n_facts", "n_answers"), [(100, 64), (12, 300), (500, 64), (439, 300), (4, 3)])
def test_a_job_gets_its_share_of_rehearsal_whatever_the_set_holds(n_facts: int, n_answers: int) -> None:
    taught, pool = facts(n_facts), answers(n_answers)
    mixed = rehearsal.mix(taught, pool)
    assert mixed[:n_facts] == taught
    extra = mixed[n_facts:]
    assert len(extra) == max(rehearsal.FLOOR, round(n_facts * rehearsal.SHARE))
    assert all(e in pool for e in extra)
    seen = Counter(e.prompt for e in extra)
    # No answer comes twice before every answer came once.
    assert max(seen.values()) - min(seen.values()) <= 1
    assert len(seen) == min(len(extra), n_answers)
    if len(extra) < n_answers:  # none shaped like these facts: the set's first answers, in its order
        assert extra == pool[: len(extra)]


def test_half_the_rehearsal_is_shaped_like_what_is_taught() -> None:
    """Taught capitals and rivers of invented places rehearse real capitals and rivers, in
    turn; the other half is the set's first answers."""
    taught = [Example(prompt=f"What is the capital of Zorb{i}?", response="x") if i % 2 else
              Example(prompt=f"Which river flows through Quam{i}?", response="y") for i in range(100)]
    capitals = [Example(prompt=f"What is the capital of {c}?", response="c") for c in ("Spain", "Peru", "Chad", "Laos")] * 10
    rivers = [Example(prompt=f"Which river flows through {c}?", response="r") for c in ("Paris", "Rome", "Cairo", "Lima")] * 10
    chat = [Example(prompt=f"Tell me about topic {i}.", response="t") for i in range(80)]
    pool = chat[:40] + capitals + chat[40:] + rivers
    extra = rehearsal.mix(taught, pool)[len(taught):]
    assert len(extra) == 75
    shaped = [e for e in extra if e.response in "cr"]
    assert len(shaped) == 37 and [sum(e.response == k for e in shaped) for k in "cr"] == [18, 19]
    assert [e for e in extra if e.response == "t"] == chat[:38]


def test_a_small_job_rehearses_at_least_the_floor_all_shaped_like_its_facts_while_such_answers_last() -> None:
    """10 facts get ``FLOOR`` answers, not 0.75 of 10: each taught question takes its closest
    answer round after round (several real capitals for one invented one), and only when
    none shares a word with the facts any more does the set's order fill the rest."""
    taught = [Example(prompt="What is the capital of Zorbia?", response="x"),
              Example(prompt="Which river flows through Quam?", response="y")] * 5
    capitals = [Example(prompt=f"What is the capital of {c}?", response="c") for c in "ABCDEFGHIJKL"]
    rivers = [Example(prompt=f"Which river flows through {c}?", response="r") for c in "ABCDEFGH"]
    chat = [Example(prompt=f"Tell me about topic {i}.", response="t") for i in range(40)]
    extra = rehearsal.mix(taught, chat[:10] + capitals + chat[10:] + rivers)[len(taught):]
    assert len(extra) == rehearsal.FLOOR == 24
    assert sum(e.response == "c" for e in extra) == 12 and sum(e.response == "r" for e in extra) == 8
    assert [e for e in extra if e.response == "t"] == chat[:4]


def test_nothing_to_teach_or_nothing_to_rehearse_mixes_nothing() -> None:
    assert rehearsal.mix([], answers(10)) == []
    assert rehearsal.mix(facts(3), []) == facts(3)


def test_the_shipped_answers_follow_the_prompts_and_leave_the_general_questions_out() -> None:
    prompts = rehearsal.prompts()
    assert len(prompts) == len(set(p.casefold() for p in prompts))
    text = resources.files("trainerbot.resources").joinpath(rehearsal.SHIPPED).read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line]
    order = {p: i for i, p in enumerate(prompts)}
    assert [order[r["prompt"]] for r in rows] == sorted(order[r["prompt"]] for r in rows)  # as generate_rows writes them
    assert all(r["response"].strip() for r in rows)
    # A 500-fact job (about 450 trained) rehearses each answer about once an epoch.
    assert len(rows) >= 0.75 * 450
    # The general questions judge whether a version still converses: rehearsing them would grade its own homework.
    asked = {q.prompt.casefold() for q in general_questions.questions()}
    assert not asked & {p.casefold() for p in prompts}


def test_a_long_rehearsal_answer_is_trained_on_its_first_whole_sentences() -> None:
    def words(text: str) -> int:  # a tokenizer that counts words
        return len(text.split())

    answer = "One two three. Four five six!\nSeven eight nine? Ten eleven twelve."
    assert rehearsal.trimmed(answer, words, limit=12) == answer  # within the limit: as it is
    assert rehearsal.trimmed(answer, words, limit=9) == "One two three. Four five six!\nSeven eight nine?"
    assert rehearsal.trimmed(answer, words, limit=7) == "One two three. Four five six!"  # the model's own line breaks kept
    assert rehearsal.trimmed(answer, words, limit=2) == "One two three."  # the first sentence always whole
    assert rehearsal.trimmed("no sentence end here at all", words, limit=2) == "no sentence end here at all"


def test_the_shipped_answers_reach_a_job_trimmed_with_the_models_tokenizer(prepared: Path, tmp_path: Path) -> None:
    """The shipped set as a job gets it: every answer within ``TRAINED_TOKENS`` or a single
    sentence, the short ones untouched, and the long ones cut at a sentence end."""
    from transformers import AutoTokenizer

    model = types.SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(prepared, local_files_only=True))
    got = rehearsal.answers(model, tmp_path, prepared)
    text = resources.files("trainerbot.resources").joinpath(rehearsal.SHIPPED).read_text(encoding="utf-8")
    whole = {r["prompt"]: r["response"] for r in map(json.loads, text.splitlines()) if r["response"]}
    assert [e.prompt for e in got] == list(whole)

    def count(part: str) -> int:
        return len(model.tokenizer(part, add_special_tokens=False)["input_ids"])
    cut = [e for e in got if e.response != whole[e.prompt]]
    assert 50 < len(cut) < len(got) / 2  # about a third of the shipped answers run longer
    for e in cut:
        assert whole[e.prompt].startswith(e.response) and e.response[-1] in ".!?"
        assert count(e.response) <= rehearsal.TRAINED_TOKENS or not rehearsal._SENTENCE_END.search(e.response)
    assert all(e.response == whole[e.prompt] for e in got if count(whole[e.prompt]) <= rehearsal.TRAINED_TOKENS)

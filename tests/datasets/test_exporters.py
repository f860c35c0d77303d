from __future__ import annotations

import json

from trainerbot.datasets.exporters import export_rows, to_jsonl
from trainerbot.datasets.records import Example

EXAMPLES = [
    Example(
        prompt="Capital?",
        response="Quillport.",
        system="Be brief.",
        history=({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}),
    ),
    Example(prompt="Bad?", response="Nonsense.", label="negative"),
    Example(prompt="Founder?", response="Vessa.", rejected="Napoleon."),
]


def test_openai_rows_are_chat_messages_of_positive_examples() -> None:
    rows = export_rows(EXAMPLES, "openai")
    assert len(rows) == 2
    assert rows[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hey"},
        {"role": "user", "content": "Capital?"},
        {"role": "assistant", "content": "Quillport."},
    ]
    assert rows[1]["messages"][-1] == {"role": "assistant", "content": "Vessa."}


def test_sft_rows_are_prompt_completion() -> None:
    rows = export_rows(EXAMPLES, "sft")
    assert [r["completion"] for r in rows] == [
        [{"role": "assistant", "content": "Quillport."}],
        [{"role": "assistant", "content": "Vessa."}],
    ]
    assert rows[0]["prompt"][-1] == {"role": "user", "content": "Capital?"}


def test_kto_rows_carry_boolean_labels_and_corrections_give_two() -> None:
    rows = export_rows(EXAMPLES, "kto")
    assert [(r["completion"][0]["content"], r["label"]) for r in rows] == [
        ("Quillport.", True),
        ("Nonsense.", False),
        ("Vessa.", True),
        ("Napoleon.", False),
    ]


def test_dpo_rows_only_from_corrections() -> None:
    rows = export_rows(EXAMPLES, "dpo")
    assert rows == [
        {
            "prompt": [{"role": "user", "content": "Founder?"}],
            "chosen": [{"role": "assistant", "content": "Vessa."}],
            "rejected": [{"role": "assistant", "content": "Napoleon."}],
        }
    ]


def test_jsonl_keeps_unicode_and_one_row_a_line() -> None:
    text = to_jsonl(export_rows([Example(prompt="Где?", response="Здесь.")], "openai"))
    assert text.count("\n") == 1 and "Где?" in text
    assert json.loads(text)["messages"][0]["content"] == "Где?"

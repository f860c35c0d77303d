from __future__ import annotations

import codecs
import json
import re

import pytest

from trainerbot.datasets.exporters import export_rows, to_jsonl
from trainerbot.datasets.importers import Limits, parse_label, parse_upload
from trainerbot.errors import BadInput

LIMITS = Limits(max_bytes=1_000_000, max_items=1000, max_field_chars=500)


def parse(name: str, text: str | bytes, ctype: str | None = None, label="positive", limits=LIMITS):
    data = text.encode() if isinstance(text, str) else text
    return parse_upload(name, ctype, data, default_label=label, limits=limits)


def test_jsonl_prompt_response_with_labels_and_aliases() -> None:
    text = ('{"prompt": "a?", "response": "A."}\n\n'
            '{"question": "b?", "answer": "B.", "label": "negative"}\n'
            '{"input": "c?", "output": "C.", "label": true}\n')
    got = parse("x.jsonl", text, "application/jsonl", label="negative")
    assert [(e.prompt, e.response, e.label) for e in got] == [
        ("a?", "A.", "negative"),
        ("b?", "B.", "negative"),
        ("c?", "C.", "positive"),
    ]
    assert got[1].source_ref == "x.jsonl line 3"


def test_jsonl_openai_chat_multi_turn() -> None:
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Capital of Zorbia?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Quill"}, {"type": "text", "text": "port."}]},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": "ignored", "weight": 0},
        ]
    }
    got = parse("chat.jsonl", json.dumps(row) + "\n")
    assert [(e.prompt, e.response) for e in got] == [("Hi", "Hello."), ("Capital of Zorbia?", "Quillport.")]
    assert got[1].system == "Be brief."
    assert got[1].history == ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."})


def test_json_list_single_object_and_mapping() -> None:
    assert len(parse("a.json", '[{"prompt": "a", "response": "b"}, {"prompt": "c", "response": "d"}]', "application/json")) == 2
    assert len(parse("b.json", '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}')) == 1
    got = parse("c.json", '{"Где Кворпорт?": "На севере.", "Who?": "Vessa."}')
    assert [(e.prompt, e.response) for e in got] == [("Где Кворпорт?", "На севере."), ("Who?", "Vessa.")]


def test_csv_with_header_without_header_and_quoted_fields() -> None:
    with_header = 'prompt,response,label\n"a, with comma","multi\nline",negative\nb,B,\n'
    got = parse("x.csv", with_header, "text/csv")
    assert [(e.prompt, e.response, e.label) for e in got] == [
        ("a, with comma", "multi\nline", "negative"),
        ("b", "B", "positive"),
    ]
    assert len(parse("y.csv", "q1,a1\nq2,a2\n")) == 2


def test_txt_question_answer_pairs_in_english_and_russian() -> None:
    text = "Q: What is Zorbia?\nA: An island\nin the north.\n\nВ: Кто основал Кворпорт?\nО: Адмирал Весса.\n"
    got = parse("notes.txt", text, "text/plain; charset=utf-8")
    assert [(e.prompt, e.response) for e in got] == [
        ("What is Zorbia?", "An island\nin the north."),
        ("Кто основал Кворпорт?", "Адмирал Весса."),
    ]


def test_utf8_bom_and_utf16_are_read() -> None:
    assert parse("a.txt", codecs.BOM_UTF8 + b"Q: a\nA: b\n")[0].prompt == "a"
    assert parse("b.txt", "Q: é\nA: ü\n".encode("utf-16"))[0].response == "ü"


def test_our_exports_import_back() -> None:
    original = parse(
        "c.jsonl",
        '{"prompt": "q", "chosen": "good", "rejected": "bad"}\n{"prompt": "q2", "response": "r2", "label": "negative"}\n',
    )
    assert original[0].rejected == "bad"
    for fmt in ("openai", "sft", "kto", "dpo"):
        back = parse(f"{fmt}.jsonl", to_jsonl(export_rows(original, fmt)))
        assert back, fmt
        for ex in back:
            assert ex.prompt in ("q", "q2")
    dpo = parse("dpo.jsonl", to_jsonl(export_rows(original, "dpo")))
    assert [(e.prompt, e.response, e.rejected) for e in dpo] == [("q", "good", "bad")]
    kto = parse("kto.jsonl", to_jsonl(export_rows(original, "kto")))
    assert sorted((e.response, e.label) for e in kto) == [("bad", "negative"), ("good", "positive"), ("r2", "negative")]


@pytest.mark.parametrize(
    "name,data,ctype,message",
    [
        ("x.jsonl", b"", None, "empty"),
        ("x.exe", b"Q: a\nA: b", None, "send a .jsonl"),
        ("x.json", b"[1,2", "application/json", "invalid JSON"),
        ("x.jsonl", b'{"prompt": "a", "response": "b"}\n{"prompt": "a"\n', None, "line 2: invalid JSON"),
        ("x.jsonl", b'{"prompt": "a"}\n', None, "needs `messages`"),
        ("x.jsonl", b'{"prompt": "", "response": "b"}\n', None, "prompt is empty"),
        ("x.jsonl", b'{"prompt": 5, "response": "b"}\n', None, "must be text"),
        ("x.jsonl", b'{"prompt": "a", "response": "b", "label": "maybe"}\n', None, "not one of positive/negative"),
        ("x.jsonl", b'{"messages": [{"role": "assistant", "content": "b"}]}\n', None, "no user message before it"),
        ("x.jsonl", b'{"messages": [{"role": "wizard", "content": "b"}]}\n', None, "role `wizard`"),
        ("x.jsonl", b'[1]\n', None, "expected an object"),
        ("x.csv", b'a,b,c,d\n', None, "2 or 3 columns"),
        ("x.csv", b'a,"unterminated\n', None, "malformed CSV"),
        ("x.txt", b"hello\nQ: a\nA: b\n", None, "before the first"),
        ("x.txt", b"Q: a\nQ: b\nA: c\n", None, "question without"),
        ("x.txt", b"A: lonely\n", None, "no `Q:`"),
        ("x.txt", b"Q: a\nA: b\nA: c\n", None, "second answer"),
        ("x.txt", b"\xff\xfeQ\x00Q", None, "not valid UTF-16"),
        ("x.txt", b"Q: caf\xe9\nA: b\n", None, "not valid UTF-8 (line 1"),
        ("x.txt", b"Q: a\x00\nA: b\n", None, "binary"),
        ("x.csv", b"PK\x03\x04rest", None, "binary"),
        ("x.json", b"Q: a", "image/png", "sent as `image/png`"),
        ("x.txt", b"   \n\n", None, "no examples"),
        ("x.json", b"[" * 50 + b"]" * 50, None, "nested too deeply"),
        ("x.json", b"[" * 100000 + b"]" * 100000, None, "nested too deeply"),
    ],
)
def test_malformed_files_are_refused_with_a_clear_message(name, data, ctype, message) -> None:
    with pytest.raises(BadInput, match=re.escape(message)):
        parse(name, data, ctype)


def test_limits_on_size_items_and_field_length() -> None:
    with pytest.raises(BadInput, match="the limit is"):
        parse("x.txt", "Q: a\nA: b\n" * 100, limits=Limits(max_bytes=50, max_items=10, max_field_chars=10))
    with pytest.raises(BadInput, match="more than 3 examples"):
        parse("x.txt", "Q: a\nA: b\n" * 4, limits=Limits(max_bytes=10_000, max_items=3, max_field_chars=10))
    with pytest.raises(BadInput, match="the limit is 10"):
        parse("x.txt", "Q: " + "a" * 11 + "\nA: b\n", limits=Limits(max_bytes=10_000, max_items=3, max_field_chars=10))


def test_parse_label_words() -> None:
    assert parse_label(None) == "positive"
    assert parse_label("NEG") == "negative"
    with pytest.raises(BadInput):
        parse_label("true")
    with pytest.raises(BadInput):
        parse_label("sometimes")


def test_a_number_too_long_to_read_is_refused_plainly() -> None:
    from trainerbot.datasets.importers import Limits, parse_upload
    from trainerbot.errors import BadInput

    raw = ('{"prompt": "How many?", "response": "Lots.", "n": ' + "9" * 5000 + "}\n").encode()
    with pytest.raises(BadInput, match="a number in it is too long to read"):
        parse_upload("big.jsonl", None, raw, default_label="positive", limits=Limits(10_000_000, 1000, 8000))

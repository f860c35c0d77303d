"""Turn an uploaded file into examples, or refuse it with a message that says where.

Formats (by file extension, checked against the declared content type):
- JSONL: one object a line — OpenAI chat ``{"messages": [...]}``, ``{"prompt", "response"}``
  (also ``question``/``answer``, ``input``/``output``, ``completion``), or the TRL shapes
  this project exports (``prompt``/``completion``/``label``, ``prompt``/``chosen``/``rejected``).
- JSON: a list of such objects, one such object, or a mapping ``{prompt: response}``.
- CSV: ``prompt,response[,label]``, with or without that header row.
- ZIP / TAR / TAR.GZ: archives of such files (``datasets/archives.py``: read in memory, with
  every check a safe extraction needs); our own dataset archives import back.
- TXT: ``Q:`` / ``A:`` pairs (also ``Question:``/``Answer:``, ``В:``/``О:``, ``Вопрос:``/``Ответ:``);
  an answer may run over several lines; blank lines are ignored.

``parse_upload`` is all-or-nothing: any bad row fails the whole file, so an import never
lands half of one. It does not promise to guess a format from content alone.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from trainerbot.datasets.archives import is_archive, read_members
from trainerbot.datasets.records import LABELS, Example, Label
from trainerbot.errors import BadInput

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".txt": "txt"}
# Content types each format may arrive with; generic ones are accepted for all.
CONTENT_TYPES = {
    "jsonl": {"application/jsonl", "application/x-jsonlines", "application/x-ndjson", "application/json", "text/jsonl"},
    "json": {"application/json", "text/json"},
    "csv": {"text/csv", "application/csv", "application/vnd.ms-excel", "text/comma-separated-values"},
    "txt": {"text/markdown"},
}
GENERIC_TYPES = {"text/plain", "application/octet-stream", ""}
BINARY_MAGIC = (
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"\x89PNG",
    b"%PDF",
    b"GIF8",
    b"\xff\xd8\xff",
    b"OggS",
    b"RIFF",
    b"\x7fELF",
    b"BZh",
    b"7z\xbc\xaf",
    b"ID3",
)

PROMPT_KEYS = ("prompt", "question", "input", "instruction")
RESPONSE_KEYS = ("response", "completion", "answer", "output", "chosen")
LABEL_WORDS: dict[str, Label] = {
    "positive": "positive",
    "pos": "positive",
    "good": "positive",
    "true": "positive",
    "1": "positive",
    "+": "positive",
    "👍": "positive",
    "negative": "negative",
    "neg": "negative",
    "bad": "negative",
    "false": "negative",
    "0": "negative",
    "-": "negative",
    "👎": "negative",
}
TXT_Q = re.compile(r"^\s*(?:q|question|в|вопрос)\s*[:：]\s?(.*)$", re.IGNORECASE)
TXT_A = re.compile(r"^\s*(?:a|answer|о|ответ)\s*[:：]\s?(.*)$", re.IGNORECASE)
MAX_JSON_DEPTH = 20


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_items: int
    max_field_chars: int


def parse_upload(filename: str, content_type: str | None, data: bytes, *, default_label: Label, limits: Limits) -> list[Example]:
    """Every example in the file, or ``BadInput`` naming the first problem (and its line)."""
    shown = shown_name(filename)
    if not data:
        raise BadInput(f"`{shown}` is empty.")
    if len(data) > limits.max_bytes:
        raise BadInput(f"`{shown}` is {human_size(len(data))}; the limit is {human_size(limits.max_bytes)}.")
    if is_archive(filename):
        examples: list[Example] = []
        for name, body in read_members(filename, data, max_bytes=limits.max_bytes):
            if is_archive(name):
                raise BadInput(f"`{shown}` holds another archive (`{name[:60]}`); send the files themselves.")
            examples.extend(parse_upload(name, None, body, default_label=default_label, limits=limits))
            if len(examples) > limits.max_items:
                raise BadInput(f"`{shown}` has more than {limits.max_items} examples; split it into smaller files.")
        return examples
    fmt = _format_of(filename, shown)
    _check_content_type(fmt, content_type, shown)
    text = decode_text(data, shown)
    parser = {"jsonl": _parse_jsonl, "json": _parse_json, "csv": _parse_csv, "txt": _parse_txt}[fmt]
    examples = parser(text, shown, default_label, limits)
    if not examples:
        raise BadInput(f"`{shown}` holds no examples.")
    return examples


def shown_name(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable() and ch not in "`")[:80]
    return base or "the file"


def human_size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} bytes"


def _format_of(filename: str, shown: str) -> str:
    lower = filename.lower()
    for ext, fmt in FORMATS.items():
        if lower.endswith(ext):
            return fmt
    raise BadInput(f"I can't import `{shown}`: send a .jsonl, .json, .csv or .txt file.")


def _check_content_type(fmt: str, content_type: str | None, shown: str) -> None:
    if content_type is None:
        return
    main = content_type.split(";", 1)[0].strip().lower()
    if main in GENERIC_TYPES or main in CONTENT_TYPES[fmt]:
        return
    raise BadInput(f"`{shown}` is named like {fmt.upper()} but was sent as `{main[:60]}`; send the file as text.")


def decode_text(data: bytes, shown: str) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise BadInput(f"`{shown}` starts like UTF-16 but is not valid UTF-16.") from None
    else:
        if data.startswith(BINARY_MAGIC) or b"\x00" in data[:65536]:
            raise BadInput(f"`{shown}` looks like a binary file, not text.")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise BadInput(
                f"`{shown}` is not valid UTF-8 (line {line}, byte {exc.start}); save it as UTF-8 and send it again."
            ) from None
    if "\x00" in text:
        raise BadInput(f"`{shown}` contains NUL characters, which text files don't have.")
    return text


def _label(value: Any, default: Label, where: str) -> Label:
    if value is None:
        return default
    if isinstance(value, bool):
        return "positive" if value else "negative"
    word = LABEL_WORDS.get(str(value).strip().lower())
    if word is None:
        raise BadInput(f"{where}: label `{str(value)[:30]}` is not one of positive/negative.")
    return word


def text_field(value: Any, where: str, what: str, limits: Limits) -> str:
    if isinstance(value, list):  # content parts: [{"type": "text", "text": ...}]
        pieces = []
        for part in value:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
            else:
                raise BadInput(f"{where}: {what} has a part that is not text.")
        value = "".join(pieces)
    if not isinstance(value, str):
        raise BadInput(f"{where}: {what} must be text, not {type(value).__name__}.")
    value = value.strip()
    if not value:
        raise BadInput(f"{where}: {what} is empty.")
    if len(value) > limits.max_field_chars:
        raise BadInput(f"{where}: {what} is {len(value)} characters; the limit is {limits.max_field_chars}.")
    return value


def _from_messages(messages: Any, where: str, label: Label, limits: Limits) -> list[Example]:
    """Each assistant turn that follows a user turn becomes one example."""
    if not isinstance(messages, list) or not messages:
        raise BadInput(f"{where}: `messages` must be a non-empty list.")
    system: str | None = None
    turns: list[dict[str, str]] = []
    out: list[Example] = []
    for i, msg in enumerate(messages, 1):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise BadInput(f"{where}: message {i} needs `role` and `content`.")
        role = msg["role"]
        content = text_field(msg["content"], f"{where}, message {i}", "content", limits)
        if role in ("system", "developer"):
            system = content
        elif role == "user":
            turns.append({"role": "user", "content": content})
        elif role == "assistant":
            if not turns or turns[-1]["role"] != "user":
                raise BadInput(f"{where}: message {i} is an assistant reply with no user message before it.")
            if msg.get("weight", 1) != 0:
                out.append(
                    Example(
                        prompt=turns[-1]["content"],
                        response=content,
                        label=label,
                        system=system,
                        history=tuple(turns[:-1]),
                        source_ref=where,
                    )
                )
            turns.append({"role": "assistant", "content": content})
        else:
            raise BadInput(f"{where}: message {i} has role `{str(role)[:20]}`; use system, user or assistant.")
    if not out:
        raise BadInput(f"{where}: no assistant reply to learn from.")
    return out


def _last_content(
    value: Any, role: str, where: str, what: str, limits: Limits
) -> tuple[str, tuple[dict[str, str], ...], str | None]:
    """A TRL field: plain text, or a list of messages whose last one has ``role``."""
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        system = None
        history: list[dict[str, str]] = []
        for m in value[:-1]:
            content = text_field(m.get("content"), where, what, limits)
            if m["role"] in ("system", "developer"):
                system = content
            else:
                history.append({"role": str(m["role"]), "content": content})
        if value[-1]["role"] != role:
            raise BadInput(f"{where}: the last message of `{what}` should be from the {role}.")
        return text_field(value[-1].get("content"), where, what, limits), tuple(history), system
    return text_field(value, where, what, limits), (), None


def _from_object(obj: Any, where: str, default: Label, limits: Limits) -> list[Example]:
    if not isinstance(obj, dict):
        raise BadInput(f"{where}: expected an object, found {type(obj).__name__}.")
    label = _label(obj.get("label"), default, where)
    if "messages" in obj:
        return _from_messages(obj["messages"], where, label, limits)
    pkey = next((k for k in PROMPT_KEYS if k in obj), None)
    rkey = next((k for k in RESPONSE_KEYS if k in obj), None)
    if pkey is None or rkey is None:
        keys = ", ".join(f"`{k}`" for k in list(obj)[:5]) or "none"
        raise BadInput(f"{where}: needs `messages`, or `prompt` and `response` (found {keys}).")
    prompt, history, system = _last_content(obj[pkey], "user", where, pkey, limits)
    response, _, _ = _last_content(obj[rkey], "assistant", where, rkey, limits)
    rejected = None
    if rkey == "chosen":
        if "rejected" not in obj:
            raise BadInput(f"{where}: `chosen` needs a `rejected` answer beside it.")
        rejected, _, _ = _last_content(obj["rejected"], "assistant", where, "rejected", limits)
    if isinstance(obj.get("system"), str) and obj["system"].strip():
        system = text_field(obj["system"], where, "system", limits)
    return [
        Example(
            prompt=prompt, response=response, label=label, rejected=rejected, system=system, history=history, source_ref=where
        )
    ]


def load_json(raw: str, where: str) -> Any:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{where}: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from None
    except RecursionError:
        raise BadInput(f"{where}: JSON nested too deeply.") from None
    except ValueError:  # Python refuses integers over 4300 digits ("Exceeds the limit … for integer string conversion")
        raise BadInput(f"{where}: a number in it is too long to read; write it as text (in quotes).") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadInput(f"{where}: JSON nested too deeply (more than {MAX_JSON_DEPTH} levels).")
    return value


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        if depth > MAX_JSON_DEPTH:
            return depth
        nxt: list[Any] = []
        for v in level:
            if isinstance(v, dict):
                nxt.extend(v.values())
            elif isinstance(v, list):
                nxt.extend(v)
        level = nxt
    return depth


def _bounded(examples: Iterable[Example], limits: Limits, shown: str) -> list[Example]:
    out: list[Example] = []
    for ex in examples:
        out.append(ex)
        if len(out) > limits.max_items:
            raise BadInput(f"`{shown}` has more than {limits.max_items} examples; split it into smaller files.")
    return out


def _parse_jsonl(text: str, shown: str, default: Label, limits: Limits) -> list[Example]:
    def rows() -> Iterable[Example]:
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                where = f"{shown} line {n}"
                yield from _from_object(load_json(line, where), where, default, limits)

    return _bounded(rows(), limits, shown)


def _parse_json(text: str, shown: str, default: Label, limits: Limits) -> list[Example]:
    value = load_json(text, shown)
    if isinstance(value, dict) and not any(k in value for k in ("messages", *PROMPT_KEYS)):
        # {prompt: response} mapping
        def pairs() -> Iterable[Example]:
            for prompt, response in value.items():
                where = f"{shown} key {prompt[:40]!r}"
                yield Example(
                    prompt=text_field(prompt, where, "prompt", limits),
                    response=text_field(response, where, "response", limits),
                    label=default,
                    source_ref=where,
                )

        return _bounded(pairs(), limits, shown)
    items = value if isinstance(value, list) else [value]

    def rows() -> Iterable[Example]:
        for i, obj in enumerate(items, 1):
            yield from _from_object(obj, f"{shown} item {i}", default, limits)

    return _bounded(rows(), limits, shown)


def _parse_csv(text: str, shown: str, default: Label, limits: Limits) -> list[Example]:
    csv.field_size_limit(max(limits.max_field_chars * 4, 131072))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)

    def rows() -> Iterable[Example]:
        first = True
        try:
            for row in reader:
                where = f"{shown} line {reader.line_num}"
                if first:
                    first = False
                    if [c.strip().lower() for c in row[:3]] in (["prompt", "response"], ["prompt", "response", "label"]):
                        continue
                if not any(c.strip() for c in row):
                    continue
                if len(row) not in (2, 3):
                    raise BadInput(f"{where}: expected 2 or 3 columns (prompt,response[,label]), found {len(row)}.")
                label = _label(row[2] if len(row) == 3 and row[2].strip() else None, default, where)
                yield Example(
                    prompt=text_field(row[0], where, "prompt", limits),
                    response=text_field(row[1], where, "response", limits),
                    label=label,
                    source_ref=where,
                )
        except csv.Error as exc:
            raise BadInput(f"{shown} line {reader.line_num}: malformed CSV ({exc}).") from None

    return _bounded(rows(), limits, shown)


def _parse_txt(text: str, shown: str, default: Label, limits: Limits) -> list[Example]:
    def rows() -> Iterable[Example]:
        question: list[str] | None = None
        answer: list[str] | None = None
        q_line = 0

        def finish() -> Example:
            where = f"{shown} line {q_line}"
            if answer is None:
                raise BadInput(f"{where}: question without an `A:` answer.")
            return Example(
                prompt=text_field("\n".join(question or []), where, "question", limits),
                response=text_field("\n".join(answer), where, "answer", limits),
                label=default,
                source_ref=where,
            )

        for n, line in enumerate(text.splitlines(), 1):
            if (m := TXT_Q.match(line)) is not None:
                if question is not None:
                    yield finish()
                question, answer, q_line = [m.group(1)], None, n
            elif (m := TXT_A.match(line)) is not None:
                if question is None:
                    raise BadInput(f"{shown} line {n}: an answer with no `Q:` question before it.")
                if answer is not None:
                    raise BadInput(f"{shown} line {n}: a second answer to the same question.")
                answer = [m.group(1)]
            elif line.strip():
                if question is None:
                    raise BadInput(f"{shown} line {n}: text before the first `Q:`; a TXT file holds `Q:` and `A:` lines.")
                (answer if answer is not None else question).append(line.rstrip())
        if question is not None:
            yield finish()

    return _bounded(rows(), limits, shown)


def parse_label(word: str | None) -> Label:
    """The label a command was given (``positive``/``negative`` and short forms)."""
    if word is None:
        return "positive"
    label = LABEL_WORDS.get(word.strip().lower())
    if label is None or word.strip().lower() in ("1", "0", "true", "false"):
        raise BadInput(f"`{word[:30]}` is not a label: use `positive` or `negative`.")
    return label


__all__ = ["FORMATS", "LABELS", "Limits", "parse_label", "parse_upload"]

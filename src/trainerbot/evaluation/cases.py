"""Test cases for ``test``: inline JSON or an attached JSON / JSONL file.

Shapes accepted:
- a list of ``{"prompt": ..., "expected": ...}`` objects (``expected`` may be left out:
  predictions only; ``question``/``answer`` and ``input``/``output`` are read too),
- a mapping ``{prompt: expected}``,
- a list of prompt strings (predictions only),
- JSONL: one such object (or one prompt string) a line.
Anything else is refused with the place it failed; more cases than the limit are refused
before any model work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainerbot.datasets import paths
from trainerbot.datasets.importers import Limits, decode_text, human_size, load_json, shown_name, text_field
from trainerbot.errors import BadInput, NotFound

PROMPT_KEYS = ("prompt", "question", "input")
EXPECTED_KEYS = ("expected", "answer", "output", "response")


@dataclass(frozen=True)
class Case:
    prompt: str
    expected: str | None = None


def parse_cases(data: bytes, *, filename: str | None, max_cases: int, max_bytes: int, max_field_chars: int) -> list[Case]:
    """The cases in inline text (``filename`` None) or a file; ``BadInput`` says where it failed."""
    shown = "your test" if filename is None else f"`{shown_name(filename)}`"
    if not data.strip():
        raise BadInput(f"{shown} is empty; give a JSON list like `[{{\"prompt\": \"2+2?\", \"expected\": \"4\"}}]`.")
    if len(data) > max_bytes:
        raise BadInput(f"{shown} is {human_size(len(data))}; the limit is {human_size(max_bytes)}.")
    if filename is not None and not filename.lower().endswith((".json", ".jsonl", ".ndjson")):
        raise BadInput(f"{shown}: attach test cases as a `.json` or `.jsonl` file.")
    text = decode_text(data, shown.strip("`"))
    limits = Limits(max_bytes=max_bytes, max_items=max_cases, max_field_chars=max_field_chars)
    jsonl = filename is not None and not filename.lower().endswith(".json")
    if jsonl:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        _check_count(len(lines), max_cases, shown)
        cases = [_case(load_json(line, f"{shown} line {n}"), f"{shown} line {n}", limits) for n, line in lines]
    else:
        value = load_json(text, shown)
        if isinstance(value, dict) and not any(k in value for k in PROMPT_KEYS):
            _check_count(len(value), max_cases, shown)
            cases = [Case(text_field(p, f"{shown} key {p[:40]!r}", "prompt", limits),
                          text_field(e, f"{shown} key {p[:40]!r}", "expected answer", limits)) for p, e in value.items()]
        else:
            items = value if isinstance(value, list) else [value]
            _check_count(len(items), max_cases, shown)
            cases = [_case(obj, f"{shown} item {i}", limits) for i, obj in enumerate(items, 1)]
    if not cases:
        raise BadInput(f"{shown} holds no test cases.")
    return cases


def _check_count(n: int, max_cases: int, shown: str) -> None:
    if n > max_cases:
        raise BadInput(f"{shown} has {n} cases; a test may have at most {max_cases}. Split it into smaller tests.")


def _case(obj: Any, where: str, limits: Limits) -> Case:
    if isinstance(obj, str):
        return Case(text_field(obj, where, "prompt", limits))
    if not isinstance(obj, dict):
        raise BadInput(
            f"{where}: expected an object with `prompt` (and `expected`), or a prompt string; found {type(obj).__name__}."
        )
    pkey = next((k for k in PROMPT_KEYS if k in obj), None)
    if pkey is None:
        keys = ", ".join(f"`{k}`" for k in list(obj)[:5]) or "none"
        raise BadInput(f"{where}: needs `prompt` (found {keys}).")
    ekey = next((k for k in EXPECTED_KEYS if k in obj), None)
    value = None if ekey is None else obj[ekey]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # {"prompt": "2+2?", "expected": 4}
    expected = None if value is None else text_field(value, where, ekey or "expected", limits)
    return Case(text_field(obj[pkey], where, pkey, limits), expected)


def read_report(root: Path, name: str) -> list[dict[str, Any]]:
    """A test's report rows (JSONL in the guild's artifacts); ``NotFound`` when gone or damaged."""
    try:
        path = paths.resolve_file(root, f"artifacts/{name}")
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError, BadInput, NotFound):
        raise NotFound(f"The report of that test (`{name}`) is gone or damaged.") from None

"""Write examples in the formats training tools read.

The recipes' own shapes (``sft``, ``kto``, ``dpo``) come from their configs in the one
recipe registry (``training.recipes``), so what a job trains on and what is exported agree:

- ``openai``: OpenAI chat fine-tuning JSONL, ``{"messages": [system?, ...history, user, assistant]}``;
  positive examples only (a correction contributes its corrected answer).
- ``sft``: TRL conversational prompt–completion, ``{"prompt": [...], "completion": [assistant]}``;
  the same rows as ``openai``, shaped so the loss falls on the completion only.
- ``kto``: TRL unpaired preference, ``{"prompt", "completion", "label": bool}``; every
  example, and a correction gives two rows (its answer ``true``, the corrected reply ``false``).
- ``dpo``: TRL conversational preference, ``{"prompt", "chosen", "rejected"}``; corrections only.
- ``csv``: a spreadsheet of every example (prompt, response, label, rejected, source, author).
  A cell that a spreadsheet would run as a formula (starting with ``= + - @``, a tab or a
  carriage return) is prefixed with ``'`` (CSV injection).

Each function returns the JSONL text; an empty result means the data holds nothing for
that format, which callers turn into a message.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from trainerbot.datasets.records import Example
from trainerbot.training import recipes
from trainerbot.training.sft_config import chat_row

CSV_COLUMNS = ("prompt", "response", "label", "rejected", "source", "author")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv(ex: Example) -> Iterator[dict[str, Any]]:
    yield {"prompt": ex.prompt, "response": ex.response, "label": ex.label, "rejected": ex.rejected or "",
           "source": ex.source_ref, "author": str(ex.extra.get("author_id", ""))}


# Every recipe's own rows (its config, ``training.recipes``), beside OpenAI's chat rows and a spreadsheet.
ROWS: dict[str, Callable[[Example], Iterator[dict[str, Any]]]] = {
    "openai": chat_row, **{name: recipes.recipe(name).row for name in recipes.names()}, "csv": _csv}
EXPORT_FORMATS: tuple[str, ...] = tuple(ROWS)


def why_none(fmt: str) -> str:
    """What the data lacks when it gives no rows in ``fmt``."""
    if fmt in recipes.names():
        return recipes.recipe(fmt).why_none
    return "it has no positive examples" if fmt == "openai" else "it is empty"


def export_rows(examples: Iterable[Example], fmt: str) -> list[dict[str, Any]]:
    if fmt not in ROWS:
        raise ValueError(fmt)
    rows: list[dict[str, Any]] = []
    for ex in examples:
        rows.extend(ROWS[fmt](ex))
    return rows


def to_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def safe_cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs: formula starters get a leading ``'``."""
    return "'" + value if value.startswith(FORMULA_START) else value


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(str(row[c])) for c in CSV_COLUMNS])
    return buf.getvalue()


def serialise(rows: list[dict[str, Any]], fmt: str) -> tuple[str, str]:
    """(file text, file suffix) for rows of ``fmt``."""
    return (to_csv(rows), ".csv") if fmt == "csv" else (to_jsonl(rows), ".jsonl")

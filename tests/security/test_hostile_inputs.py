"""Hostile input to getfile, archive, select_dataset, export and import.

Each case must end in a clear ``TrainerBotError`` and leave the store and every file
under the data folder (and the decoy outside it) exactly as they were.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import JSONL_FACTS, att, row_counts, tree_state
from trainerbot.core import Caller, CoreService
from trainerbot.errors import BadInput, NotFound, TrainerBotError

Case = Callable[[CoreService, Caller, Path], Awaitable[object]]


def _guild_dir(core: CoreService) -> Path:
    return core.data_dir / "guilds" / "111"


def _plant(core: CoreService, area: str, name: str, make: Callable[[Path], None]) -> str:
    folder = _guild_dir(core) / area
    folder.mkdir(parents=True, exist_ok=True)
    make(folder / name)
    return name


CASES: dict[str, Case] = {
    "getfile dotdot": lambda core, c, secret: core.getfile(c, "../../../secret.txt"),
    "getfile dotdot in area": lambda core, c, secret: core.getfile(c, "archives/../../secret.txt"),
    "getfile backslash": lambda core, c, secret: core.getfile(c, "..\\..\\secret.txt"),
    "getfile absolute": lambda core, c, secret: core.getfile(c, str(secret)),
    "getfile url-encoded": lambda core, c, secret: core.getfile(c, "%2e%2e%2f%2e%2e%2fsecret.txt"),
    "getfile unicode dots": lambda core, c, secret: core.getfile(c, "\uff0e\uff0e\uff0fsecret.txt"),
    "getfile one-dot leader": lambda core, c, secret: core.getfile(c, "\u2024\u2024/secret.txt"),
    "getfile NUL byte": lambda core, c, secret: core.getfile(c, "facts.jsonl\x00.txt"),
    "getfile home": lambda core, c, secret: core.getfile(c, "~/secret.txt"),
    "getfile hidden area": lambda core, c, secret: core.getfile(c, "outbox/x.jsonl"),
    "getfile the database": lambda core, c, secret: core.getfile(c, "trainerbot.db"),
    "getfile too long": lambda core, c, secret: core.getfile(c, "a" * 5000),
    "getfile symlink out": lambda core, c, secret: core.getfile(
        c, _plant(core, "exports", "link.jsonl", lambda p: os.symlink(secret, p))),
    "getfile symlink inside": lambda core, c, secret: core.getfile(
        c, _plant(core, "exports", "link2.jsonl", lambda p: os.symlink(_guild_dir(core) / "exports", p))),
    "getfile area is a symlink": lambda core, c, secret: core.getfile(
        c, _plant(core, "", "artifacts", lambda p: os.symlink(secret.parent, p)) + "/secret.txt"),
    "getfile hard link out": lambda core, c, secret: core.getfile(
        c, _plant(core, "exports", "hard.jsonl", lambda p: os.link(secret, p))),
    "getfile a folder": lambda core, c, secret: core.getfile(
        c, _plant(core, "exports", "folder.jsonl", lambda p: p.mkdir())),
    "getfile a fifo": lambda core, c, secret: core.getfile(
        c, _plant(core, "exports", "pipe.jsonl", lambda p: os.mkfifo(p))),
    "archive traversal name": lambda core, c, secret: core.archive(c, "../facts"),
    "archive absolute name": lambda core, c, secret: core.archive(c, "/etc/passwd"),
    "archive NUL name": lambda core, c, secret: core.archive(c, "facts\x00"),
    "archive unknown": lambda core, c, secret: core.archive(c, "ghost"),
    "select traversal": lambda core, c, secret: core.select_dataset(c, "..", "positive"),
    "select bad label": lambda core, c, secret: core.select_dataset(c, "facts", "../x"),
    "export traversal": lambda core, c, secret: core.export(c, "../../x", "sft"),
    "export bad format": lambda core, c, secret: core.export(c, "facts", "../../sft"),
    "import traversal name": lambda core, c, secret: core.import_data(c, "../../evil", None, att("a.txt", "Q: a\nA: b")),
    "import oversized": lambda core, c, secret: core.import_data(c, "facts", None, att("a.txt", "Q: a\nA: b\n" * 1_000_000)),
    "import empty": lambda core, c, secret: core.import_data(c, "facts", None, att("a.jsonl", b"")),
    "import mislabelled": lambda core, c, secret: core.import_data(c, "facts", None, att("a.jsonl", JSONL_FACTS, "image/png")),
    "import zip as csv": lambda core, c, secret: core.import_data(c, "facts", None, att("a.csv", b"PK\x03\x04\x14\x00\x00\x00")),
    "import broken utf-8": lambda core, c, secret: core.import_data(c, "facts", None, att("a.txt", b"Q: \xc3\x28\nA: b\n")),
    "import malformed json": lambda core, c, secret: core.import_data(c, "facts", None, att("a.json", '[{"prompt": "a", "response": "b"},')),
    "import malformed csv": lambda core, c, secret: core.import_data(c, "facts", None, att("a.csv", 'prompt,response\n"a,b\n')),
    "import half-good jsonl": lambda core, c, secret: core.import_data(
        c, "facts", None, att("a.jsonl", '{"prompt": "new", "response": "row"}\n{"prompt": "broken"\n')),
    "import deep json": lambda core, c, secret: core.import_data(c, "facts", None, att("a.json", "[" * 10000 + "]" * 10000)),
    "import path as filename": lambda core, c, secret: core.import_data(c, "facts", None, att("../../../etc/passwd", "root:x:0:0")),
}


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP SECRET")
    return path


@pytest.mark.parametrize("name", sorted(CASES))
async def test_hostile_input_is_refused_and_changes_nothing(core: CoreService, trainer: Caller, secret: Path, name: str) -> None:
    await core.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    await core.export(trainer, "facts", "sft")
    counts = row_counts(core)
    coro = CASES[name](core, trainer, secret)  # plants its links and files now
    files = tree_state(core.data_dir)
    with pytest.raises(TrainerBotError) as exc:
        await coro
    assert isinstance(exc.value, (BadInput, NotFound)), exc.value
    message = exc.value.user_message
    assert message and len(message) < 400 and "Traceback" not in message
    assert "TOP SECRET" not in message and str(secret.parent) not in message
    assert row_counts(core) == counts
    assert tree_state(core.data_dir) == files
    assert secret.read_text() == "TOP SECRET"
    assert sorted(p.name for p in secret.parent.iterdir()) == ["data", "secret.txt"]


def test_there_are_at_least_fifteen_cases() -> None:
    assert len(CASES) >= 15

"""Hostile input to getfile, archive, select_dataset, export, import (files and archives) and test.

Each case must end in a clear ``TrainerBotError`` and leave the store and every file
under the data folder (and the decoy outside it) exactly as they were.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
import zipfile
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
    "getfile dotdot": lambda core, c, secret: core.datasets.getfile(c, "../../../secret.txt"),
    "getfile dotdot in area": lambda core, c, secret: core.datasets.getfile(c, "archives/../../secret.txt"),
    "getfile backslash": lambda core, c, secret: core.datasets.getfile(c, "..\\..\\secret.txt"),
    "getfile absolute": lambda core, c, secret: core.datasets.getfile(c, str(secret)),
    "getfile url-encoded": lambda core, c, secret: core.datasets.getfile(c, "%2e%2e%2f%2e%2e%2fsecret.txt"),
    "getfile unicode dots": lambda core, c, secret: core.datasets.getfile(c, "\uff0e\uff0e\uff0fsecret.txt"),
    "getfile one-dot leader": lambda core, c, secret: core.datasets.getfile(c, "\u2024\u2024/secret.txt"),
    "getfile NUL byte": lambda core, c, secret: core.datasets.getfile(c, "facts.jsonl\x00.txt"),
    "getfile home": lambda core, c, secret: core.datasets.getfile(c, "~/secret.txt"),
    "getfile hidden area": lambda core, c, secret: core.datasets.getfile(c, "outbox/x.jsonl"),
    "getfile the database": lambda core, c, secret: core.datasets.getfile(c, "trainerbot.db"),
    "getfile too long": lambda core, c, secret: core.datasets.getfile(c, "a" * 5000),
    "getfile symlink out": lambda core, c, secret: core.datasets.getfile(
        c, _plant(core, "exports", "link.jsonl", lambda p: os.symlink(secret, p))
    ),
    "getfile symlink inside": lambda core, c, secret: core.datasets.getfile(
        c, _plant(core, "exports", "link2.jsonl", lambda p: os.symlink(_guild_dir(core) / "exports", p))
    ),
    "getfile area is a symlink": lambda core, c, secret: core.datasets.getfile(
        c, _plant(core, "", "artifacts", lambda p: os.symlink(secret.parent, p)) + "/secret.txt"
    ),
    "getfile hard link out": lambda core, c, secret: core.datasets.getfile(
        c, _plant(core, "exports", "hard.jsonl", lambda p: os.link(secret, p))
    ),
    "getfile a folder": lambda core, c, secret: core.datasets.getfile(
        c, _plant(core, "exports", "folder.jsonl", lambda p: p.mkdir())
    ),
    "getfile a fifo": lambda core, c, secret: core.datasets.getfile(
        c, _plant(core, "exports", "pipe.jsonl", lambda p: os.mkfifo(p))
    ),
    "archive traversal name": lambda core, c, secret: core.datasets.archive(c, "../facts"),
    "archive absolute name": lambda core, c, secret: core.datasets.archive(c, "/etc/passwd"),
    "archive NUL name": lambda core, c, secret: core.datasets.archive(c, "facts\x00"),
    "archive unknown": lambda core, c, secret: core.datasets.archive(c, "ghost"),
    "select traversal": lambda core, c, secret: core.datasets.select_dataset(c, "..", "positive"),
    "select bad label": lambda core, c, secret: core.datasets.select_dataset(c, "facts", "../x"),
    "export traversal": lambda core, c, secret: core.datasets.export(c, "../../x", "sft"),
    "export bad format": lambda core, c, secret: core.datasets.export(c, "facts", "../../sft"),
    "import traversal name": lambda core, c, secret: core.datasets.import_data(c, "../../evil", None, att("a.txt", "Q: a\nA: b")),
    "import oversized": lambda core, c, secret: core.datasets.import_data(
        c, "facts", None, att("a.txt", "Q: a\nA: b\n" * 1_000_000)
    ),
    "import empty": lambda core, c, secret: core.datasets.import_data(c, "facts", None, att("a.jsonl", b"")),
    "import mislabelled": lambda core, c, secret: core.datasets.import_data(
        c, "facts", None, att("a.jsonl", JSONL_FACTS, "image/png")
    ),
    "import zip as csv": lambda core, c, secret: core.datasets.import_data(
        c, "facts", None, att("a.csv", b"PK\x03\x04\x14\x00\x00\x00")
    ),
    "import broken utf-8": lambda core, c, secret: core.datasets.import_data(
        c, "facts", None, att("a.txt", b"Q: \xc3\x28\nA: b\n")
    ),
    "import malformed json": lambda core, c, secret: core.datasets.import_data(
        c, "facts", None, att("a.json", '[{"prompt": "a", "response": "b"},')
    ),
    "import malformed csv": lambda core, c, secret: core.datasets.import_data(
        c, "facts", None, att("a.csv", 'prompt,response\n"a,b\n')
    ),
    "import half-good jsonl": lambda core, c, secret: core.datasets.import_data(
        c, "facts", None, att("a.jsonl", '{"prompt": "new", "response": "row"}\n{"prompt": "broken"\n')
    ),
    "import deep json": lambda core, c, secret: core.datasets.import_data(
        c, "facts", None, att("a.json", "[" * 10000 + "]" * 10000)
    ),
    "import path as filename": lambda core, c, secret: core.datasets.import_data(
        c, "facts", None, att("../../../etc/passwd", "root:x:0:0")
    ),
}


def _zip(*entries: tuple[str, bytes], link: str | None = None, encrypted: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name == link:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, body)
    data = bytearray(buf.getvalue())
    if encrypted:  # zipfile will not write an encrypted entry: set the flag in both headers
        data[6] |= 0x1
        central = data.find(b"PK\x01\x02")
        data[central + 8] |= 0x1
    return bytes(data)


def _tar(*entries: tuple[str, bytes | bytes], kind: bytes = tarfile.REGTYPE, linkname: str = "", gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, body in entries:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, linkname
            info.size = len(body) if kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(body) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


GOOD = b'{"prompt": "smuggled", "response": "in"}\n'
ARCHIVES: dict[str, tuple[str, bytes, str]] = {
    "zip dotdot entry": ("up.zip", _zip(("../../evil.jsonl", GOOD)), "outside the archive"),
    "zip absolute entry": ("up.zip", _zip(("/etc/cron.d/evil.jsonl", GOOD)), "outside the archive"),
    "zip backslash entry": ("up.zip", _zip(("..\\..\\evil.jsonl", GOOD)), "unusable name"),
    "zip drive letter entry": ("up.zip", _zip(("C:/evil.jsonl", GOOD)), "outside the archive"),
    "zip symlink entry": ("up.zip", _zip(("link.jsonl", b"/etc/passwd"), link="link.jsonl"), "link or special file"),
    "zip bomb": ("up.zip", _zip(("zeros.jsonl", b"\0" * 6_000_000)), "zip bomb"),
    "zip too many entries": ("up.zip", _zip(*[(f"f{i}.txt", b"Q: a\nA: b\n") for i in range(101)]), "at most 100"),
    "zip nested archive": ("up.zip", _zip(("inner.zip", _zip(("a.jsonl", GOOD)))), "another archive"),
    "zip encrypted entry": ("up.zip", _zip(("a.jsonl", GOOD), encrypted=True), "encrypted"),
    "zip corrupt": ("up.zip", b"PK\x03\x04" + b"\xff" * 200, "not a readable archive"),
    "zip executable inside": ("up.zip", _zip(("a.jsonl", GOOD), ("run.exe", b"MZ\x90\x00")), "run.exe"),
    "zip one bad member": ("up.zip", _zip(("a.jsonl", GOOD), ("b.jsonl", b'{"prompt": "x"}\n')), "b.jsonl line 1"),
    "tar dotdot entry": ("up.tar.gz", _tar(("../../evil.jsonl", GOOD)), "outside the archive"),
    "tar absolute entry": ("up.tgz", _tar(("/tmp/evil.jsonl", GOOD)), "outside the archive"),
    "tar symlink entry": (
        "up.tar.gz",
        _tar(("link.jsonl", b""), kind=tarfile.SYMTYPE, linkname="/etc/passwd"),
        "link or special",
    ),
    "tar hard link entry": (
        "up.tar",
        _tar(("hard.jsonl", b""), kind=tarfile.LNKTYPE, linkname="/etc/passwd", gz=False),
        "link or special",
    ),
    "tar device entry": ("up.tar.gz", _tar(("dev.jsonl", b""), kind=tarfile.CHRTYPE), "link or special"),
    "tar fifo entry": ("up.tar.gz", _tar(("pipe.jsonl", b""), kind=tarfile.FIFOTYPE), "link or special"),
    "tar.gz bomb": ("up.tar.gz", _tar(("zeros.jsonl", b"\0" * 9_000_000)), "size limit"),
}
for _name, (_file, _data, _why) in ARCHIVES.items():
    CASES[f"import {_name}"] = (lambda f, d: lambda core, c, secret: core.datasets.import_data(c, "facts", None, att(f, d)))(
        _file, _data
    )
EXPECT = {f"import {n}": why for n, (_, _, why) in ARCHIVES.items()}

TESTS: dict[str, tuple[str | None, bytes, str]] = {
    "test deep json": (None, b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    "test huge json": ("t.json", b'["' + b"x" * (9 * 1024 * 1024) + b'"]', "over the attachment limit"),
    "test NUL bytes": ("t.jsonl", b'"a"\n"b\x00"\n', "binary|NUL"),
    "test binary file": ("t.json", b"\x7fELF\x02\x01\x01" + b"\x00" * 100, "binary"),
    "test too many cases": (None, ("[" + ",".join(['"q"'] * 201) + "]").encode(), "at most 200"),
    "test wrong shape": (None, b'{"prompt": {"nested": true}}', "prompt must be text"),
    "test csv file": ("t.csv", b"prompt,expected\n=cmd|' /C calc'!A0,x\n", r"\.json` or `\.jsonl"),
}
for _name, (_file, _data, _why) in TESTS.items():
    CASES[_name] = (
        lambda f, d: (
            lambda core, c, secret: core.models.test(
                c, d.decode("utf-8", "replace") if f is None else None, None if f is None else att(f, d)
            )
        )
    )(_file, _data)
    EXPECT[_name] = _why
CASES["import csv with NUL"] = lambda core, c, secret: core.datasets.import_data(
    c, "facts", None, att("a.csv", b"prompt,response\na\x00b,c\n")
)
EXPECT["import csv with NUL"] = "binary|NUL"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP SECRET")
    return path


@pytest.mark.parametrize("name", sorted(CASES))
async def test_hostile_input_is_refused_and_changes_nothing(core: CoreService, trainer: Caller, secret: Path, name: str) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    await core.datasets.export(trainer, "facts", "sft")
    counts = row_counts(core)
    coro = CASES[name](core, trainer, secret)  # plants its links and files now
    files = tree_state(core.data_dir)
    with pytest.raises(TrainerBotError) as exc:
        await coro
    assert isinstance(exc.value, (BadInput, NotFound)), exc.value
    message = exc.value.user_message
    if name in EXPECT:
        assert re.search(EXPECT[name], message), message
    assert message and len(message) < 400 and "Traceback" not in message
    assert "TOP SECRET" not in message and str(secret.parent) not in message
    assert row_counts(core) == counts
    assert tree_state(core.data_dir) == files
    assert secret.read_text() == "TOP SECRET"
    assert sorted(p.name for p in secret.parent.iterdir()) == ["data", "secret.txt"]


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40

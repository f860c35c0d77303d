from __future__ import annotations

import gzip
import io
import json
import stat
import tarfile

import pytest

from trainerbot.datasets.records import Example
from trainerbot.datasets.snapshots import read_snapshot, write_snapshot
from trainerbot.errors import BadInput

EXAMPLES = [Example(prompt="q1", response="a1"), Example(prompt="q2", response="a2", label="negative"),
            Example(prompt="q3", response="a3", rejected="wrong", history=({"role": "user", "content": "hi"},))]


def test_snapshot_round_trip_manifest_and_read_only(tmp_path) -> None:
    target = tmp_path / "s.tar.gz"
    info = write_snapshot(target, EXAMPLES, {"dataset": "facts"})
    manifest, back = read_snapshot(target)
    assert back == EXAMPLES
    assert manifest["counts"] == {"total": 3, "positive": 2, "negative": 1, "corrections": 1}
    assert manifest["dataset"] == "facts" and manifest["files"]["items.jsonl"]["sha256"] == info.sha256
    assert not target.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert [p.name for p in tmp_path.iterdir()] == ["s.tar.gz"]  # no temporary file left


def test_failed_write_leaves_nothing(tmp_path) -> None:
    bad = [Example(prompt="q", response="a", extra={"x": object()})]  # not JSON-serialisable
    with pytest.raises(TypeError):
        write_snapshot(tmp_path / "s.tar.gz", bad, {})
    assert list(tmp_path.iterdir()) == []


def _tar(tmp_path, members: list[tuple[tarfile.TarInfo, bytes | None]]):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _good_members() -> list[tuple[tarfile.TarInfo, bytes]]:
    items = b'{"prompt": "q", "response": "a", "label": "positive"}\n'
    import hashlib
    manifest = json.dumps({"files": {"items.jsonl": {"sha256": hashlib.sha256(items).hexdigest()}}}).encode()
    return [_file("manifest.json", manifest), _file("items.jsonl", items)]


def test_a_hand_made_good_archive_reads(tmp_path) -> None:
    manifest, items = read_snapshot(_tar(tmp_path, _good_members()))
    assert items == [Example(prompt="q", response="a")]


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "hardlink", "device", "extra", "missing", "tampered", "huge"])
def test_hostile_archives_are_refused(tmp_path, case: str) -> None:
    members = _good_members()
    if case == "dotdot":
        members.append(_file("../../evil.txt", b"x"))
    elif case == "absolute":
        members.append(_file("/tmp/evil.txt", b"x"))
    elif case == "symlink":
        link = tarfile.TarInfo("items.jsonl")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        members = [members[0], (link, None)]
    elif case == "hardlink":
        link = tarfile.TarInfo("items.jsonl")
        link.type, link.linkname = tarfile.LNKTYPE, "manifest.json"
        members = [members[0], (link, None)]
    elif case == "device":
        dev = tarfile.TarInfo("items.jsonl")
        dev.type = tarfile.CHRTYPE
        members = [members[0], (dev, None)]
    elif case == "extra":
        members.append(_file("notes.txt", b"x"))
    elif case == "missing":
        members = members[:1]
    elif case == "tampered":
        members[1] = _file("items.jsonl", b'{"prompt": "q", "response": "EVIL", "label": "positive"}\n')
    path = _tar(tmp_path, members)
    if case == "huge":  # a member that claims 2 GiB (a decompression bomb's header)
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo("items.jsonl")
            info.size = 2 * 1024**3
            tar.addfile(info)  # header only: reading is refused before any data
        path.write_bytes(gzip.compress(raw.getvalue()))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(BadInput):
        read_snapshot(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path.parent / "evil.txt").exists()


def test_not_an_archive(tmp_path) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(b"hello")
    with pytest.raises(BadInput, match="not a readable archive"):
        read_snapshot(path)

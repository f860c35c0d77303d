from __future__ import annotations

import os

import pytest

from trainerbot.datasets import paths
from trainerbot.errors import BadInput, NotFound


@pytest.mark.parametrize("raw,expected", [("Facts", "facts"), (" support-2024 ", "support-2024"), ("a_b", "a_b")])
def test_dataset_names_are_folded(raw: str, expected: str) -> None:
    assert paths.dataset_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "-x", "../x", "a/b", "a b", "x" * 49, "naïve", "a\x00", ".hidden", "ＡＢ"])
def test_bad_dataset_names(raw: str) -> None:
    with pytest.raises(BadInput, match="not a dataset name"):
        paths.dataset_name(raw)


def test_guild_keys_are_safe_folder_names() -> None:
    assert paths.guild_key("123456") == "123456"
    odd = paths.guild_key("../../etc")
    assert odd.startswith("g-") and "/" not in odd and odd == paths.guild_key("../../etc")


def test_resolve_finds_a_file_by_bare_name_or_area(tmp_path) -> None:
    root = tmp_path / "g"
    (root / "archives").mkdir(parents=True)
    (root / "archives" / "a.tar.gz").write_bytes(b"x")
    assert paths.resolve_file(root, "a.tar.gz") == root / "archives" / "a.tar.gz"
    assert paths.resolve_file(root, "archives/a.tar.gz") == root / "archives" / "a.tar.gz"
    with pytest.raises(NotFound):
        paths.resolve_file(root, "exports/a.tar.gz")


def test_list_files_skips_links(tmp_path) -> None:
    root = tmp_path / "g"
    (root / "exports").mkdir(parents=True)
    (root / "exports" / "ok.jsonl").write_text("{}")
    os.symlink("/etc/hostname", root / "exports" / "link.jsonl")
    assert paths.list_files(root) == {"exports": [("ok.jsonl", 2)]}

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import select

from tests.conftest import JSONL_FACTS, att, row_counts
from trainerbot.core import Caller, CoreService
from trainerbot.datasets.snapshots import read_snapshot
from trainerbot.errors import BadInput, NotFound
from trainerbot.store.tables import DatasetItem, Guild, Snapshot


async def test_import_reports_counts_and_stores_provenance(core: CoreService, trainer: Caller) -> None:
    reply = await core.datasets.import_data(trainer, "Facts", None, att("facts.jsonl", JSONL_FACTS, "application/jsonl"))
    assert reply.data == {"added": 3, "duplicates": 0, "replaced": 0, "total": 3}
    assert "(2 positive, 1 negative in the file)" in reply.content
    with core.store.read() as s:
        items = s.scalars(select(DatasetItem).order_by(DatasetItem.id)).all()
    assert [i.label for i in items] == ["positive", "positive", "negative"]
    assert items[0].source == "file" and items[0].source_ref == "file:facts.jsonl line 1"
    assert {i.author_id for i in items} == {"u-trainer"}


async def test_importing_the_same_file_twice_skips_duplicates(core: CoreService, trainer: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    reply = await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    assert reply.data == {"added": 0, "duplicates": 3, "replaced": 0, "total": 3}


@pytest.mark.parametrize("fmt,name,body", [
    ("jsonl", "a.jsonl", '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'),
    ("json", "a.json", '[{"prompt": "q", "response": "a"}]'),
    ("csv", "a.csv", "prompt,response,label\nq,a,negative\n"),
    ("txt", "a.txt", "Q: q\nA: a\n"),
])
async def test_each_format_imports(core: CoreService, trainer: Caller, fmt: str, name: str, body: str) -> None:
    reply = await core.datasets.import_data(trainer, fmt, "positive", att(name, body))
    assert reply.data["added"] == 1


async def test_import_needs_an_attachment_and_a_good_label(core: CoreService, trainer: Caller) -> None:
    with pytest.raises(BadInput, match="Attach a file"):
        await core.datasets.import_data(trainer, "facts", None, None)
    with pytest.raises(BadInput, match="not a label"):
        await core.datasets.import_data(trainer, "facts", "maybe", att("a.txt", "Q: a\nA: b"))


async def test_datasets_and_dataset_stats(core: CoreService, trainer: Caller) -> None:
    assert "No datasets yet" in (await core.datasets.summary(trainer)).content
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    await core.datasets.import_data(trainer, "other", "negative", att("o.txt", "Q: x\nA: y\n"))
    listing = await core.datasets.summary(trainer)
    assert listing.data["names"] == ["facts", "other"]
    assert "`facts` — 3 examples (2 👍 / 1 👎)" in listing.content
    stats = await core.datasets.stats(trainer, "FACTS")
    assert stats.embed is not None and stats.embed.title == "Dataset facts"
    assert stats.data["total"] == 3 and stats.data["positive"] == 2 and stats.data["negative"] == 1
    assert stats.data["authors"] == 1 and stats.data["bytes"] > 50
    with pytest.raises(NotFound):
        await core.datasets.stats(trainer, "nope")


async def test_archive_writes_a_verified_snapshot_and_starts_afresh(core: CoreService, trainer: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    reply = await core.datasets.archive(trainer, "facts")
    path = core.data_dir / "guilds" / "111" / "archives" / reply.data["file"]
    manifest, examples = read_snapshot(path)
    assert manifest["counts"]["total"] == 3 and manifest["dataset"] == "facts" and manifest["kind"] == "archive"
    assert [e.prompt for e in examples][0] == "What is the capital of Zorbia?"
    assert examples[0].extra["author_id"] == "u-trainer"
    assert (await core.datasets.stats(trainer, "facts")).data["total"] == 0
    assert (await core.datasets.stats(trainer, "facts")).data["archives"] == 1
    with pytest.raises(BadInput, match="no examples to archive"):
        await core.datasets.archive(trainer, "facts")
    # After the archive, the same data imports again as new.
    assert (await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))).data["added"] == 3
    second = await core.datasets.archive(trainer, "facts")
    assert second.data["file"] != reply.data["file"]


async def test_select_dataset_snapshots_with_a_label_filter(core: CoreService, trainer: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    reply = await core.datasets.select_dataset(trainer, "facts", "negative")
    assert reply.data["count"] == 1
    with core.store.read() as s:
        guild = s.scalars(select(Guild)).one()
        snap = s.get(Snapshot, guild.selected_snapshot_id)
    assert snap is not None and snap.kind == "selection" and snap.label == "negative"
    manifest, examples = read_snapshot(core.data_dir / "guilds" / "111" / "snapshots" / snap.file_name)
    assert [e.label for e in examples] == ["negative"] and manifest["label"] == "negative"
    assert "selected for training" in (await core.datasets.summary(trainer)).content
    assert (await core.datasets.stats(trainer, "facts")).data["total"] == 3  # selection does not empty it


async def test_select_dataset_failure_changes_nothing(core: CoreService, trainer: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", "positive", att("a.txt", "Q: a\nA: b\n"))
    before = row_counts(core)
    with pytest.raises(BadInput, match="no negative examples"):
        await core.datasets.select_dataset(trainer, "facts", "negative")
    assert row_counts(core) == before
    assert not (core.data_dir / "guilds" / "111" / "snapshots").exists() or not any(
        (core.data_dir / "guilds" / "111" / "snapshots").iterdir()
    )


@pytest.mark.parametrize("fmt,rows", [("openai", 2), ("sft", 2), ("kto", 3)])
async def test_export_formats(core: CoreService, trainer: Caller, fmt: str, rows: int) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    reply = await core.datasets.export(trainer, "facts", fmt)
    [out] = reply.files
    lines = [json.loads(line) for line in out.path.read_text().splitlines()]
    assert len(lines) == rows
    assert out.path.parent.name == "exports" and out.name.startswith(f"facts-{fmt}-")


async def test_export_errors(core: CoreService, trainer: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    with pytest.raises(BadInput, match="DPO needs corrections"):
        await core.datasets.export(trainer, "facts", "dpo")
    with pytest.raises(BadInput, match="not an export format"):
        await core.datasets.export(trainer, "facts", "parquet")
    with pytest.raises(NotFound):
        await core.datasets.export(trainer, "nope", "sft")


async def test_getfile_lists_and_sends_by_name(core: CoreService, trainer: Caller) -> None:
    assert "no files yet" in (await core.datasets.getfile(trainer)).content
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    archived = await core.datasets.archive(trainer, "facts")
    listing = await core.datasets.getfile(trainer)
    assert f"archives/{archived.data['file']}" in listing.content
    sent = await core.datasets.getfile(trainer, archived.data["file"])
    assert sent.files[0].path.name == archived.data["file"]
    same = await core.datasets.getfile(trainer, f"archives/{archived.data['file']}")
    assert same.files == sent.files


async def test_getfile_over_the_send_limit_is_not_attached(core: CoreService, trainer: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    core.datasets.limits = replace(core.datasets.limits, max_send_bytes=1024)
    big = core.data_dir / "guilds" / "111" / "exports" / "big.jsonl"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(b"x" * 5000)
    reply = await core.datasets.getfile(trainer, "big.jsonl")
    assert reply.files == () and "over the" in reply.content

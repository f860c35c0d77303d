"""What revisions cost: importing a file, against the same import without them, and the
upgrade of a store from before them.

Each round imports ``--rows`` facts into a fresh SQLite store twice, the two sides in
alternating order: once through the product's path (examples and one revision each) and
once writing the examples alone (the path before revisions); then a second file that
answers half of those questions differently (each replaces a taught answer). Then a store
at migration 0009 with ``--rows`` examples is upgraded to 0010 (keys, baseline revisions).
Last, chat's per-message check of the taught answers with ten times ``--rows`` facts, with
and without the index that covers it.

    .venv/bin/python bench/revisions.py --rows 5000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alembic import command  # noqa: E402
from sqlalchemy import text  # noqa: E402

from trainerbot.config import Settings  # noqa: E402
from trainerbot.core import Caller, CoreService  # noqa: E402
from trainerbot.datasets import items as dataset_items  # noqa: E402
from trainerbot.datasets.importers import Limits, parse_upload  # noqa: E402
from trainerbot.store import Store, repo  # noqa: E402
from trainerbot.store.db import alembic_config, make_engine  # noqa: E402

TRAINER = Caller(guild_id="1", guild_name="Bench", user_id="t", channel_id="c", roles=frozenset({"trainer"}))


def facts(n: int, answer: str = "answer") -> bytes:
    return "".join(f'{{"prompt": "What is fact number {i} about town {i % 97}?", "response": "The {answer} is {i}."}}\n'
                   for i in range(n)).encode()


def core_in(folder: Path) -> CoreService:
    settings = Settings(_env_file=None, data_dir=folder, max_import_items=1_000_000,  # type: ignore[call-arg]
                        max_attachment_bytes=100_000_000)
    return CoreService.open(settings)


def examples_only(core: CoreService, body: bytes) -> float:
    """The import as it was before revisions: parse, then write the examples alone."""
    limits = Limits(core.settings.max_attachment_bytes, core.settings.max_import_items, core.settings.max_field_chars)
    examples = parse_upload("f.jsonl", None, body, default_label="positive", limits=limits)
    start = time.perf_counter()
    with core.store.session() as s:
        guild = repo.ensure_guild(s, TRAINER.guild_id, TRAINER.guild_name or "")
        ds = repo.ensure_dataset(s, guild.id, "facts")
        tagged = [replace(e, source_ref=f"file:{e.source_ref}") for e in examples]
        dataset_items.add_examples(s, ds, tagged, source="file", author_id=TRAINER.user_id)
        s.flush()
        repo.count_current(s, ds.id)
    return time.perf_counter() - start


def with_revisions(core: CoreService, body: bytes) -> float:
    limits = Limits(core.settings.max_attachment_bytes, core.settings.max_import_items, core.settings.max_field_chars)
    examples = parse_upload("f.jsonl", None, body, default_label="positive", limits=limits)
    start = time.perf_counter()
    core.datasets._store_import(TRAINER, "facts", examples)
    return time.perf_counter() - start


def upgrade(folder: Path, rows: int) -> float:
    url = f"sqlite:///{folder / 'old.db'}"
    cfg, engine = alembic_config(url), make_engine(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0009")
        conn.execute(text("insert into guilds (platform_id, name, settings, created_at) values ('g', 'G', '{}', '2026-12-01')"))
        conn.execute(text("insert into datasets (guild_id, name, created_at, updated_at) values (1, 'f', '2026-12-01', "
                          "'2026-12-01')"))
        conn.execute(text("insert into dataset_items (dataset_id, guild_id, prompt, response, label, source, source_ref, "
                          "author_id, created_at) values (1, 1, :p, :r, 'positive', 'file', :ref, 'u', '2026-12-01')"),
                     [{"p": f"What is fact number {i}?", "r": f"It is {i}.", "ref": f"file:f.jsonl line {i}"}
                      for i in range(rows)])
    engine.dispose()
    start = time.perf_counter()
    Store.open(url).close()
    return time.perf_counter() - start


def taught_check(folder: Path, rows: int, rounds: int) -> None:
    """Chat's check of the taught answers before each reply (cached index: count and newest
    of ``repo.TAUGHT``, and the newest revision), with and without the index that covers it,
    alternating."""
    core = core_in(folder)
    try:
        with_revisions(core, facts(rows))
        core.chat._taught_index(1)  # built once; then each message only checks the stamp
        with_index, without = [], []
        for r in range(rounds):
            for indexed in ((True, False) if r % 2 == 0 else (False, True)):
                with core.store.session() as s:
                    s.execute(text("create index if not exists ix_dataset_items_taught on dataset_items "
                                   "(guild_id, replaced_at, archived_in, label, source)" if indexed else
                                   "drop index if exists ix_dataset_items_taught"))
                start = time.perf_counter()
                for _ in range(20):
                    core.chat._taught_index(1)
                (with_index if indexed else without).append((time.perf_counter() - start) / 20 * 1000)
        print(f"chat's taught-answer check per message with {rows} facts (median of {rounds} rounds × 20): "
              f"{statistics.median(with_index):.1f} ms with the covering index, {statistics.median(without):.1f} ms "
              f"without; ratio {statistics.median(without) / statistics.median(with_index):.1f}×")
    finally:
        asyncio.run(core.close())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    first, second = facts(args.rows), facts(args.rows // 2, "new answer")
    before: list[float] = []
    now: list[float] = []
    replacing: list[float] = []
    for r in range(args.rounds):
        times: dict[str, float] = {}
        for side in (("before", "now") if r % 2 == 0 else ("now", "before")):
            with tempfile.TemporaryDirectory() as tmp:
                core = core_in(Path(tmp) / "data")
                try:
                    if side == "before":
                        times[side] = examples_only(core, first)
                    else:
                        times[side] = with_revisions(core, first)
                        replacing.append(with_revisions(core, second))
                        assert asyncio.run(core.revisions.show(TRAINER, "1")).data["current"] == 2
                finally:
                    core.store.close()
        before.append(times["before"])
        now.append(times["now"])
        print(f"round {r + 1}: examples alone {times['before']:.2f} s, with revisions {times['now']:.2f} s, "
              f"ratio {times['now'] / times['before']:.2f}; then {args.rows // 2} answers replaced in {replacing[-1]:.2f} s")
    ratios = sorted(n / b for n, b in zip(now, before, strict=True))
    print(f"import of {args.rows} facts (median): examples alone {statistics.median(before):.2f} s, "
          f"with revisions {statistics.median(now):.2f} s; ratio median {statistics.median(ratios):.2f} "
          f"(spread {ratios[0]:.2f}-{ratios[-1]:.2f}); {args.rows // 2} replacing answers "
          f"{statistics.median(replacing):.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"upgrade of a store with {args.rows} examples to migration 0010: {upgrade(Path(tmp), args.rows):.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        taught_check(Path(tmp) / "data", args.rows * 10, args.rounds)


if __name__ == "__main__":
    main()

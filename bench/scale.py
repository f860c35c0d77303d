"""Scale: SQLite and PostgreSQL side by side, in one run.

1. Feedback ingest: 200 users rating replies at once through the core (group commit), on each
   store; events/s.
2. Job claims: a queue of 400 jobs drained by 1, 2 and 4 worker processes that claim a job
   and finish it at once (no training), on each store; claims/s, and the ratio against one
   worker on the same store. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``; SQLite has one
   writer at a time.

The PostgreSQL server is a throw-away one started for the run (``tests/pg.py``).

    .venv/bin/python bench/scale.py
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.pg when run as a script

from bench.load import ingest, settings_for
from tests.pg import new_database, postgres_server
from trainerbot.core import CoreService
from trainerbot.store import Store
from trainerbot.store.tables import Dataset, Guild, Job, Snapshot
from trainerbot.training import queue

JOBS = 400


def _fill_queue(url: str) -> None:
    store = Store.open(url)
    with store.session() as s:
        guild = Guild(platform_id="scale", name="Scale", settings={})
        s.add(guild)
        s.flush()
        ds = Dataset(guild_id=guild.id, name="d")
        s.add(ds)
        s.flush()
        snap = Snapshot(
            guild_id=guild.id,
            dataset_id=ds.id,
            kind="selection",
            file_name="x.tar.gz",
            item_count=1,
            sha256="0" * 64,
            created_by="bench",
        )
        s.add(snap)
        s.flush()
        s.add_all(
            [
                Job(guild_id=guild.id, snapshot_id=snap.id, recipe="sft", requested_by="bench", status="queued")
                for _ in range(JOBS)
            ]
        )
    store.close()


def _drain(url: str, name: str, start: float, counts: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = Store.open(url, migrate=False)
    while time.time() < start:
        time.sleep(0.001)
    done = 0
    while (job_id := queue.claim_next(store, name)) is not None:
        queue.finish(store, job_id, "succeeded", message="bench")
        done += 1
    store.close()
    counts.put(done)


def claims_per_s(url: str, workers: int) -> tuple[float, list[int]]:
    _fill_queue(url)
    ctx = multiprocessing.get_context("spawn")
    counts: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    start = time.time() + 3.0  # every process connected before the clock starts
    procs = [ctx.Process(target=_drain, args=(url, f"w{i}", start, counts)) for i in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.time() - start
    per_worker = sorted(counts.get() for _ in procs)
    return sum(per_worker) / elapsed, per_worker


async def ingest_rate(url: str, folder: Path) -> float:
    from pydantic import SecretStr

    core = CoreService.open(settings_for(folder).model_copy(update={"database_url": SecretStr(url)}))
    try:
        return (await ingest(core, users=200, per_user=20))[0]
    finally:
        core.store.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as pg:
        root = Path(tmp)
        stores = {"SQLite": lambda tag: f"sqlite:///{root / tag / 'trainerbot.db'}", "PostgreSQL": lambda tag: new_database(pg)}
        print("feedback ingest, 200 users rating at once (events/s):")
        for name, make in stores.items():
            folder = root / f"ingest-{name}"
            url = make(f"ingest-{name}")
            folder.mkdir(parents=True, exist_ok=True)
            rate = asyncio.run(ingest_rate(url, folder))
            print(f"  {name:<10} {rate:8,.0f}")
        print(f"job claims, {JOBS} jobs claimed and finished at once (claims/s; ratio against 1 worker):")
        for name, make in stores.items():
            base = None
            for workers in (1, 2, 4):
                url = make(f"claims-{name}-{workers}")
                if url.startswith("sqlite"):
                    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                rate, split = claims_per_s(url, workers)
                base = base or rate
                print(
                    f"  {name:<10} {workers} worker{'s' if workers > 1 else ' '}: {rate:7,.0f}  ({rate / base:.2f}×; "
                    f"per worker {split})"
                )


if __name__ == "__main__":
    main()

"""How long the web dashboard takes to serve its pages, with a big server.

A real core over a real SQLite store holding ``--items`` dataset examples (50,000 by
default) in 5 datasets, ``--pending`` corrections waiting and 50 jobs with events; the
dashboard served on 127.0.0.1 and signed into through a login link, as a trainer would.
Alternating rounds fetch:

- baseline: ``/jobs`` of an empty server (the session check, a template, HTTP — no data);
- ``/datasets`` (the dataset table and the newest 50 examples of all of them),
- ``/datasets?page=500`` (a deep page), ``/datasets?q=…`` (a search over every prompt and
  answer), ``/items/<id>`` (one example's provenance),
- ``/review`` (the pending corrections and flagged replies), ``/jobs`` and ``/jobs/<id>``.

Times are the client's round trip on the same machine (an upper bound on the server's time).

    .venv/bin/python bench/dashboard.py [--rounds 30] [--items 50000] [--pending 500]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from trainerbot.adapters.web.server import Dashboard
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.datasets import items as dataset_items
from trainerbot.datasets.records import Example
from trainerbot.store import repo
from trainerbot.store.tables import Correction, CorrectionStatus, Job, JobStatus
from trainerbot.training import queue

TRAINERS = frozenset({"trainer"})
TRAINER = Caller(guild_id="1", guild_name="Big server", user_id="u-t", user_name="Tess", channel_id="c", roles=TRAINERS)
EMPTY = Caller(guild_id="2", guild_name="Empty server", user_id="u-e", user_name="Eve", channel_id="c", roles=TRAINERS)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def seed(core: CoreService, items: int, pending: int) -> tuple[int, int]:
    """(an item ID, a job ID) after filling the big server."""
    with core.store.session() as s:
        guild = repo.ensure_guild(s, TRAINER.guild_id, TRAINER.guild_name)
        per = items // 5
        for d in range(5):
            ds = repo.ensure_dataset(s, guild.id, f"set{d}")
            examples = [Example(prompt=f"Question {d}-{i}: what is fact number {i} about topic {i % 97}?",
                                response=f"Fact {i} of set {d} is answer {i * 7 % 1000}.",
                                label="positive" if i % 5 else "negative") for i in range(per)]
            dataset_items.add_examples(s, ds, examples, source="file", author_id=f"u{d}")
        for i in range(pending):
            s.add(Correction(guild_id=guild.id, message_id=None, user_id=f"u{i % 30}", prompt=f"Pending question {i}?",
                             original=f"wrong {i}", corrected=f"right {i}", status=CorrectionStatus.PENDING, source="test:1"))
        jobs = [Job(guild_id=guild.id, recipe="sft", requested_by="u-t", status=JobStatus.SUCCEEDED, progress=1.0)
                for _ in range(50)]
        s.add_all(jobs)
        s.flush()
        job_id = jobs[-1].id
    for step in range(1, 301):
        queue.add_event(core.store, job_id, step=step, total_steps=300, loss=3.0 / step, eta_s=300 - step)
    with core.store.read() as s:
        from sqlalchemy import func, select

        from trainerbot.store.tables import DatasetItem
        item_id = int(s.scalar(select(func.max(DatasetItem.id))) or 0)
    return item_id, job_id


async def sign_in(core: CoreService, base: str, caller: Caller) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    link = re.search(r"/login/\S+", (await core.dashboard.link(caller)).content)
    assert link is not None
    response = await http.get(base + link.group(0), allow_redirects=False)
    assert response.status == 200  # the signed-in page (it refreshes to /jobs)
    return http


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--pending", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp) / "data", dashboard_port=0, user_rate_per_minute=10_000)  # type: ignore[call-arg]
        core = CoreService.open(settings)
        t0 = time.monotonic()
        item_id, job_id = await asyncio.to_thread(seed, core, args.items, args.pending)
        print(f"seeded {args.items:,} examples, {args.pending} pending corrections, 50 jobs in {time.monotonic() - t0:.1f} s")
        s = core.settings
        dashboard = Dashboard(core, host="127.0.0.1", port=0, trainer_role=s.trainer_role, prefix=s.prefix,
                              session_hours=s.dashboard_session_hours)
        base = f"http://127.0.0.1:{await dashboard.start()}"
        big, empty = await sign_in(core, base, TRAINER), await sign_in(core, base, EMPTY)
        pages = {"baseline: /jobs, empty server": (empty, "/jobs"), "/datasets": (big, "/datasets"),
                 "/datasets?page=500": (big, "/datasets?page=500"), "/datasets?q=topic 42?": (big, "/datasets?q=topic+42%3F"),
                 f"/items/{item_id}": (big, f"/items/{item_id}"), "/review": (big, "/review"), "/jobs": (big, "/jobs"),
                 f"/jobs/{job_id} (300 events)": (big, f"/jobs/{job_id}")}
        times: dict[str, list[float]] = {name: [] for name in pages}
        for _ in range(3):  # warm up
            for http, path in pages.values():
                assert (await http.get(base + path)).status == 200, path
        for _ in range(args.rounds):
            for name, (http, path) in pages.items():
                t = time.perf_counter()
                response = await http.get(base + path)
                await response.read()
                times[name].append(time.perf_counter() - t)
                assert response.status == 200, path
        base_ms = [v * 1000 for v in times["baseline: /jobs, empty server"]]
        print(f"{args.rounds} alternating rounds; ms per page (client round trip on this machine)")
        print(f"{'page':<34} {'p50':>7} {'p95':>7} {'max':>7}  {'p50 / baseline (per-round median, spread)':>20}")
        for name, values in times.items():
            ms = [v * 1000 for v in values]
            ratios = [m / b for m, b in zip(ms, base_ms, strict=True)]
            print(f"{name:<34} {statistics.median(ms):7.1f} {pct(ms, 0.95):7.1f} {max(ms):7.1f}  "
                  f"{statistics.median(ratios):6.2f}× ({min(ratios):.2f}–{max(ratios):.2f})")
        await big.close()
        await empty.close()
        await dashboard.stop()
        await core.close()


if __name__ == "__main__":
    asyncio.run(main())

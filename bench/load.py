"""Load: many people at once against one core while the worker trains.

1. Feedback ingest: 200 users rating replies concurrently through ``core.feedback.react`` (group
   commit), against a baseline measured in the same run — the same events written one
   transaction each, as the core did before. Target ≥ 2,000 events/s.
2. Mixed load: ``--users`` simulated people chat (taught answers, so every reply is
   stored), rate their replies, correct some and leave feedback, for ``--seconds``, while a
   worker child process trains a model. Then every confirmed action is checked in the
   store (nothing lost, nothing doubled), errors shown to users are counted (no "database
   is locked"), event-loop lag is sampled every 10 ms (target p99 ≤ 50 ms) and the
   process's memory is read before and after.

    .venv/bin/python bench/load.py [--users 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from trainerbot.config import Settings
from trainerbot.core import Attachment, Caller, CoreService
from trainerbot.datasets.sample import generate
from trainerbot.store.tables import Correction, DatasetItem, Feedback, Message, utcnow

QUESTIONS = generate(60, seed=5)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] if ordered else 0.0


def settings_for(data_dir: Path, **extra: object) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, model="scratch", start_worker=False, user_rate_per_minute=10_000,  # type: ignore[call-arg]
                    max_pending_per_user=100_000, **extra)


# ------------------------------------------------------------------ ingest
async def ingest(core: CoreService, users: int, per_user: int) -> tuple[float, float]:
    """(events/s through core.feedback.react, events/s one transaction per event) on the same kind of events."""
    owner = Caller(guild_id="ingest", user_id="bot-owner", channel_id="c")
    for m in range(50):
        await core.delivery.record_exchange(owner, f"q{m}?", f"a{m}", reply_message_id=f"i{m}")
    people = [Caller(guild_id="ingest", user_id=f"p{i}", channel_id="c") for i in range(users)]

    async def rate(person: Caller, offset: int) -> None:
        for k in range(per_user):
            await core.feedback.react(person, f"i{(k + offset) % 50}", "👍" if k % 2 else "👎")
    start = time.perf_counter()
    await asyncio.gather(*(rate(p, i) for i, p in enumerate(people)))
    ours = users * per_user / (time.perf_counter() - start)

    with core.store.read() as s:
        guild_id = s.scalar(select(Message.guild_id).where(Message.platform_message_id == "i0"))
        message_ids = list(s.scalars(select(Message.id).where(Message.guild_id == guild_id, Message.role == "assistant")))
    count = min(2000, users * per_user)

    def one_by_one() -> None:  # the baseline: what the core did per event before group commit
        for k in range(count):
            with core.store.session() as s:
                row = Feedback(guild_id=guild_id, user_id=f"b{k}", kind="reaction", message_id=message_ids[k % len(message_ids)],
                               label="positive", created_at=utcnow(), updated_at=utcnow())
                s.add(row)
                s.flush()
                s.add(DatasetItem(dataset_id=1, guild_id=guild_id, prompt="q", response="a", label="positive", source="reaction",
                                  source_ref="bench", author_id=f"b{k}", feedback_id=row.id))
    start = time.perf_counter()
    await asyncio.to_thread(one_by_one)
    return ours, count / (time.perf_counter() - start)


# -------------------------------------------------------------- mixed load
@dataclass
class Tally:
    chats: int = 0
    corrections: int = 0
    texts: int = 0
    ratings: dict[tuple[str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)


async def mixed(core: CoreService, users: int, seconds: float, seed: int = 1) -> Tally:
    tally = Tally()
    stop = time.monotonic() + seconds
    rng = random.Random(seed)

    async def ticker() -> None:
        while time.monotonic() < stop:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            tally.lags.append(time.perf_counter() - t - 0.01)

    async def person(i: int) -> None:
        me = Caller(guild_id="load", guild_name="Load", user_id=f"user{i}", channel_id=f"c{i % 10}")
        n = 0
        while time.monotonic() < stop:
            try:
                question = rng.choice(QUESTIONS).prompt
                reply = await core.chat.reply(me, question)
                mid = f"{me.user_id}-{n}"
                await core.delivery.bind_reply(me, reply.data["reply_id"], mid)
                tally.chats += 1
                roll = rng.random()
                if roll < 0.6:
                    emoji = "👍" if rng.random() < 0.7 else "👎"
                    await core.feedback.react(me, mid, emoji)
                    tally.ratings[(mid, me.user_id)] = "positive" if emoji == "👍" else "negative"
                elif roll < 0.75:
                    await core.feedback.correct(me, mid, f"better answer {mid}")
                    tally.corrections += 1
                elif roll < 0.85:
                    await core.feedback.leave(me, f"feedback {mid}")
                    tally.texts += 1
            except Exception as exc:  # anything a user would have seen
                tally.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            n += 1
            await asyncio.sleep(rng.uniform(0, 0.2))

    await asyncio.gather(ticker(), *(person(i) for i in range(users)))
    return tally


def check(core: CoreService, tally: Tally) -> dict[str, tuple[int, int]]:
    """(expected, found) for every kind of row the load wrote."""
    with core.store.read() as s:
        guild = s.scalar(select(Message.guild_id).where(Message.platform_message_id.like("user%")).limit(1))

        def count(model: type, *where: object) -> int:
            return s.scalar(select(func.count()).select_from(model).where(*where)) or 0
        return {
            "messages": (2 * tally.chats, count(Message, Message.guild_id == guild)),
            "ratings": (len(tally.ratings), count(Feedback, Feedback.guild_id == guild, Feedback.kind == "reaction")),
            "rating examples": (
                len(tally.ratings),
                count(DatasetItem, DatasetItem.guild_id == guild, DatasetItem.source == "reaction"),
            ),
            "corrections": (tally.corrections, count(Correction, Correction.guild_id == guild)),
            "text feedback": (tally.texts, count(Feedback, Feedback.guild_id == guild, Feedback.kind == "text")),
        }


async def prepare(core: CoreService) -> None:
    trainer = Caller(guild_id="load", guild_name="Load", user_id="trainer", roles=frozenset({"trainer"}))
    data = "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in QUESTIONS).encode()
    await core.datasets.import_data(trainer, "facts", None, Attachment("facts.jsonl", "application/jsonl", data))


@dataclass
class LoadRun:
    tally: Tally
    found: dict[str, tuple[int, int]]
    rss_before: float
    rss_after: float
    job_status: str  # the training job's status when the load ended


async def while_training(data_dir: Path, *, users: int, seconds: float, dataset: str) -> LoadRun:
    """The mixed load against a fresh core while a worker child process trains on ``dataset``
    (``facts`` or ``sample``); the worker takes its settings from the environment."""
    from trainerbot.training.worker import spawn_child, stop_child

    settings = settings_for(data_dir)
    core = CoreService.open(settings)
    await prepare(core)
    trainer = Caller(guild_id="load", guild_name="Load", user_id="trainer", roles=frozenset({"trainer"}))
    job = (await core.training.train(trainer, dataset)).data["job_id"]
    worker = spawn_child(settings.resolved_data_dir)
    try:
        while (await core.training.job(trainer, job)).data["status"] == "queued":
            await asyncio.sleep(0.1)
        before = rss_mb()
        tally = await mixed(core, users, seconds)
        after = rss_mb()
        status = str((await core.training.job(trainer, job)).data["status"])
    finally:
        stop_child(worker)
    found = check(core, tally)
    core.store.close()
    return LoadRun(tally, found, before, after, status)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        core = CoreService.open(settings_for(Path(tmp) / "ingest"))
        ours, baseline = await ingest(core, users=200, per_user=20)
        core.store.close()
        print(
            f"feedback ingest, 200 users rating at once: {ours:,.0f} events/s (group commit) vs {baseline:,.0f} events/s "
            f"one transaction each — {ours / baseline:.1f}×  (target ≥ 2,000 events/s)"
        )

        run = await while_training(Path(tmp) / "load", users=args.users, seconds=args.seconds, dataset="sample")
    tally, found, before, after, status = run.tally, run.found, run.rss_before, run.rss_after, run.job_status
    actions = tally.chats + len(tally.ratings) + tally.corrections + tally.texts
    print(f"mixed load: {args.users} users for {args.seconds:.0f} s while the worker trains (job {status} at the end)")
    print(
        f"  {tally.chats} chats, {len(tally.ratings)} ratings, {tally.corrections} corrections, {tally.texts} feedback "
        f"= {actions / args.seconds:.0f} actions/s; errors shown to users: {len(tally.errors)}"
        + (f" (first: {tally.errors[0]})" if tally.errors else "")
    )
    print(
        "  rows expected/found: "
        + ", ".join(f"{k} {e}/{f}" for k, (e, f) in found.items())
        + f"  — lost or doubled: {sum(abs(e - f) for e, f in found.values())}"
    )
    print(
        f"  event-loop lag: p50 {statistics.median(tally.lags) * 1000:.1f} ms, p99 {pct(tally.lags, 99) * 1000:.1f} ms, "
        f"max {max(tally.lags) * 1000:.1f} ms  (target p99 ≤ 50 ms)"
    )
    print(f"  memory (RSS): {before:.0f} MiB before, {after:.0f} MiB after")


if __name__ == "__main__":
    asyncio.run(main())

"""A small job from ``train`` to the active version: 10 invented facts uploaded with ``train``
(import, snapshot, queue) while a ``trainerbot worker`` process already waits, as the bot
runs it; then the job's own events, each with its time from ``train``: queue pick-up,
rehearsal, model load, training, the held-out, general and llama.cpp checks, registration.
``--jobs`` jobs run one after another on the same worker (later ones show what a worker
keeps between jobs). Target (issue 31): ≤ 60 s on an idle machine.

    .venv/bin/python bench/small_job.py [--facts 10] [--jobs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from trainerbot.config import Settings
from trainerbot.core import Attachment, Caller, CoreService
from trainerbot.datasets.sample import generate
from trainerbot.model.pretrained import prepare_base
from trainerbot.store.tables import Job, JobEvent, JobStatus, ModelVersion


def _epoch(at: datetime) -> float:
    return at.timestamp() if at.tzinfo is not None else at.replace(tzinfo=datetime.now().astimezone().tzinfo).timestamp()


async def one_job(core: CoreService, n: int, facts: int) -> None:
    trainer = Caller(guild_id=f"g{n}", user_id="t", user_name="Tess", roles=frozenset({"trainer"}))
    rows = "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in generate(facts, seed=40 + n))
    start = time.time()
    reply = await core.training.train(trainer, "facts", "positive", Attachment("f.jsonl", "application/jsonl", rows.encode()))
    queued = time.time() - start
    job_id = int(reply.data["job_id"])
    while True:
        with core.store.read() as s:
            job = s.get(Job, job_id)
            assert job is not None
            if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                break
        await asyncio.sleep(0.2)
    done = time.time() - start
    with core.store.read() as s:
        job = s.get(Job, job_id)
        events = list(s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))
        version = s.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))
        assert job is not None
        started = _epoch(job.started_at) - start if job.started_at else float("nan")
    print(f"\njob {n + 1}: {facts} facts, {job.status}; version {version.name if version else None} "
          f"active={version.active if version else None}")
    print(f"  {queued:6.2f} s  train answered (import, snapshot, queued)")
    print(f"  {started:6.2f} s  the worker claimed it")
    last_step = None
    for e in events:
        at = _epoch(e.created_at) - start
        if e.kind == "progress":
            last_step = (at, e.step, e.total_steps)
            continue
        if last_step is not None:
            print(f"  {last_step[0]:6.2f} s  training step {last_step[1]}/{last_step[2]}")
            last_step = None
        print(f"  {at:6.2f} s  {(e.message or e.kind)[:150]}")
    print(f"  {done:6.2f} s  from train to {'the active version' if version and version.active else 'the end'}")
    metrics = (version.metrics if version else None) or {}
    print(f"  training {metrics.get('seconds')} s for {metrics.get('steps')} steps")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--facts", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        t = time.time()
        prepare_base(data)  # once per machine, before any job: not part of a job's time
        print(f"base prepared once in {time.time() - t:.1f} s (not counted)")
        settings = Settings(_env_file=None, data_dir=data, model="smollm2", start_worker=False,  # type: ignore[call-arg]
                            user_rate_per_minute=10_000)
        core = CoreService.open(settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINERBOT_")}
        env |= {"TRAINERBOT_DATA_DIR": str(data), "TRAINERBOT_MODEL": "smollm2"}
        worker = subprocess.Popen([sys.executable, "-m", "trainerbot", "worker"], env=env, cwd=data,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            time.sleep(5)  # the worker is up and polling the queue, as in a running bot
            for n in range(args.jobs):
                asyncio.run(one_job(core, n, args.facts))
        finally:
            worker.terminate()
            worker.wait(30)
            asyncio.run(core.close())


if __name__ == "__main__":
    main()

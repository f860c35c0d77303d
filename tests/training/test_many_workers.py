"""Several workers on one queue, on PostgreSQL: three worker processes share 30 jobs and
each job runs exactly once; a worker killed with SIGKILL mid-job has its job taken back by
another (re-queued once, then run to the end)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from tests.conftest import att
from tests.pg import new_database
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.store.tables import Job, JobEvent, ModelVersion

TRAINER = Caller(guild_id="111", guild_name="Guild A", user_id="u-trainer", channel_id="c1", roles=frozenset({"trainer"}))


def _env(db: str, data: Path, epochs: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINERBOT_")}
    env.update(
        {
            "TRAINERBOT_MODEL": "scratch",
            "TRAINERBOT_DATABASE_URL": db,
            "TRAINERBOT_DATA_DIR": str(data),
            "TRAINERBOT_MODEL_SIZE": "tiny",
            "TRAINERBOT_TRAIN_EPOCHS": str(epochs),
            "TRAINERBOT_TORCH_THREADS": "1",
            "TRAINERBOT_HELDOUT_SHARE": "0",
            **extra,
        }
    )
    return env


def _worker(env: dict[str, str], once: bool = False) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "trainerbot", "worker", *(["--once"] if once else [])],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def _queue_jobs(core: CoreService, n: int) -> list[int]:
    ids = []
    for i in range(n):
        facts = "".join(json.dumps({"prompt": f"question {i}-{k}?", "response": f"answer {i}-{k}."}) + "\n" for k in range(3))
        ids.append((await core.training.train(TRAINER, f"d{i}", None, att("f.jsonl", facts))).data["job_id"])
    return ids


def _settings(db: str, data: Path) -> Settings:
    return Settings(_env_file=None, data_dir=data, database_url=db, user_rate_per_minute=10_000, max_queued_jobs=1000)  # type: ignore[call-arg]


async def test_three_workers_run_thirty_jobs_each_exactly_once(postgres: str, tmp_path: Path) -> None:
    db, data = new_database(postgres), tmp_path / "data"
    core = CoreService.open(_settings(db, data))
    try:
        ids = await _queue_jobs(core, 30)
        workers = [_worker(_env(db, data, epochs=1), once=True) for _ in range(3)]
        for w in workers:
            assert await asyncio.to_thread(w.wait, 300) == 0
        with core.store.read() as s:
            jobs = {j.id: j for j in s.scalars(select(Job))}
            claims = s.execute(select(JobEvent.job_id, JobEvent.message).where(JobEvent.message.like("running on %"))).all()
            versions = s.scalars(select(ModelVersion)).all()
    finally:
        core.store.close()
    assert sorted(jobs) == sorted(ids) and all(j.status == "succeeded" for j in jobs.values())
    assert sorted(job_id for job_id, _ in claims) == sorted(ids)  # each job claimed exactly once
    assert len({j.worker_id for j in jobs.values()}) >= 2  # the work was shared
    assert sorted(v.name for v in versions) == sorted(f"v{i}" for i in range(1, 31)) and sum(v.active for v in versions) == 1


async def test_a_killed_workers_job_is_taken_back_by_another(postgres: str, tmp_path: Path) -> None:
    db, data = new_database(postgres), tmp_path / "data"
    core = CoreService.open(_settings(db, data))
    try:
        [job_id] = await _queue_jobs(core, 1)
        env = _env(db, data, epochs=300, TRAINERBOT_STALE_JOBS="requeue")
        first = _worker(env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with core.store.read() as s:
                if s.scalar(select(JobEvent.id).where(JobEvent.job_id == job_id, JobEvent.step.is_not(None))):
                    break
            await asyncio.sleep(0.1)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        second = _worker(_env(db, data, epochs=2, TRAINERBOT_STALE_JOBS="requeue"), once=True)
        assert await asyncio.to_thread(second.wait, 120) == 0
        with core.store.read() as s:
            job = s.get(Job, job_id)
            messages = [m for (m,) in s.execute(select(JobEvent.message).where(JobEvent.job_id == job_id).order_by(JobEvent.id))]
    finally:
        core.store.close()
    assert job.status == "succeeded" and job.requeued is True
    assert any(m and m.startswith("re-queued: its worker") and f":{first.pid}" in m for m in messages)
    runs = [m for m in messages if m and m.startswith("running on")]
    assert len(runs) == 2 and runs[0] != runs[1] and job.worker_id == runs[1].removeprefix("running on ")
    assert not list((data / "guilds").glob("*/models/.job-*"))  # the killed run's scratch and partial files are gone

"""Training on a real local Ray head, started and stopped by the test: the worker submits the
job through the Ray Jobs API, the job's own run reports progress into the store, a model
version is registered, and ``cancel`` stops it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import att
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.datasets.sample import generate
from trainerbot.store.tables import Job, JobEvent, ModelVersion
from trainerbot.training.worker import serve

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    temp = tempfile.mkdtemp(prefix="trainerbot-ray-")
    dashboard, gcs = _free_port(), _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        started = subprocess.run([RAY, "start", "--head", "--num-cpus", "2", "--dashboard-host", "127.0.0.1", "--dashboard-port",
                                  str(dashboard), "--port", str(gcs), "--disable-usage-stats", "--temp-dir", temp],
                                 capture_output=True, text=True, timeout=180, env=env)
        assert started.returncode == 0, started.stderr[-2000:]
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120, env=env)
        shutil.rmtree(temp, ignore_errors=True)


def _facts(n: int) -> str:
    return "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in generate(n, seed=4))


def _events(core: CoreService, job_id: int) -> tuple[Job, list[str]]:
    with core.store.read() as s:
        return s.get(Job, job_id), [m or "" for (m,) in s.execute(select(JobEvent.message).where(JobEvent.job_id == job_id)
                                                                   .order_by(JobEvent.id))]


async def test_a_job_trains_on_the_ray_cluster_and_registers_a_version(ray_head: str, settings: Settings, core: CoreService,
                                                                       trainer: Caller, member: Caller) -> None:
    job_id = (await core.training.train(trainer, "facts", None, att("facts.jsonl", _facts(12)))).data["job_id"]
    on_ray = settings.model_copy(update={"executor": "ray", "ray_address": ray_head})
    assert await asyncio.to_thread(serve, on_ray, once=True) == 1
    job, messages = _events(core, job_id)
    assert job.status == "succeeded" and job.backend_job is not None and job.backend_job.startswith("trainerbot-job-")
    assert "ray: PENDING" in messages and "ray: SUCCEEDED" in messages
    assert any(m.startswith("ray log:") for m in messages), messages[-6:]
    with core.store.read() as s:
        steps = s.scalars(select(JobEvent.step).where(JobEvent.job_id == job_id, JobEvent.step.is_not(None))).all()
        version = s.scalars(select(ModelVersion)).one()
    assert steps and version.active and version.job_id == job_id  # progress came from the run on Ray, into our store
    assert (settings.resolved_data_dir / version.path / "DONE.json").is_file()
    assert (await core.chat.reply(member, "Hello there")).data["model_version"] == "v1"


async def test_cancel_stops_the_ray_job(ray_head: str, settings: Settings, core: CoreService, trainer: Caller) -> None:
    job_id = (await core.training.train(trainer, "facts", None, att("facts.jsonl", _facts(12)))).data["job_id"]
    on_ray = settings.model_copy(update={"executor": "ray", "ray_address": ray_head, "train_epochs": 1000})
    runner = threading.Thread(target=serve, args=(on_ray,), kwargs={"once": True})
    runner.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job, _ = _events(core, job_id)
        with core.store.read() as s:
            if s.scalar(select(JobEvent.id).where(JobEvent.job_id == job_id, JobEvent.step.is_not(None))):
                break
        await asyncio.sleep(0.2)
    await core.training.cancel(trainer, job_id)
    await asyncio.to_thread(runner.join, 120)
    job, messages = _events(core, job_id)
    assert job.status == "cancelled" and "ray: SUCCEEDED" in messages  # the run stopped itself cleanly at the cancel

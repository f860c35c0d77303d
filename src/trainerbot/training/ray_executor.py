"""Training on a Ray cluster (``executor = ray``): the worker claims a job as usual, then hands
it to the cluster through the Ray Jobs API and follows it.

The Ray job's entrypoint is the worker's own run-one-job command (``trainerbot worker --job N
--as WORKER``) with the store's URL and the shared storage folder in its environment, so the
job's progress events reach the store exactly as with a local job, and the model folder is
written where both sides see it (``ray_storage_dir``; on one machine, the data folder). The
worker mirrors Ray's status changes and, at the end, the tail of Ray's log into the job's
events; ``cancel`` is honoured by the run itself within seconds, and the Ray job is stopped if
it has not ended soon after. If the Ray job ends without finishing ours (it failed to start,
was stopped, crashed), our job fails with Ray's word for it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from trainerbot.config import Settings
from trainerbot.errors import NotAvailable
from trainerbot.store import Store
from trainerbot.store.tables import Job, JobStatus
from trainerbot.training import queue

log = logging.getLogger(__name__)
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
STOP_GRACE_S = 30.0
LOG_TAIL_LINES = 15


def _client(settings: Settings) -> Any:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise NotAvailable("executor = ray needs Ray: install the extra (`pip install 'trainerbot[ray]'`).") from None
    return JobSubmissionClient(settings.ray_address)


def run_on_ray(settings: Settings, store: Store, job_id: int, worker: str, stop: Callable[[], bool]) -> str:
    """Submit a claimed job to the cluster and follow it to the end; returns our job's final status."""
    storage = settings.ray_storage_dir or settings.resolved_data_dir
    env = {"TRAINERBOT_DATA_DIR": str(storage), "TRAINERBOT_DATABASE_URL": settings.db_url,
           "TRAINERBOT_EXECUTOR": "local", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name in ("model", "model_size", "train_epochs", "train_batch_size", "learning_rate", "torch_threads", "heldout_share",
                 "promotion_metric", "max_test_cases", "base_model_dir", "lora"):
        value = getattr(settings, name)
        if value is not None:
            env[f"TRAINERBOT_{name.upper()}"] = str(value)
    try:
        client = _client(settings)
        ray_id = client.submit_job(entrypoint=f"{sys.executable} -m trainerbot worker --job {job_id} --as {worker}",
                                   runtime_env={"env_vars": env}, submission_id=f"trainerbot-job-{job_id}-{int(time.time())}",
                                   metadata={"trainerbot_job": str(job_id)})
    except Exception as exc:
        queue.finish(
            store, job_id, JobStatus.FAILED, error=f"The Ray cluster at {settings.ray_address} refused the job: {str(exc)[:200]}"
        )
        return JobStatus.FAILED
    with store.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.backend_job = ray_id
    queue.add_event(store, job_id, kind="log", message=f"submitted to Ray as {ray_id}")
    last = ""
    stop_at: float | None = None
    while True:
        try:
            status = str(client.get_job_status(ray_id))  # JobStatus is a str enum: "PENDING", "RUNNING", …
        except Exception as exc:
            log.warning("Ray status of %s: %s", ray_id, exc)
            status = last or "UNKNOWN"
        if status != last:
            queue.add_event(store, job_id, kind="log", message=f"ray: {status}")
            last = status
        if status in TERMINAL:
            break
        wants_stop = stop() or _cancel_requested(store, job_id)
        if wants_stop and stop_at is None:
            stop_at = time.monotonic() + (0 if stop() else STOP_GRACE_S)  # a cancel first gets the run's own clean stop
        if stop_at is not None and time.monotonic() >= stop_at:
            try:
                client.stop_job(ray_id)
                queue.add_event(store, job_id, kind="log", message="asked Ray to stop the job")
            except Exception as exc:
                log.warning("stopping %s: %s", ray_id, exc)
            stop_at = time.monotonic() + 3600
        time.sleep(0.5)
    try:
        tail = "\n".join(client.get_job_logs(ray_id).strip().splitlines()[-LOG_TAIL_LINES:])
        if tail:
            queue.add_event(store, job_id, kind="log", message="ray log:\n" + tail[-2000:])
    except Exception as exc:
        log.warning("Ray logs of %s: %s", ray_id, exc)
    with store.read() as s:
        job = s.get(Job, job_id)
        final = job.status if job is not None else JobStatus.FAILED
    if final == JobStatus.RUNNING:  # the run never finished our job: Ray's outcome decides
        if _cancel_requested(store, job_id):
            queue.finish(store, job_id, JobStatus.CANCELLED, message=f"cancelled; the Ray job was {status.lower()}")
            return JobStatus.CANCELLED
        queue.finish(
            store,
            job_id,
            JobStatus.FAILED,
            error=f"The Ray job {ray_id} ended {status} before the training finished; its log is in the job's events.",
        )
        return JobStatus.FAILED
    return final


def _cancel_requested(store: Store, job_id: int) -> bool:
    with store.read() as s:
        job = s.get(Job, job_id)
        return bool(job is not None and job.cancel_requested)

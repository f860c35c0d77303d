"""The durable job queue: jobs and their events live in the store.

Statuses: ``queued → running → succeeded | failed | cancelled``. A worker claims the
oldest queued job in one short write transaction (so two workers never take the same
one — on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so any number of workers on any
machines share the queue), then renews a lease while it runs. A job whose worker died is
taken back by any worker — at once when that worker ran on the same host and its process
is gone, else once its lease has run out — and failed with the reason, or re-queued once
(``stale_jobs = requeue``). Everything here blocks (store calls).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from trainerbot.errors import Busy
from trainerbot.store import Store, repo
from trainerbot.store.tables import Job, JobEvent, JobStatus, Snapshot, WorkerBeat, utcnow

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
LEASE = timedelta(seconds=60)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _aware(dt: datetime | None) -> datetime | None:
    return repo.as_utc(dt) if dt is not None else None


@dataclass(frozen=True)
class Submitted:
    job_id: int
    existing: bool


def submit(store: Store, *, guild_id: int, snapshot_id: int, recipe: str, requested_by: str,
           channel_id: str | None = None, backend: str = "local", max_active: int | None = None) -> Submitted:
    """Queue a job, or return the queued/running one for the same data and recipe.

    With ``max_active``, a guild that already has that many queued or running jobs gets
    ``Busy`` instead of a new one.
    """
    with store.session() as s:
        snap = s.get(Snapshot, snapshot_id)
        assert snap is not None
        same = s.scalars(
            select(Job).join(Snapshot, Job.snapshot_id == Snapshot.id).where(
                Job.guild_id == guild_id, Job.status.in_(ACTIVE), Job.recipe == recipe, Snapshot.sha256 == snap.sha256,
                Snapshot.label.is_(None) if snap.label is None else Snapshot.label == snap.label,
            ).order_by(Job.id)
        ).first()
        if same is not None:
            return Submitted(same.id, True)
        if max_active is not None:
            active = s.scalar(select(func.count()).select_from(Job).where(Job.guild_id == guild_id, Job.status.in_(ACTIVE))) or 0
            if active >= max_active:
                raise Busy(f"{active} training jobs are already queued or running here; wait for some to finish.")
        job = Job(guild_id=guild_id, snapshot_id=snapshot_id, recipe=recipe, requested_by=requested_by,
                  channel_id=channel_id, backend=backend, status=JobStatus.QUEUED)
        s.add(job)
        s.flush()
        s.add(JobEvent(job_id=job.id, kind="status", message="queued"))
        return Submitted(job.id, False)


def claim_next(store: Store, worker: str) -> int | None:
    """Take the oldest queued job for ``worker``; None when the queue is empty."""
    with store.session() as s:
        job = s.scalars(
            select(Job).where(Job.status == JobStatus.QUEUED).order_by(Job.id).limit(1).with_for_update(skip_locked=True)
        ).first()
        if job is None:
            return None
        now = utcnow()
        job.status, job.worker_id, job.started_at, job.lease_until = JobStatus.RUNNING, worker, now, now + LEASE
        s.add(JobEvent(job_id=job.id, kind="status", message=f"running on {worker}"))
        return job.id


def heartbeat(store: Store, job_id: int, worker: str) -> bool:
    """Renew the lease; returns True when cancellation was requested."""
    with store.session() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.worker_id == worker).values(lease_until=utcnow() + LEASE))
        return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def add_event(store: Store, job_id: int, **fields: Any) -> None:
    with store.session() as s:
        s.add(JobEvent(job_id=job_id, kind=fields.pop("kind", "progress"), **fields))
        if fields.get("step") and fields.get("total_steps"):
            s.execute(update(Job).where(Job.id == job_id).values(progress=min(1.0, fields["step"] / fields["total_steps"])))


def finish(store: Store, job_id: int, status: str, *, error: str | None = None, message: str | None = None) -> None:
    assert status in FINISHED
    with store.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.status, job.finished_at, job.error, job.lease_until = status, utcnow(), error, None
        if status == JobStatus.SUCCEEDED:
            job.progress = 1.0
        s.add(JobEvent(job_id=job_id, kind="status", message=message or status))


def request_cancel(store: Store, job_id: int) -> str:
    """Cancel a queued job at once, or ask a running one to stop; returns the status now."""
    with store.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        if job.status == JobStatus.QUEUED:
            job.status, job.finished_at = JobStatus.CANCELLED, utcnow()
            s.add(JobEvent(job_id=job_id, kind="status", message="cancelled before it started"))
        elif job.status == JobStatus.RUNNING:
            job.cancel_requested = True
            s.add(JobEvent(job_id=job_id, kind="log", message="cancel requested"))
        return job.status


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_stale(store: Store, me: str | None = None, *, requeue: bool = False) -> list[int]:
    """Take back the running jobs whose worker is gone: failed with the reason, or (with
    ``requeue``) queued again once. Returns their IDs.

    ``me`` is the calling worker's ID, given at its start: a job already marked with it is a
    previous process's that happened to have the same PID.
    """
    host = socket.gethostname()
    taken: list[int] = []
    with store.session() as s:
        stale = s.scalars(select(Job).where(Job.status == JobStatus.RUNNING).with_for_update(skip_locked=True)).all()
        for job in stale:
            owner_host, _, pid = (job.worker_id or "").rpartition(":")
            dead_here = (me is not None and job.worker_id == me) or (
                owner_host == host and pid.isdigit() and not _pid_alive(int(pid))
            )
            lease = _aware(job.lease_until)
            expired = lease is None or lease < utcnow()
            if not (dead_here or expired):
                continue
            gone = job.worker_id
            if requeue and not job.requeued:
                job.status, job.worker_id, job.lease_until, job.started_at = JobStatus.QUEUED, None, None, None
                job.requeued = True
                s.add(JobEvent(job_id=job.id, kind="status", message=f"re-queued: its worker {gone} stopped"))
            else:
                job.status, job.finished_at, job.lease_until = JobStatus.FAILED, utcnow(), None
                job.error = "The worker stopped while this job was running (crash or restart). Start it again with `train`."
                s.add(JobEvent(job_id=job.id, kind="status", message=f"failed: worker {gone} stopped"))
            taken.append(job.id)
    return taken


# ---------------------------------------------------------------- worker heartbeats
BEAT_EVERY_S = 5.0
WORKER_SILENT_AFTER_S = 30.0  # no beat for this long: nobody is taking jobs


def beat(store: Store, worker: str, job_id: int | None = None) -> None:
    """Write ``worker``'s heartbeat (insert or refresh)."""
    host, _, pid = worker.rpartition(":")
    with store.session() as s:
        row = s.get(WorkerBeat, worker)
        if row is None:
            s.add(WorkerBeat(worker_id=worker, host=host[:255], pid=int(pid) if pid.isdigit() else 0, job_id=job_id))
        else:
            row.last_seen, row.job_id = utcnow(), job_id


def retire(store: Store, worker: str) -> None:
    """A worker that stops cleanly removes its heartbeat."""
    with store.session() as s:
        row = s.get(WorkerBeat, worker)
        if row is not None:
            s.delete(row)


@dataclass(frozen=True)
class Workers:
    alive: int  # workers heard from within WORKER_SILENT_AFTER_S
    silent_for_s: float | None  # seconds since the newest beat; None when no worker ever beat
    waiting: int  # queued jobs


def workers(store: Store, now: datetime | None = None) -> Workers:
    now = now or utcnow()
    cutoff = now - timedelta(seconds=WORKER_SILENT_AFTER_S)
    with store.read() as s:
        newest = _aware(s.scalar(select(func.max(WorkerBeat.last_seen))))
        alive = s.scalar(select(func.count()).select_from(WorkerBeat).where(WorkerBeat.last_seen >= cutoff)) or 0
        waiting = s.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED)) or 0
    return Workers(
        alive=int(alive), silent_for_s=(now - newest).total_seconds() if newest is not None else None, waiting=int(waiting)
    )

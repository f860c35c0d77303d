from __future__ import annotations

import socket
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from trainerbot.store import Store, repo
from trainerbot.store.tables import Job, JobEvent, Snapshot, utcnow
from trainerbot.training import queue


@pytest.fixture
def store(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path / 'q.db'}")
    yield s
    s.close()


def _snapshot(store: Store, sha: str = "a" * 64) -> tuple[int, int]:
    with store.session() as s:
        g = repo.ensure_guild(s, "1")
        ds = repo.ensure_dataset(s, g.id, "facts")
        snap = Snapshot(guild_id=g.id, dataset_id=ds.id, kind="selection", file_name=f"{sha[:8]}.tar.gz", item_count=1,
                        sha256=sha, created_by="u")
        s.add(snap)
        s.flush()
        return g.id, snap.id


def _status(store: Store, job_id: int) -> str:
    with store.read() as s:
        return s.get(Job, job_id).status


def test_submit_dedupes_the_same_data_and_recipe_while_active(store: Store) -> None:
    gid, snap = _snapshot(store)
    _, same_content = _snapshot(store)  # a second snapshot with the same content hash
    first = queue.submit(store, guild_id=gid, snapshot_id=snap, recipe="sft", requested_by="u")
    again = queue.submit(store, guild_id=gid, snapshot_id=same_content, recipe="sft", requested_by="u")
    other_recipe = queue.submit(store, guild_id=gid, snapshot_id=snap, recipe="kto", requested_by="u")
    assert (again.job_id, again.existing) == (first.job_id, True)
    assert other_recipe.job_id != first.job_id and not other_recipe.existing
    queue.finish(store, first.job_id, "succeeded")
    assert not queue.submit(store, guild_id=gid, snapshot_id=snap, recipe="sft", requested_by="u").existing


def test_claims_are_oldest_first_and_never_shared(store: Store) -> None:
    gid, _ = _snapshot(store)
    ids = [queue.submit(store, guild_id=gid, snapshot_id=_snapshot(store, str(i) * 64)[1], recipe="sft", requested_by="u").job_id
           for i in range(8)]
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all(worker: str) -> None:
        while (job := queue.claim_next(store, worker)) is not None:
            with lock:
                claimed.append(job)
    threads = [threading.Thread(target=claim_all, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == ids  # each exactly once
    assert queue.claim_next(store, "w") is None
    with store.read() as s:
        assert {j.status for j in s.scalars(select(Job))} == {"running"}


def test_cancel_queued_at_once_and_running_by_flag(store: Store) -> None:
    gid, snap = _snapshot(store)
    queued = queue.submit(store, guild_id=gid, snapshot_id=snap, recipe="sft", requested_by="u").job_id
    assert queue.request_cancel(store, queued) == "cancelled"
    running = queue.submit(store, guild_id=gid, snapshot_id=snap, recipe="sft", requested_by="u").job_id
    assert queue.claim_next(store, "w1") == running
    assert queue.heartbeat(store, running, "w1") is False
    assert queue.request_cancel(store, running) == "running"
    assert queue.heartbeat(store, running, "w1") is True
    queue.finish(store, running, "cancelled")
    assert queue.request_cancel(store, running) == "cancelled"


def test_events_and_progress(store: Store) -> None:
    gid, snap = _snapshot(store)
    job = queue.submit(store, guild_id=gid, snapshot_id=snap, recipe="sft", requested_by="u").job_id
    queue.claim_next(store, "w")
    queue.add_event(store, job, step=5, total_steps=20, loss=2.5, learning_rate=1e-3, tokens_per_s=900.0, eta_s=12.0)
    with store.read() as s:
        assert s.get(Job, job).progress == 0.25
        kinds = [e.kind for e in s.scalars(select(JobEvent).where(JobEvent.job_id == job).order_by(JobEvent.id))]
    assert kinds == ["status", "status", "progress"]


def test_recover_fails_jobs_of_dead_or_expired_workers_only(store: Store) -> None:
    gid, snap = _snapshot(store)
    jobs = [queue.submit(store, guild_id=gid, snapshot_id=_snapshot(store, str(i) * 64)[1], recipe="sft", requested_by="u").job_id
            for i in range(4)]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    host = socket.gethostname()
    import os
    owners = [f"{host}:{dead}", f"{host}:{os.getpid()}", "elsewhere:1", "elsewhere:2"]
    for job, owner in zip(jobs, owners, strict=True):
        assert queue.claim_next(store, owner) == job
    with store.session() as s:  # the third worker's lease ran out; the fourth's is fresh
        s.execute(update(Job).where(Job.id == jobs[2]).values(lease_until=utcnow() - timedelta(seconds=1)))
    assert sorted(queue.recover_stale(store)) == [jobs[0], jobs[2]]
    assert [_status(store, j) for j in jobs] == ["failed", "running", "failed", "running"]
    with store.read() as s:
        assert "worker stopped" in s.get(Job, jobs[0]).error
    # A worker that finds a job under its own ID at start knows it is a previous life's.
    assert queue.recover_stale(store, me=owners[1]) == [jobs[1]]


def test_a_full_queue_refuses_new_jobs_but_still_finds_the_same_one(store: Store) -> None:
    from trainerbot.errors import Busy

    gid, snap = _snapshot(store)
    first = queue.submit(store, guild_id=gid, snapshot_id=snap, recipe="sft", requested_by="u", max_active=1)
    assert (
        queue.submit(store, guild_id=gid, snapshot_id=snap, recipe="sft", requested_by="u", max_active=1).job_id == first.job_id
    )
    _, other = _snapshot(store, "b" * 64)
    with pytest.raises(Busy, match="already queued or running"):
        queue.submit(store, guild_id=gid, snapshot_id=other, recipe="sft", requested_by="u", max_active=1)
    with store.read() as s:
        assert len(s.scalars(select(Job)).all()) == 1

"""The training worker: a process of its own that takes jobs from the queue and runs them.

Run it with ``trainerbot worker`` (``run`` and ``console`` start one as a child process).
At start it fails the jobs a dead worker left ``running`` and removes half-written model
folders; then it claims queued jobs one at a time. With ``--parent-pid`` it exits when
that process is gone, so a child worker never outlives its bot.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trainerbot.config import ModelSettings, OpenAISettings, Settings, TrainingSettings
from trainerbot.ops import logs
from trainerbot.store import Store
from trainerbot.store.tables import Job, JobStatus
from trainerbot.training import chat_first, queue
from trainerbot.training.job import JobSettings

log = logging.getLogger(__name__)


RECOVER_EVERY_S = 10.0


def _parent_alive(pid: int | None) -> bool:
    return pid is None or os.getppid() == pid


def job_settings(settings: Settings) -> JobSettings:
    """The sections of the settings that running a job reads."""
    return JobSettings(settings.section(ModelSettings), settings.section(TrainingSettings),
                       settings.section(OpenAISettings), settings.resolved_data_dir)


def serve(settings: Settings, *, once: bool = False, poll_s: float = 0.5, parent_pid: int | None = None,
          stop: threading.Event | None = None) -> int:
    """Run jobs until stopped (or, with ``once``, until the queue is empty); returns jobs run.

    SIGTERM (or ``stop``) ends the loop; a job in training stops at its next step and is
    marked failed ("the worker was stopped"), so it never stays ``running``.
    """
    pause = _share_the_machine(settings)
    from trainerbot.training.runner import (  # torch and TRL load here, not in the bot
        clean_partials,
        run_job,
    )

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = Store.open(settings.db_url)
    me = queue.worker_id()
    requeue = settings.stale_jobs == "requeue"
    jobs_read = job_settings(settings)  # what every job reads of the settings (they never change)
    running: list[int | None] = [None]  # the job in hand, for the heartbeat
    beating = threading.Event()

    def beat() -> None:  # "a worker is alive": read by `jobs`, `job` and /healthz
        while True:
            try:
                queue.beat(store, me, running[0])
            except Exception:  # the store is briefly unreachable: the next beat tries again
                log.exception("worker heartbeat failed")
            if beating.wait(queue.BEAT_EVERY_S):
                return
    beats = threading.Thread(target=beat, name="worker-heartbeat", daemon=True)
    beats.start()
    try:
        _take_back(store, me, requeue)
        removed = clean_partials(settings.resolved_data_dir, store)
        if removed:
            log.warning("removed %d half-written model folder(s)", removed)
        ran = 0
        next_check = time.monotonic() + RECOVER_EVERY_S
        while not stop.is_set() and _parent_alive(parent_pid):
            if time.monotonic() >= next_check:  # another worker may have died meanwhile
                _take_back(store, None, requeue)
                next_check = time.monotonic() + RECOVER_EVERY_S
            job_id = queue.claim_next(store, me)
            if job_id is None:
                if once:
                    break
                stop.wait(poll_s)
                continue
            log.info("job %s: started", job_id)
            running[0] = job_id
            with _lease_kept(store, job_id, me):
                def should_stop() -> bool:
                    return stop.is_set() or not _parent_alive(parent_pid)

                if settings.executor == "ray":
                    from trainerbot.training.ray_executor import run_on_ray

                    status = run_on_ray(settings, store, job_id, me, should_stop)
                else:
                    status = run_job(jobs_read, store, job_id, me, stop=should_stop, pause=pause)
            log.info("job %s: %s", job_id, status)
            running[0] = None
            ran += 1
        return ran
    finally:
        beating.set()
        beats.join()
        try:
            queue.retire(store, me)
        except Exception:
            log.exception("could not remove the worker heartbeat")
        store.close()


def _share_the_machine(settings: Settings) -> Callable[[], float] | None:
    """Give way to chat on this machine (``chat_first``): a lower CPU priority for this
    process and every thread and child it starts from here on, and the pause at every step
    and layer while the bot writes a reply. Returns that pause (None with ``worker_yields``
    off). (``OMP_WAIT_POLICY=PASSIVE`` was tried too: its threads sleep between operations,
    and a job alone trained at half its speed — bench/RESULTS.md.)"""
    if settings.worker_nice:
        log.info("worker CPU priority: nice %d", chat_first.lower_priority(settings.worker_nice))
    if not settings.worker_yields:
        return None
    return chat_first.ChatFirst(chat_first.path_for(settings.resolved_data_dir)).wait


def run_one(settings: Settings, job_id: int, worker: str) -> str:
    """Run one job that ``worker`` already claimed (a Ray job's entrypoint); returns its status.
    On a cluster it shares no cores with chat, so it never pauses for it."""
    from trainerbot.training.runner import run_job

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = Store.open(settings.db_url)
    try:
        with store.read() as s:
            job = s.get(Job, job_id)
            if job is None or job.status != JobStatus.RUNNING or job.worker_id != worker:
                raise SystemExit(f"job {job_id} is not running for {worker}")
        return run_job(job_settings(settings), store, job_id, worker, stop=stop.is_set)
    finally:
        store.close()


def _take_back(store: Store, me: str | None, requeue: bool) -> None:
    taken = queue.recover_stale(store, me, requeue=requeue)
    if taken:
        log.warning("took back %d job(s) a stopped worker left running (%s): %s", len(taken),
                    "re-queued once" if requeue else "failed", taken)


@contextmanager
def _lease_kept(store: Store, job_id: int, me: str) -> Iterator[None]:
    """Renew the job's lease in the background for as long as it runs (training, saving,
    evaluating), so other workers never take back a job that is alive."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(queue.LEASE.total_seconds() / 4):
            try:
                queue.heartbeat(store, job_id, me)
            except Exception:  # the store is briefly unreachable: the next beat tries again
                log.exception("lease renewal for job %s failed", job_id)
    beat = threading.Thread(target=renew, name=f"lease-{job_id}", daemon=True)
    beat.start()
    try:
        yield
    finally:
        done.set()
        beat.join()


_log_handlers: dict[Path, logging.handlers.RotatingFileHandler] = {}
_log_lock = threading.Lock()


def _rotating(path: Path) -> logging.handlers.RotatingFileHandler:
    """One rotating writer per log file for this process (restarted children share it)."""
    with _log_lock:
        if path not in _log_handlers:
            handler = logs.rotating_file(path)
            handler.setFormatter(logging.Formatter("%(message)s"))
            _log_handlers[path] = handler
        return _log_handlers[path]


def _pump(stream: Any, handler: logging.Handler) -> None:
    """Copy the child's output, line by line, into the rotating log (one writer: this process)."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        handler.emit(logging.LogRecord("trainerbot.worker.output", logging.INFO, "", 0, line, None, None))
    stream.close()


def spawn_child(data_dir: Path, *, log_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``trainerbot worker`` as a child of this process (same settings, same data folder).
    Its output goes to ``log_file``, rotated as the bot's own log is (``ops.logs.rotating_file``)."""
    env = dict(os.environ)
    env["TRAINERBOT_DATA_DIR"] = str(data_dir)
    out = subprocess.PIPE if log_file is not None else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "trainerbot", "worker", "--parent-pid", str(os.getpid())],
                            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    if log_file is not None:
        pump = threading.Thread(target=_pump, args=(proc.stdout, _rotating(log_file)), name=f"worker-log-{proc.pid}", daemon=True)
        pump.start()
    return proc


def stop_child(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

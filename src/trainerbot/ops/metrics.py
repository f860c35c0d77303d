"""The bot process's Prometheus metrics, in one registry of their own.

Counters and histograms are updated where things happen (the core records replies,
feedback and transcriptions; adapters record the errors they show). What lives in the
store — the job queue by status, finished jobs and their durations, the newest worker
heartbeat — is read at scrape time by ``StoreCollector``, so every bot process sharing a
store reports the same numbers. Names follow Prometheus' conventions: a ``trainerbot_``
prefix, base units (seconds), ``_total`` for counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

REPLIES = Counter("trainerbot_replies", "Chat replies given, by where the answer came from.", ["source"], registry=REGISTRY)
REPLY_SECONDS = Histogram("trainerbot_reply_seconds", "Time to answer a chat message, by source.", ["source"],
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64), registry=REGISTRY)
FEEDBACK = Counter("trainerbot_feedback_events", "Feedback ingested: ratings, text feedback, corrections.", ["kind"],
                   registry=REGISTRY)
USER_ERRORS = Counter("trainerbot_user_errors", "Errors shown to users, by kind.", ["kind"], registry=REGISTRY)
TRANSCRIPTIONS = Counter("trainerbot_transcriptions", "Voice messages and audio files transcribed.", registry=REGISTRY)
TRANSCRIBED_SECONDS = Counter("trainerbot_transcribed_audio_seconds", "Seconds of audio transcribed.", registry=REGISTRY)


def user_error(exc: BaseException) -> None:
    """Count one error shown to a user: the TrainerBotError's class (bad_input, not_allowed, …),
    or ``internal`` for anything else."""
    from trainerbot.errors import TrainerBotError

    if isinstance(exc, TrainerBotError):
        name = type(exc).__name__
        kind = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    else:
        kind = "internal"
    USER_ERRORS.labels(kind).inc()


class StoreCollector(Collector):
    """Queue depth, finished jobs and worker heartbeats, read from the store at scrape time."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        from sqlalchemy import func, select

        from trainerbot.store.tables import Job
        from trainerbot.training import queue

        depth = GaugeMetricFamily("trainerbot_jobs", "Training jobs by status (queued and running are the queue).",
                                  labels=["status"])
        finished = CounterMetricFamily("trainerbot_jobs_finished", "Training jobs that finished, by outcome.",
                                       labels=["outcome"])
        durations = SummaryMetricFamily("trainerbot_job_duration_seconds", "Run time of finished jobs, by outcome.",
                                        labels=["outcome"])
        with self.store.read() as s:
            counts = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            runs = s.execute(
                select(Job.status, Job.started_at, Job.finished_at).where(
                    Job.status.in_(queue.FINISHED), Job.started_at.is_not(None), Job.finished_at.is_not(None)
                )
            ).all()
        for status in (*queue.ACTIVE, *queue.FINISHED):
            depth.add_metric([status], counts.get(status, 0))
        for outcome in queue.FINISHED:
            finished.add_metric([outcome], counts.get(outcome, 0))
            spans = [(end - start).total_seconds() for status, start, end in runs if status == outcome]
            durations.add_metric([outcome], count_value=len(spans), sum_value=sum(spans))
        seen = queue.workers(self.store)
        alive = GaugeMetricFamily("trainerbot_workers_alive", "Training workers heard from in the last 30 s.", value=seen.alive)
        age = GaugeMetricFamily(
            "trainerbot_worker_heartbeat_age_seconds",
            "Seconds since the newest worker heartbeat (-1: none ever).",
            value=seen.silent_for_s if seen.silent_for_s is not None else -1,
        )
        yield from (depth, finished, durations, alive, age)

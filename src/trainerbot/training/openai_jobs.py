"""Training through an OpenAI-compatible fine-tuning jobs API, run by the worker like a local job.

The snapshot's training split is exported — OpenAI chat JSONL for supervised fine-tuning,
or preference JSONL (``input``, ``preferred_output``, ``non_preferred_output``) for DPO from
corrections — uploaded as a file, and a fine-tuning job is created on the configured base
model (or on the guild's active fine-tuned model, to keep teaching it). The worker then polls
the job: its status and events land in our job store as the same statuses and events a local
job has (metrics events become step / loss progress); ``cancel`` cancels it at the provider.
When it succeeds, the fine-tuned model's name is registered as a model version (backend
``openai``), promoted only if it answers the held-out questions no worse than the active one.
When the provider refuses (no fine-tuning, a retired model, a bad file) the job fails with the
provider's reason in plain words.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from trainerbot.datasets.records import Example
from trainerbot.errors import TrainerBotError
from trainerbot.model.openai_chat import RemoteRuntime, client_options, plain_error, provider_reason
from trainerbot.plural import count
from trainerbot.store.tables import Job, JobStatus
from trainerbot.training import queue, recipes
from trainerbot.training.job import JobContext
from trainerbot.training.versions import register_version

log = logging.getLogger(__name__)
RUNNING = {"validating_files", "queued", "running"}


def training_rows(examples: list[Example], recipe: str) -> list[dict[str, Any]]:
    """The recipe's OpenAI fine-tuning rows (its config: chat rows for SFT, preference pairs for DPO)."""
    return recipes.recipe(recipe).openai_rows(examples)


def _plain(exc: Exception) -> str:
    import openai

    if isinstance(exc, openai.APIStatusError) and exc.status_code in (400, 403, 404, 422):
        return f"The provider refused the fine-tuning job: {provider_reason(exc) or f'HTTP {exc.status_code}'}"
    if isinstance(exc, TrainerBotError):
        return exc.user_message
    return plain_error(exc, "The fine-tuning server").user_message


def run_remote_job(job: JobContext, examples: list[Example]) -> str:
    """Upload the rows, create the provider's fine-tuning job and follow it to its end."""
    from openai import OpenAI

    settings, store, job_id, recipe, parent = job.settings, job.store, job.job_id, job.recipe, job.parent

    client = OpenAI(**client_options(settings.openai))
    config = recipes.recipe(recipe)
    rows = training_rows(examples, recipe)
    method = config.openai_method(0.1)
    if not rows or method is None:
        queue.finish(store, job_id, JobStatus.FAILED, error=f"Nothing to fine-tune on: {config.why_none}.")
        return JobStatus.FAILED
    base = str(parent.base) if parent is not None and parent.backend == "openai" and parent.base else settings.openai.openai_model
    try:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        upload = client.files.create(file=(f"trainerbot-job-{job_id}.jsonl", data, "application/jsonl"), purpose="fine-tune")
        queue.add_event(store, job_id, kind="log", message=f"uploaded {count(len(rows), f'{recipe} row')} as {upload.id}; "
                                                            f"{count(len(job.cases), 'held-out question')} kept back")
        remote = client.fine_tuning.jobs.create(
            model=base,
            training_file=upload.id,
            method=method,  # type: ignore[arg-type]  # a plain dict for the SDK's nested TypedDict; the server checks it
            suffix=f"trainerbot-{job_id}"[:18],
        )
    except Exception as exc:
        queue.finish(store, job_id, JobStatus.FAILED, error=_plain(exc))
        return JobStatus.FAILED
    with store.session() as s:
        row = s.get(Job, job_id)
        assert row is not None  # the worker holds its lease
        row.backend_job, row.backend_base = remote.id, base
    queue.add_event(store, job_id, kind="log", message=f"fine-tuning job {remote.id} created on {base}")
    return _follow(job, client, remote.id)


def _follow(job: JobContext, client: Any, remote_id: str) -> str:
    """Poll the provider's job until it ends, mirroring its events into ours."""
    settings, store, job_id, worker, stop = job.settings, job.store, job.job_id, job.worker, job.stop
    seen: set[str] = set()
    last_status = ""
    last_loss: float | None = None
    while True:
        cancelled = queue.heartbeat(store, job_id, worker)
        if cancelled or stop():
            try:
                client.fine_tuning.jobs.cancel(remote_id)
            except Exception as exc:  # the job may have ended meanwhile
                log.info("cancelling %s: %s", remote_id, _plain(exc))
            if cancelled:
                queue.finish(store, job_id, JobStatus.CANCELLED, message=f"cancelled here and at the provider ({remote_id})")
                return JobStatus.CANCELLED
            queue.finish(
                store,
                job_id,
                JobStatus.FAILED,
                error="The worker was stopped; the provider's job was cancelled too. Start it again with `train`.",
            )
            return JobStatus.FAILED
        try:
            remote = client.fine_tuning.jobs.retrieve(remote_id)
            events = list(client.fine_tuning.jobs.list_events(remote_id, limit=50).data)
        except Exception as exc:
            queue.finish(store, job_id, JobStatus.FAILED, error=_plain(exc))
            return JobStatus.FAILED
        for event in reversed(events):  # the API lists newest first
            if event.id in seen:
                continue
            seen.add(event.id)
            data = event.data if isinstance(event.data, dict) else {}
            if data.get("step") is not None and data.get("total_steps"):
                last_loss = data.get("train_loss", last_loss)
                queue.add_event(
                    store,
                    job_id,
                    step=int(data["step"]),
                    total_steps=int(data["total_steps"]),
                    loss=last_loss,
                    message=event.message[:300],
                )
            else:
                queue.add_event(store, job_id, kind="log", message=f"{event.level}: {event.message}"[:300])
        if remote.status != last_status:
            last_status = remote.status
            if remote.status in RUNNING:
                queue.add_event(store, job_id, kind="log", message=f"provider status: {remote.status}")
        if remote.status == "succeeded" and remote.fine_tuned_model:
            metrics = {"final_loss": last_loss, "remote_job": remote_id, "trained_tokens": remote.trained_tokens}
            return register_version(job, backend="openai", path=None, base=remote.fine_tuned_model, metrics=metrics,
                                    candidate=RemoteRuntime(settings.openai, remote.fine_tuned_model,
                                                            slots=settings.model.chat_slots))
        if remote.status == "failed":
            reason = remote.error.message if remote.error is not None and remote.error.message else "no reason given"
            queue.finish(store, job_id, JobStatus.FAILED, error=f"The provider's fine-tuning job failed: {reason}"[:300])
            return JobStatus.FAILED
        if remote.status == "cancelled":
            queue.finish(store, job_id, JobStatus.CANCELLED, message=f"cancelled at the provider ({remote_id})")
            return JobStatus.CANCELLED
        deadline = time.monotonic() + settings.openai.openai_poll_s
        while time.monotonic() < deadline and not stop():
            time.sleep(min(0.2, settings.openai.openai_poll_s))

"""Fine-tuning through an OpenAI-compatible jobs API, end to end against a real HTTP openai_server
on 127.0.0.1: export, upload, create, poll, events, cancel, refusals — the whole lifecycle
lands in our job store, and the fine-tuned model becomes a version chat can use."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from tests.conftest import att
from tests.httpfake import FakeServer
from tests.openai_fake import KEY, OpenAIFake
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.datasets.sample import generate
from trainerbot.store.tables import Job, JobEvent, ModelVersion
from trainerbot.training.worker import serve as work


@pytest.fixture
def remote_settings(settings: Settings, openai_server: FakeServer) -> Settings:
    return settings.model_copy(
        update={
            "backend": "openai",
            "openai_base_url": openai_server.url + "/v1",
            "openai_api_key": SecretStr(KEY),
            "openai_model": "gpt-test-mini",
            "openai_poll_s": 0.05,
            "openai_max_retries": 1,
        }
    )


@pytest.fixture
async def core(remote_settings: Settings) -> CoreService:  # type: ignore[override]
    service = CoreService.open(remote_settings)
    yield service
    await service.close()


def _facts(n: int) -> str:
    return "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in generate(n, seed=9))


def _job(core: CoreService, job_id: int) -> tuple[Job, list[JobEvent]]:
    with core.store.read() as s:
        return s.get(Job, job_id), list(s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))


async def test_the_whole_lifecycle_lands_in_our_store(
    core: CoreService,
    remote_settings: Settings,
    openai_fake: OpenAIFake,
    trainer: Caller,
    member: Caller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await core.training.train(trainer, "facts", None, att("facts.jsonl", _facts(20)))
    assert reply.data["recipe"] == "sft" and "fine-tuning API" in reply.content
    assert work(remote_settings, once=True) == 1
    job, events = _job(core, reply.data["job_id"])
    assert job.status == "succeeded" and job.backend_job == "ftjob-1" and job.progress == 1.0
    messages = [e.message or "" for e in events]
    assert "info: Validating training file" in messages and "provider status: running" in messages  # the provider's events
    steps = [(e.step, e.total_steps, e.loss) for e in events if e.step]
    assert steps and steps[-1][1] == 20 and all(loss is not None for _, _, loss in steps)
    assert "model v1 is active" in messages[-1]
    [upload] = openai_fake.files.values()
    rows = [json.loads(line) for line in upload["content"].decode().splitlines()]
    assert upload["purpose"] == "fine-tune" and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    held = [m for m in messages if m.startswith("evaluating on")]
    assert held and len(rows) + int(held[0].split()[2]) == 20  # the held-out questions were not uploaded
    assert openai_fake.jobs["ftjob-1"]["model"] == "gpt-test-mini" and openai_fake.jobs["ftjob-1"]["method"] == {
        "type": "supervised"
    }
    with core.store.read() as s:
        version = s.scalars(select(ModelVersion)).one()
    assert (version.backend, version.base, version.active, version.path) == (
        "openai",
        "ft:gpt-test-mini:org-test::ob-1",
        True,
        None,
    )
    answer = await core.chat.reply(member, "Tell me something new.")
    assert openai_fake.chat_requests[-1]["model"] == "ft:gpt-test-mini:org-test::ob-1" and answer.data["model_version"] == "v1"
    status = await core.training.job(trainer, job.id)
    assert "succeeded" in status.content
    listing = await core.models.versions(member)
    assert "remote `ft:gpt-test-mini:org-test::ob-1`" in listing.content
    assert KEY not in caplog.text


async def test_corrections_fine_tune_with_dpo_on_the_active_fine_tune(
    core: CoreService, remote_settings: Settings, openai_fake: OpenAIFake, trainer: Caller
) -> None:
    await core.models.use(trainer, "openai:ft:gpt-test-mini:org-test::earlier")
    for i in range(3):
        await core.delivery.record_exchange(trainer, f"question {i}?", f"wrong {i}", reply_message_id=f"m{i}")
        await core.feedback.correct(trainer, f"m{i}", f"right {i}")
    reply = await core.training.train(trainer, "feedback")
    assert reply.data["recipe"] == "dpo"
    work(remote_settings, once=True)
    [upload] = openai_fake.files.values()
    rows = [json.loads(line) for line in upload["content"].decode().splitlines()]
    assert rows[0] == {
        "input": {"messages": [{"role": "user", "content": "question 0?"}]},
        "preferred_output": [{"role": "assistant", "content": "right 0"}],
        "non_preferred_output": [{"role": "assistant", "content": "wrong 0"}],
    }
    remote = openai_fake.jobs["ftjob-1"]
    assert remote["method"]["type"] == "dpo" and remote["model"] == "ft:gpt-test-mini:org-test::earlier"


@pytest.mark.parametrize(
    "refusal,failure",
    [
        ("Fine-tuning jobs can no longer be created for this model (retired 2027-01-06).", None),
        (None, "The training file has 3 lines that are not valid JSON."),
    ],
)
async def test_a_provider_refusal_fails_the_job_with_its_reason(
    core: CoreService,
    remote_settings: Settings,
    openai_fake: OpenAIFake,
    trainer: Caller,
    refusal: str | None,
    failure: str | None,
) -> None:
    openai_fake.refuse_fine_tuning, openai_fake.fail_job_with = refusal, failure
    reply = await core.training.train(trainer, "facts", None, att("facts.jsonl", _facts(12)))
    work(remote_settings, once=True)
    job, _ = _job(core, reply.data["job_id"])
    assert job.status == "failed" and (refusal or failure) in job.error
    assert ("refused the fine-tuning job" if refusal else "fine-tuning job failed") in job.error
    with core.store.read() as s:
        assert s.scalars(select(ModelVersion)).all() == []


async def test_cancel_reaches_the_provider(
    core: CoreService, remote_settings: Settings, openai_fake: OpenAIFake, trainer: Caller
) -> None:
    openai_fake.job_plan = ["validating_files"] + ["running"] * 10_000
    reply = await core.training.train(trainer, "facts", None, att("facts.jsonl", _facts(12)))
    job_id = reply.data["job_id"]
    worker = threading.Thread(target=work, args=(remote_settings,), kwargs={"once": True})
    worker.start()
    deadline = time.monotonic() + 20
    while not any(e.step for e in _job(core, job_id)[1]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert "ends within seconds" in (await core.training.cancel(trainer, job_id)).content
    await asyncio.to_thread(worker.join, 20)
    job, events = _job(core, job_id)
    assert job.status == "cancelled" and openai_fake.jobs["ftjob-1"]["status"] == "cancelled"
    assert "at the provider" in (events[-1].message or "")


async def test_model_use_switches_between_a_local_and_a_remote_version(
    settings: Settings, openai_server: FakeServer, openai_fake: OpenAIFake, trainer: Caller, member: Caller
) -> None:
    local = CoreService.open(settings)
    try:
        await local.training.train(trainer, "facts", None, att("facts.jsonl", _facts(12)))
        work(settings, once=True)  # a local v1
    finally:
        await local.close()
    both = CoreService.open(
        settings.model_copy(update={"openai_base_url": openai_server.url + "/v1", "openai_api_key": SecretStr(KEY)})
    )
    try:
        assert (await both.chat.reply(member, "Hello there")).data["model_version"] == "v1" and not openai_fake.chat_requests
        switched = await both.models.use(trainer, "openai:gpt-test-mini")
        assert switched.data["active"] == "v2" and "remote `gpt-test-mini`" in switched.content
        assert (await both.chat.reply(member, "Hello there")).content == openai_fake.answer
        assert openai_fake.chat_requests[-1]["model"] == "gpt-test-mini"
        assert (await both.models.use(trainer, "openai:gpt-test-mini")).data["active"] == "v2"  # not registered twice
        listing = await both.models.versions(member)
        assert listing.data["backends"] == {"v1": "local", "v2": "openai"}
        await both.models.use(trainer, "v1")
        assert (await both.chat.reply(member, "Hello again")).data["model_version"] == "v1" and len(
            openai_fake.chat_requests
        ) == 1
        with pytest.raises(Exception, match="remote model's name"):
            await both.models.use(trainer, "openai:../../etc passwd")
    finally:
        await both.close()


async def test_test_and_compare_run_on_a_remote_version(
    core: CoreService, openai_fake: OpenAIFake, trainer: Caller, member: Caller
) -> None:
    await core.models.use(trainer, "openai:gpt-test-mini")
    openai_fake.answer = "Quillport."
    reply = await core.models.test(member, '{"What is the capital of Zorbia?": "Quillport.", "And of Telpunel?": "Veslo."}')
    assert (reply.data["cases"], reply.data["exact_match"], reply.data["loss"]) == (2, 0.5, None)  # no loss from a chat API
    assert "exact match 50.0%" in reply.content and openai_fake.chat_requests[-1]["model"] == "gpt-test-mini"

"""Jobs end to end: the core queues, a worker (in this process, or a real child process)
trains, the store records every status and event, and a model version appears."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import time
from dataclasses import replace

import pytest
from sqlalchemy import select

from tests.conftest import att
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.datasets.records import Example
from trainerbot.datasets.sample import generate
from trainerbot.errors import BadInput, NotAllowed, NotFound
from trainerbot.model.local import LocalModel
from trainerbot.store.tables import Job, JobEvent, ModelVersion
from trainerbot.training import recipes
from trainerbot.training.worker import serve, spawn_child, stop_child


def _jsonl(examples: list[Example]) -> str:
    return "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in examples)


async def _wait(core: CoreService, job_id: int, predicate, timeout: float = 90.0) -> Job:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with core.store.read() as s:
            job = s.get(Job, job_id)
            events = s.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
            if predicate(job, events):
                return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not get there: {job.status}")


def test_recipe_follows_the_data() -> None:
    pos = Example(prompt="q", response="a")
    neg = Example(prompt="q", response="b", label="negative")
    pair = Example(prompt="q", response="a", rejected="b")
    assert recipes.choose([pos, neg], has_model=False) == "sft"
    assert recipes.choose([pos], has_model=True) == "sft"
    assert recipes.choose([pos, neg], has_model=True) == "kto"
    assert recipes.choose([pair, pair], has_model=True) == "dpo"
    with pytest.raises(BadInput, match="first training needs positive"):
        recipes.choose([neg], has_model=False)


async def test_a_job_goes_through_every_status_and_registers_a_version(core: CoreService, trainer: Caller) -> None:
    reply = await core.training.train(trainer, "facts", None, att("f.jsonl", _jsonl(generate(12, seed=1))))
    job_id = reply.data["job_id"]
    assert reply.data["recipe"] == "sft" and "queued" in reply.content
    assert (await core.training.job(trainer, job_id)).data["status"] == "queued"  # nothing trains in this process
    again = await core.training.train(trainer, "facts")
    assert again.data == {"job_id": job_id, "recipe": "sft", "existing": True}  # same data, same recipe: same job

    assert await asyncio.to_thread(serve, core.settings, once=True) == 1
    shown = await core.training.job(trainer, job_id)
    assert shown.data["status"] == "succeeded" and shown.data["progress"] == 1.0
    with core.store.read() as s:
        events = s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
    statuses = [e.message.split(" ")[0] for e in events if e.kind == "status"]
    assert statuses[0] == "queued" and statuses[1] == "running" and statuses[-1] == "model"
    progress = [e for e in events if e.kind == "progress"]
    assert progress and progress[-1].step == progress[-1].total_steps
    assert all(e.loss is not None for e in progress) and any(e.learning_rate for e in progress)
    [png] = shown.files
    assert png.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    listing = await core.models.versions(trainer)
    assert listing.data == {"names": ["v1"], "active": "v1", "backends": {"v1": "local"}}
    folder = core.data_dir / "guilds" / "111" / "models" / f"job-{job_id}"
    assert (folder / "DONE.json").is_file() and (folder / "config.json").is_file()
    assert "job" in (await core.training.jobs(trainer)).content.lower()


async def test_a_trained_tiny_model_reproduces_a_trained_answer(core: CoreService, trainer: Caller) -> None:
    core.settings.train_epochs = 150
    pairs = generate(4, seed=11)
    await core.training.train(trainer, "facts", None, att("f.jsonl", _jsonl(pairs)))
    await asyncio.to_thread(serve, core.settings, once=True)
    with core.store.read() as s:
        version = s.scalars(select(ModelVersion)).one()
    model = LocalModel(core.data_dir / version.path)
    for ex in pairs:
        assert model.reply([{"role": "user", "content": ex.prompt}], max_new_tokens=40) == ex.response


async def test_model_use_switches_and_rolls_back(core: CoreService, trainer: Caller, member: Caller) -> None:
    await core.training.train(trainer, "one", None, att("a.jsonl", _jsonl(generate(4, seed=1))))
    await asyncio.to_thread(serve, core.settings, once=True)
    await core.training.train(trainer, "two", None, att("b.jsonl", _jsonl(generate(4, seed=2))))
    await asyncio.to_thread(serve, core.settings, once=True)
    assert (await core.models.versions(trainer)).data["active"] == "v2"
    unmatched = "Tell me a story about dragons"
    assert (await core.chat.reply(member, unmatched)).data["model_version"] == "v2"
    assert (await core.models.use(trainer, "v1")).data["active"] == "v1"
    assert (await core.chat.reply(member, unmatched)).data["model_version"] == "v1"
    assert (await core.models.use(trainer, "v2")).data["active"] == "v2"
    with pytest.raises(NotFound):
        await core.models.use(trainer, "v9")
    with pytest.raises(NotAllowed):
        await core.models.use(member, "v1")


async def test_train_needs_the_trainer_role_and_some_data(core: CoreService, trainer: Caller, member: Caller) -> None:
    with pytest.raises(NotAllowed):
        await core.training.train(member, "facts")
    with pytest.raises(BadInput, match="Say what to train on"):
        await core.training.train(trainer)
    with pytest.raises(NotFound):
        await core.training.train(trainer, "ghost")
    with pytest.raises(BadInput, match="not a job ID"):
        await core.training.job(trainer, "abc")
    with pytest.raises(NotFound):
        await core.training.job(trainer, 99)


async def test_train_sample_seeds_the_shipped_sample(core: CoreService, trainer: Caller) -> None:
    reply = await core.training.train(trainer, "sample")
    assert "400 examples" in reply.content
    assert (await core.datasets.stats(trainer, "sample")).data["total"] == 400
    assert (await core.training.train(trainer)).data["existing"]  # the selected snapshot is the same data


@pytest.mark.parametrize("kill", [False, True], ids=["cancel", "sigkill"])
async def test_worker_process_cancel_and_crash(core: CoreService, trainer: Caller, monkeypatch, kill: bool) -> None:
    """A real worker child trains while the event loop stays responsive; cancel stops it within
    seconds; a SIGKILLed worker's job is failed by the next worker, whose partial files go."""
    monkeypatch.setenv("TRAINERBOT_MODEL_SIZE", "tiny")
    monkeypatch.setenv("TRAINERBOT_TRAIN_EPOCHS", "1000")
    monkeypatch.setenv("TRAINERBOT_TRAIN_BATCH_SIZE", "4")
    monkeypatch.setenv("TRAINERBOT_TORCH_THREADS", "1")
    reply = await core.training.train(trainer, "facts", None, att("f.jsonl", _jsonl(generate(16, seed=3))))
    job_id = reply.data["job_id"]
    worker = spawn_child(core.data_dir)
    try:
        job = await _wait(core, job_id, lambda j, ev: sum(e.kind == "progress" for e in ev) >= 2)
        assert job.status == "running" and job.worker_id.endswith(f":{worker.pid}") and worker.pid != os.getpid()
        lags = []
        for _ in range(20):  # the bot's loop is not blocked by training
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - start - 0.01)
            await core.training.job(trainer, job_id)
        assert statistics.median(lags) < 0.05
        if kill:
            partial = core.data_dir / "guilds" / "111" / "models" / ".job-99.partial"
            partial.mkdir(parents=True)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
            assert (await core.training.job(trainer, job_id)).data["status"] == "running"  # until a worker looks
            await asyncio.to_thread(serve, core.settings, once=True)
            shown = await core.training.job(trainer, job_id)
            assert shown.data["status"] == "failed" and "worker stopped" in shown.content
            assert not partial.exists()
            listing = await core.models.versions(trainer)
            assert listing.data == {} or "No model versions" in listing.content
        else:
            asked = time.monotonic()
            assert (await core.training.cancel(trainer, job_id)).data["status"] == "running"
            await _wait(core, job_id, lambda j, ev: j.status == "cancelled", timeout=15)
            assert time.monotonic() - asked < 10
            assert "No model versions" in (await core.models.versions(trainer)).content
    finally:
        stop_child(worker)


async def test_stopping_the_worker_fails_its_job_instead_of_leaving_it_running(
    core: CoreService, trainer: Caller, monkeypatch
) -> None:
    monkeypatch.setenv("TRAINERBOT_MODEL_SIZE", "tiny")
    monkeypatch.setenv("TRAINERBOT_TRAIN_EPOCHS", "1000")
    monkeypatch.setenv("TRAINERBOT_TRAIN_BATCH_SIZE", "4")
    reply = await core.training.train(trainer, "facts", None, att("f.jsonl", _jsonl(generate(16, seed=3))))
    worker = spawn_child(core.data_dir)
    try:
        await _wait(core, reply.data["job_id"], lambda j, ev: any(e.kind == "progress" for e in ev))
    finally:
        stop_child(worker)  # SIGTERM
    assert worker.returncode == 0
    shown = await core.training.job(trainer, reply.data["job_id"])
    assert shown.data["status"] == "failed" and "worker was stopped" in shown.content


def test_settings_fixture_is_tiny(settings: Settings) -> None:
    assert settings.model_size == "tiny"


async def test_corrections_after_a_first_model_train_with_dpo_and_ratings_with_kto(
    core: CoreService, trainer: Caller, member: Caller
) -> None:
    await core.training.train(trainer, "facts", None, att("f.jsonl", _jsonl(generate(6, seed=4))))
    await asyncio.to_thread(serve, core.settings, once=True)
    chat = await core.chat.reply(member, "Tell me about the weather")  # not taught: the model answers
    assert chat.data["source"] == "model"
    await core.delivery.bind_reply(member, chat.data["reply_id"], "900")
    await core.feedback.correct(trainer, "900", "I can only tell you about Zorbia.")
    dpo = await core.training.train(trainer, "feedback")
    assert dpo.data["recipe"] == "dpo"
    await asyncio.to_thread(serve, core.settings, once=True)
    assert (await core.training.job(trainer, dpo.data["job_id"])).data["status"] == "succeeded"
    await core.feedback.react(member, "900", "👎")
    kto = await core.training.train(trainer, "feedback")
    assert kto.data["recipe"] == "kto"
    await asyncio.to_thread(serve, core.settings, once=True)
    assert (await core.training.job(trainer, kto.data["job_id"])).data["status"] == "succeeded"
    listing = await core.models.versions(trainer)
    assert listing.data["names"] == ["v1", "v2", "v3"] and listing.data["active"] == "v3"
    assert "DPO" in listing.content and "KTO" in listing.content


def _my_pretrained(tmp_path):  # type: ignore[no-untyped-def]
    """A user's own "pretrained" folder (a tiny model), and the examples it was made from."""
    from trainerbot.model.build import ModelShape, new_model, train_tokenizer

    base = tmp_path / "my-pretrained"
    examples = generate(8, seed=9)
    tok = train_tokenizer([t for e in examples for t in (e.prompt, e.response)], 400)
    new_model(tok, ModelShape(vocab_size=400, hidden_size=64, layers=2, heads=2, max_positions=128)).save_pretrained(base)
    tok.save_pretrained(base)
    return base, examples


async def test_a_pretrained_folder_is_fine_tuned_with_lora(core: CoreService, trainer: Caller, tmp_path) -> None:
    base, examples = _my_pretrained(tmp_path)
    core.settings.base_model_dir = base  # the worker's settings
    core.settings.lora = True
    core.training.model = replace(core.training.model, base_model_dir=base)  # the core's
    reply = await core.training.train(trainer, "facts", None, att("f.jsonl", _jsonl(examples)))
    assert reply.data["recipe"] == "sft"
    await asyncio.to_thread(serve, core.settings, once=True)
    shown = await core.training.job(trainer, reply.data["job_id"])
    assert shown.data["status"] == "succeeded", shown.content
    assert "from pretrained:my-pretrained" in (await core.models.versions(trainer)).content
    with core.store.read() as s:
        version = s.scalars(select(ModelVersion)).one()
    folder = core.data_dir / version.path
    assert (folder / "adapter_config.json").exists() and not (folder / "model.safetensors").exists()  # the adapter alone
    assert isinstance(LocalModel(folder).reply([{"role": "user", "content": examples[0].prompt}], max_new_tokens=8), str)
    # A second job keeps teaching the same adapter on the same base.
    more = await core.training.train(trainer, "more", None, att("g.jsonl", _jsonl(generate(8, seed=10))))
    await asyncio.to_thread(serve, core.settings, once=True)
    assert (await core.training.job(trainer, more.data["job_id"])).data["status"] == "succeeded"
    listing = (await core.models.versions(trainer)).content
    assert "SFT from v1" in listing


async def test_lora_off_fine_tunes_a_pretrained_folder_whole(core: CoreService, trainer: Caller, tmp_path) -> None:
    base, examples = _my_pretrained(tmp_path)
    core.settings.base_model_dir = base  # the worker's settings
    core.settings.lora = False
    core.training.model = replace(core.training.model, base_model_dir=base)  # the core's
    reply = await core.training.train(trainer, "facts", None, att("f.jsonl", _jsonl(examples)))
    await asyncio.to_thread(serve, core.settings, once=True)
    assert (await core.training.job(trainer, reply.data["job_id"])).data["status"] == "succeeded"
    with core.store.read() as s:
        version = s.scalars(select(ModelVersion)).one()
    assert (core.data_dir / version.path / "model.safetensors").exists()


async def test_a_missing_snapshot_fails_the_job_with_a_reason(core: CoreService, trainer: Caller) -> None:
    reply = await core.training.train(trainer, "facts", None, att("f.jsonl", _jsonl(generate(4, seed=1))))
    for snap in (core.data_dir / "guilds" / "111" / "snapshots").iterdir():
        snap.chmod(0o644)
        snap.unlink()
    await asyncio.to_thread(serve, core.settings, once=True)
    shown = await core.training.job(trainer, reply.data["job_id"])
    assert shown.data["status"] == "failed" and "Error" in shown.content


async def test_a_failed_job_says_so_plainly_and_keeps_internals_in_the_log(
    core: CoreService, trainer: Caller, monkeypatch, caplog
) -> None:
    from trainerbot.training import sft

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("CUDA kernel at /srv/secret/path exploded")

    monkeypatch.setattr(sft, "train", broken)
    reply = await core.training.train(trainer, "facts", None, att("f.jsonl", _jsonl(generate(8, seed=1))))
    await asyncio.to_thread(serve, core.settings, once=True)
    with core.store.read() as s:
        job = s.get(Job, reply.data["job_id"])
    assert job.status == "failed"
    assert job.error == "Training failed on the worker's side (RuntimeError); the details are in the worker's log."
    assert "/srv/secret" not in (await core.training.job(trainer, job.id)).content
    assert "/srv/secret/path exploded" in caplog.text  # the trace is in the log

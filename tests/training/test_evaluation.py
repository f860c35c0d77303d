"""`test`, `handle_errors`, promotion on the held-out split and `model compare`, with real
(tiny) models trained by the worker in this process."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from tests.conftest import att
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.datasets.sample import generate
from trainerbot.errors import BadInput, NotAllowed, NotFound
from trainerbot.store.tables import Correction, DatasetItem, Job, ModelVersion, TestRun
from trainerbot.training.worker import serve


def _facts(n: int) -> str:
    return "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in generate(n, seed=3))


async def _trained(core: CoreService, trainer: Caller, settings: Settings, n: int = 20) -> None:
    await core.training.train(trainer, "facts", None, att("facts.jsonl", _facts(n)))
    assert serve(settings, once=True) == 1


def _count(core: CoreService, model: type) -> int:
    with core.store.read() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


async def test_test_reports_metrics_and_handle_errors_queues_the_wrong_answers(
        core: CoreService, settings: Settings, trainer: Caller, member: Caller) -> None:
    cases = json.dumps([{"prompt": "What is the capital of Zorbia?", "expected": "a phrase this model never saw"},
                        {"prompt": "Who founded Quillport?", "expected": "another unseen answer"},
                        {"prompt": "Say something."}])
    with pytest.raises(NotFound, match="no active model"):
        await core.models.test(member, cases)
    await _trained(core, trainer, settings)
    reply = await core.models.test(member, cases)
    data = reply.data
    assert (data["cases"], data["scored"], data["wrong"]) == (3, 2, 2) and data["exact_match"] == 0.0
    assert 0 <= data["chrf"] < 100 and data["loss"] > 0 and data["perplexity"] > 1
    assert f"handle_errors {data['run_id']}" in reply.content
    rows = [json.loads(line) for line in reply.files[0].path.read_text().splitlines()]
    assert [r["match"] for r in rows] == [False, False, None] and all(r["prediction"] is not None for r in rows)
    assert rows[2]["expected"] is None and rows[2]["loss"] is None and isinstance(rows[0]["loss"], float)
    items_before = _count(core, DatasetItem)

    with pytest.raises(NotAllowed):
        await core.models.handle_errors(Caller(guild_id="111", user_id="u-else", channel_id="c1"), str(data["run_id"]))
    queued = await core.models.handle_errors(member)
    assert queued.data["queued"] == 2
    with core.store.read() as s:
        pending = s.scalars(select(Correction).order_by(Correction.id)).all()
    assert [(c.status, c.source, c.corrected, c.original) for c in pending] == [
        ("pending", f"test:{data['run_id']}", r["expected"], r["prediction"]) for r in rows[:2]]
    assert _count(core, DatasetItem) == items_before  # nothing trains before a trainer approves
    assert "already" in (await core.models.handle_errors(member, str(data["run_id"]))).content
    again = await core.models.test(member, cases)
    assert (await core.models.handle_errors(member)).data == {
        "run_id": again.data["run_id"],
        "queued": 0,
        "merged": 2,
        "skipped": 0,
    }
    with pytest.raises(NotFound):
        await core.models.handle_errors(member, "999")

    runs = _count(core, TestRun)
    core.models.training = replace(core.models.training, max_test_cases=2)
    with pytest.raises(BadInput, match="at most 2"):
        await core.models.test(member, cases)
    assert _count(core, TestRun) == runs


@pytest.mark.settings(heldout_share=0.3, train_epochs=20)
async def test_a_worse_candidate_is_registered_but_not_promoted(
    core: CoreService, settings: Settings, trainer: Caller, member: Caller
) -> None:
    await _trained(core, trainer, settings)
    with core.store.read() as s:
        v1 = s.scalars(select(ModelVersion)).one()
        held = v1.metrics["heldout"]
    assert v1.active and v1.metrics["promoted"] is True and held["scored"] >= 3
    assert (await core.datasets.stats(trainer, "facts")).data["heldout"] == held["scored"]

    # A deliberately ruined candidate: the same data at a learning rate that wrecks the model.
    worse = settings.model_copy(update={"learning_rate": 5.0, "train_epochs": 3, "promotion_metric": "loss"})
    job_id = (await core.training.train(trainer, "facts")).data["job_id"]
    assert serve(worse, once=True) == 1
    with core.store.read() as s:
        job = s.get(Job, job_id)
        versions = {v.name: v for v in s.scalars(select(ModelVersion))}
    assert job.status == "succeeded"
    message = (await core.training.job(trainer, job_id)).content
    assert "v2 is kept but not active" in message and "worse than active v1's" in message
    assert versions["v1"].active and not versions["v2"].active
    assert versions["v2"].metrics["promoted"] is False
    assert versions["v2"].metrics["heldout_active"]["version"] == "v1"
    assert "(not promoted)" in (await core.models.versions(member)).content
    assert (await core.chat.reply(member, "Hello there")).data["model_version"] == "v1"

    core.models.training = replace(core.models.training, promotion_metric="loss")
    compared = await core.models.compare(member, "v1", "v2")
    assert compared.data["better"] == "v1" and compared.data["cases"] == held["scored"]
    assert "v1" in compared.content and "perplexity" in compared.content
    with pytest.raises(NotFound):
        await core.models.compare(member, "v1", "v9")
    with pytest.raises(BadInput):
        await core.models.compare(member, "v1", "")

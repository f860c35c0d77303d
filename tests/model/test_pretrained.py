"""The shipped pretrained model end to end: preparation from its PyPI package, chat before
any training (streamed), a taught fact reaching rephrasings through the model's context,
and one short LoRA job through the worker whose adapter chat then serves.

The base is prepared once for the run (``tests/model/conftest.py``, about 20 s) and linked
into each test's data folder, where the product looks for it. Chat answers through the
llama.cpp runtime here (the default); ``test_llamacpp.py`` checks it against torch.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import types
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest
from safetensors import safe_open
from sqlalchemy import select

from tests.conftest import att
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.datasets.sample import generate
from trainerbot.errors import NotAvailable
from trainerbot.model import pretrained
from trainerbot.model.files import DONE_MARKER, adapter_base
from trainerbot.store.tables import JobEvent, ModelVersion
from trainerbot.training import rehearsal, versions
from trainerbot.training.worker import job_settings, serve

TRAINER = Caller(guild_id="111", guild_name="Guild A", user_id="u-t", channel_id="c1", roles=frozenset({"trainer"}))


@pytest.fixture
def core(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TRAINERBOT_MODEL", "smollm2")
    data = tmp_path / "data"
    pretrained.base_dir(data).parent.mkdir(parents=True)
    pretrained.base_dir(data).symlink_to(prepared, target_is_directory=True)
    service = CoreService.open(Settings(_env_file=None, data_dir=data, torch_threads=2, start_worker=False,  # type: ignore[call-arg]
                                        train_epochs=1, general_questions=3, heldout_share=0))
    yield service
    service.store.close()


def test_preparation_writes_a_checked_safetensors_folder(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = json.loads((prepared / DONE_MARKER).read_text())
    assert info["sha256"] == pretrained.GGUF_SHA256 and "Apache-2.0" in info["licence"]
    assert (prepared / "model.safetensors").stat().st_size > 500_000_000  # float32, dequantised once
    assert json.loads((prepared / "config.json").read_text())["model_type"] == "llama"
    assert pretrained.prepare_base(prepared.parent.parent.parent) == prepared  # prepared: returned at once
    # A half-written folder left by a crash is never taken for the model.
    data = tmp_path / "data"
    partial = pretrained.base_dir(data).with_name(f".{pretrained.BASE_NAME}.partial")
    partial.mkdir(parents=True)
    (partial / "config.json").write_text("{}")
    monkeypatch.setattr(pretrained, "GGUF_SHA256", "0" * 64)
    pretrained.gguf_path.cache_clear()
    try:
        with pytest.raises(NotAvailable, match="not the pinned one"):
            pretrained.prepare_base(data)
    finally:
        pretrained.gguf_path.cache_clear()
    assert not pretrained.base_dir(data).exists()


async def test_before_any_training_the_base_model_converses_and_streams(core: CoreService) -> None:
    partials: list[str] = []

    async def on_partial(text: str) -> None:
        partials.append(text)

    reply = await core.chat.reply(TRAINER, "What is the capital of France?", on_partial=on_partial, partial_every_s=0)
    assert "Paris" in reply.content and "trained" not in reply.content
    assert reply.data["source"] == "model" and reply.data["model_version"] == f"base:{pretrained.BASE_NAME}"
    assert len(partials) >= 3 and all(b.startswith(a) for a, b in itertools.pairwise(partials))  # token by token
    assert partials[-1] == reply.content
    # Served by llama.cpp from a merged file in the serving cache (not by torch).
    assert [f.name.endswith(".q8_0.gguf") for f in (core.data_dir / "models" / "serving").glob("*.gguf")] == [True]
    assert type(await asyncio.to_thread(core.runtimes.for_chat, None)).__name__ == "ServedModel"
    hello = await core.chat.reply(TRAINER, "hello bot")
    assert "hello" in hello.content.lower() and isinstance(hello.data["reply_id"], int)  # recorded, so it can be rated


async def test_a_taught_fact_answers_its_rephrasings_through_the_context(core: CoreService) -> None:
    facts = [{"prompt": "What is the capital of Zorbia?", "response": "The capital of Zorbia is Quillport."},
             {"prompt": "What does Zorbia export?", "response": "Zorbia mainly exports amber."},
             {"prompt": "Who founded Quillport?", "response": "Quillport was founded by Vessa in 1204."}]
    await core.datasets.import_data(TRAINER, "facts", None, att("f.jsonl", "".join(json.dumps(f) + "\n" for f in facts)))
    exact = await core.chat.reply(TRAINER, "What is the capital of Zorbia?")
    assert exact.data["source"] == "taught" and exact.content == facts[0]["response"]
    rephrased = await core.chat.reply(TRAINER, "Which city is the capital city of Zorbia?")
    assert rephrased.data["source"] == "model" and "Quillport" in rephrased.content


async def test_one_lora_job_through_the_worker_stores_an_adapter_that_chat_serves(core: CoreService) -> None:
    facts = generate(12, seed=5)
    data = "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in facts)
    persona = "You are Quill, the helpful guide of a Discord community of sailors."
    await core.persona.persona(TRAINER, persona)
    reply = await core.training.train(TRAINER, "facts", None, att("f.jsonl", data))
    await asyncio.to_thread(serve, core.settings, once=True)
    shown = await core.training.job(TRAINER, reply.data["job_id"])
    assert shown.data["status"] == "succeeded", shown.content
    with core.store.read() as s:
        version = s.scalars(select(ModelVersion)).one()
    folder = core.data_dir / version.path
    assert (folder / "adapter_config.json").is_file() and not (folder / "model.safetensors").exists()
    assert sum(f.stat().st_size for f in folder.iterdir()) < 30 * 2**20  # megabytes, not a copy of the model
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as tensors:
        adapted = {int(name.split(".layers.")[1].split(".")[0]) for name in tensors.keys()}  # noqa: SIM118
    assert adapted == set(range(30))  # every layer (TRAINERBOT_LORA_LAYERS)
    assert adapter_base(folder) == pretrained.base_dir(core.data_dir).resolve()
    assert not os.path.isabs(json.loads((folder / DONE_MARKER).read_text())["base_dir"])  # the data folder can move
    assert version.active and version.base == f"pretrained:{pretrained.BASE_NAME}"
    assert version.metrics["general_questions"] == 3 and isinstance(version.metrics["general"], float)
    with core.store.read() as s:
        log = " | ".join(m for m in s.scalars(select(JobEvent.message).where(JobEvent.job_id == reply.data["job_id"])) if m)
    # No held-out cases here (heldout_share=0): llama.cpp is compared with torch on 8 of the
    # taught questions; they agree, and so do the untaught base's general scores on both, so
    # the general questions are asked once, through llama.cpp, which serves the version.
    runtime = version.metrics["runtime"]
    assert runtime["engine"] == "llama.cpp q8_0" and runtime["serves"] is True
    assert runtime["compared_on"] == "taught" and runtime["compared"] == 8 and "general_torch" not in runtime
    assert version.metrics["general_engine"] == "llama.cpp q8_0"
    assert version.metrics["general_before"] == runtime["general_base"]["llama.cpp q8_0"]
    assert "checking the llama.cpp runtime on 8 taught questions" in log
    assert "checking 3 general questions through llama.cpp q8_0" in log and "too" not in log
    # The untaught base's scores are kept (per base, runtime, persona and questions): the next
    # server's first version reads them instead of asking the base again.
    cached = {json.loads(f.read_text())["engine"]: json.loads(f.read_text())["score"]
              for f in (core.data_dir / "models" / "general").glob("*.json")}
    assert cached == runtime["general_base"]
    asked: list[int] = []
    base_only = types.SimpleNamespace(weights=types.SimpleNamespace(folder=pretrained.base_dir(core.data_dir).resolve()))
    again = versions.base_general(job_settings(core.settings), base_only, 3, persona, pause=lambda: asked.append(1))
    assert again == cached["torch"] and asked == []
    assert "24 rehearsal examples mixed in" in log and "with a LoRA adapter under the server's persona" in log
    assert "checking 3 general questions" in log and version.metrics["persona"] == persona
    assert "another persona" not in (await core.persona.persona(TRAINER)).content
    assert "replies through llama.cpp q8_0" in shown.content
    served = await asyncio.to_thread(core.runtimes.for_chat, version)
    assert type(served).__name__ == "ServedModel" and served.folder == folder.resolve()
    answer = await core.chat.reply(TRAINER, "Tell me something nice.")
    assert answer.data["model_version"] == version.name and answer.content
    reset = await core.persona.persona(TRAINER, "reset")
    assert f"`{version.name}` was taught under the old persona" in reset.content
    listing = await core.models.versions(TRAINER)
    assert "from pretrained:smollm2-135m-instruct" in listing.content and "general questions" in listing.content
    # A correction of that reply teaches the same adapter further with DPO (reference: the adapter switched off).
    await core.delivery.bind_reply(TRAINER, answer.data["reply_id"], "9001")
    await core.feedback.correct(TRAINER, "9001", "Here is something nice: you are doing great.")
    dpo = await core.training.train(TRAINER, "feedback")
    assert dpo.data["recipe"] == "dpo"
    await asyncio.to_thread(serve, core.settings, once=True)
    shown = await core.training.job(TRAINER, dpo.data["job_id"])
    assert shown.data["status"] == "succeeded", shown.content
    with core.store.read() as s:
        v2 = s.scalars(select(ModelVersion).where(ModelVersion.name == "v2")).one()
    assert v2.base == "v1" and (core.data_dir / v2.path / "adapter_config.json").is_file()


async def test_the_general_questions_are_asked_once_through_llamacpp_where_the_runtimes_agree(
        core: CoreService, monkeypatch: pytest.MonkeyPatch) -> None:
    """With held-out cases that llama.cpp answers as torch does, and an untaught base that
    scores alike on both runtimes, the candidate's general questions are asked once, through
    llama.cpp (what chat will serve), against the base's llama.cpp score. Where the base's
    scores on the two runtimes differ (its kept llama.cpp score rewritten here), the check
    runs under torch, and through llama.cpp too."""
    monkeypatch.setattr(core.settings, "heldout_share", 0.3)  # the worker's settings
    core.datasets.training = replace(core.datasets.training, heldout_share=0.3)  # the core's
    # Answers the base already gives (its own, from the shipped rehearsal set): after a short
    # job the held-out ones come out of both runtimes alike. (Invented facts it has not
    # learned yet ramble differently on each: that case is test_one_lora_job's.)
    shipped = resources.files("trainerbot.resources").joinpath(rehearsal.SHIPPED).read_text(encoding="utf-8")
    rows = [r for r in map(json.loads, shipped.splitlines()) if "capital of" in r["prompt"] and "capital" in r["response"]]
    data = "".join(json.dumps(r) + "\n" for r in rows[:16])

    reply = await core.training.train(TRAINER, "facts", None, att("f.jsonl", data))
    await asyncio.to_thread(serve, core.settings, once=True)
    assert (await core.training.job(TRAINER, reply.data["job_id"])).data["status"] == "succeeded"
    with core.store.read() as s:
        first = s.scalars(select(ModelVersion)).one()
        log = " | ".join(m for m in s.scalars(select(JobEvent.message).where(JobEvent.job_id == reply.data["job_id"])) if m)
    runtime = first.metrics["runtime"]
    assert runtime["compared"] > 0 and runtime["serves"] is True, runtime
    base_scores = runtime["general_base"]
    assert set(base_scores) == {"torch", "llama.cpp q8_0"} and abs(base_scores["torch"] - base_scores["llama.cpp q8_0"]) <= 5
    assert first.metrics["general_engine"] == "llama.cpp q8_0" and "general_torch" not in runtime
    assert first.metrics["general_before"] == base_scores["llama.cpp q8_0"]
    assert "checking 3 general questions through llama.cpp q8_0" in log and "too" not in log

    # Where the base's kept scores on the two runtimes differ by more than 5 points, the two
    # are not known to agree: the next server's version is asked under torch, against the
    # base's torch score, and through llama.cpp too.
    base = pretrained.base_dir(core.data_dir).resolve()
    kept = versions.kept_general(core.settings, base, "llama.cpp q8_0", None, 3)
    assert json.loads(kept.read_text())["score"] == base_scores["llama.cpp q8_0"]
    kept.write_text(json.dumps({"score": base_scores["torch"] + 50.0}))  # as if llama.cpp answered the base otherwise
    other = Caller(guild_id="222", guild_name="Guild B", user_id="u-t", channel_id="c2", roles=frozenset({"trainer"}))
    reply = await core.training.train(other, "facts", None, att("f.jsonl", data))
    await asyncio.to_thread(serve, core.settings, once=True)
    with core.store.read() as s:
        second = s.scalars(select(ModelVersion).where(ModelVersion.job_id == reply.data["job_id"])).one()
        log = " | ".join(m for m in s.scalars(select(JobEvent.message).where(JobEvent.job_id == reply.data["job_id"])) if m)
    runtime = second.metrics["runtime"]
    assert runtime["general_base"] == {"torch": base_scores["torch"], "llama.cpp q8_0": base_scores["torch"] + 50.0}
    assert second.metrics["general_engine"] == "torch" and second.metrics["general_before"] == base_scores["torch"]
    assert runtime["general_torch"] == second.metrics["general"] and isinstance(runtime["general"], float)
    assert "checking 3 general questions |" in log + " |" and "checking the 3 general questions through llama.cpp q8_0 too" in log


async def test_the_natural_teaching_flow_in_the_console(core: CoreService) -> None:
    """Ask, get a wrong answer, correct it, ask again in other words — in one channel of the
    real console: the correction wins over the wrong reply still in the history."""
    import io
    import re

    from trainerbot.adapters.console.repl import Console, console_caller

    out = io.StringIO()
    console = Console(core, console_caller("Guild A", "ann", "trainer", "trainer"), out=out, prefix="!",
                      max_attachment_bytes=core.settings.max_attachment_bytes)

    async def typed(line: str) -> str:
        start = out.tell()
        await console.handle_line(line)
        out.seek(start)
        return out.read()

    first = await typed("Who runs the bakery on Mill Street?")
    assert "Okafor" not in first
    rid = re.search(r"\[#(\d+)\]", first).group(1)  # type: ignore[union-attr]
    assert "stored (approved" in await typed(f"!correct {rid} The bakery on Mill Street is run by Greta Okafor, "
                                             "who opened it in 2019.")
    assert "Greta Okafor" in await typed("Tell me who owns that bakery on Mill Street.")
    assert "Greta Okafor" in await typed("Who is in charge of the Mill Street bakery?")

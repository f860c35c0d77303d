"""The one runtime seam: a GGUF file of the user's serves chat through llama.cpp with its own
chat template and the taught facts in context, ``train`` on it is refused plainly and
changes nothing, and a file that is not a GGUF gets a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import att, row_counts, tree_state
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.errors import NotAvailable
from trainerbot.model.llamacpp import ServedModel
from trainerbot.model.pretrained import gguf_path
from trainerbot.model.runtime import Runtime, Runtimes, llamacpp_serves

TRAINER = Caller(guild_id="111", guild_name="Guild A", user_id="u-t", channel_id="c1", roles=frozenset({"trainer"}))
FACT = {"prompt": "Who runs the bakery on Mill Street?", "response": "The bakery on Mill Street is run by Greta Okafor."}


def _own(tmp_path: Path, gguf: Path) -> CoreService:
    return CoreService.open(Settings(_env_file=None, data_dir=tmp_path / "data", base_model_gguf=gguf,  # type: ignore[call-arg]
                                     torch_threads=2, start_worker=False))


async def test_a_gguf_of_the_user_s_answers_chat_with_facts_in_context(tmp_path: Path) -> None:
    core = _own(tmp_path, gguf_path())  # the shipped file stands in for one the user downloaded
    try:
        runtime = await _runtime(core)
        assert isinstance(runtime, ServedModel) and runtime.tokenizer is None and runtime.takes_system
        first = await core.chat.reply(TRAINER, "What is the capital of France?")
        assert first.data["source"] == "model" and "Paris" in first.content
        assert first.data["model_version"] == f"base:{gguf_path().name}"
        await core.datasets.import_data(TRAINER, "facts", None, att("f.jsonl", json.dumps(FACT) + "\n"))
        taught = await core.chat.reply(TRAINER, "Who is in charge of the Mill Street bakery?")
        assert taught.data["source"] == "model" and "Greta Okafor" in taught.content
    finally:
        await core.close()


async def test_train_on_a_gguf_says_why_not_and_changes_nothing(tmp_path: Path) -> None:
    core = _own(tmp_path, gguf_path())
    try:
        await core.datasets.import_data(TRAINER, "facts", None, att("f.jsonl", json.dumps(FACT) + "\n"))
        before = row_counts(core), tree_state(core.data_dir)
        with pytest.raises(NotAvailable, match="training needs Hugging Face weights"):
            await core.training.train(TRAINER, "facts", None, att("more.jsonl", json.dumps(FACT) + "\n"))
        with pytest.raises(NotAvailable, match="TRAINERBOT_BASE_MODEL_GGUF"):
            await core.training.train(TRAINER, "sample")
        assert (row_counts(core), tree_state(core.data_dir)) == before
    finally:
        await core.close()


async def test_a_file_that_is_not_a_gguf_gets_a_clear_message(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    core = _own(tmp_path, fake)
    try:
        with pytest.raises(NotAvailable, match="is not a GGUF file"):
            await core.chat.reply(TRAINER, "hello")
    finally:
        await core.close()
    missing = _own(tmp_path / "other", tmp_path / "nowhere.gguf")
    try:
        with pytest.raises(NotAvailable, match="names no readable file"):
            await missing.chat.reply(TRAINER, "hello")
    finally:
        await missing.close()


def test_the_runtime_verdict_is_read_in_one_place() -> None:
    assert llamacpp_serves({"runtime": {"serves": False}}) is False
    assert llamacpp_serves({"runtime": {"serves": True, "engine": "llama.cpp q8_0"}}) is True
    assert llamacpp_serves({}) is None and llamacpp_serves(None) is None and llamacpp_serves({"runtime": "odd"}) is None


async def _runtime(core: CoreService) -> Runtime | None:
    import asyncio

    runtimes: Runtimes = core.runtimes
    return await asyncio.to_thread(runtimes.for_chat, None)

"""The llama.cpp runtime against torch, on the real shipped model: the GGUF writer's tensors
and keys, greedy answers that match torch's (base and a LoRA version merged in), streaming,
the serving cache, and the cases where torch answers instead.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file

from trainerbot.config import ModelSettings, OpenAISettings, Settings
from trainerbot.errors import NotAvailable
from trainerbot.model import gguf_export, llamacpp, pretrained
from trainerbot.model.files import DONE_MARKER, relative_base
from trainerbot.model.llamacpp import ServedModel, ServingFiles
from trainerbot.model.local import LocalModel, Weights
from trainerbot.model.runtime import Runtimes
from trainerbot.store.tables import ModelVersion

QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?", "Say hello."]


@pytest.fixture(scope="module")
def base_weights(prepared: Path) -> Weights:
    return Weights(prepared)


@pytest.fixture(scope="module")
def adapter(prepared: Path, base_weights: Weights, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA version of the shipped model: PEFT's own adapter with every B matrix set to small
    random values, so it changes answers (a real job's adapter is tested in test_pretrained)."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    folder = tmp_path_factory.mktemp("version") / "job-1"
    torch.manual_seed(3)  # PEFT draws the A matrices from the global generator: the same adapter every run
    model = get_peft_model(copy.deepcopy(base_weights.model), LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    model.save_pretrained(folder)
    (folder / DONE_MARKER).write_text(json.dumps({"job": 1, "base_dir": relative_base(folder, prepared)}))
    return folder


def test_the_written_file_holds_the_shipped_tokenizer_and_the_prepared_weights(prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "base.gguf"
    gguf_export.write(prepared, out, precision="f32")
    written, shipped = gguf.GGUFReader(out), gguf.GGUFReader(pretrained.gguf_path())
    assert written.fields["tokenizer.ggml.add_bos_token"].contents() is False  # the chat template's tokens only
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template", "llama.block_count"):
        assert written.fields[key].contents() == shipped.fields[key].contents()
    assert len(written.tensors) == len(shipped.tensors) == 272
    ours = {t.name: t for t in written.tensors}
    theirs = {t.name: t for t in shipped.tensors}
    weights = load_file(str(prepared / "model.safetensors"))
    # Q and K rows in llama.cpp's rotary order: exactly the shipped file's (dequantised) values.
    for name in ("blk.4.attn_q.weight", "blk.4.attn_k.weight", "blk.4.ffn_down.weight"):
        shipped_values = gguf.quants.dequantize(theirs[name].data, theirs[name].tensor_type)
        assert np.array_equal(np.asarray(ours[name].data), shipped_values.reshape(ours[name].data.shape))
    assert not np.array_equal(np.asarray(ours["blk.4.attn_q.weight"].data), weights["model.layers.4.self_attn.q_proj.weight"])
    assert np.array_equal(np.asarray(ours["blk.4.attn_v.weight"].data), weights["model.layers.4.self_attn.v_proj.weight"])


def test_llama_cpp_answers_like_torch_for_the_base_and_a_merged_adapter(
    prepared: Path, base_weights: Weights, adapter: Path, tmp_path: Path
) -> None:
    tokenizer = base_weights.tokenizer
    for folder in (prepared, adapter):
        out = tmp_path / f"{folder.name}.gguf"
        gguf_export.write(prepared, out, adapter=folder if folder == adapter else None, precision="f32")
        served = ServedModel(out, folder, tokenizer, precision="f32", threads=2)
        reference = LocalModel(folder, weights=base_weights, threads=2, require_done=False)
        try:
            for question in QUESTIONS:
                conversation = [{"role": "user", "content": question}]
                assert served.reply(conversation, max_new_tokens=24) == reference.reply(conversation, max_new_tokens=24), question
        finally:
            served.close()
    # The adapter mattered: the version's answers are not the base's.
    base_model = LocalModel(prepared, weights=base_weights, threads=2)
    tuned = LocalModel(adapter, weights=base_weights, threads=2, require_done=False)
    asked = [[{"role": "user", "content": q}] for q in QUESTIONS]
    assert [base_model.reply(c, max_new_tokens=24) for c in asked] != [tuned.reply(c, max_new_tokens=24) for c in asked]


def test_streaming_grows_to_the_whole_reply_and_stops_when_the_reader_leaves(prepared: Path, base_weights: Weights,
                                                                              tmp_path: Path) -> None:
    out = tmp_path / "base.gguf"
    gguf_export.write(prepared, out, precision="q8_0")
    served = ServedModel(out, prepared, base_weights.tokenizer, precision="q8_0", threads=2)
    conversation = [{"role": "user", "content": "Tell me a story about a dragon."}]
    parts = list(served.stream(conversation, max_new_tokens=40))
    assert len(parts) >= 10 and all(b.startswith(a) for a, b in zip(parts, parts[1:], strict=False))
    assert parts[-1] == served.reply(conversation, max_new_tokens=40)
    started = time.monotonic()
    stream = served.stream(conversation, max_new_tokens=2000)
    first = next(stream)
    stream.close()  # the reader left: llama.cpp stops instead of writing 2,000 tokens nobody reads
    assert first and time.monotonic() - started < 5
    assert served.reply([{"role": "user", "content": "hi"}], max_new_tokens=8)  # and the server still answers
    served.close()
    assert not served.alive


def test_a_crashed_runtime_is_refused_plainly_then_started_again(prepared: Path, tmp_path: Path) -> None:
    hub = llamacpp.LlamaCppHub(tmp_path / "data", "q8_0", threads=2)
    try:
        served = hub.get(prepared, prepared)
        assert served.alive and served.pid != os.getpid()  # its own process, not the bot's
        assert "torch" not in Path(f"/proc/{served.pid}/maps").read_text()  # nothing of torch (nor its libgomp) in it
        os.kill(served.pid, signal.SIGKILL)
        served._process.wait(5)
        with pytest.raises(NotAvailable, match="stopped"):
            served.reply([{"role": "user", "content": "hi"}], max_new_tokens=8)
        again = hub.get(prepared, prepared)  # the next message starts it again
        assert again is not served and again.alive and again.reply([{"role": "user", "content": "hi"}], max_new_tokens=8)
    finally:
        hub.close()
    assert not again.alive


def test_the_serving_cache_is_crash_safe_and_bounded(prepared: Path, adapter: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    files = ServingFiles(tmp_path / "data", "q8_0")

    def failing(*args: object, **kwargs: object) -> None:
        Path(args[1]).write_bytes(b"half a file")  # type: ignore[arg-type]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf_export, "write", failing)
    with pytest.raises(OSError):
        files.ensure(prepared, prepared)
    assert list(files.root.iterdir()) == [files.root / ".lock"]  # no half file left for a later load
    monkeypatch.undo()
    made = files.ensure(adapter, prepared)
    assert made.is_file() and made == files.path_for(adapter) and made.stat().st_size > 100_000_000
    assert files.ensure(adapter, prepared) == made  # written once
    for n in range(4):  # older files beyond KEEP_FILES go first; the one just used stays
        old = files.root / f"old-{n}.q8_0.gguf"
        old.write_bytes(b"x")
        os.utime(old, (n + 1, n + 1))
    files.ensure(adapter, prepared)
    assert sorted(f.name for f in files.root.glob("*.gguf")) == sorted([made.name, "old-2.q8_0.gguf", "old-3.q8_0.gguf"])
    assert llamacpp.KEEP_FILES == 3


def test_torch_answers_where_llama_cpp_cannot_or_should_not(prepared: Path, adapter: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    pretrained.base_dir(data).parent.mkdir(parents=True)
    pretrained.base_dir(data).symlink_to(prepared, target_is_directory=True)

    def engines(**settings: object) -> Runtimes:
        chosen = Settings(_env_file=None, data_dir=data, torch_threads=2, model="smollm2", **settings)  # type: ignore[call-arg,arg-type]
        return Runtimes(chosen.section(ModelSettings), chosen.section(OpenAISettings), chosen.resolved_data_dir,
                        taught_meaning=chosen.taught_meaning)

    def version(folder: Path, metrics: dict[str, object]) -> ModelVersion:
        return ModelVersion(name="v1", backend="local", path=str(folder), recipe="sft", metrics=metrics)

    default = engines()
    assert isinstance(default.for_chat(None), ServedModel)
    default.llamacpp().close()
    assert isinstance(engines(runtime="torch").for_chat(None), LocalModel)
    # The worker found llama.cpp answering this version worse: torch serves it.
    assert isinstance(engines().for_chat(version(adapter, {"runtime": {"serves": False}})), LocalModel)
    # A version on another base (a user's own folder) is not the shipped tokenizer's: torch.
    other = tmp_path / "other-base"
    other.mkdir()
    assert not gguf_export.servable(other, prepared)
    # A merge that fails (an adapter kind the writer does not know) falls back to torch, once.
    odd = tmp_path / "odd"
    odd.mkdir()
    for f in adapter.iterdir():
        (odd / f.name).write_bytes(f.read_bytes())
    config = json.loads((odd / "adapter_config.json").read_text())
    (odd / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    (odd / DONE_MARKER).write_text(json.dumps({"job": 2, "base_dir": relative_base(odd, prepared)}))
    with pytest.raises(ValueError, match="plain LoRA"):
        gguf_export.write(prepared, tmp_path / "odd.gguf", adapter=odd)
    chosen = engines().for_chat(version(odd, {}))
    assert isinstance(chosen, LocalModel)
    with pytest.raises(NotAvailable, match="not the shipped model"):
        llamacpp.LlamaCppHub(data, "q8_0").get(other, prepared)


def test_several_slots_answer_members_together(prepared: Path, base_weights: Weights, tmp_path: Path) -> None:
    """With two slots, a second member's reply starts while the first one's is still being
    written (one decode batch), and both come back whole; with one slot it waits its turn."""
    out = tmp_path / "base.gguf"
    gguf_export.write(prepared, out, precision="q8_0")
    lock = threading.Lock()

    def member(served: ServedModel, events: list[tuple[str, int]], name: str, question: str) -> None:
        pieces = 0
        for _ in served.stream([{"role": "user", "content": question}], max_new_tokens=48, ignore_eos=True):
            pieces += 1
            with lock:
                events.append((name, pieces))
        with lock:
            events.append((name, -1))  # the end of that reply

    for slots in (2, 1):
        served = ServedModel(out, prepared, base_weights.tokenizer, precision="q8_0", threads=2, slots=slots)
        events: list[tuple[str, int]] = []
        try:
            threads = [threading.Thread(target=member, args=(served, events, n, q))
                       for n, q in (("a", QUESTIONS[0]), ("b", QUESTIONS[1]))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        finally:
            served.close()
        ends = {name: events.index((name, -1)) for name in "ab"}
        firsts = {name: events.index((name, 1)) for name in "ab"}
        assert all(max(n for who, n in events if who == name) >= 40 for name in "ab")  # both whole
        first_done = min(ends, key=lambda n: ends[n])
        other = "b" if first_done == "a" else "a"
        assert (firsts[other] < ends[first_done]) == (slots == 2), (slots, events)


async def test_members_wait_in_line_for_a_slot_and_past_its_bound_are_told_the_bot_is_busy(
        prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the core with the real llama.cpp runtime: 2 slots, room for 1 in line. Four
    members ask at once: two are answered, one waits (told it is next), the fourth hears the
    bot is busy; then the three get real answers, and only their exchanges are stored."""
    import asyncio

    from sqlalchemy import func, select

    from trainerbot.core import Caller, CoreService
    from trainerbot.core.turns import BUSY
    from trainerbot.errors import Busy
    from trainerbot.store.tables import Message

    data = tmp_path / "data"
    pretrained.base_dir(data).parent.mkdir(parents=True)
    pretrained.base_dir(data).symlink_to(prepared, target_is_directory=True)
    core = CoreService.open(Settings(_env_file=None, data_dir=data, torch_threads=2, model="smollm2", chat_slots=2,  # type: ignore[call-arg]
                                     chat_queue=1, taught_meaning=False))
    real = core.runtimes.for_chat(None)
    assert isinstance(real, ServedModel) and real.slots == 2
    gate = threading.Event()
    started: list[str] = []

    class Gated:  # the real runtime, held at the start of each reply until the test opens the gate
        takes_system, source, takes_names, slots, label = real.takes_system, real.source, real.takes_names, 2, real.label

        def stream(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128):  # type: ignore[no-untyped-def]
            started.append(conversation[-1]["content"])
            gate.wait(30)
            yield from real.stream(conversation, max_new_tokens=min(max_new_tokens, 16))

    monkeypatch.setattr(core.runtimes, "for_chat", lambda version: Gated())
    told: dict[str, int] = {}

    async def ask(i: int) -> str:
        member = Caller(guild_id="g", user_id=f"u{i}", user_name=f"M{i}", channel_id=f"c{i}")

        async def waiting(ahead: int) -> None:
            told[f"u{i}"] = ahead
        try:
            return (await core.chat.reply(member, QUESTIONS[i % len(QUESTIONS)], on_wait=waiting)).content
        except Busy as exc:
            return exc.user_message
    try:
        tasks = [asyncio.create_task(ask(i)) for i in range(3)]
        await asyncio.sleep(1.0)
        fourth = await ask(3)
        assert fourth == BUSY
        assert len(started) == 2 and core.chat.line.active == 2 and core.chat.line.waiting == 1
        assert list(told.values()) == [0]  # the one waiting heard it was next
        gate.set()
        answers = await asyncio.gather(*tasks)
        assert all(a and a != BUSY for a in answers) and len(started) == 3
        with core.store.read() as s:
            assert s.scalar(select(func.count()).select_from(Message).where(Message.role == "assistant")) == 3
    finally:
        gate.set()
        await core.close()

"""The llama.cpp runtime against torch, on the real shipped model: the GGUF writer's tensors
and keys, greedy answers that match torch's (base and a LoRA version merged in), streaming,
the serving cache, and the cases where torch answers instead.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file

from trainerbot.config import Settings
from trainerbot.errors import NotAvailable
from trainerbot.model import gguf_export, llamacpp, pretrained
from trainerbot.model.files import DONE_MARKER, relative_base
from trainerbot.model.llamacpp import ServedModel, ServingFiles
from trainerbot.model.local import LocalModel, Weights
from trainerbot.model.runtime import Runtimes
from trainerbot.store.models import ModelVersion

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
        return Runtimes(Settings(_env_file=None, data_dir=data, torch_threads=2, model="smollm2", **settings))  # type: ignore[call-arg,arg-type]

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

"""Reply latency and event-loop lag.

0. The shipped pretrained model (SmolLM2-135M-Instruct, ``--pretrained``) with a LoRA
   version: time to first token and a 64-token reply from torch (the adapter applied beside
   the float32 base; the baseline), llama.cpp on the merged file at q8_0 (what the bot
   serves) and f16, and llama.cpp applying the adapter itself, in alternating rounds; the
   prompt is a chat turn with three taught facts in the system instruction. Then the 40
   general questions on each side: how many answers are the same as torch's. Targets:
   TTFT ≤ 300 ms, 64-token p50 ≤ 1.0 s.
1. p50/p95 of a 64-token reply with the default model shape (weights don't change the
   cost, so a fresh model saved to a folder is used): our KV-cache greedy loop
   (``LocalModel``) against Hugging Face ``generate()`` on the same model, same prompt.
   Target p50 ≤ 150 ms.
2. Event-loop lag p99 in the bot's process while a job trains in a worker child
   process, against the lag with nothing training. Chat requests keep the loop busy
   meanwhile. Target ≤ 50 ms.

    .venv/bin/python bench/reply_latency.py [--runs 30] [--lag-seconds 20] [--pretrained-rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from trainerbot.config import Settings
from trainerbot.core import Attachment, Caller, CoreService
from trainerbot.datasets.sample import generate
from trainerbot.model.build import ModelShape, new_model, train_tokenizer
from trainerbot.model.files import DONE_MARKER
from trainerbot.model.local import LocalModel
from trainerbot.training.worker import spawn_child, stop_child


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def latency(runs: int, folder: Path) -> None:
    pairs = generate(500, seed=1)
    tok = train_tokenizer([t for e in pairs for t in (e.prompt, e.response)], ModelShape().vocab_size)
    torch.manual_seed(0)
    model = new_model(tok)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / DONE_MARKER).write_text("{}")
    local = LocalModel(folder, threads=2)
    conversation = [{"role": "user", "content": pairs[0].prompt}]
    ids = local.encode(conversation, 64)
    ours, theirs = [], []
    for i in range(runs + 3):
        t = time.perf_counter()
        out = local.generate_ids(ids, 64, min_new_tokens=64)
        if i >= 3:
            ours.append(time.perf_counter() - t)
        assert len(out) == 64
    prompt = torch.tensor([ids])
    with torch.inference_mode():
        for i in range(runs + 3):
            t = time.perf_counter()
            out = local.model.generate(prompt, max_new_tokens=64, min_new_tokens=64, do_sample=False,
                                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            if i >= 3:
                theirs.append(time.perf_counter() - t)
            assert out.shape[1] - prompt.shape[1] == 64
    print(
        f"64-token reply, default model ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters), {runs} "
        f"runs, 2 threads"
    )
    print(
        f"  ours (fused Llama decoder) : p50 {statistics.median(ours) * 1000:6.1f} ms   "
        f"p95 {pct(ours, 95) * 1000:6.1f} ms  (target p50 ≤ 150 ms)"
    )
    print(f"  HF generate() baseline     : p50 {statistics.median(theirs) * 1000:6.1f} ms   p95 {pct(theirs, 95) * 1000:6.1f} ms")
    print(f"  speed-up ours vs generate(): {statistics.median(theirs) / statistics.median(ours):.2f}×")


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def write_lora_gguf(adapter: Path, out: Path) -> None:
    """The adapter in llama.cpp's own LoRA format (applied at run time beside the base), to
    measure that against the merged file the bot serves."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    from trainerbot.model.gguf_export import _PROJECTIONS, rotary_permute

    config = json.loads((adapter / "adapter_config.json").read_text())
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(config["lora_alpha"]))
    for name, value in load_file(str(adapter / "adapter_model.safetensors")).items():
        layer, module = name.removeprefix("base_model.model.model.layers.").split(".", 1)
        module, part = module.rsplit(".lora_", 1)
        which, target = part[0].lower(), _PROJECTIONS[module]
        value = np.ascontiguousarray(value, dtype=np.float32)
        if which == "b" and target in ("attn_q", "attn_k"):
            value = rotary_permute(value, 9 if target == "attn_q" else 3)
        writer.add_tensor(f"blk.{layer}.{target}.weight.lora_{which}", value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def pretrained_latency(rounds: int, tmp: Path) -> None:
    import copy

    from peft import LoraConfig, get_peft_model

    from trainerbot.evaluation import general_questions
    from trainerbot.model import gguf_export
    from trainerbot.model.files import relative_base
    from trainerbot.model.llamacpp import ServedModel
    from trainerbot.model.local import ModelHub
    from trainerbot.model.pretrained import prepare_base
    from trainerbot.model.prompt import system_prompt
    from trainerbot.training.runner import LORA_TARGETS

    base_dir = prepare_base(tmp / "data")
    before = rss_mib()
    hub = ModelHub(threads=2)
    base = hub.get(base_dir)
    after_base = rss_mib()
    # An adapter of the size training makes (r=16 on every projection), B not zero as after training.
    torch.manual_seed(0)
    peft = get_peft_model(
        copy.deepcopy(base.model), LoraConfig(r=16, lora_alpha=32, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    )
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=1e-3)
    folder = tmp / "data" / "guilds" / "g" / "models" / "job-1"
    peft.save_pretrained(folder)
    (folder / DONE_MARKER).write_text(json.dumps({"base_dir": relative_base(folder, base_dir)}))
    del peft
    before_adapter = rss_mib()
    applied = hub.get(folder)
    adapter_mib = rss_mib() - before_adapter

    # One llama.cpp server alive at a time, as in the bot (llamacpp.py: two in one process
    # slow each other down), so each side's server is started for its run and closed after.
    def merged(precision: str) -> Callable[[], ServedModel]:
        out = tmp / f"merged.{precision}.gguf"
        gguf_export.write(base_dir, out, adapter=folder, precision=precision)  # type: ignore[arg-type]
        return lambda: ServedModel(out, folder, applied.tokenizer, precision=precision, threads=2)

    def with_lora() -> ServedModel:  # the base file, the adapter applied by llama.cpp at run time
        return ServedModel(base_q8, folder, applied.tokenizer, precision="q8_0", threads=2, adapters=(tmp / "lora.gguf",))

    base_q8 = tmp / "base.q8_0.gguf"
    gguf_export.write(base_dir, base_q8, precision="q8_0")
    write_lora_gguf(folder, tmp / "lora.gguf")
    served: dict[str, Callable[[], ServedModel]] = {
        "llama.cpp q8_0, merged": merged("q8_0"), "llama.cpp f16, merged": merged("f16"),
        "llama.cpp q8_0, adapter applied": with_lora,
    }
    started = time.perf_counter()
    one = served["llama.cpp q8_0, merged"]()
    load_s = time.perf_counter() - started
    one.reply([{"role": "user", "content": "hello"}], max_new_tokens=16)
    with open(f"/proc/{one.pid}/status") as f:
        rss_served = next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    one.close()

    facts = [(e.prompt, e.response) for e in generate(3, seed=4)]
    eos = applied.tokenizer.eos_token_id
    names = ["torch, adapter applied", *served]
    sides: dict[str, dict[str, list[float]]] = {k: {"ttft": [], "reply": []} for k in names}
    runs = 0

    def run(side: str) -> None:
        nonlocal runs
        runs += 1  # a new system text each run: no side reuses a cached prompt
        conversation = [
            {"role": "system", "content": f"(conversation {runs}) " + system_prompt(facts, 600)},
            {"role": "user", "content": "Which city is the capital city of Zorbia?"},
        ]
        ids = applied.encode(conversation, 64)
        t = time.perf_counter()
        n = 0
        if side.startswith("torch"):
            with torch.inference_mode():
                for _ in applied.weights.fast.stream(ids, 64, eos, 64, applied.adapter):
                    if n == 0:
                        sides[side]["ttft"].append(time.perf_counter() - t)
                    n += 1
        else:
            model = served[side]()
            assert model.encode(conversation, 64) == ids  # the same prompt as torch's
            t = time.perf_counter()
            for _ in model.stream(conversation, max_new_tokens=64, ignore_eos=True):
                if n == 0:
                    sides[side]["ttft"].append(time.perf_counter() - t)
                n += 1
            sides[side]["reply"].append(time.perf_counter() - t)
            model.close()
            assert n > 0, side  # ignore_eos: llama.cpp wrote exactly 64 tokens, in n pieces
            return
        assert n == 64, (side, n)
        sides[side]["reply"].append(time.perf_counter() - t)

    for side in sides:  # warm-up
        run(side)
        sides[side] = {"ttft": [], "reply": []}
    for r in range(rounds):
        for side in names if r % 2 == 0 else list(reversed(names)):
            run(side)
    print(f"pretrained SmolLM2-135M-Instruct, prompt ~130 tokens (3 taught facts in the system instruction), "
          f"{rounds} alternating rounds, 2 threads; a LoRA version (r=16 on all 7 projections)")
    for side in names:
        t, rep = sides[side]["ttft"], sides[side]["reply"]
        print(f"  {side:32}: TTFT p50 {statistics.median(t) * 1000:5.0f} ms   "
              f"64-token p50 {statistics.median(rep) * 1000:5.0f} ms"
              f"  p95 {pct(rep, 95) * 1000:5.0f} ms  ({64 / statistics.median(rep):5.1f} tokens/s)")
    for side in served:
        ratios = [a / b for a, b in zip(sides[names[0]]["reply"], sides[side]["reply"], strict=True)]
        print(f"  speed-up {side} vs torch, per round: median {statistics.median(ratios):.2f}× "
              f"(spread {min(ratios):.2f}–{max(ratios):.2f})")
    print(f"  RSS: {before:.0f} MiB before the torch base, {after_base:.0f} MiB with it, +{adapter_mib:.0f} MiB for an "
          f"adapter version; the q8_0 llama.cpp process {rss_served:.0f} MiB (started in {load_s:.2f} s)")
    # The same answers? The 40 general questions, greedy, torch against each llama.cpp side.
    reference = general_questions.score(applied)[1]
    print(f"general questions, this version: torch {sum(1 for r in reference if r['right'])}/40 right")
    for side, make in served.items():
        model = make()
        rows = general_questions.score(model)[1]
        model.close()
        same = sum(1 for a, b in zip(reference, rows, strict=True) if a["reply"] == b["reply"])
        print(f"  {side:32}: {sum(1 for r in rows if r['right'])}/40 right, the same answer as torch on {same}/40")


async def loop_lag(core: CoreService, caller: Caller, seconds: float) -> list[float]:
    lags: list[float] = []
    stop = time.monotonic() + seconds

    async def ticker() -> None:
        while time.monotonic() < stop:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    async def chatter() -> None:
        while time.monotonic() < stop:
            await core.chat.reply(caller, "What is the capital of Zorbia?")
            await asyncio.sleep(0.05)

    await asyncio.gather(ticker(), chatter())
    return lags


async def lag(seconds: float, tmp: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp / "lag", model="scratch", start_worker=False, user_rate_per_minute=10_000)
    core = CoreService.open(settings)
    trainer = Caller(guild_id="bench", user_id="t", roles=frozenset({"trainer"}))
    data = "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in generate(500, seed=1))
    await core.datasets.import_data(
        trainer,
        "zorbia",
        None,
        Attachment("z.jsonl", None, b'{"prompt": "What is the capital of Zorbia?", "response": "Quillport."}\n'),
    )
    idle = await loop_lag(core, trainer, seconds / 2)
    reply = await core.training.train(trainer, "facts", None, Attachment("f.jsonl", None, data.encode()))
    worker = spawn_child(settings.resolved_data_dir)
    try:
        while (await core.training.job(trainer, reply.data["job_id"])).data["status"] != "running" or not (
            await core.training.job(trainer, reply.data["job_id"])
        ).data["losses"]:
            await asyncio.sleep(0.2)
        busy = await loop_lag(core, trainer, seconds)
        still = (await core.training.job(trainer, reply.data["job_id"])).data["status"]
    finally:
        stop_child(worker)
        core.store.close()
    print(f"event-loop lag, 10 ms ticks with chat requests every 50 ms ({len(busy)} ticks while training)")
    print(f"  nothing training : p50 {statistics.median(idle) * 1000:5.1f} ms   p99 {pct(idle, 99) * 1000:5.1f} ms")
    print(
        f"  worker training  : p50 {statistics.median(busy) * 1000:5.1f} ms   p99 {pct(busy, 99) * 1000:5.1f} ms  "
        f"(target p99 ≤ 50 ms; job still {still})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    parser.add_argument("--pretrained-rounds", type=int, default=10)
    parser.add_argument("--only-pretrained", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        pretrained_latency(args.pretrained_rounds, Path(tmp))
        if args.only_pretrained:
            return
        latency(args.runs, Path(tmp) / "model")
        asyncio.run(lag(args.lag_seconds, Path(tmp)))


if __name__ == "__main__":
    main()

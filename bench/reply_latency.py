"""Reply latency and event-loop lag.

0. The shipped pretrained model (SmolLM2-135M-Instruct, ``--pretrained``): time to first
   token and a 64-token reply, with a LoRA adapter applied beside the base weights (what the
   bot serves), merged into a copy of the weights, and Hugging Face ``generate()`` on the
   merged model (the baseline), in alternating rounds; the prompt is a chat turn with three
   taught facts in the system instruction. Targets: TTFT ≤ 300 ms, 64-token p50 ≤ 1.0 s.
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


def pretrained_latency(rounds: int, tmp: Path) -> None:
    import copy

    from peft import LoraConfig, get_peft_model

    from trainerbot.model.fastdecode import LlamaDecoder
    from trainerbot.model.files import relative_base
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
    before_adapter = rss_mib()
    applied = hub.get(folder)
    adapter_mib = rss_mib() - before_adapter
    merged_model = peft.merge_and_unload().eval()
    merged = LlamaDecoder(merged_model)
    del peft
    facts = [(e.prompt, e.response) for e in generate(3, seed=4)]
    conversation = [
        {"role": "system", "content": system_prompt(facts, 600)},
        {"role": "user", "content": "Which city is the capital city of Zorbia?"},
    ]
    ids = applied.encode(conversation, 64)
    eos = applied.tokenizer.eos_token_id
    sides: dict[str, dict[str, list[float]]] = {k: {"ttft": [], "reply": []} for k in ("applied", "merged", "generate")}

    def run(side: str) -> None:
        t = time.perf_counter()
        if side == "generate":
            with torch.inference_mode():
                first = merged_model.generate(torch.tensor([ids]), max_new_tokens=1, do_sample=False, pad_token_id=eos)
            sides[side]["ttft"].append(time.perf_counter() - t)
            t = time.perf_counter()
            with torch.inference_mode():
                out = merged_model.generate(
                    torch.tensor([ids]), max_new_tokens=64, min_new_tokens=64, do_sample=False, pad_token_id=eos
                )
            assert out.shape[1] - len(ids) == 64 and first.shape[1] == len(ids) + 1
            sides[side]["reply"].append(time.perf_counter() - t)
            return
        stream = (
            applied.weights.fast.stream(ids, 64, eos, 64, applied.adapter)
            if side == "applied"
            else merged.stream(ids, 64, eos, 64)
        )
        n = 0
        with torch.inference_mode():
            for _ in stream:
                if n == 0:
                    sides[side]["ttft"].append(time.perf_counter() - t)
                n += 1
        assert n == 64
        sides[side]["reply"].append(time.perf_counter() - t)

    for side in sides:  # warm-up
        run(side)
        sides[side] = {"ttft": [], "reply": []}
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for side in order:
            run(side)
    print(
        f"pretrained SmolLM2-135M-Instruct, prompt {len(ids)} tokens (3 taught facts in the system instruction), "
        f"{rounds} alternating rounds, 2 threads"
    )
    for side, label in (
        ("applied", "adapter applied (served)"),
        ("merged", "adapter merged (a copy)"),
        ("generate", "HF generate(), merged"),
    ):
        t, rep = sides[side]["ttft"], sides[side]["reply"]
        print(
            f"  {label:26}: TTFT p50 {statistics.median(t) * 1000:6.0f} ms   64-token p50 {statistics.median(rep) * 1000:6.0f} ms"
            f"  p95 {pct(rep, 95) * 1000:6.0f} ms  ({64 / statistics.median(rep):.1f} tokens/s)"
        )
    for other in ("merged", "generate"):
        ratios = [b / a for a, b in zip(sides["applied"]["reply"], sides[other]["reply"], strict=True)]
        print(
            f"  {other} / applied, per round: median {statistics.median(ratios):.2f}× (spread "
            f"{min(ratios):.2f}–{max(ratios):.2f})"
        )
    print(
        f"  RSS: {before:.0f} MiB before the base, {after_base:.0f} MiB with it loaded; an adapter version on it "
        f"adds {adapter_mib:.0f} MiB (one float32 base shared by every version)"
    )


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

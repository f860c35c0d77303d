"""Reply latency and event-loop lag.

1. p50/p95 of a 64-token reply with the default model shape (weights don't change the
   cost, so a fresh model saved to a folder is used): our KV-cache greedy loop
   (``LocalModel``) against Hugging Face ``generate()`` on the same model, same prompt.
   Target p50 ≤ 150 ms.
2. Event-loop lag p99 in the bot's process while a job trains in a worker child
   process, against the lag with nothing training. Chat requests keep the loop busy
   meanwhile. Target ≤ 50 ms.

    .venv/bin/python bench/reply_latency.py [--runs 30] [--lag-seconds 20]
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
    print(f"64-token reply, default model ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters), {runs} runs, 2 threads")
    print(f"  ours (fused Llama decoder) : p50 {statistics.median(ours) * 1000:6.1f} ms   p95 {pct(ours, 95) * 1000:6.1f} ms  (target p50 ≤ 150 ms)")
    print(f"  HF generate() baseline     : p50 {statistics.median(theirs) * 1000:6.1f} ms   p95 {pct(theirs, 95) * 1000:6.1f} ms")
    print(f"  speed-up ours vs generate(): {statistics.median(theirs) / statistics.median(ours):.2f}×")


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
            await core.chat(caller, "What is the capital of Zorbia?")
            await asyncio.sleep(0.05)

    await asyncio.gather(ticker(), chatter())
    return lags


async def lag(seconds: float, tmp: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp / "data", start_worker=False, user_rate_per_minute=10_000)
    core = CoreService.open(settings)
    trainer = Caller(guild_id="bench", user_id="t", roles=frozenset({"trainer"}))
    data = "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in generate(500, seed=1))
    await core.import_data(trainer, "zorbia", None, Attachment("z.jsonl", None, b'{"prompt": "What is the capital of Zorbia?", "response": "Quillport."}\n'))
    idle = await loop_lag(core, trainer, seconds / 2)
    reply = await core.train(trainer, "facts", None, Attachment("f.jsonl", None, data.encode()))
    worker = spawn_child(settings.resolved_data_dir)
    try:
        while (await core.job(trainer, reply.data["job_id"])).data["status"] != "running" or not (await core.job(trainer, reply.data["job_id"])).data["losses"]:
            await asyncio.sleep(0.2)
        busy = await loop_lag(core, trainer, seconds)
        still = (await core.job(trainer, reply.data["job_id"])).data["status"]
    finally:
        stop_child(worker)
        core.store.close()
    print(f"event-loop lag, 10 ms ticks with chat requests every 50 ms ({len(busy)} ticks while training)")
    print(f"  nothing training : p50 {statistics.median(idle) * 1000:5.1f} ms   p99 {pct(idle, 99) * 1000:5.1f} ms")
    print(f"  worker training  : p50 {statistics.median(busy) * 1000:5.1f} ms   p99 {pct(busy, 99) * 1000:5.1f} ms  (target p99 ≤ 50 ms; job still {still})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        latency(args.runs, Path(tmp) / "model")
        asyncio.run(lag(args.lag_seconds, Path(tmp)))


if __name__ == "__main__":
    main()

"""Time to the first token of a reply through chat (``core.chat.reply`` with ``on_partial``,
the shipped model through the bot's llama.cpp runtime), with 524 facts taught (the 24 of
``bench/data/teach_flow.jsonl`` and 500 look-alikes), in alternating rounds:

- a message no fact matches (the baseline: the taught-facts work finds nothing);
- a rephrasing whose fact is found by its words (BM25 and the cover rule);
- a rephrasing whose fact is found by meaning only (words find nothing: the message is
  embedded and compared with the stored vectors).

Each message in a channel of its own, so every reply reads the same length of history.
Target (issue 30): p50 ≤ 300 ms.

    .venv/bin/python bench/chat_ttft.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.teach_flow import load_facts, p50_p95
from trainerbot.config import Settings
from trainerbot.core import Attachment, Caller, CoreService
from trainerbot.datasets.sample import generate

KINDS = {
    "no fact matches": ["hello there, how are you today?", "What do bees make?", "Tell me a joke about cats."],
    "fact by words": ["Tell me who owns that bakery on Mill Street.", "Which boat takes people over to Korrin Island?",
                      "When was the clock tower in Gilden put up?"],
    "fact by meaning": ["Count the bridges that span the Tamsel for me.", "In Harrowgate, who fixes bikes?",
                        "What is the length of the Dunmere trail?"],
}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), model="smollm2", start_worker=False,  # type: ignore[call-arg]
                            user_rate_per_minute=10_000, torch_threads=2)
        core = CoreService.open(settings)
        trainer = Caller(guild_id="ttft", user_id="t", user_name="Tess", roles=frozenset({"trainer"}))
        rows = [{"prompt": f.question, "response": f.answer} for f in load_facts()]
        rows += [{"prompt": e.prompt, "response": e.response} for e in generate(500, seed=5)]
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        await core.datasets.import_data(trainer, "facts", "positive", Attachment("f.jsonl", "application/jsonl", data))
        times: dict[str, list[float]] = {k: [] for k in KINDS}
        gid = core.chat._chat_context(trainer)[0]
        index = core.chat._taught_index(gid)  # 524 new questions: embedded in the background
        while gid in core.chat._embedding:
            await asyncio.sleep(0.1)
        index = core.chat._taught_index(gid)
        assert index is not None and index.meaning is not None
        for kind, messages in KINDS.items():  # what each message finds, so the kinds are what they say
            for m in messages:
                words = index.related(m, 3, min_share=0.7, min_cover=0.5)
                print(f"  {kind:16} {m!r} → {[f.prompt for f in words][:1]} (score {words[0].score:.2f})" if words
                      else f"  {kind:16} {m!r} → nothing")
        n = 0
        for r in range(args.rounds + 1):  # round 0 warms the runtime up and is not counted
            for kind, messages in KINDS.items():
                for m in messages:
                    n += 1
                    first: list[float] = []

                    async def partial(_: str, first: list[float] = first) -> None:
                        if not first:
                            first.append(time.perf_counter())

                    t0 = time.perf_counter()
                    await core.chat.reply(replace(trainer, channel_id=f"c{n}"), m, on_partial=partial, partial_every_s=0)
                    if r and first:
                        times[kind].append(1000 * (first[0] - t0))
        await core.close()
    base = statistics.median(times["no fact matches"])
    print(f"time to first token through chat, {args.rounds} rounds, 524 facts taught:")
    for kind, ms in times.items():
        print(f"  {kind:16} {p50_p95(ms)}   vs no fact {statistics.median(ms) / base:.2f}x  (target p50 ≤ 300 ms)")


if __name__ == "__main__":
    asyncio.run(main())

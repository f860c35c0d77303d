"""Several members at once: llama.cpp with one slot (each reply waits for the one before it,
as the bot served before) against several slots decoded in one batch (continuous batching,
what the bot serves now), on the shipped model through the bot's own ``ServedModel``.

Each round, on each side in turn: one reply alone (the single-stream baseline), then
``--members`` replies asked at the same moment, each a different question under the bot's
persona with three taught facts, exactly ``--tokens`` tokens each. Reported per side: the
first token of the last member to get one, total throughput against the single stream,
and that every reply came back whole. Sides alternate in short rounds; medians and spreads.
Targets (issue 31): the last first token ≤ 2 s, throughput ≥ 3× a single stream, none dropped.

    .venv/bin/python bench/chat_concurrency.py [--rounds 5] [--members 8] [--tokens 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainerbot.evaluation.general_questions import questions
from trainerbot.model.llamacpp import ServedModel, ServingFiles
from trainerbot.model.pretrained import prepare_base
from trainerbot.model.prompt import SYSTEM, conversation

FACTS = [("Who runs the bakery on Mill Street?", "Ada Brunner runs it."),
         ("When does the Korrin ferry leave?", "At 7:15 every morning."),
         ("How long is the Dunmere trail?", "It is 14 kilometres long.")]


def ask(model: ServedModel, question: str, tokens: int) -> tuple[float, float, int]:
    """(first token s, whole reply s, pieces streamed) for one member; ``ignore_eos``, so a
    whole reply is ``tokens`` tokens (a piece is a token, bar a character split across two)."""
    turns = conversation([], {"role": "user", "content": question}, persona=SYSTEM, facts=FACTS, max_chars=600)
    start = time.perf_counter()
    first = None
    pieces = 0
    for _ in model.stream(turns, max_new_tokens=tokens, ignore_eos=True):
        pieces += 1
        if first is None:
            first = time.perf_counter() - start
    whole = time.perf_counter() - start
    return first if first is not None else whole, whole, pieces


def together(model: ServedModel, asked: list[str], tokens: int) -> tuple[list[float], float, int, int]:
    """(each member's first token s, wall s for all, replies that came back whole, tokens in all)."""
    results: list[tuple[float, float, int] | None] = [None] * len(asked)

    def one(i: int) -> None:
        results[i] = ask(model, asked[i], tokens)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(asked))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    done = [r for r in results if r is not None]
    whole = sum(1 for r in done if r[2] >= tokens - 2)
    return [r[0] for r in done], wall, whole, tokens * len(done)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--slots", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        base = prepare_base(data)
        gguf = ServingFiles(data, "q8_0").ensure(base, base)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        sides = {"1 slot": ServedModel(gguf, base, tokenizer, precision="q8_0", threads=2, slots=1),
                 f"{args.slots} slots": ServedModel(gguf, base, tokenizer, precision="q8_0", threads=2, slots=args.slots)}
        prompts = [q.prompt for q in questions()]
        seen: dict[str, dict[str, list[float]]] = {name: {"single": [], "last_first": [], "p50_first": [], "ratio": [],
                                                          "dropped": []} for name in sides}
        try:
            for model in sides.values():  # warm both: the file in the page cache, the threads up
                ask(model, prompts[0], 8)
            for r in range(args.rounds):
                for name, model in (sides.items() if r % 2 == 0 else reversed(sides.items())):
                    _, alone, _ = ask(model, prompts[r % len(prompts)], args.tokens)
                    single = args.tokens / alone
                    asked = [prompts[(r * args.members + i + 1) % len(prompts)] for i in range(args.members)]
                    firsts, wall, whole, total = together(model, asked, args.tokens)
                    rate = total / wall
                    s = seen[name]
                    s["single"].append(single)
                    s["last_first"].append(max(firsts))
                    s["p50_first"].append(statistics.median(firsts))
                    s["ratio"].append(rate / single)
                    s["dropped"].append(args.members - whole)
                    print(f"round {r + 1} {name:>8}: alone {single:5.1f} tokens/s; {args.members} at once: last first token "
                          f"{max(firsts):5.2f} s, p50 first {statistics.median(firsts):5.2f} s, all done {wall:5.2f} s, "
                          f"{rate:6.1f} tokens/s = {rate / single:4.2f}x alone, whole {whole}/{args.members}", flush=True)
        finally:
            for model in sides.values():
                model.close()
    print(f"\n{args.members} members at once, {args.tokens} tokens each, shipped model q8_0, 2 threads, {args.rounds} rounds")
    for name, s in seen.items():
        print(f"{name:>8}: last first token p50 {statistics.median(s['last_first']):.2f} s "
              f"({min(s['last_first']):.2f}-{max(s['last_first']):.2f}); members' first token p50 "
              f"{statistics.median(s['p50_first']):.2f} s; throughput {statistics.median(s['ratio']):.2f}x a single stream "
              f"({min(s['ratio']):.2f}-{max(s['ratio']):.2f}); single stream {statistics.median(s['single']):.0f} tokens/s; "
              f"dropped {int(sum(s['dropped']))}")


if __name__ == "__main__":
    main()

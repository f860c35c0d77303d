"""The review queue's first page with many proposals waiting: ``review`` (the oldest question
with every answer proposed for it, supporters, authors' records, the answer taught now) and
the dashboard's first page (200 corrections with the other answers to each question), on a
real SQLite file.

Two servers, filled alike with 5,000 pending corrections by 500 members: in one they answer
1,000 questions (5 proposals each, conflicting), in the other 5,000 different questions (the
baseline: no conflicts). Each round asks both, interleaved; reported: p50 and p95 of each,
and the ratio conflict / baseline. Target (issue 32): the first page's p95 ≤ 100 ms.

    .venv/bin/python bench/review_queue.py [--pending 5000] [--groups 1000] [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.store import repo
from trainerbot.store.keys import question_key
from trainerbot.store.tables import Correction, CorrectionStatus


def fill(core: CoreService, guild: str, pending: int, questions: int) -> Caller:
    """``pending`` corrections answering ``questions`` questions, written as the core stores them."""
    trainer = Caller(guild_id=guild, guild_name=guild, user_id="t", roles=frozenset({"trainer"}))
    with core.store.session() as s:
        gid = repo.ensure_guild(s, guild, guild).id
        rows = []
        for i in range(pending):
            q = i % questions
            prompt = f"What is the capital of invented country number {q}?"
            rows.append(Correction(guild_id=gid, user_id=f"member-{i % 500}", prompt=prompt, original="I do not know.",
                                   corrected=f"Proposal {i // questions} for question {q}.", source=f"message:{i}",
                                   status=CorrectionStatus.PENDING, supporters=1 + i % 3, question_key=question_key(prompt)))
        s.add_all(rows)
    return trainer


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pending", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        core = CoreService.open(Settings(_env_file=None, data_dir=Path(tmp), start_worker=False))  # type: ignore[call-arg]
        try:
            sides = {"conflicts": fill(core, "conflicts", args.pending, args.groups),
                     "baseline": fill(core, "baseline", args.pending, args.pending)}
            times: dict[tuple[str, str], list[float]] = {(side, page): [] for side in sides for page in ("review", "dashboard")}
            for _ in range(args.rounds):
                for side, trainer in sides.items():
                    t = time.perf_counter()
                    shown = await core.review.next(trainer)
                    times[(side, "review")].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    rows = await core.dashboard.pending(trainer)
                    times[(side, "dashboard")].append(time.perf_counter() - t)
                    assert shown.review is not None and len(rows) == 200
                    want = args.pending // args.groups if side == "conflicts" else 1
                    assert len(shown.review.proposals) == want and len(rows[0].conflicts) == want - 1
        finally:
            await core.close()
    print(f"{args.pending} pending corrections; conflicts: {args.groups} questions × {args.pending // args.groups} "
          f"proposals; baseline: {args.pending} questions; {args.rounds} rounds, interleaved")
    for page in ("review", "dashboard"):
        for side in sides:
            t = [x * 1000 for x in times[(side, page)]]
            print(f"  {page:>9} {side:>9}: p50 {statistics.median(t):6.1f} ms, p95 {p(t, 0.95):6.1f} ms")
        ratios = [a / b for a, b in zip(times[("conflicts", page)], times[("baseline", page)], strict=True)]
        print(f"  {page:>9} conflicts / baseline: median {statistics.median(ratios):.2f} "
              f"(spread {min(ratios):.2f}-{max(ratios):.2f}); target p95 ≤ 100 ms")


if __name__ == "__main__":
    asyncio.run(main())

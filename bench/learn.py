"""Does the bot learn? Train the default from-scratch model on 500 generated Q&A pairs
through the real path (``train`` → queue → worker → model version), then ask it every
question; then answer the same questions from corrections alone, with no training.
About a tenth of the pairs are the dataset's held-out split (never trained on): exact match
is measured on the trained pairs, and the held-out questions are scored (exact match, chrF,
loss) before training — an untrained model of the same shape — and after.

Targets: exact match ≥ 95 % after training, wall time ≤ 5 minutes on this machine;
answers from corrections < 1 s each. The baseline is the untrained bot (no answers).

    .venv/bin/python bench/learn.py [--pairs 500] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from trainerbot.config import Settings
from trainerbot.core import Attachment, Caller, CoreService
from trainerbot.datasets.records import Example
from trainerbot.datasets.sample import generate
from trainerbot.evaluation import heldout
from trainerbot.evaluation.run import score_cases
from trainerbot.evaluation.scores import Summary
from trainerbot.model.local import LocalModel
from trainerbot.store.tables import ModelVersion
from trainerbot.training.worker import serve


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=None, help="override the recipe default")
    parser.add_argument("--lr", type=float, default=None, help="override the recipe default")
    args = parser.parse_args()
    pairs = generate(args.pairs, seed=1)
    data = "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in pairs).encode()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), model="scratch", torch_threads=args.threads, start_worker=False,
                            user_rate_per_minute=10_000, train_epochs=args.epochs, learning_rate=args.lr)
        core = CoreService.open(settings)
        trainer = Caller(guild_id="bench", user_id="t", roles=frozenset({"trainer"}))

        start = time.perf_counter()
        reply = await core.training.train(trainer, "facts", "positive", Attachment("facts.jsonl", "application/jsonl", data))
        await asyncio.to_thread(serve, settings, once=True)
        train_wall = time.perf_counter() - start
        job = await core.training.job(trainer, reply.data["job_id"])
        with core.store.read() as s:
            version = s.scalars(select(ModelVersion)).one()
        model = LocalModel(settings.resolved_data_dir / version.path, threads=args.threads)
        trained, held = heldout.split(
            [Example(e.prompt, e.response, extra={"source": "file"}) for e in pairs], settings.heldout_share
        )
        t0 = time.perf_counter()
        hits = sum(model.reply([{"role": "user", "content": e.prompt}], max_new_tokens=48) == e.response for e in trained)
        eval_s = time.perf_counter() - t0
        total_wall = train_wall + eval_s
        cases = heldout.cases(held, settings.max_test_cases)
        before = untrained_summary(Path(tmp), [e for e in pairs], cases, args.threads)
        after = score_cases(model, cases, max_new_tokens=48)[1]

        # The same questions, taught by corrections only, in a guild with no model.
        teacher = Caller(guild_id="taught", user_id="t", roles=frozenset({"trainer"}))
        for i, e in enumerate(pairs):
            rid = await core.delivery.record_exchange(teacher, e.prompt, "I don't know.")
            await core.delivery.bind_reply(teacher, rid, f"m{i}")
            await core.feedback.correct(teacher, f"m{i}", e.response)
        latencies, taught_hits = [], 0
        for e in pairs:
            t = time.perf_counter()
            answer = await core.chat.reply(teacher, e.prompt)
            latencies.append(time.perf_counter() - t)
            taught_hits += answer.content == e.response
        untrained = await core.chat.reply(Caller(guild_id="empty", user_id="u"), pairs[0].prompt)
        core.store.close()

    print(
        f"pairs: {len(pairs)}; job: {job.data['status']}, {version.metrics.get('steps')} steps, final loss "
        f"{version.metrics.get('final_loss'):.4f}"
    )
    curve = job.data["losses"]
    marks = [curve[round(i * (len(curve) - 1) / 8)] for i in range(9)]
    print("loss curve: " + ", ".join(f"{step}: {loss:.3f}" for step, loss in marks))
    print(f"baseline (untrained bot): 0/{len(pairs)} answered ({untrained.data['source']})")
    print(f"after training: exact match {hits}/{len(trained)} = {hits / len(trained):.1%} of the trained pairs  (target ≥ 95 %)")
    print(f"held-out ({len(cases)} questions never trained on): before training {before.line()}")
    print(
        f"                                        after training  {after.line()}  "
        f"(the job's own figure: chrF {version.metrics['heldout']['chrf']:.1f})"
    )
    print(f"wall time: training {train_wall:.0f} s + answering all {eval_s:.0f} s = {total_wall:.0f} s  (target ≤ 300 s)")
    print(
        f"from corrections, no training: exact match {taught_hits}/{len(pairs)} = {taught_hits / len(pairs):.1%}; "
        f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms  (target < 1 s each)"
    )


def untrained_summary(tmp: Path, pairs: list[Example], cases: list, threads: int) -> Summary:  # type: ignore[type-arg]
    """The held-out scores of a model of the default shape that has not trained yet."""
    from trainerbot.model.build import ModelShape, new_model, train_tokenizer
    from trainerbot.training.runner import save_model

    tok = train_tokenizer([t for e in pairs for t in (e.prompt, e.response)], ModelShape().vocab_size)
    folder = tmp / "untrained"
    save_model(new_model(tok, ModelShape()), tok, folder, {"untrained": True})
    return score_cases(LocalModel(folder, threads=threads), cases, max_new_tokens=48)[1]


if __name__ == "__main__":
    asyncio.run(main())

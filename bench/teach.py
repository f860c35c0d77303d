"""Teaching the shipped pretrained model (SmolLM2-135M-Instruct) through the real path:
invented facts uploaded with ``train`` → queue → worker (LoRA SFT with rehearsal) → a model
version whose adapter chat serves.

Measured, on the same facts:
- rephrasings before training: each fact asked in other words, answered through chat with
  the taught facts in the model's context (the dataset answers are taught facts at once);
- exact recall after training: the trained questions asked of the new version with no facts
  in its context (what the adapter learned), exact match after normalising;
- rephrasings after training: the new version with no facts in context, and through chat;
- keeping what it knew: the 40 shipped general questions, base model vs the new version;
- the training time (the job's own) and the wall time of the whole job (rehearsal answers,
  held-out and general checks included).

Targets (issue 14): ≥ 90 % exact recall with ≤ 3 min of training for 100 facts; general
score drop ≤ 5 points; rephrasings ≥ 80 % through context, ≥ 90 % after training.
The baseline is the same base model before teaching, measured in the same run.

    .venv/bin/python bench/teach.py [--facts 100] [--epochs E] [--lr LR] [--batch B] [--sample N] [--context-only]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from trainerbot.config import Settings
from trainerbot.core import Attachment, Caller, CoreService
from trainerbot.datasets.records import Example
from trainerbot.datasets.sample import generate, rephrase
from trainerbot.evaluation import general_questions, heldout
from trainerbot.evaluation.scores import exact_match
from trainerbot.model.local import LocalModel, Weights
from trainerbot.model.pretrained import prepare_base
from trainerbot.store.tables import ModelVersion


async def run_worker(settings: Settings) -> None:
    """The queued job, trained as the product trains it: ``trainerbot worker`` in a process of
    its own, torch on its main thread. (In a thread of this process, beside the torch this
    bench runs on its main thread, LoRA steps ran 1.2–1.45x slower: two OpenMP thread teams on
    2 cores, and libgomp stops spinning its threads between operations.)"""
    env = dict(os.environ, TRAINERBOT_DATA_DIR=str(settings.resolved_data_dir), TRAINERBOT_MODEL=settings.model)
    for name in ("torch_threads", "train_epochs", "learning_rate", "train_batch_size"):
        if getattr(settings, name) is not None:
            env[f"TRAINERBOT_{name.upper()}"] = str(getattr(settings, name))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "trainerbot", "worker", "--once", env=env,
                                                cwd=settings.resolved_data_dir,  # no stray .env read
                                                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"the worker failed ({proc.returncode}):\n{out.decode(errors='replace')[-3000:]}")


def pct(n: int, d: int) -> str:
    return f"{n}/{d} = {100 * n / d:.1f} %" if d else "0/0"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--facts", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--data", type=Path, default=None, help="a data folder to reuse (the prepared base stays)")
    parser.add_argument("--sample", type=int, default=None,
                        help="ask only this many of the trained facts, spread evenly (the training uses them all)")
    parser.add_argument("--context-only", action="store_true", help="stop after the rephrasings through context (no training)")
    args = parser.parse_args()
    facts = [e for e in generate(args.facts * 2, seed=11) if rephrase(e) is not None][: args.facts]
    upload = "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in facts).encode()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data or Path(tmp)
        t0 = time.perf_counter()
        base_dir = prepare_base(data_dir, progress=print)
        print(f"base model prepared in {time.perf_counter() - t0:.1f} s (0 when already prepared)")
        settings = Settings(_env_file=None, data_dir=data_dir, model="smollm2", torch_threads=args.threads,  # type: ignore[call-arg]
                            start_worker=False, user_rate_per_minute=10_000, train_epochs=args.epochs,
                            learning_rate=args.lr, train_batch_size=args.batch)
        guild = f"bench-{int(time.time())}"
        core = CoreService.open(settings)
        trainer = Caller(guild_id=guild, user_id="t", roles=frozenset({"trainer"}))
        reply = await core.training.train(trainer, "facts", "positive", Attachment("facts.jsonl", "application/jsonl", upload))
        trained, held = heldout.split(
            [Example(e.prompt, e.response, extra={"source": "file"}) for e in facts], settings.heldout_share
        )
        asked = trained
        if args.sample and args.sample < len(trained):
            asked = [trained[i * len(trained) // args.sample] for i in range(args.sample)]

        async def rephrased_through_chat(examples: list[Example], *, fresh: str = "") -> int:
            """Right answers to the rephrasings, asked in one channel (each after the one before),
            or with ``fresh``, each in a channel of its own (no history)."""
            right = 0
            for i, e in enumerate(examples):
                question, key = rephrase(e)  # type: ignore[misc]  # every fact here has one
                who = dataclasses.replace(trainer, channel_id=f"{fresh}-{i}") if fresh else trainer
                answer = await core.chat.reply(who, question)
                right += key.casefold() in answer.content.casefold()
            return right

        base = LocalModel(base_dir, weights=Weights(base_dir), threads=args.threads)
        t0 = time.perf_counter()
        context_before = await rephrased_through_chat(asked)
        context_s = time.perf_counter() - t0
        context_fresh = await rephrased_through_chat(asked, fresh="before")
        context_line = (
            f"rephrasings before training, facts in context: {pct(context_before, len(asked))} in one channel, "
            f"{pct(context_fresh, len(asked))} each in a fresh one  (target ≥ 80 %; {context_s / len(asked):.2f} s per answer)"
        )
        if args.context_only:
            # Its job is not trained here: cancel it, or the next full run's worker (which takes
            # the oldest queued job) would train this one first.
            await core.training.cancel(trainer, reply.job.job_id)  # type: ignore[union-attr]
            core.store.close()
            print(f"facts: {len(facts)} ({len(trained)} trained, {len(held)} held out)")
            print(context_line)
            return
        general_before = general_questions.score(base)[0]

        t0 = time.perf_counter()
        await run_worker(settings)
        job_wall = time.perf_counter() - t0
        job = await core.training.job(trainer, reply.data["job_id"])
        with core.store.read() as s:
            version = s.scalars(select(ModelVersion).where(ModelVersion.job_id == reply.data["job_id"])).one()
        model = LocalModel(settings.resolved_data_dir / version.path, weights=base.weights, threads=args.threads)
        exact = sum(
            exact_match(model.reply([{"role": "user", "content": e.prompt}], max_new_tokens=48), e.response) for e in asked
        )
        no_context = 0
        for e in asked:
            question, key = rephrase(e)  # type: ignore[misc]
            no_context += key.casefold() in model.reply([{"role": "user", "content": question}], max_new_tokens=48).casefold()
        through_chat = await rephrased_through_chat(asked)
        through_fresh = await rephrased_through_chat(asked, fresh="after")
        general_after = float(version.metrics.get("general", general_questions.score(model)[0]))
        # Read while the data folder still exists (a temporary one is gone after this block).
        adapter_mib = sum(f.stat().st_size for f in (settings.resolved_data_dir / version.path).iterdir()) / 2**20
        core.store.close()

    m = version.metrics
    print(
        f"facts: {len(facts)} ({len(trained)} trained, {len(held)} held out); job {job.data['status']}: "
        f"{m.get('steps')} steps, training {m.get('seconds')} s, whole job {job_wall:.0f} s; final loss {m.get('final_loss'):.4f}"
    )
    print(
        f"settings: epochs {args.epochs or 'default'}, lr {args.lr or 'default'}, batch {args.batch or 'default'}; "
        f"adapter {adapter_mib:.1f} MiB"
    )
    print(context_line)
    print(f"exact recall after training, no facts in context: {pct(exact, len(asked))}  (target ≥ 90 %)")
    print(
        f"rephrasings after training: no context {pct(no_context, len(asked))}; "
        f"through chat (context too) {pct(through_chat, len(asked))} in one channel, {pct(through_fresh, len(asked))} "
        f"each in a fresh one  (target ≥ 90 %)"
    )
    print(
        f"general questions: base {general_before:.1f} % → taught {general_after:.1f} %  "
        f"(drop {general_before - general_after:+.1f} points; target ≤ 5)"
    )
    print(f"promoted: {m.get('promoted')}; job message: {job.content.splitlines()[0][:200]}")


if __name__ == "__main__":
    asyncio.run(main())

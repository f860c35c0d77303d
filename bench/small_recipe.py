"""A small job's recipe: what 10 taught facts do to the shipped model, per recipe variant,
seed after seed (the variants interleaved within each seed).

For each seed: 10 invented facts (8 trained, as a job holds 2 out), the product's rehearsal
mixed in, LoRA SFT through the product's trainer (bf16 as the product trains), then the
taught model scored under torch on the 40 shipped general questions (against the untaught
base, scored once at the start) and on exact recall of the 8 trained facts (no facts in context). The gate
a version passes is at most 5 points below the base.

Variants (``--variants``): ``before`` is the recipe before issue 31 (warm-up over up to 30
steps whatever the job's length, 0.75 rehearsal answers per fact with half shaped like the
facts); ``now`` is the product's. Others as JSON, e.g. ``'e6={"epochs": 6}'``, with keys
``epochs``, ``lr``, ``floor`` (rehearsal.FLOOR), ``warmup_share``.

    .venv/bin/python bench/small_recipe.py [--seeds 0,1,2] [--show] [name=json ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainerbot.datasets.sample import generate
from trainerbot.evaluation import general_questions
from trainerbot.evaluation.run import replies
from trainerbot.evaluation.scores import exact_match
from trainerbot.model.local import LocalModel, Weights
from trainerbot.model.pretrained import base_dir, prepare_base
from trainerbot.model.prompt import SYSTEM
from trainerbot.training import rehearsal, runner, sft
from trainerbot.training.common import JobCallback, TrainParams
from trainerbot.training.sft_config import SftConfig

PRESETS = {"before": {"floor": 0, "warmup_share": 1.0}, "now": {}}


def one(base: Path, data: Path, seed: int, knobs: dict[str, float], show: bool) -> tuple[float, int, float, int]:
    """(general %, facts recalled of 8, training seconds, steps) for one variant and seed."""
    facts = generate(10, seed=40 + seed)
    model, tok = runner._pretrained(base)
    weights = Weights.sharing(model, tok, base)
    pool = rehearsal.answers(LocalModel(base, weights=weights, require_done=False, threads=2), data, base)
    floor = rehearsal.FLOOR
    rehearsal.FLOOR = int(knobs.get("floor", floor))
    try:
        mixed = rehearsal.mix(facts[:8], pool)
    finally:
        rehearsal.FLOOR = floor
    mixed = [dataclasses.replace(e, system=SYSTEM) for e in mixed]  # as the runner teaches the shipped model
    hyper = SftConfig().defaults["lora"]
    params = TrainParams(epochs=float(knobs.get("epochs", hyper.epochs)),
                         learning_rate=float(knobs.get("lr", hyper.learning_rate)),
                         batch_size=hyper.batch_size, lora=True, bf16=True, seed=seed,
                         warmup_share=float(knobs.get("warmup_share", TrainParams.warmup_share)))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        trained, result = sft.train(model, tok, mixed, params, JobCallback(lambda _p: None, lambda: False), out,
                                    runner.lora_config(model.config))
    seconds = time.perf_counter() - start
    taught = LocalModel.from_trained(weights, trained, base, threads=2)
    score, rows = general_questions.score(taught, limit=40)
    if show:
        untaught = LocalModel.from_trained(weights, trained, base, threads=2)
        untaught.adapter = None
        for before, after in zip(general_questions.score(untaught, limit=40)[1], rows, strict=True):
            if before["right"] != after["right"]:
                print(f"    {'lost' if before['right'] else 'won '} {after['prompt']!r}: {str(after['reply'])[:70]!r}")
    answers = replies(taught, [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": f.prompt}] for f in facts[:8]],
                      max_new_tokens=48)
    recalled = sum(exact_match(a, f.response) for a, f in zip(answers, facts[:8], strict=True))
    return score, recalled, seconds, result.steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--show", action="store_true", help="print the general questions each variant lost or won")
    parser.add_argument("variants", nargs="*", default=["before", "now"])
    args = parser.parse_args()
    variants = {}
    for v in args.variants:
        name, _, text = v.partition("=")
        variants[name] = {**PRESETS.get(name, {}), **(json.loads(text) if text else {})}
    torch.set_num_threads(2)
    data = Path(tempfile.mkdtemp(prefix="small-recipe-"))
    prepare_base(data)
    base = base_dir(data)
    before = general_questions.score(LocalModel(base, threads=2), limit=40)[0]
    print(f"the untaught base: general {before:.1f} %", flush=True)
    seen: dict[str, list[tuple[float, int, float, int]]] = {name: [] for name in variants}
    for seed in (int(s) for s in args.seeds.split(",")):
        for name, knobs in variants.items():
            got = one(base, data, seed, knobs, args.show)
            seen[name].append(got)
            print(f"seed {seed} {name:>8}: general {got[0]:5.1f} %, recall {got[1]}/8, "
                  f"training {got[2]:5.1f} s for {got[3]} steps", flush=True)
    print(f"10 facts (8 trained), 40 general questions (the untaught base: {before:.1f} %; the gate: at most 5 points lower)")
    for name, rows in seen.items():
        print(f"{name:>8}: general mean {mean(r[0] for r in rows):5.1f} % (per seed {', '.join(f'{r[0]:g}' for r in rows)}), "
              f"recall {sum(r[1] for r in rows)}/{8 * len(rows)}, training {mean(r[2] for r in rows):.1f} s mean "
              f"({rows[0][3]} steps), passing the gate {sum(r[0] >= before - 5 for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()

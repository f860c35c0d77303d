"""A job's recipe: what taught facts do to the shipped model, per recipe variant, seed after
seed (the variants interleaved within each seed).

For each seed: 10 invented facts (8 trained, as a job holds 2 out; other facts for each
seed), or with ``--facts N`` the teach bench's N facts (``bench/teach.py``; the held-out split
a job makes, the same facts for every seed, the seed moving the training only). The
product's rehearsal is mixed in, LoRA SFT runs through the product's trainer (bf16 as the
product trains), then the taught model is scored under torch on the 40 shipped general
questions (against the untaught base, scored once at the start), on exact recall of the
trained facts and on the trained facts asked in other words (``--facts`` only), with no facts
in context. The gate a version passes is at most 5 points below the base.

Variants (``--variants``): ``before`` is the recipe before issue 31 (warm-up over up to 30
steps whatever the job's length, 0.75 rehearsal answers per fact with half shaped like the
facts, whole rehearsal answers); ``now`` is the product's. Others as JSON, e.g.
``'e6={"epochs": 6}'``, with keys ``epochs``, ``lr``, ``batch``, ``floor`` (rehearsal.FLOOR),
``warmup_share``, ``trained_tokens`` (rehearsal.TRAINED_TOKENS; 10000: whole answers), ``compile``
(``auto`` as the product, ``on``, ``off``; the kernels kept in the bench's data folder unless
``TORCHINDUCTOR_CACHE_DIR`` names a cache already warm), ``share_prefix`` (``false``: every row
runs its own copy of the system instruction, as before ``sft.shared_prefix``), ``fuse_projections``
(``false``: each projection its own matmuls, as before ``fused.fused_projections``), ``pack_frozen``
(``false``: the frozen weights multiplied as stored, as before ``packed.packed_weights``).

    .venv/bin/python bench/small_recipe.py [--seeds 0,1,2] [--facts N] [--show] [name=json ...]
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

from bench.scratch import scratch
from trainerbot.datasets.records import Example
from trainerbot.datasets.sample import generate, rephrase
from trainerbot.evaluation import general_questions, heldout
from trainerbot.evaluation.run import replies
from trainerbot.evaluation.scores import exact_match
from trainerbot.model.local import LocalModel, Weights
from trainerbot.model.pretrained import base_dir, prepare_base
from trainerbot.model.prompt import SYSTEM
from trainerbot.training import rehearsal, runner, sft
from trainerbot.training.common import JobCallback, TrainParams
from trainerbot.training.sft_config import SftConfig

HELDOUT_SHARE = 0.1  # the default TRAINERBOT_HELDOUT_SHARE
PRESETS = {"before": {"batch": 4, "lr": 2e-3,
                      "floor": 0, "warmup_share": 1.0, "trained_tokens": 10_000, "compile": "off", "share_prefix": False,
                      "fuse_projections": False},
           "now": {}}


def facts_for(seed: int, n: int | None, take: int = 8) -> list[Example]:
    """The facts a seed teaches: 10 of its own (8 trained, as a job holds 2 out; with ``take``
    fewer, that many from the seed's own place in the facts' 4 templates: capital, river,
    founder, export), or the teach bench's ``n`` (those a job trains after its held-out split)."""
    if n is None:
        facts = generate(10, seed=40 + seed)[:8]
        return facts if take >= len(facts) else facts[seed % 4:][:take]
    facts = [e for e in generate(n * 2, seed=11) if rephrase(e) is not None][:n]
    return heldout.split([Example(e.prompt, e.response, extra={"source": "file"}) for e in facts], HELDOUT_SHARE)[0]


def one(base: Path, data: Path, seed: int, knobs: dict[str, float], show: bool, n: int | None, take: int = 8) -> Result:
    """General %, facts recalled, rephrasings answered, training seconds and steps for one variant and seed."""
    taught_facts = facts_for(seed, n, take)
    model, tok = runner._pretrained(base)
    weights = Weights.sharing(model, tok, base)
    saved = rehearsal.FLOOR, rehearsal.TRAINED_TOKENS
    rehearsal.FLOOR = int(knobs.get("floor", rehearsal.FLOOR))
    rehearsal.TRAINED_TOKENS = int(knobs.get("trained_tokens", rehearsal.TRAINED_TOKENS))
    try:
        pool = rehearsal.answers(LocalModel(base, weights=weights, require_done=False, threads=2), data, base)
        mixed = rehearsal.mix(taught_facts, pool)
    finally:
        rehearsal.FLOOR, rehearsal.TRAINED_TOKENS = saved
    mixed = [dataclasses.replace(e, system=SYSTEM) for e in mixed]  # as the runner teaches the shipped model
    hyper = SftConfig().hyper("lora", len(mixed))  # the product's for a job this size
    params = TrainParams(epochs=float(knobs.get("epochs", hyper.epochs)),
                         learning_rate=float(knobs.get("lr", hyper.learning_rate)),
                         batch_size=int(knobs.get("batch", hyper.batch_size)), lora=True, bf16=True, seed=seed,
                         warmup_share=float(knobs.get("warmup_share", TrainParams.warmup_share)),
                         compile=knobs.get("compile", "auto"), compile_cache=str(data / "models" / "compiled"),
                         share_prefix=bool(knobs.get("share_prefix", True)),
                         fuse_projections=bool(knobs.get("fuse_projections", True)),
                         pack_frozen=bool(knobs.get("pack_frozen", True)))
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

    def asked(questions: list[str]) -> list[str]:
        return replies(taught, [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in questions],
                       max_new_tokens=48)
    recalled = sum(exact_match(a, f.response) for a, f in zip(asked([f.prompt for f in taught_facts]), taught_facts, strict=True))
    rephrased = None
    if n is not None:
        other_words = [pair for pair in map(rephrase, taught_facts) if pair is not None]  # every fact here has one
        answers = asked([q for q, _ in other_words])
        rephrased = sum(key.casefold() in a.casefold() for a, (_, key) in zip(answers, other_words, strict=True))
    return Result(score, recalled, rephrased, len(taught_facts), seconds, result.steps, bool(result.metrics.get("compiled")))


@dataclasses.dataclass(frozen=True)
class Result:
    general: float
    recalled: int
    rephrased: int | None  # the trained facts asked in other words (``--facts``)
    facts: int
    seconds: float
    steps: int
    compiled: bool


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--facts", type=int, default=None, help="the teach bench's facts, this many (default: 10 per seed)")
    parser.add_argument("--take", type=int, default=8, help="without --facts: train only this many of a seed's facts "
                        "(1: a single correction, as `train feedback` after one `correct`)")
    parser.add_argument("--show", action="store_true", help="print the general questions each variant lost or won")
    parser.add_argument("variants", nargs="*", default=["before", "now"])
    args = parser.parse_args()
    variants = {}
    for v in args.variants:
        name, _, text = v.partition("=")
        variants[name] = {**PRESETS.get(name, {}), **(json.loads(text) if text else {})}
    torch.set_num_threads(2)
    data = scratch("small-recipe")
    prepare_base(data)
    base = base_dir(data)
    before = general_questions.score(LocalModel(base, threads=2), limit=40)[0]
    print(f"the untaught base: general {before:.1f} %", flush=True)
    seen: dict[str, list[Result]] = {name: [] for name in variants}
    for seed in (int(s) for s in args.seeds.split(",")):
        for name, knobs in variants.items():
            got = one(base, data, seed, knobs, args.show, args.facts, args.take)
            seen[name].append(got)
            other = f", other words {got.rephrased}/{got.facts}" if got.rephrased is not None else ""
            print(f"seed {seed} {name:>8}: general {got.general:5.1f} %, recall {got.recalled}/{got.facts}{other}, "
                  f"training {got.seconds:5.1f} s for {got.steps} steps" + (", compiled" if got.compiled else ""), flush=True)
    facts = seen[next(iter(seen))][0].facts
    taught = f"{args.facts} facts" if args.facts else (f"{facts} of each seed's facts" if args.take < 8 else "10 facts")
    print(f"{taught} ({facts} trained), 40 general questions (the untaught base: {before:.1f} %; "
          "the gate: at most 5 points lower)")
    for name, rows in seen.items():
        other = (f", other words {sum(r.rephrased or 0 for r in rows)}/{facts * len(rows)}"
                 if rows[0].rephrased is not None else "")
        per_seed = ", ".join(f"{r.general:g}" for r in rows)
        print(f"{name:>8}: general mean {mean(r.general for r in rows):5.1f} % (per seed {per_seed}), "
              f"recall {sum(r.recalled for r in rows)}/{facts * len(rows)}{other}, "
              f"training {mean(r.seconds for r in rows):.1f} s mean "
              f"({rows[0].steps} steps), passing the gate {sum(r.general >= before - 5 for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()

"""KTO and DPO under LoRA on the shipped model: float32 against bfloat16 mixed precision
(autocast, the frozen projections stored in bf16, eager attention: what SFT does), and the
reference's log-probabilities computed once before training against in every step, through
the product's own trainers (``kto.train``, ``dpo.train``), the sides interleaved round by
round.

The data: corrections of invented facts (``datasets.sample.generate``), each a right answer
(chosen, 👍) and a wrong one shaped like it (rejected, 👎: "The capital of Savarmi is Gaga."
against "… is Varel."), under the bot's
system instruction as the runner teaches the shipped model. Each side trains the same rows
with the recipe's LoRA defaults (``preference_defaults``) and the same seed.

Reported per recipe and side: the training time (the trainer's whole run), rows/s, and what
the job taught, scored the same way for both sides: the trained adapter is put on the float32
base (as the bot serves it) and each pair's mean log-probability per answer token is
compared, right against wrong. "Margin" is right − wrong in nats/token (the untaught base's
margin is printed too); "preferred" counts the pairs whose right answer is the likelier.

    .venv/bin/python bench/preference_precision.py [--pairs 40] [--rounds 3] [--recipes kto,dpo] [--sides ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

from bench.kto_balance import logprob
from bench.scratch import scratch
from trainerbot.datasets.records import Example
from trainerbot.datasets.sample import generate
from trainerbot.model.pretrained import base_dir, prepare_base
from trainerbot.model.prompt import SYSTEM
from trainerbot.training import dpo, kto, recipes, runner
from trainerbot.training.common import JobCallback, TrainParams
from trainerbot.training.recipe_config import preference_defaults

TRAINERS = {"kto": kto.train, "dpo": dpo.train}


def corrections(n: int) -> list[Example]:
    """``n`` corrections: each fact's answer, and as the wrong reply the answer the same
    question shape has for another subject, moved to this one ("The capital of Savarmi is
    Gaga." where Gaga is Bengasa's): the wrong reply a member corrects."""
    facts = generate(n + 4, seed=21)  # four question shapes, in turn
    out = []
    for fact, other in zip(facts[:n], facts[4:], strict=False):
        (mine, theirs), = [(a, b) for a, b in zip(fact.prompt.split(), other.prompt.split(), strict=True) if a != b]
        wrong = other.response.replace(theirs.rstrip("?"), mine.rstrip("?"))
        out.append(Example(fact.prompt, fact.response, rejected=wrong, system=SYSTEM))
    return out


def scored(model: torch.nn.Module, tok: object, examples: list[Example]) -> tuple[float, int]:
    """(mean margin right − wrong in nats/token, pairs whose right answer is the likelier)."""
    right = [logprob(model, tok, ex, ex.response) for ex in examples]
    wrong = [logprob(model, tok, ex, str(ex.rejected)) for ex in examples]
    margins = [r - w for r, w in zip(right, wrong, strict=True)]
    return statistics.mean(margins), sum(m > 0 for m in margins)


# Each side's TrainParams fields. "bf16" is the product's way under LoRA; "float32" is the
# baseline (TRAINERBOT_TRAIN_PRECISION=fp32); "per-step reference" is bf16 with the reference's
# log-probabilities computed in every step (TRL's default) instead of once before training;
# "bf16 unfused" is bf16 with each projection run on its own (before ``fused.fused_projections``);
# "bf16 unpacked" is bf16 with the frozen weights multiplied as stored (before ``packed.packed_weights``;
# the other bf16 sides pack them where the recipe does: ``RecipeConfig.pack_frozen``).
SIDES: dict[str, dict[str, bool]] = {
    "float32": {"bf16": False},
    "bf16": {"bf16": True},
    "per-step reference": {"bf16": True, "precompute_reference": False},
    "bf16 unfused": {"bf16": True, "fuse_projections": False},
    "bf16 unpacked": {"bf16": True, "pack_frozen": False},
}


def one(base: Path, recipe: str, examples: list[Example], knobs: dict[str, bool], seed: int) -> tuple[float, int, float, int]:
    """(seconds, rows, margin, preferred) for one job of ``recipe`` with one side's ``knobs``."""
    model, tok = runner._pretrained(base)
    hyper = preference_defaults()["lora"]
    params = TrainParams(epochs=hyper.epochs, learning_rate=hyper.learning_rate, batch_size=hyper.batch_size,
                         lora=True, seed=seed, **{"pack_frozen": recipes.recipe(recipe).pack_frozen, **knobs})  # as the product
    peft_config = runner.lora_config(model.config)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        trained, result = TRAINERS[recipe](model, tok, examples, params, JobCallback(lambda _p: None, lambda: False), out,
                                           peft_config)
        seconds = time.perf_counter() - start
    rows = len(kto.rows(examples) if recipe == "kto" else dpo.rows(examples))
    # The adapter on the float32 base, as the bot serves it (the bf16 sides trained over a copy
    # whose frozen projections were bf16).
    served = get_peft_model(runner._pretrained(base)[0], runner.lora_config(model.config))
    set_peft_model_state_dict(served, get_peft_model_state_dict(trained))
    margin, preferred = scored(served.eval(), tok, examples)
    return seconds, rows * int(params.epochs), margin, preferred


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recipes", default="kto,dpo")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"of {', '.join(SIDES)}; the first is the baseline")
    args = parser.parse_args()
    sides = args.sides.split(",")
    torch.set_num_threads(2)
    data = scratch("preference-precision")
    prepare_base(data)
    base = base_dir(data)
    examples = corrections(args.pairs)
    model, tok = runner._pretrained(base)
    untaught = scored(model.eval(), tok, examples)
    print(f"{len(examples)} corrections; the untaught base: margin {untaught[0]:+.3f} nats/token, "
          f"right preferred in {untaught[1]}/{len(examples)}", flush=True)
    seen: dict[tuple[str, str], list[tuple[float, int, float, int]]] = {}
    for r in range(args.rounds):
        for recipe in args.recipes.split(","):
            for side in sides:
                got = one(base, recipe, examples, SIDES[side], r)
                seen.setdefault((recipe, side), []).append(got)
                print(f"round {r + 1} {recipe} {side:>18}: {got[0]:6.1f} s, {got[1] / got[0]:5.2f} rows/s; "
                      f"margin {got[2]:+.3f} nats/token, right preferred {got[3]}/{len(examples)}", flush=True)
    n = len(examples) * args.rounds
    for recipe in args.recipes.split(","):
        baseline = seen[(recipe, sides[0])]
        for side in sides:
            runs = seen[(recipe, side)]
            ratios = sorted(b[0] / a[0] for a, b in zip(runs, baseline, strict=True))
            print(f"{recipe} {side:>18}: {statistics.median(a[0] for a in runs):6.1f} s (median); speed against {sides[0]} "
                  f"median {statistics.median(ratios):.2f} (spread {ratios[0]:.2f}-{ratios[-1]:.2f}); margin "
                  f"{statistics.mean(a[2] for a in runs):+.3f} nats/token (untaught {untaught[0]:+.3f}); "
                  f"right preferred {sum(a[3] for a in runs)}/{n}")


if __name__ == "__main__":
    main()

"""LoRA training steps with PyTorch's fused attention ("sdpa") against the plain one ("eager").

The rows are the 100-fact bench's (``bench/teach.py``): 84 invented facts plus the rehearsal
answers a job mixes in, under the bot's system instruction, tokenized by the product's own
SFT trainer, in batches of 4 like lengths (as ``group_by_length``). Two copies of the shipped
model get the product's adapter (``runner.lora_config``); one attends with ``sdpa``, the
other ``eager``. Each step is the product's loss (``sft.answer_loss``), backward and AdamW,
under bfloat16 autocast (``--precision bf16``, the product's default where the CPU has it)
or in float32.

The CPU is shared and noisy: the sides run in alternating rounds of ``--steps`` batches (the
order flipped each round); the figure is the median per-round ratio with its spread.

    .venv/bin/python bench/lora_attention.py [--precision bf16|fp32] [--rounds 6] [--steps 6] [--data DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.scratch import scratch  # noqa: E402
from bench.train_throughput import collate  # noqa: E402


def batches(base: Path, data_dir: Path, size: int) -> list[dict[str, torch.Tensor]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainerbot.datasets.records import Example
    from trainerbot.datasets.sample import generate, rephrase
    from trainerbot.evaluation import heldout
    from trainerbot.model.local import LocalModel
    from trainerbot.model.prompt import SYSTEM
    from trainerbot.training import rehearsal, sft
    from trainerbot.training.common import JobCallback, TrainParams

    facts = [e for e in generate(200, seed=11) if rephrase(e) is not None][:100]  # as bench/teach.py
    trained, _ = heldout.split([Example(e.prompt, e.response, extra={"source": "file"}) for e in facts], 0.1)
    mixed = rehearsal.mix(trained, rehearsal.answers(LocalModel(base, threads=2), data_dir, base))
    examples = [dataclasses.replace(e, system=SYSTEM) for e in mixed]
    tok = AutoTokenizer.from_pretrained(base)
    params = TrainParams(batch_size=size, lora=True)
    prepared = sft.trainer(AutoModelForCausalLM.from_pretrained(base), tok, examples, params,
                           JobCallback(lambda _: None, lambda: False), str(scratch("lora-attention-out")))
    rows = sorted(((r["input_ids"], r["labels"]) for r in prepared.train_dataset), key=lambda r: len(r[0]))
    out = []
    for i in range(0, len(rows), size):
        ids, mask, labels = collate(rows[i : i + size], tok.pad_token_id)
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    random.Random(0).shuffle(out)
    return out


def main() -> None:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from trainerbot.model.pretrained import prepare_base
    from trainerbot.training.common import quiet_libraries
    from trainerbot.training.runner import lora_config
    from trainerbot.training.sft import answer_loss

    parser = argparse.ArgumentParser()
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=6, help="batches per side per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None, help="a data folder whose prepared base to reuse")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_libraries()
    data_dir = args.data or scratch("lora-attention")
    base = prepare_base(data_dir)
    work = batches(base, data_dir, 4)

    def side(attention: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(base, attn_implementation=attention)
        model = get_peft_model(model, lora_config(model.config))
        model.train()
        return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    sides = {name: side(name) for name in ("sdpa", "eager")}

    def step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor]) -> float:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else contextlib.nullcontext()
        with autocast:
            loss = answer_loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    first = {name: step(*sides[name], work[0]) for name in sides}  # also warms both up
    print(f"{len(work)} batches of 4, {sum(int(b['attention_mask'].sum()) for b in work)} tokens; "
          f"loss of the first batch: sdpa {first['sdpa']:.4f}, eager {first['eager']:.4f}")
    times: dict[str, list[float]] = {name: [] for name in sides}
    ratios: list[float] = []
    for r in range(args.rounds):
        chunk = [work[(1 + r * args.steps + k) % len(work)] for k in range(args.steps)]
        for name in (["sdpa", "eager"] if r % 2 == 0 else ["eager", "sdpa"]):
            start = time.perf_counter()
            for batch in chunk:
                step(*sides[name], batch)
            times[name].append(time.perf_counter() - start)
        ratios.append(times["sdpa"][-1] / times["eager"][-1])
        sdpa, eager = times["sdpa"][-1] / args.steps, times["eager"][-1] / args.steps
        print(f"round {r + 1}: sdpa {sdpa:.3f} s a step, eager {eager:.3f} s, eager faster by {ratios[-1]:.2f}x", flush=True)
    print(f"{args.precision}: sdpa {statistics.median(times['sdpa']) / args.steps:.3f} s a step (median), eager "
          f"{statistics.median(times['eager']) / args.steps:.3f} s; eager / sdpa speed: median {statistics.median(ratios):.2f}x, "
          f"spread {min(ratios):.2f}–{max(ratios):.2f}")


if __name__ == "__main__":
    main()

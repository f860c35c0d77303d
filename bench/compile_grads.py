"""How far a compiled LoRA step's gradients are from float32, against the eager bf16 step's.

The shipped model with the product's adapter (r=16 on every projection, bf16 frozen
projections, the adapter's B matrices set to small random values so that every adapter
weight gets a gradient), the product's SFT batches of the 100 sample examples at batch 8.
Per batch: the answer loss and the adapter's gradients in float32 (the same bf16-rounded
frozen weights, upcast, no autocast), under bf16 autocast eagerly, and under bf16 autocast
with the decoder layers compiled (``common.compiled_layers``); then each bf16 side's relative
gradient error against float32.

    .venv/bin/python bench/compile_grads.py [--batches 4]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.scratch import scratch
from trainerbot.datasets.sample import generate
from trainerbot.model.pretrained import base_dir, prepare_base
from trainerbot.model.prompt import SYSTEM
from trainerbot.training import runner, sft
from trainerbot.training.common import JobCallback, TrainParams, compiled_layers, training_attention


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = scratch("compile-grads")
    prepare_base(data)
    base = base_dir(data)
    model, tok = runner._pretrained(base)
    examples = [dataclasses.replace(e, system=SYSTEM) for e in generate(100, seed=1)]
    params = TrainParams(batch_size=8, learning_rate=2e-3, lora=True, bf16=True, compile="on",
                         compile_cache=str(data / "models" / "compiled"))
    callback = JobCallback(lambda _p: None, lambda: False)
    trainer = sft.trainer(model, tok, examples, params, callback, str(data / "out"), runner.lora_config(model.config))
    bf16 = trainer.model
    torch.manual_seed(0)
    for name, p in bf16.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.01)
    fp32 = copy.deepcopy(bf16)
    for p in fp32.parameters():
        p.data = p.data.float()

    def grads(model: Any, batch: dict[str, Any], compiled: bool, autocast: bool) -> tuple[float, torch.Tensor]:
        model.zero_grad()
        with training_attention(model, params), ExitStack() as stack:
            if compiled:
                stack.enter_context(compiled_layers(model, params, callback))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = sft.answer_loss(model, batch)
            loss.backward()
        return loss.item(), torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])

    def off(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).norm() / b.norm())

    eager_err, compiled_err = [], []
    for i, (_, batch) in enumerate(zip(range(args.batches), trainer.get_train_dataloader(), strict=False)):
        l32, g32 = grads(fp32, batch, False, False)
        le, ge = grads(bf16, batch, False, True)
        lc, gc = grads(bf16, batch, True, True)
        eager_err.append(off(ge, g32))
        compiled_err.append(off(gc, g32))
        print(f"batch {i}: answer loss float32 {l32:.5f}, eager bf16 {le:.5f}, compiled bf16 {lc:.5f}; gradients off float32 by "
              f"{eager_err[-1]:.4f} eager, {compiled_err[-1]:.4f} compiled; eager against compiled {off(gc, ge):.4f}", flush=True)
    print(f"mean gradient error against float32: eager bf16 {sum(eager_err) / len(eager_err):.4f}, "
          f"compiled bf16 {sum(compiled_err) / len(compiled_err):.4f}")


if __name__ == "__main__":
    main()

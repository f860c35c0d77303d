"""What ``torch.compile`` costs and gives one LoRA SFT step on the shipped model, with its
on-disk caches cold and then warm (issue 31: "torch.compile with its cache on disk, so that
only the first job on a machine pays for compiling").

Each run is one process: the product's adapter (r=16 on every projection) over frozen
projections in bf16, autocast, the loss on the answer positions only, fused AdamW, batch 4,
2 threads. It times the first round of steps (where compiling happens) and then the steady
tokens per second. ``--lengths`` gives the sequence length of each step in turn: one length
makes one graph; several, as the product's length-grouped batches have them, need
``dynamic`` or a compile per length.

Run it with a fresh ``TORCHINDUCTOR_CACHE_DIR`` for a cold cache, then again with the same
folder for a warm one, and once ``eager`` for the baseline:

    TORCHINDUCTOR_CACHE_DIR=/tmp/ic .venv/bin/python bench/compile_cache.py static --lengths 64
    TORCHINDUCTOR_CACHE_DIR=/tmp/ic .venv/bin/python bench/compile_cache.py static --lengths 64
    .venv/bin/python bench/compile_cache.py eager --lengths 64
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from peft import get_peft_model
from transformers import AutoModelForCausalLM

from bench.scratch import scratch
from trainerbot.model.pretrained import prepare_base
from trainerbot.training.common import frozen_in_bf16
from trainerbot.training.runner import lora_config

BATCH = 4  # the product's LoRA batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["eager", "static", "dynamic"])
    parser.add_argument("--lengths", default="40,48,56,64,72,88,104,120",
                        help="each step's sequence length in turn (comma-separated)")
    parser.add_argument("--steps", type=int, default=24, help="steady steps timed after the first round")
    parser.add_argument("--data", type=Path, default=None, help="a data folder holding the prepared base")
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    torch.manual_seed(0)
    torch.set_num_threads(2)
    base = prepare_base(args.data or scratch("compile-cache"))
    model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.float32, attn_implementation="eager")
    model = get_peft_model(frozen_in_bf16(model, new_adapter=True), lora_config(model.config))
    backbone, head = model.get_base_model().model, model.get_base_model().lm_head
    if args.mode != "eager":
        backbone = torch.compile(backbone, dynamic=args.mode == "dynamic")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3, fused=True)
    count = [0]

    def step() -> tuple[float, int]:
        length = lengths[count[0] % len(lengths)]
        count[0] += 1
        ids = torch.randint(0, model.config.vocab_size, (BATCH, length))
        labels = ids.clone()
        labels[:, : length // 2] = -100  # the answer: the second half
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = backbone(input_ids=ids, use_cache=False).last_hidden_state[:, :-1]
            targets = labels[:, 1:]
            chosen = targets != -100
            loss = F.cross_entropy(head(hidden[chosen]).float(), targets[chosen])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start, BATCH * length

    first = [step() for _ in lengths]  # every length once: where a new shape compiles
    steady = [step() for _ in range(args.steps)]
    print(f"{args.mode}: first round of {len(lengths)} step(s) {sum(t for t, _ in first):.1f} s "
          f"(first step {first[0][0]:.1f} s); then {sum(n for _, n in steady) / sum(t for t, _ in steady):.0f} tokens/s "
          f"over {args.steps} steps; lengths {args.lengths}", flush=True)


if __name__ == "__main__":
    main()

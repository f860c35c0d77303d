"""Training throughput: our SFT path (TRL) against a minimal hand-written PyTorch loop.

Same model (the default from-scratch shape), same data (500 generated Q&A pairs, tokenized
once by TRL), same batch size, same padding (to the longest in the batch), same optimizer,
schedule and clipping. Prints tokens/s for both, their ratio (target ≥ 0.9), and model
FLOPs utilisation against a float32 matmul peak measured in this run.

    .venv/bin/python bench/train_throughput.py [--steps 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from trainerbot.datasets.sample import generate
from trainerbot.model.build import ModelShape, new_model, train_tokenizer
from trainerbot.training import sft
from trainerbot.training.common import JobCallback, TrainParams


def matmul_peak(seconds: float = 3.0, n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start)


def flops_per_token(model: torch.nn.Module, seq_len: float) -> float:
    """6·N for the weights (forward + backward) plus the attention score and value products."""
    cfg = model.config
    n = sum(p.numel() for p in model.parameters())  # tied embeddings: the LM head's matmul is counted once here
    attention = 6 * 2 * cfg.num_hidden_layers * cfg.hidden_size * seq_len
    return 6 * n + attention


def build(examples):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    tok = train_tokenizer([t for e in examples for t in (e.prompt, e.response)], ModelShape().vocab_size)
    return new_model(tok), tok


def ours(examples, steps: int, params: TrainParams) -> tuple[float, float, int, list]:  # type: ignore[no-untyped-def]
    model, tok = build(examples)
    callback = JobCallback(lambda p: None, lambda: False, check_every=0.5)
    epochs = steps / math.ceil(len(examples) / params.batch_size)
    p = TrainParams(epochs=epochs, batch_size=params.batch_size, learning_rate=params.learning_rate, warmup_steps=params.warmup_steps,
                    logging_steps=10**9)
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from trainerbot.training.common import trl_args

    data = sft.rows(examples)
    config = SFTConfig(**{**trl_args(p, "/tmp/bench-sft", len(data)), "logging_steps": 10}, completion_only_loss=True)
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(data), processing_class=tok, callbacks=[callback])
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    tokens = int(next(h["num_tokens"] for h in reversed(trainer.state.log_history) if "num_tokens" in h))
    last_loss = next(h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h)
    return tokens / seconds, seconds, tokens, [row["input_ids"] for row in trainer.train_dataset], last_loss


def hand_loop(steps: int, params: TrainParams, examples):  # type: ignore[no-untyped-def]
    """The baseline: a plain loop over the same token IDs, batches and hyper-parameters."""
    model, tok = build(examples)
    data = sft.rows(examples)
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from trainerbot.training.common import trl_args

    # Reuse TRL's tokenization (input_ids and completion_mask) so both loops see the same tokens.
    prepared = SFTTrainer(model=model, args=SFTConfig(**trl_args(params, "/tmp/bench-hand", len(data)), completion_only_loss=True),
                          train_dataset=Dataset.from_list(data), processing_class=tok).train_dataset
    rows = [(r["input_ids"], r["labels"]) for r in prepared]
    opt = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, betas=(0.9, 0.98), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / params.warmup_steps) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    gen = torch.Generator().manual_seed(0)
    model.train()
    tokens, step = 0, 0
    losses: list[float] = []
    start = time.perf_counter()
    while step < steps:
        order = torch.randperm(len(rows), generator=gen).tolist()
        for i in range(0, len(order), params.batch_size):
            if step >= steps:
                break
            batch = [rows[j] for j in order[i:i + params.batch_size]]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            labels = torch.full((len(batch), width), -100)
            for k, (seq, lab) in enumerate(batch):
                ids[k, :len(seq)] = torch.tensor(seq)
                mask[k, :len(seq)] = 1
                labels[k, :len(seq)] = torch.tensor(lab)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            tokens += int(mask.sum())
            step += 1
            losses.append(float(loss))
    seconds = time.perf_counter() - start
    return tokens / seconds, seconds, tokens, model, sum(losses[-10:]) / len(losses[-10:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    examples = generate(500, seed=1)
    params = TrainParams(batch_size=32, learning_rate=3e-3, warmup_steps=30)
    peak = matmul_peak()
    base_rate, base_s, base_tokens, model, base_loss = hand_loop(args.steps, params, examples)
    our_rate, our_s, our_tokens, seqs, our_loss = ours(examples, args.steps, params)
    mean_len = sum(map(len, seqs)) / len(seqs)
    fpt = flops_per_token(model, mean_len)
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"model: {params_m:.2f} M parameters, mean sequence {mean_len:.1f} tokens, batch {params.batch_size}, {args.steps} steps, {args.threads} threads")
    print(f"float32 matmul peak (1024², this run): {peak / 1e9:.1f} GFLOP/s")
    print(f"hand-written loop : {base_rate:8.0f} tokens/s  ({base_tokens} tokens in {base_s:.1f} s)  MFU {base_rate * fpt / peak:.1%}  loss (last 10 steps) {base_loss:.3f}")
    print(f"trainerbot (TRL)  : {our_rate:8.0f} tokens/s  ({our_tokens} tokens in {our_s:.1f} s)  MFU {our_rate * fpt / peak:.1%}  loss (last 10 steps) {our_loss:.3f}")
    print(f"ratio ours / hand : {our_rate / base_rate:.2f}  (target ≥ 0.90)")


if __name__ == "__main__":
    main()

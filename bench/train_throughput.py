"""Training throughput: our SFT path (TRL) against a minimal hand-written PyTorch loop.

Same model, same data (generated Q&A pairs, tokenized once by TRL), same batch size, same
padding (to the longest in the batch), same optimizer, schedule and clipping.
``--model scratch``: the default from-scratch shape, 500 pairs, batch 32, full weights.
``--model pretrained``: the shipped SmolLM2-135M-Instruct with the product's LoRA adapter
(``runner.lora_config``: r=16 on every projection of the default share of the layers), 100 pairs
under the bot's system instruction, batch 4, batches of like lengths on both sides, bfloat16
mixed precision where the CPU has it (as the product, with the eager attention it trains with
then: ``common.training_attention``); the baseline is a bare PEFT loop.
The bare loop calls ``model(..., labels=)``, which projects every position through the LM
head; ours (``sft.AnswerLossTrainer``) projects only the answer positions. After each round
both sides' loss over the answers of all rows is printed, to show that they train alike.

The VM's CPU is shared and noisy, so the two sides run in short alternating rounds
(``--rounds`` of ``--steps`` each, the order flipped every round) and the figure is the
median of the per-round ratios with their spread. Prints tokens/s, the ratio (target
≥ 0.9) and model FLOPs utilisation against a matmul peak measured in this run (float32, or
bfloat16 when the sides train in bf16 mixed precision).

    .venv/bin/python bench/train_throughput.py [--model scratch|pretrained] [--rounds 6] [--steps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from trainerbot.datasets.sample import generate
from trainerbot.model.build import ModelShape, new_model, train_tokenizer
from trainerbot.training import sft
from trainerbot.training.common import JobCallback, TrainParams, training_attention


def matmul_peak(seconds: float = 3.0, n: int = 1024, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start)


def flops_per_token(model: torch.nn.Module, seq_len: float, weight_grads: bool = True, backward_share: float = 1.0) -> float:
    """6·N for the weights (forward + backward) plus the attention score and value products;
    with frozen weights (LoRA) 2·N forward plus 2·N for the activations' gradients, over the
    ``backward_share`` of the model the backward pass reaches (an adapter on the top layers only)."""
    cfg = model.config
    n = sum(p.numel() for p in model.parameters())  # tied embeddings: the LM head's matmul is counted once here
    attention = 2 * cfg.num_hidden_layers * cfg.hidden_size * seq_len
    if weight_grads:
        return 6 * n + 6 * attention
    return (2 + 2 * backward_share) * n + (2 + 4 * backward_share) * attention


BASE: list = []  # the prepared pretrained folder, once per run  # type: ignore[type-arg]


def build(examples, kind: str):  # type: ignore[no-untyped-def]
    """(model, tokenizer, LoRA config or None)."""
    torch.manual_seed(0)
    if kind == "pretrained":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from trainerbot.config import Settings
        from trainerbot.training.runner import lora_config

        model = AutoModelForCausalLM.from_pretrained(BASE[0])
        layers = Settings.model_fields["lora_layers"].default
        return model, AutoTokenizer.from_pretrained(BASE[0]), lora_config(model.config, layers)
    tok = train_tokenizer([t for e in examples for t in (e.prompt, e.response)], ModelShape().vocab_size)
    return new_model(tok), tok, None


def ours(examples, steps: int, params: TrainParams, kind: str) -> tuple[float, float, int, list]:  # type: ignore[no-untyped-def]
    model, tok, lora = build(examples, kind)
    callback = JobCallback(lambda p: None, lambda: False, check_every=0.5)
    epochs = steps / math.ceil(len(examples) / params.batch_size)
    p = TrainParams(
        epochs=epochs,
        batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        warmup_steps=params.warmup_steps,
        logging_steps=10**9,
        lora=params.lora,
        bf16=params.bf16,
    )
    trainer = sft.trainer(model, tok, examples, p, callback, "/tmp/bench-sft", lora)  # as sft.train
    trainer.args.logging_steps = min(10, steps)
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    with training_attention(trainer.model, p):  # as sft.train
        trainer.train()
    seconds = time.perf_counter() - start
    tokens = int(next(h["num_tokens"] for h in reversed(trainer.state.log_history) if "num_tokens" in h))
    last_loss = next(h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h)
    rows = [(row["input_ids"], row["labels"]) for row in trainer.train_dataset]
    return tokens / seconds, seconds, tokens, [ids for ids, _ in rows], last_loss, answer_loss(trainer.model, rows, tok)


def answer_loss(model: torch.nn.Module, rows: list, tok) -> float:  # type: ignore[no-untyped-def,type-arg]
    """The mean loss over the answer tokens of all ``rows`` (no gradients): both sides after
    their steps, on the same rows, to check that they train alike."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), 16):
            ids, mask, labels = collate(rows[i : i + 16], tok.pad_token_id)
            n = int((labels[:, 1:] != -100).sum())
            total += float(model(input_ids=ids, attention_mask=mask, labels=labels).loss) * n
            count += n
    model.train()
    return total / count


def collate(batch: list, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # type: ignore[type-arg]
    """Pad to the longest in the batch: input IDs, attention mask, labels (-100 on padding)."""
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100)
    for k, (seq, lab) in enumerate(batch):
        ids[k, : len(seq)] = torch.tensor(seq)
        mask[k, : len(seq)] = 1
        labels[k, : len(seq)] = torch.tensor(lab)
    return ids, mask, labels


def hand_loop(steps: int, params: TrainParams, examples, kind: str):  # type: ignore[no-untyped-def]
    """The baseline: a plain loop over the same token IDs, batches and hyper-parameters
    (for the pretrained model: a bare PEFT model, only the adapter trained)."""
    model, tok, lora = build(examples, kind)
    # The product's own tokenization (input IDs, labels on the answer only), so both loops see the same tokens.
    prepared = sft.trainer(model, tok, examples, params, JobCallback(lambda _: None, lambda: False), "/tmp/bench-hand")
    rows = [(r["input_ids"], r["labels"]) for r in prepared.train_dataset]
    if lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=params.learning_rate, betas=(0.9, 0.98), weight_decay=0.0)
    def warmup_cosine(s: int) -> float:  # transformers' get_cosine_schedule_with_warmup, as the Trainer's
        if s < params.warmup_steps:
            return s / max(1, params.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * (s - params.warmup_steps) / max(1, steps - params.warmup_steps)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine)
    gen = torch.Generator().manual_seed(0)
    model.train()
    tokens, step = 0, 0
    losses: list[float] = []
    start = time.perf_counter()
    with training_attention(model, params):  # the same attention as the product's (eager under bf16)
        while step < steps:
            order = torch.randperm(len(rows), generator=gen).tolist()
            if params.lora:  # the product groups like lengths under LoRA (LengthGroupedSampler): so does the baseline
                mega = 50 * params.batch_size
                order = [j for k in range(0, len(order), mega)
                         for j in sorted(order[k : k + mega], key=lambda j: -len(rows[j][0]))]
            for i in range(0, len(order), params.batch_size):
                if step >= steps:
                    break
                ids, mask, labels = collate([rows[j] for j in order[i : i + params.batch_size]], tok.pad_token_id)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=params.bf16):  # as the Trainer's bf16=True
                    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                tokens += int(mask.sum())
                step += 1
                losses.append(float(loss))
    seconds = time.perf_counter() - start
    return tokens / seconds, seconds, tokens, model, sum(losses[-10:]) / len(losses[-10:]), answer_loss(model, rows, tok)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["scratch", "pretrained"], default="scratch")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="steps per side per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.model == "pretrained":
        import dataclasses
        import tempfile
        from pathlib import Path

        from trainerbot.model.pretrained import prepare_base
        from trainerbot.model.prompt import SYSTEM

        BASE.append(prepare_base(Path(tempfile.mkdtemp())))
        examples = [dataclasses.replace(e, system=SYSTEM) for e in generate(100, seed=1)]
        from trainerbot.training.common import native_bf16

        params = TrainParams(batch_size=4, learning_rate=2e-3, warmup_steps=5, lora=True, bf16=native_bf16())
    else:
        examples = generate(500, seed=1)
        params = TrainParams(batch_size=32, learning_rate=3e-3, warmup_steps=30)
    peak = matmul_peak(dtype=torch.bfloat16 if params.bf16 else torch.float32)
    hand: list[tuple[float, float, int, float, float]] = []
    mine: list[tuple[float, float, int, float, float]] = []
    ratios: list[float] = []
    for r in range(args.rounds):
        sides = ["hand", "ours"] if r % 2 == 0 else ["ours", "hand"]
        got: dict[str, tuple] = {}  # type: ignore[type-arg]
        for side in sides:
            if side == "hand":
                rate, secs, toks, model, loss, after = hand_loop(args.steps, params, examples, args.model)
                got[side] = (rate, secs, toks, loss, after)
            else:
                rate, secs, toks, seqs, loss, after = ours(examples, args.steps, params, args.model)
                got[side] = (rate, secs, toks, loss, after)
        hand.append(got["hand"])
        mine.append(got["ours"])
        ratios.append(got["ours"][0] / got["hand"][0])
        print(
            f"round {r + 1}: hand {got['hand'][0]:7.0f} tokens/s, ours {got['ours'][0]:7.0f} tokens/s, ratio {ratios[-1]:.2f}; "
            f"answer loss on all rows after: hand {got['hand'][4]:.3f}, ours {got['ours'][4]:.3f}",
            flush=True,
        )
    mean_len = sum(map(len, seqs)) / len(seqs)
    from trainerbot.config import Settings

    fpt = flops_per_token(model, mean_len, weight_grads=args.model == "scratch",
                          backward_share=1.0 if args.model == "scratch" else Settings.model_fields["lora_layers"].default)
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    base_rate = statistics.median(h[0] for h in hand)
    our_rate = statistics.median(m[0] for m in mine)
    print(
        f"model: {args.model}, {params_m:.2f} M parameters, mean sequence {mean_len:.1f} tokens, batch {params.batch_size}, "
        f"{args.rounds} rounds × {args.steps} steps per side, {args.threads} threads"
    )
    print(f"{'bfloat16' if params.bf16 else 'float32'} matmul peak (1024², this run): {peak / 1e9:.1f} GFLOP/s")
    print(
        f"hand-written loop : {base_rate:8.0f} tokens/s (median)  MFU {base_rate * fpt / peak:.1%}  loss (last 10 "
        f"steps, last round) {hand[-1][3]:.3f}"
    )
    print(
        f"trainerbot (TRL)  : {our_rate:8.0f} tokens/s (median)  MFU {our_rate * fpt / peak:.1%}  loss (last 10 steps, "
        f"last round) {mine[-1][3]:.3f}"
    )
    print(
        f"ratio ours / hand : median {statistics.median(ratios):.2f}, spread {min(ratios):.2f}–{max(ratios):.2f}  (target ≥ 0.90)"
    )


if __name__ == "__main__":
    main()

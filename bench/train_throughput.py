"""Training throughput: our SFT path (TRL) against a minimal hand-written PyTorch loop, and
against the share of this CPU's matrix-multiply peak it reaches.

Same model, same data (generated Q&A pairs, tokenized once by TRL), same batch size, same
padding (to the longest in the batch), same optimizer, schedule and clipping.
``--model scratch``: the default from-scratch shape, 500 pairs, batch 32, full weights.
``--model pretrained``: the shipped SmolLM2-135M-Instruct with the product's LoRA adapter
(``runner.lora_config``), 100 pairs under the bot's system instruction, the product's LoRA
batch (``--batch`` to change it), batches of like lengths on both sides, bfloat16 mixed
precision where the CPU has it (as the product, with the eager attention it trains with
then: ``common.training_attention``) and the frozen projections stored in bf16 on both
sides (``common.frozen_in_bf16``; ``--fp32-frozen``: both keep them float32 and autocast
casts them, as before issue 31); the baseline is a bare PEFT loop.
The bare loop calls ``model(..., labels=)``, which projects every position through the LM
head; ours (``sft.AnswerLossTrainer``) projects only the answer positions. After each round
both sides' loss over the answers of all rows is printed, to show that they train alike.

Tokens/s are steady-state: each side is timed from its third step on (a job pays the
trainer's set-up once). The VM's CPU is shared and noisy, so the two sides run in short
alternating rounds (``--rounds`` of ``--steps`` each, the order flipped every round), and a
matrix-multiply peak is measured between them in every round, on the model's own shapes
(the tokens of a step × 576 by 576 × 576 and × 1536, and 1024²), in the precision the sides
train in. Reported: median tokens/s, the ratio ours/bare (target ≥ 0.9) and the model FLOPs
each side does a second as a share of that peak (target ≥ 40 %): the layers' forward and the
gradients of their inputs (frozen weights under LoRA get none), the adapters, attention, and
the LM head on the answer positions only (what the loss needs; the bare loop does more).

    .venv/bin/python bench/train_throughput.py [--model scratch|pretrained] [--rounds 6] [--steps 20] [--batch N]
        [--fp32-frozen] [--threads 2] [--compile] [--no-share-prefix] [--no-fuse] [--no-pack]

``--compile``: ours with its decoder layers compiled (``common.compiled_layers``), as a long
job trains; each round compiles again from the on-disk cache, in steps the clock leaves out.
Ours runs a batch's shared opening (the system instruction) once a step (``sft.shared_prefix``;
``--no-share-prefix``: not): its tokens/s are the rows' tokens, as the job trains them, and
its FLOPs those it did (the layers on the tokens they ran). Under LoRA ours runs the
projections of one input as one matmul (``fused.fused_projections``; ``--no-fuse``: not), and
multiplies its frozen bf16 weights in oneDNN's layout, packed once (``packed.packed_weights``;
``--no-pack``: not); the peak then counts that form of matmul too.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from transformers import TrainerCallback

from bench.scratch import scratch
from trainerbot.datasets.sample import generate
from trainerbot.model.build import ModelShape, new_model, train_tokenizer
from trainerbot.training import sft
from trainerbot.training.common import JobCallback, TrainParams, frozen_in_bf16, training_attention


def matmul_peak(dtype: torch.dtype, rows: int, seconds: float = 1.0) -> tuple[float, float]:
    """The best rate of a matmul (FLOP/s) over the model's own shapes (``rows`` tokens by
    576 × 576 and 576 × 1536) and 1024², each for ``seconds`` / 3: (as a plain ``a @ b``, the
    issue's measure; the faster of that and ``b`` packed in oneDNN's layout, as
    ``packed.frozen_linear`` multiplies a job's frozen weights, in bf16 where oneDNN has it)."""
    from trainerbot.training import packed

    def rate(multiply: Any, flops: int, budget: float) -> float:
        for _ in range(3):
            multiply()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < budget:
            multiply()
            count += 1
        return flops * count / (time.perf_counter() - start)

    plain = best = 0.0
    packs = dtype == torch.bfloat16 and packed.usable()
    for m, k, n in ((rows, 576, 576), (rows, 576, 1536), (1024, 1024, 1024)):
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        budget = seconds / 3 / (2 if packs else 1)
        plain = max(plain, rate(lambda a=a, b=b: a @ b, 2 * m * k * n, budget))
        if packs:
            ready = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous(), m)  # as a Linear keeps it: out × in
            best = max(best, rate(lambda a=a, w=ready: torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [], ""),
                                  2 * m * k * n, budget))
    return plain, max(plain, best)


def flops_per_token(model: torch.nn.Module, seq_len: float, answer_share: float, weight_grads: bool = True) -> float:
    """Model FLOPs a training token needs. Full training: 6 per weight (forward, input and
    weight gradients) plus attention. LoRA: the frozen layers' forward and input gradients (4
    per weight), the adapters' 6 per weight, attention, and the LM head (the tied embeddings)
    forward and backward on the answer positions only (``answer_share`` 0: the layers alone)."""
    cfg = model.config
    attention = 2 * cfg.num_hidden_layers * cfg.hidden_size * seq_len  # QK^T and AV, per token, forward
    if weight_grads:
        n = sum(p.numel() for p in model.parameters())  # tied embeddings: the LM head's matmul counted once here
        return 6 * n + 6 * attention
    embed = cfg.vocab_size * cfg.hidden_size
    adapter = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
    frozen = sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name) - embed
    return 4 * frozen + 6 * adapter + 6 * attention + 4 * embed * answer_share


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


class SteadyClock(TrainerCallback):
    """Times a Trainer's steps from its third one on, and counts the tokens they saw."""

    def __init__(self, trainer: Any) -> None:
        self.trainer, self.step, self.start, self.tokens0 = trainer, 0, 0.0, 0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.step += 1
        if self.step == 3:
            self.start, self.tokens0, self.run0 = time.perf_counter(), self.trainer._total_train_tokens, self.trainer.tokens_run

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.seconds = time.perf_counter() - self.start
        self.tokens = self.trainer._total_train_tokens - self.tokens0
        self.run = self.trainer.tokens_run - self.run0  # through the layers: a shared opening counted once a step


def ours(examples, steps: int, params: TrainParams, kind: str) -> tuple[float, float, int, list]:  # type: ignore[no-untyped-def]
    model, tok, lora = build(examples, kind)
    callback = JobCallback(lambda p: None, lambda: False, check_every=0.5)
    epochs = steps / math.ceil(len(examples) / params.batch_size)
    p = dataclasses.replace(params, epochs=epochs, logging_steps=10**9)
    trainer = sft.trainer(model, tok, examples, p, callback, str(scratch("bench-sft")), lora)  # as sft.train
    trainer.args.logging_steps = min(10, steps)
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    clock = SteadyClock(trainer)
    trainer.add_callback(clock)
    with sft.training_run(trainer, p, callback, p.compile == "on"):  # as sft.train
        trainer.train()
    last_loss = next(h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h)
    rows = [(row["input_ids"], row["labels"]) for row in trainer.train_dataset]
    return (clock.tokens / clock.seconds, clock.seconds, clock.tokens, [ids for ids, _ in rows], last_loss,
            answer_loss(trainer.model, rows, tok), trainer.model, rows, clock.run / clock.seconds)


def answer_loss(model: torch.nn.Module, rows: list, tok) -> float:  # type: ignore[no-untyped-def,type-arg]
    """The mean loss over the answer tokens of all ``rows`` (no gradients): both sides after
    their steps, on the same rows, to check that they train alike."""
    model.eval()
    total, count = 0.0, 0
    bf16 = any(p.dtype == torch.bfloat16 for p in model.parameters())  # frozen weights stored in bf16: as trained
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
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
    if lora is not None and params.bf16 and params.bf16_frozen:  # the same storage as the product's
        model = frozen_in_bf16(model, new_adapter=True)
    # The product's own tokenization (input IDs, labels on the answer only), so both loops see the same tokens.
    prepared = sft.trainer(model, tok, examples, dataclasses.replace(params, bf16_frozen=False),
                           JobCallback(lambda _: None, lambda: False), str(scratch("bench-hand")))
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
                step += 1
                if step == 2:  # steady state from the third step, as on our side
                    tokens, start = 0, time.perf_counter()
                else:
                    tokens += int(mask.sum())
                losses.append(float(loss))
    seconds = time.perf_counter() - start
    return tokens / seconds, seconds, tokens, model, sum(losses[-10:]) / len(losses[-10:]), answer_loss(model, rows, tok)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["scratch", "pretrained"], default="scratch")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="steps per side per round (timed from the third)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the product's for the model)")
    parser.add_argument("--fp32-frozen", action="store_true", help="frozen weights kept float32 on both sides")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true",
                        help="ours with its decoder layers compiled, as a long job runs (common.compiled_layers)")
    parser.add_argument("--no-share-prefix", action="store_true",
                        help="ours runs every row's copy of the system instruction (as before sft.shared_prefix)")
    parser.add_argument("--no-fuse", action="store_true",
                        help="ours runs each projection on its own (as before fused.fused_projections)")
    parser.add_argument("--no-pack", action="store_true",
                        help="ours multiplies the frozen weights as they are (as before packed.packed_weights)")
    args = parser.parse_args()
    if args.steps < 3:
        parser.error("--steps must be at least 3: each side is timed from its third step")
    torch.set_num_threads(args.threads)
    if args.model == "pretrained":
        from trainerbot.model.pretrained import prepare_base
        from trainerbot.model.prompt import SYSTEM
        from trainerbot.training.common import native_bf16
        from trainerbot.training.recipes import recipe

        BASE.append(prepare_base(scratch("train-throughput")))
        examples = [dataclasses.replace(e, system=SYSTEM) for e in generate(100, seed=1)]
        lora = recipe("sft").defaults["lora"]
        params = TrainParams(batch_size=args.batch or lora.batch_size, learning_rate=lora.learning_rate, warmup_steps=5,
                             lora=True, bf16=native_bf16(), bf16_frozen=not args.fp32_frozen,
                             compile="on" if args.compile else "off", share_prefix=not args.no_share_prefix,
                             fuse_projections=not args.no_fuse, pack_frozen=not args.no_pack)
    else:
        examples = generate(500, seed=1)
        params = TrainParams(batch_size=args.batch or 32, learning_rate=3e-3, warmup_steps=30)
    dtype = torch.bfloat16 if params.bf16 else torch.float32
    hand: list[tuple[float, float, int, float, float]] = []
    mine: list[tuple[float, float, int, float, float]] = []
    ratios: list[float] = []
    peaks: list[float] = []  # the best matmul, packed or plain
    plains: list[float] = []  # a plain ``a @ b`` (the measure)
    runs: list[float] = []  # ours: tokens through the layers a second
    for r in range(args.rounds):
        sides = ["hand", "ours"] if r % 2 == 0 else ["ours", "hand"]
        got: dict[str, tuple] = {}  # type: ignore[type-arg]
        for side in sides:
            if side == "hand":
                rate, secs, toks, _, loss, after = hand_loop(args.steps, params, examples, args.model)
                got[side] = (rate, secs, toks, loss, after)
            else:
                rate, secs, toks, seqs, loss, after, model, rows, run = ours(examples, args.steps, params, args.model)
                got[side] = (rate, secs, toks, loss, after)
                runs.append(run)
            if side == sides[0]:  # the peak between the two sides, every round
                per_step = int(toks / max(1, args.steps - 2))
                plain, best = matmul_peak(dtype, max(64, per_step))
                plains.append(plain)
                peaks.append(best)
        hand.append(got["hand"])
        mine.append(got["ours"])
        ratios.append(got["ours"][0] / got["hand"][0])
        print(
            f"round {r + 1}: hand {got['hand'][0]:7.0f} tokens/s, ours {got['ours'][0]:7.0f} tokens/s, ratio {ratios[-1]:.2f}; "
            f"{'bf16' if params.bf16 else 'float32'} peak {peaks[-1] / 1e9:.0f} GFLOP/s (a @ b {plains[-1] / 1e9:.0f}); "
            f"answer loss on all rows after: hand {got['hand'][4]:.3f}, ours {got['ours'][4]:.3f}",
            flush=True,
        )
    mean_len = sum(map(len, seqs)) / len(seqs)
    answer_share = sum(sum(1 for t in labels if t != -100) for _, labels in rows) / sum(len(ids) for ids, _ in rows)
    fpt = flops_per_token(model, mean_len, answer_share, weight_grads=args.model == "scratch")
    layers = flops_per_token(model, mean_len, 0.0, weight_grads=args.model == "scratch")  # all but the LM head

    def done(rate: float, run: float) -> float:
        """FLOPs a second ours did: the layers on the tokens they ran (a shared opening once a
        step), the head on the answers of the rows' tokens."""
        return run * layers + rate * (fpt - layers)

    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    base_rate = statistics.median(h[0] for h in hand)
    our_rate = statistics.median(m[0] for m in mine)
    our_flops = statistics.median(done(m[0], run) for m, run in zip(mine, runs, strict=True))
    peak = statistics.median(peaks)
    shares = [done(m[0], run) / p for m, run, p in zip(mine, runs, peaks, strict=True)]
    plain_shares = [done(m[0], run) / p for m, run, p in zip(mine, runs, plains, strict=True)]
    print(
        f"model: {args.model}, {params_m:.2f} M parameters, mean sequence {mean_len:.1f} tokens ({answer_share:.0%} answer), "
        f"batch {params.batch_size}, {args.rounds} rounds × {args.steps} steps per side (steady state from step 3), "
        f"{args.threads} threads"
        + (f", frozen weights {'float32' if args.fp32_frozen else 'bf16'}" if params.lora and params.bf16 else "")
        + (", ours compiled" if args.compile else "")
        + ("" if params.share_prefix else ", ours without the shared opening")
        + ("" if params.fuse_projections or not params.lora else ", ours without fused projections")
        + ("" if params.pack_frozen or not params.lora else ", ours without packed weights")
    )
    print(f"{'bfloat16' if params.bf16 else 'float32'} matmul peak, measured between the sides every round: median "
          f"{peak / 1e9:.0f} GFLOP/s ({min(peaks) / 1e9:.0f}-{max(peaks) / 1e9:.0f}; as a plain a @ b "
          f"{statistics.median(plains) / 1e9:.0f}); model FLOPs a token: {fpt / 1e6:.0f} M")
    print(
        f"hand-written loop : {base_rate:8.0f} tokens/s (median)  {base_rate * fpt / 1e9:5.0f} GFLOP/s = "
        f"{base_rate * fpt / peak:.1%} of peak  loss (last 10 steps, last round) {hand[-1][3]:.3f}"
    )
    print(
        f"trainerbot (TRL)  : {our_rate:8.0f} tokens/s (median)  {our_flops / 1e9:5.0f} GFLOP/s = "
        f"{our_flops / peak:.1%} of peak (per round {min(shares):.1%}-{max(shares):.1%}; target ≥ 40 %)  "
        f"loss (last 10 steps, last round) {mine[-1][3]:.3f}"
    )
    if statistics.median(plains) < peak * 0.999:
        print(f"                    against a plain a @ b's peak: {statistics.median(plain_shares):.1%} "
              f"(per round {min(plain_shares):.1%}-{max(plain_shares):.1%})")
    if runs and statistics.median(runs) < our_rate * 0.999:
        print(f"                    the rows' tokens a second; through the layers {statistics.median(runs):.0f} tokens/s "
              f"(the opening the rows share run once a step: {1 - statistics.median(runs) / our_rate:.0%} fewer), "
              "and the FLOPs are those done")
    print(
        f"ratio ours / hand : median {statistics.median(ratios):.2f}, spread {min(ratios):.2f}–{max(ratios):.2f}  (target ≥ 0.90)"
    )


if __name__ == "__main__":
    main()

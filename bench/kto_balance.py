"""KTO on one-sided votes: 9 👍 for every 👎, with and without weighting the two sides
against each other (``kto_config.balanced_weights``; TRL's desirable/undesirable weights).

A small model built here (the ``scratch`` shape) first learns 20 facts by SFT, a wrong
answer among them (the bot's reply that a member then rates 👎). KTO then trains on 18 👍
(the right facts) and 2 👎 (the wrong replies), both ways, from the same starting weights;
seeds interleave the two sides. Reported per side: how much the 👎 answers' log-probability
fell (per token, against the start; the point of a 👎) and how much the 👍 answers' rose.

    .venv/bin/python bench/kto_balance.py [--seeds 0,1,2] [--epochs 4]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainerbot.datasets.records import Example
from trainerbot.datasets.sample import generate
from trainerbot.model.build import ModelShape, new_model, train_tokenizer
from trainerbot.training import kto, sft
from trainerbot.training.common import JobCallback, TrainParams
from trainerbot.training.kto_config import balanced_weights

SHAPE = ModelShape(vocab_size=512, hidden_size=64, layers=2, heads=2, max_positions=256)


def logprob(model: torch.nn.Module, tok: object, example: Example, answer: str) -> float:
    """Mean log-probability per token of ``answer`` after ``example``'s prompt."""
    def ids(messages: list[dict[str, str]], **kw: bool) -> list[int]:
        text = tok.apply_chat_template(messages, tokenize=False, **kw)  # type: ignore[attr-defined]
        return list(tok(text, add_special_tokens=False)["input_ids"])  # type: ignore[operator]

    prompt = ids(example.prompt_messages(), add_generation_prompt=True)
    full = ids(example.prompt_messages() + [{"role": "assistant", "content": answer}])
    tokens = torch.tensor([full])
    with torch.no_grad():
        logits = model(input_ids=tokens).logits[0, :-1].float()
    target = tokens[0, 1:]
    scores = torch.log_softmax(logits, -1).gather(1, target[:, None])[:, 0]
    return float(scores[len(prompt) - 1:].mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=float, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    quiet = JobCallback(lambda _p: None, lambda: False)
    results: dict[str, list[tuple[float, float]]] = {"weighted 1:1": [], "balanced": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        torch.manual_seed(seed)
        facts = generate(20, seed=100 + seed)
        wrong = {i: f"Nobody knows, but maybe {facts[(i + 7) % 20].response.split()[-1]}" for i in (4, 13)}
        told = [Example(prompt=f.prompt, response=wrong.get(i, f.response)) for i, f in enumerate(facts)]
        tok = train_tokenizer([t for f in told for t in (f.prompt, f.response)] + [f.response for f in facts], SHAPE.vocab_size)
        start = new_model(tok, SHAPE)
        with tempfile.TemporaryDirectory() as out:
            start, _ = sft.train(start, tok, told, TrainParams(epochs=60, batch_size=8, learning_rate=3e-3, warmup_steps=5),
                                 quiet, out)
        rated = [Example(prompt=f.prompt, response=f.response, label="positive") for i, f in enumerate(facts) if i not in wrong]
        rated += [Example(prompt=facts[i].prompt, response=answer, label="negative") for i, answer in wrong.items()]
        before_bad = statistics.mean(logprob(start, tok, e, e.response) for e in rated if e.label == "negative")
        before_good = statistics.mean(logprob(start, tok, e, e.response) for e in rated if e.label == "positive")
        weights = copy.deepcopy(start.state_dict())
        for side in results:
            # A fresh model with the start's weights (a deep copy of a model a trainer ran would
            # still call the original's forward: Accelerate's wrapper is an instance attribute).
            model = new_model(tok, SHAPE)
            model.load_state_dict(weights)
            original = kto.balanced_weights
            if side == "weighted 1:1":
                kto.balanced_weights = lambda d, u: (1.0, 1.0)  # type: ignore[assignment]
            try:
                with tempfile.TemporaryDirectory() as out:
                    params = TrainParams(epochs=args.epochs, batch_size=4, learning_rate=5e-4, warmup_steps=2, seed=seed)
                    model, _ = kto.train(model, tok, rated, params, quiet, out)
            finally:
                kto.balanced_weights = original
            model.eval()
            bad = statistics.mean(logprob(model, tok, e, e.response) for e in rated if e.label == "negative") - before_bad
            good = statistics.mean(logprob(model, tok, e, e.response) for e in rated if e.label == "positive") - before_good
            results[side].append((bad, good))
            print(f"seed {seed} {side:>12}: 👎 answers {bad:+.3f} nats/token, 👍 answers {good:+.3f}", flush=True)
    dw, uw = balanced_weights(18, 2)
    print(f"18 👍 : 2 👎; balanced weights: desirable {dw:.3f}, undesirable {uw:.3f} (TRL: d×18 / u×2 in [1, 4/3])")
    for side, rows in results.items():
        print(f"{side:>12}: 👎 answers {statistics.median(r[0] for r in rows):+.3f} nats/token (median; per seed "
              f"{', '.join(f'{r[0]:+.3f}' for r in rows)}), 👍 answers {statistics.median(r[1] for r in rows):+.3f}")
    ratios = [b[0] / a[0] if a[0] else float("nan") for a, b in zip(results["weighted 1:1"], results["balanced"], strict=True)]
    print(f"the 👎 answers' fall, balanced / 1:1: median {statistics.median(ratios):.2f} "
          f"(spread {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()

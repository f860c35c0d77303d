"""Rehearsal: teaching facts alone wrecks a pretrained model's general answers, so its own
answers to a shipped set of general prompts are mixed into every LoRA SFT job.

The answers are the base model's greedy replies (under the bot's system instruction),
generated once per base model and cached in ``<data>/models/rehearsal/<name>.jsonl``
(crash-safe); only replies that ended on their own (not cut at the token limit) are kept,
and a job trains on their first sentences (``TRAINED_TOKENS``).
For the shipped default model they ship too (``resources/rehearsal.smollm2.jsonl``, made by
``python -m trainerbot.training.rehearsal <prepared base folder>``), which saves a first
job about three minutes on 2 cores. Blocking.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from trainerbot.datasets.records import Example
from trainerbot.fileio import atomic_write_bytes
from trainerbot.model.files import DONE_MARKER
from trainerbot.model.taught import content, tokens

MAX_TOKENS = 96
# Rehearsal examples per taught example. 0.2–0.3 lost 12–20 general points
# and 0.5 of the first 37 answers 20; 0.75 of 64, with real questions shaped like taught facts
# (capitals, rivers, founders, exports), lost none on the 100-fact bench; 0.5 lost 5–7.5 points
# (bench/RESULTS.md).
SHARE = 0.75
# At least this many in any job, and as many of them shaped like the taught questions: a
# 10-fact job with its 0.75 (6 answers, 3 shaped like the facts) answered "The capital of
# France is Saya." after learning "The capital of Fenritel is Saya." and lost 10–30 general
# points; with 24, all shaped like its facts, it lost 0–2.5 (bench/RESULTS.md, issue 31).
FLOOR = 24
# A rehearsal answer is trained on its first sentences, as many as fit this many tokens (the
# first one always whole). On 100 facts over 3 seeds (bench/small_recipe.py --facts 100):
# training 134 s against 143 s with the whole answers (1.08x, per seed 1.04-1.09), recall
# 248 against 251 of 252, the facts in other words 247 against 244, general 64.2 against
# 58.3 % mean (per seed ±10 points: bench/RESULTS.md, issue 31). The long answers' tails
# only cost steps.
TRAINED_TOKENS = 48
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def prompts() -> list[str]:
    text = resources.files("trainerbot.resources").joinpath("rehearsal_prompts.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def cache_file(data_dir: Path, base: Path) -> Path:
    config = (base / "config.json").read_bytes() if (base / "config.json").is_file() else b""
    key = hashlib.sha256(str(base.resolve()).encode() + config).hexdigest()[:12]
    return data_dir / "models" / "rehearsal" / f"{base.name}-{key}.jsonl"


SHIPPED = "rehearsal.smollm2.jsonl"


def _is_shipped_default(base: Path) -> bool:
    from trainerbot.model.pretrained import GGUF_SHA256

    try:
        return bool(json.loads((base / DONE_MARKER).read_text()).get("sha256") == GGUF_SHA256)
    except (OSError, ValueError):
        return False


def generate_rows(model: object) -> list[dict[str, str]]:
    """The base ``model``'s (a ``LocalModel`` with no adapter) whole answers to the prompts."""
    from trainerbot.model.local import LocalModel

    assert isinstance(model, LocalModel)
    rows = []
    for prompt in prompts():
        ids = model.encode([{"role": "user", "content": prompt}], MAX_TOKENS)
        with model.weights.lock:
            produced = model.generate_ids(ids, MAX_TOKENS)
        if len(produced) < MAX_TOKENS:  # ended by itself: a whole answer
            rows.append({"prompt": prompt, "response": str(model.tokenizer.decode(produced, skip_special_tokens=True)).strip()})
    return rows


def answers(model: object, data_dir: Path, base: Path) -> list[Example]:
    """The base model's answers to the rehearsal prompts (shipped for the default model,
    else generated and cached on the first call)."""
    target = cache_file(data_dir, base)
    if _is_shipped_default(base):
        text = resources.files("trainerbot.resources").joinpath(SHIPPED).read_text(encoding="utf-8")
    elif target.is_file():
        text = target.read_text(encoding="utf-8")
    else:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generate_rows(model))
        atomic_write_bytes(target, text.encode())
    rows = [json.loads(line) for line in text.splitlines() if line]
    tokenizer = model.tokenizer  # type: ignore[attr-defined]  # a LocalModel

    def count(part: str) -> int:
        return len(tokenizer(part, add_special_tokens=False)["input_ids"])
    return [Example(prompt=r["prompt"], response=trimmed(r["response"], count, TRAINED_TOKENS), source_ref="rehearsal")
            for r in rows if r["response"]]


def trimmed(answer: str, count: Callable[[str], int], limit: int) -> str:
    """``answer`` up to the end of its last sentence within ``limit`` tokens (``count``), and
    at least its first sentence whole; an answer within the limit as it is."""
    if count(answer) <= limit:
        return answer
    ends = [m.start() for m in _SENTENCE_END.finditer(answer)]
    kept = answer[: ends[0]] if ends else answer
    for end in ends[1:]:
        if count(answer[:end]) > limit:
            break
        kept = answer[:end]
    return kept


if __name__ == "__main__":
    import sys

    from trainerbot.model.local import LocalModel

    sys.stdout.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generate_rows(LocalModel(Path(sys.argv[1])))))


def mix(examples: list[Example], rehearsal: list[Example]) -> list[Example]:
    """``examples`` plus ``SHARE`` as many rehearsal examples (``pick``), at least ``FLOOR``.

    A job bigger than the set can feed (more than len(rehearsal) / SHARE examples) gets the
    whole set more than once, so its share holds: at 0.15 per fact a 500-fact job lost
    12.5 general points (bench/RESULTS.md)."""
    want = max(FLOOR, round(len(examples) * SHARE)) if examples and rehearsal else 0
    whole, rest = divmod(want, len(rehearsal)) if rehearsal else (0, 0)
    return list(examples) + list(rehearsal) * whole + pick(examples, rehearsal, rest)


def pick(examples: list[Example], rehearsal: list[Example], n: int) -> list[Example]:
    """``n`` of the rehearsal answers: half of them, or ``FLOOR`` if more, chosen like the
    taught questions (each taught question in turn takes the answer not yet picked whose
    question shares the most words with it, the earliest on a tie, round after round while
    such answers are left: "What is the capital of Zorbia?" rehearses real capitals, which
    the facts' template would otherwise overwrite), the rest in the set's order.

    The set's first 64 answers (everyday chat, then questions shaped like common facts) are
    the ones the 100-fact bench kept its general score with; the later ones let bigger jobs
    keep their share. On that bench (63 answers) this kept it (65 → 67.5 %), while 63 spread
    evenly over all 346 lost 12.5 points and half like the facts, half spread 7.5
    (bench/RESULTS.md)."""
    if n <= 0:
        return []
    words = [set(content(tokens(r.prompt))) for r in rehearsal]
    asked = [set(content(tokens(e.prompt))) for e in examples]
    target = max(n // 2, min(n, FLOOR))
    like: set[int] = set()
    while len(like) < target:
        before = len(like)
        for question in asked:  # in turn, each taught question's closest answer not yet picked
            if len(like) >= target:
                break
            free = [i for i in range(len(rehearsal)) if i not in like]
            best = max(free, key=lambda i: (len(question & words[i]), -i), default=None)
            if best is not None and question & words[best]:
                like.add(best)
        if len(like) == before:  # none left that shares a word with a taught question
            break
    others = [i for i in range(len(rehearsal)) if i not in like]
    return [rehearsal[i] for i in sorted([*like, *others[: n - len(like)]])]

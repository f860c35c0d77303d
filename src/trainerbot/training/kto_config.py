"""KTO's config: learning from unpaired 👍/👎, each example on its own. The trainer is ``kto.py``.

Data shape: TRL's unpaired preference, ``{"prompt", "completion", "label": bool}``; every
example, and a correction gives two rows (its answer ``true``, the corrected reply
``false``). Chosen, once a model exists, when the data holds negative examples. OpenAI's
fine-tuning API offers no KTO, so on that backend negatives sit out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from trainerbot.datasets.records import Example
from trainerbot.training.recipe_config import Hyper, RecipeConfig, StartKind, assistant_turn, preference_defaults


@dataclass(frozen=True)
class KtoConfig(RecipeConfig):
    name: str = "kto"
    trainer: str = "trainerbot.training.kto"
    defaults: Mapping[StartKind, Hyper] = field(default_factory=preference_defaults)
    needs_model: bool = True
    preference: int = 1
    why_none: str = "it is empty"
    # Under LoRA, bf16 trained the same preference as float32 in about half the time
    # (bench/preference_precision.py, bench/RESULTS.md issue 31).
    bf16: bool = True

    def row(self, example: Example) -> Iterator[dict[str, Any]]:
        yield {"prompt": example.prompt_messages(), "completion": assistant_turn(example.response),
               "label": example.label == "positive"}
        if example.rejected is not None:
            yield {"prompt": example.prompt_messages(), "completion": assistant_turn(example.rejected), "label": False}

    def fits(self, examples: list[Example]) -> bool:
        return any(e.label == "negative" for e in examples)


# TRL's KTO guidance: desirable_weight × #👍 over undesirable_weight × #👎 between 1 and 4/3.
BALANCE = (1.0, 4 / 3)


def balanced_weights(desirable: int, undesirable: int) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight) for KTO with this many 👍 and 👎 rows: the larger
    side is weighted down until the two sides' totals fall in ``BALANCE`` (9 👍 : 1 👎 gives
    the 👍 4/27 each), so a one-sided pile of votes cannot swamp the job. Either side empty,
    or already in range: (1, 1)."""
    if not desirable or not undesirable:
        return 1.0, 1.0
    ratio = desirable / undesirable
    if ratio > BALANCE[1]:
        return BALANCE[1] / ratio, 1.0
    if ratio < BALANCE[0]:
        return 1.0, ratio / BALANCE[0]
    return 1.0, 1.0

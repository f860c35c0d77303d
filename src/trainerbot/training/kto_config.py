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

    def row(self, example: Example) -> Iterator[dict[str, Any]]:
        yield {"prompt": example.prompt_messages(), "completion": assistant_turn(example.response),
               "label": example.label == "positive"}
        if example.rejected is not None:
            yield {"prompt": example.prompt_messages(), "completion": assistant_turn(example.rejected), "label": False}

    def fits(self, examples: list[Example]) -> bool:
        return any(e.label == "negative" for e in examples)

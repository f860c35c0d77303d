"""DPO's config: learning from corrections as pairs — chosen = the correction, rejected =
the original reply. The trainer is ``dpo.py``.

Data shape: TRL's conversational preference, ``{"prompt", "chosen", "rejected"}``,
corrections only; on the OpenAI path, OpenAI's preference rows with the ``dpo`` method.
Chosen, once a model exists, when every example is a correction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from trainerbot.datasets.records import Example
from trainerbot.training.recipe_config import Hyper, RecipeConfig, StartKind, assistant_turn, preference_defaults


@dataclass(frozen=True)
class DpoConfig(RecipeConfig):
    name: str = "dpo"
    trainer: str = "trainerbot.training.dpo"
    defaults: Mapping[StartKind, Hyper] = field(default_factory=preference_defaults)
    needs_model: bool = True
    preference: int = 2
    why_none: str = "DPO needs corrections (a reply and its corrected answer)"
    # Under LoRA, bf16 trained the same preference as float32 in about half the time
    # (bench/preference_precision.py, bench/RESULTS.md issue 31).
    bf16: bool = True
    # Its frozen weights packed (``packed.packed_weights``) made a DPO job 4-7 % slower here,
    # in either order (SFT's steps 1.07x faster, KTO's job 1.13x; bench/RESULTS.md issue 31).
    pack_frozen: bool = False

    def row(self, example: Example) -> Iterator[dict[str, Any]]:
        if example.rejected is not None and example.label == "positive":
            yield {"prompt": example.prompt_messages(), "chosen": assistant_turn(example.response),
                   "rejected": assistant_turn(example.rejected)}

    def fits(self, examples: list[Example]) -> bool:
        return bool(examples) and all(e.rejected is not None for e in examples)

    def openai_row(self, example: Example) -> Iterator[dict[str, Any]]:
        if example.rejected is not None and example.label == "positive":
            yield {"input": {"messages": example.prompt_messages()},
                   "preferred_output": assistant_turn(example.response),
                   "non_preferred_output": assistant_turn(example.rejected)}

    def openai_method(self, beta: float) -> dict[str, Any] | None:
        return {"type": "dpo", "dpo": {"hyperparameters": {"beta": beta}}}

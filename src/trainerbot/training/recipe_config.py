"""The parts every training recipe's config has (``sft_config``, ``kto_config``,
``dpo_config`` fill them in; ``recipes`` registers them and checks that none is missing).
Nothing here imports torch or TRL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from trainerbot.datasets.records import Example


def assistant_turn(text: str) -> list[dict[str, str]]:
    """One assistant message, as the chat-format rows of every recipe end."""
    return [{"role": "assistant", "content": text}]


StartKind = Literal["scratch", "continue", "lora"]  # a model built from the data, a whole model trained further, a LoRA adapter
STARTS: tuple[StartKind, ...] = ("scratch", "continue", "lora")


@dataclass(frozen=True)
class Hyper:
    """A recipe's defaults for one start (the settings override each)."""

    epochs: float
    learning_rate: float
    batch_size: int


@dataclass(frozen=True)
class RecipeConfig:
    """The parts every recipe has; each recipe's config fills them in."""

    name: str
    trainer: str  # the module with its ``train(model, tokenizer, examples, params, callback, output_dir, peft_config)``
    defaults: Mapping[StartKind, Hyper]
    needs_model: bool  # starts only from a model (its reference): KTO and DPO
    preference: int  # chosen before recipes with a lower one when the data fits several
    why_none: str  # what the data lacks when it gives no rows of this shape
    bf16: bool = False  # bfloat16 mixed precision measured for this recipe (LoRA on a CPU with native bf16)
    pack_frozen: bool = True  # under bf16, its frozen weights packed in oneDNN's layout (``packed``), where that was faster
    rehearsal: bool = False  # the base model's own answers mixed in (keeps a pretrained model conversing)
    extra: Mapping[str, Any] = field(default_factory=dict)
    # A start's defaults for jobs whose rows fall in a range, where they differ from ``defaults`` (``hyper``).
    sized: Mapping[StartKind, tuple[tuple[range, Hyper], ...]] = field(default_factory=dict)

    def hyper(self, start: StartKind, rows: int) -> Hyper:
        """The defaults for a job of ``rows`` examples from ``start``: those of the ``sized``
        range it falls in, if any."""
        for within, chosen in self.sized.get(start, ()):
            if rows in within:
                return chosen
        return self.defaults[start]

    def row(self, example: Example) -> Iterator[dict[str, Any]]:
        """TRL's rows for one example (none when it does not fit this shape)."""
        raise NotImplementedError

    def fits(self, examples: list[Example]) -> bool:
        """Whether this recipe is the one for this data."""
        raise NotImplementedError

    def openai_row(self, example: Example) -> Iterator[dict[str, Any]]:
        """The OpenAI fine-tuning rows for one example (none where providers offer no such method)."""
        return iter(())

    def openai_method(self, beta: float) -> dict[str, Any] | None:
        """The ``method`` of OpenAI's fine-tuning job; None where providers offer none."""
        return None

    @property
    def on_openai(self) -> bool:
        """Whether OpenAI-compatible providers offer this recipe (it has a fine-tuning method)."""
        return self.openai_method(0.1) is not None

    def rows(self, examples: Iterable[Example]) -> list[dict[str, Any]]:
        return [row for ex in examples for row in self.row(ex)]

    def openai_rows(self, examples: Iterable[Example]) -> list[dict[str, Any]]:
        return [row for ex in examples for row in self.openai_row(ex)]


def preference_defaults() -> dict[StartKind, Hyper]:
    """KTO's and DPO's defaults: both start from a model (a whole one trained further, or a
    LoRA adapter on the pretrained base) and compare log-probabilities against a reference."""
    return {"continue": Hyper(10.0, 5e-4, 32), "lora": Hyper(3.0, 5e-4, 4)}

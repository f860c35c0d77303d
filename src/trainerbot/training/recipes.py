"""What a training recipe is, in one place: the registry every caller reads.

Each recipe (SFT, KTO, DPO) has a typed config dataclass beside its trainer, as TRL keeps
``sft_config.py`` beside ``sft_trainer.py`` (``sft_config.py`` beside ``sft.py`` here). The
config holds the recipe's defaults by where a job starts, its data shape (the TRL rows an
example gives, which the exporters write too), how it is chosen from the data, and its
OpenAI fine-tuning method if a provider offers one. The core chooses a recipe here
(``choose``), the runner reads its defaults and runs its trainer (``trainer``), the OpenAI
path takes its rows and method, and the exporters write its rows.

A recipe that lacks a part fails when this module is imported (``register``), never in a
member's job. Nothing here imports torch or TRL: the bot process reads the registry too;
a recipe's trainer module loads in the worker only.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from trainerbot.datasets.records import Example
from trainerbot.errors import BadInput
from trainerbot.training import dpo_config, kto_config, sft_config
from trainerbot.training.recipe_config import RecipeConfig

_REGISTRY: dict[str, RecipeConfig] = {}


def register(config: RecipeConfig) -> RecipeConfig:
    """Add a recipe, checking it has every part: defaults for a LoRA and a whole-model start
    (and a start from scratch unless it needs a model), a data shape and a choice rule of its
    own, and a trainer module that exists. A missing part raises ``TypeError`` here."""
    cls = type(config)
    missing = [part for part in ("row", "fits") if getattr(cls, part) is getattr(RecipeConfig, part)]
    starts = {"continue", "lora"} | (set() if config.needs_model else {"scratch"})
    if not starts <= set(config.defaults):
        missing.append(f"defaults for {', '.join(sorted(starts - set(config.defaults)))}")
    if (cls.openai_row is RecipeConfig.openai_row) == config.on_openai:
        missing.append("both an OpenAI row shape and an OpenAI method, or neither")
    if importlib.util.find_spec(config.trainer) is None:
        missing.append(f"its trainer module {config.trainer}")
    if missing:
        raise TypeError(f"the {config.name} recipe lacks {'; '.join(missing)}")
    _REGISTRY[config.name] = config
    return config


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def recipe(name: str) -> RecipeConfig:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BadInput(f"`{name[:20]}` is not a training recipe ({', '.join(_REGISTRY)}).") from None


def trainer(name: str) -> ModuleType:
    """The recipe's trainer module (torch and TRL load here: call it in the worker)."""
    return importlib.import_module(recipe(name).trainer)


def choose(examples: list[Example], has_model: bool, backend: str = "local") -> str:
    """The recipe for this data: the most preferred one that fits it, can start (KTO and DPO
    need a model), and — on an OpenAI-compatible backend — that providers offer."""
    usable = [r for r in _REGISTRY.values()
              if (not r.needs_model or has_model) and (backend != "openai" or r.on_openai)]
    for config in sorted(usable, key=lambda r: -r.preference):
        if config.fits(examples):
            return config.name
    if backend == "openai":
        raise BadInput("Fine-tuning needs positive examples (question and good answer); this data has none.")
    raise BadInput("The first training needs positive examples (question and good answer); this data has none."
                   if not has_model else "This data has nothing any recipe can train on.")


for _config in (sft_config.SftConfig(), kto_config.KtoConfig(), dpo_config.DpoConfig()):
    register(_config)

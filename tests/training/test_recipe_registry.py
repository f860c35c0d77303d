"""The one recipe registry: every recipe has a config (defaults, data shape, choice rule),
an exporter and a trainer; a recipe that lacks one is refused when it is registered (at
import), and the core, the runner, the OpenAI path and the exporters read the same rows."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from trainerbot.datasets.exporters import EXPORT_FORMATS, export_rows
from trainerbot.datasets.records import Example
from trainerbot.training import openai_jobs, recipes
from trainerbot.training.recipe_config import Hyper, RecipeConfig
from trainerbot.training.sft_config import SftConfig

EXAMPLES = [Example(prompt="q1", response="a1"), Example(prompt="q2", response="bad", label="negative"),
            Example(prompt="q3", response="fixed", rejected="wrong")]


def test_every_recipe_has_a_config_an_exporter_and_a_trainer() -> None:
    assert recipes.names() == ("sft", "kto", "dpo")
    for name in recipes.names():
        config = recipes.recipe(name)
        assert config.name == name and "lora" in config.defaults and "continue" in config.defaults
        assert name in EXPORT_FORMATS and export_rows(EXAMPLES, name) == config.rows(EXAMPLES) != []
        assert callable(importlib.import_module(config.trainer).train)
        assert recipes.trainer(name).rows(EXAMPLES) == config.rows(EXAMPLES)  # the trainer trains on the exported rows
    assert EXPORT_FORMATS == ("openai", "sft", "kto", "dpo", "csv")


def test_the_openai_path_takes_each_recipes_own_rows_and_method() -> None:
    assert openai_jobs.training_rows(EXAMPLES, "sft") == export_rows(EXAMPLES, "openai")
    assert openai_jobs.training_rows(EXAMPLES, "dpo") == [{"input": {"messages": [{"role": "user", "content": "q3"}]},
                                                      "preferred_output": [{"role": "assistant", "content": "fixed"}],
                                                      "non_preferred_output": [{"role": "assistant", "content": "wrong"}]}]
    assert recipes.recipe("dpo").openai_method(0.1) == {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}
    assert recipes.recipe("kto").openai_method(0.1) is None  # providers offer no KTO: negatives sit out
    assert recipes.choose(EXAMPLES, has_model=True, backend="openai") == "sft"
    assert recipes.choose(EXAMPLES, has_model=True) == "kto"


@dataclasses.dataclass(frozen=True)
class NoShape(RecipeConfig):
    name: str = "noshape"
    trainer: str = "trainerbot.training.sft"
    defaults: Any = dataclasses.field(default_factory=lambda: {"continue": Hyper(1, 1e-3, 1), "lora": Hyper(1, 1e-3, 1)})
    needs_model: bool = True
    preference: int = 5
    why_none: str = "never"

    def fits(self, examples: list[Example]) -> bool:
        return True


@dataclasses.dataclass(frozen=True)
class Complete(NoShape):
    name: str = "complete"

    def row(self, example: Example) -> Iterator[dict[str, Any]]:
        yield {"prompt": example.prompt}


@pytest.mark.parametrize(("config", "lacks"), [
    (NoShape(), "row"),
    (Complete(trainer="trainerbot.training.nosuch"), "trainer module"),
    (Complete(defaults={"continue": Hyper(1, 1e-3, 1)}), "defaults for lora"),
    (dataclasses.replace(SftConfig(), name="fromscratch-less", defaults={"continue": Hyper(1, 1e-3, 1),
                                                                          "lora": Hyper(1, 1e-3, 1)}), "scratch"),
])
def test_a_recipe_that_lacks_a_part_is_refused(config: RecipeConfig, lacks: str) -> None:
    before = recipes.names()
    with pytest.raises(TypeError, match=lacks):
        recipes.register(config)
    assert recipes.names() == before


def test_an_openai_method_without_its_rows_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class MethodOnly(Complete):
        name: str = "methodonly"

        def openai_method(self, beta: float) -> dict[str, Any] | None:
            return {"type": "supervised"}

    with pytest.raises(TypeError, match="OpenAI"):
        recipes.register(MethodOnly())

"""``persona``: shown to everyone, set and reset by trainers, bounded, refused plainly, and
read by chat for the model's system turn (with the taught facts after it)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import JSONL_FACTS, att
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.core.persona import MAX_PERSONA_CHARS
from trainerbot.errors import BadInput, NotAllowed
from trainerbot.model.prompt import FACTS_HEADER, SYSTEM
from trainerbot.store.tables import Guild, ModelVersion

PIRATE = "You are Quill, the harbour's guide. Answer like a friendly sailor."


class Recorder:
    """A model at the runtime boundary that answers one fixed line and keeps what it read."""

    takes_system = True
    takes_names = False
    slots = 1
    source = "model"
    engine = label = "recorder"

    def __init__(self) -> None:
        self.read: list[list[dict[str, str]]] = []

    def reply(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> str:
        self.read.append(conversation)
        return "Aye."

    def stream(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> Iterator[str]:
        yield self.reply(conversation, max_new_tokens=max_new_tokens)


@pytest.fixture
def recorder(core: CoreService, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    model = Recorder()
    monkeypatch.setattr(core.runtimes, "for_chat", lambda version: model)
    return model


async def test_everyone_sees_the_shipped_persona_until_a_trainer_sets_one(core: CoreService, trainer: Caller,
                                                                           member: Caller) -> None:
    shown = await core.persona.persona(member)
    assert shown.data == {"persona": SYSTEM, "shipped": True} and "the shipped one" in shown.content
    said = await core.persona.persona(trainer, PIRATE)
    assert "Persona set" in said.content
    shown = await core.persona.persona(member, "  ")
    assert shown.data == {"persona": PIRATE, "shipped": False} and "set by a trainer" in shown.content
    await core.persona.persona(trainer, "RESET")
    assert (await core.persona.persona(member)).data == {"persona": SYSTEM, "shipped": True}


async def test_a_member_cannot_set_it_and_a_long_one_is_refused(core: CoreService, trainer: Caller, member: Caller) -> None:
    await core.persona.persona(trainer, PIRATE)
    with pytest.raises(NotAllowed, match="Only trainers"):
        await core.persona.persona(member, "You are rude.")
    with pytest.raises(NotAllowed):
        await core.persona.persona(member, "reset")
    with pytest.raises(BadInput, match=f"limited to {MAX_PERSONA_CHARS} characters"):
        await core.persona.persona(trainer, "x" * (MAX_PERSONA_CHARS + 1))
    assert (await core.persona.persona(member)).data["persona"] == PIRATE  # nothing changed


async def test_chat_answers_under_the_persona_with_the_facts_after_it(core: CoreService, trainer: Caller, member: Caller,
                                                                       recorder: Recorder) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("f.jsonl", JSONL_FACTS))
    await core.chat.reply(member, "hello")
    assert recorder.read[-1][0] == {"role": "system", "content": SYSTEM}
    await core.persona.persona(trainer, PIRATE)
    await core.chat.reply(member, "Which city is the capital city of Zorbia?")
    system = recorder.read[-1][0]["content"]
    assert system.startswith(PIRATE + "\n" + FACTS_HEADER) and "Quillport" in system


async def test_changing_it_after_training_says_the_version_was_taught_under_the_old_one(
    core: CoreService, trainer: Caller
) -> None:
    await core.persona.persona(trainer, PIRATE)

    def add_version() -> None:
        with core.store.session() as s:
            guild = s.query(Guild).one()
            s.add(ModelVersion(guild_id=guild.id, name="v1", backend="local", path="x", base="b", recipe="sft",
                               metrics={"persona": PIRATE}, active=True))

    await asyncio.to_thread(add_version)
    assert "another persona" not in (await core.persona.persona(trainer)).content
    changed = await core.persona.persona(trainer, "You are terse.")
    assert "`v1` was taught under the old persona" in changed.content
    assert "`v1` was taught under another persona" in (await core.persona.persona(trainer)).content


def test_the_remote_backend_ships_its_configured_system_line(tmp_path: Path) -> None:
    settings: Any = Settings(_env_file=None, data_dir=tmp_path, backend="openai", openai_system="Be brief.")  # type: ignore[call-arg]
    core = CoreService.open(settings)
    try:
        assert core.persona.shipped(None) == "Be brief."
    finally:
        core.store.close()

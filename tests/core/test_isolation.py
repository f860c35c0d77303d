"""One guild never sees another's datasets, files, replies or corrections."""

from __future__ import annotations

import pytest

from tests.conftest import JSONL_FACTS, att
from trainerbot.core import Caller, CoreService
from trainerbot.errors import BadInput, NotFound


async def test_guilds_are_isolated(core: CoreService, trainer: Caller, other_guild_trainer: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    archived = await core.datasets.archive(trainer, "facts")
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    await core.delivery.record_exchange(trainer, "q", "a", reply_message_id="500")
    other = other_guild_trainer

    assert "No datasets yet" in (await core.datasets.summary(other)).content
    with pytest.raises(NotFound):
        await core.datasets.stats(other, "facts")
    with pytest.raises(NotFound):
        await core.datasets.export(other, "facts", "sft")
    with pytest.raises(NotFound):
        await core.datasets.archive(other, "facts")
    with pytest.raises(NotFound):
        await core.datasets.select_dataset(other, "facts")
    with pytest.raises(NotFound):
        await core.datasets.getfile(other, archived.data["file"])
    assert "no files yet" in (await core.datasets.getfile(other)).content
    with pytest.raises(NotFound):
        await core.feedback.correct(other, "500", "mine now")
    with pytest.raises(NotFound):
        await core.feedback.react(other, "500", "👍")

    # The same names in guild B are B's own.
    await core.datasets.import_data(other, "facts", None, att("b.txt", "Q: b\nA: B\n"))
    assert (await core.datasets.stats(other, "facts")).data["total"] == 1
    assert (await core.datasets.stats(trainer, "facts")).data["total"] == 3


async def test_a_guild_id_cannot_name_another_guilds_folder(core: CoreService, trainer: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    archived = await core.datasets.archive(trainer, "facts")
    sneaky = Caller(guild_id="../111", user_id="x", roles=frozenset({"trainer"}))
    with pytest.raises(NotFound):
        await core.datasets.getfile(sneaky, archived.data["file"])
    with pytest.raises(BadInput):
        await core.datasets.getfile(sneaky, f"../111/archives/{archived.data['file']}")

"""Many guilds: `TRAINERBOT_SHARDS` makes the bot discord.py's AutoShardedBot; since every
state lives in the store, two bot processes on one store see the same datasets, jobs and
replies."""

from __future__ import annotations

from pathlib import Path

import pytest
from discord.ext import commands

from tests.conftest import JSONL_FACTS, att
from tests.pg import new_database
from trainerbot.adapters.discord.bot import ShardedTrainerBot, TrainerBot, make_bot
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.errors import ConfigError


@pytest.mark.parametrize("shards,kind,count,ids", [
    ("none", TrainerBot, None, None),
    ("auto", ShardedTrainerBot, None, None),
    ("4", ShardedTrainerBot, 4, None),
    ("4:2-3", ShardedTrainerBot, 4, [2, 3]),
])
async def test_the_shards_setting_picks_the_bot(
    core: CoreService, shards: str, kind: type, count: int | None, ids: list[int] | None
) -> None:
    settings = core.settings.model_copy(update={"shards": shards})
    bot = make_bot(core, settings)
    assert type(bot) is kind and bot.shard_count == count
    assert getattr(bot, "shard_ids", None) == ids
    assert isinstance(bot, commands.AutoShardedBot) == (shards != "none")


@pytest.mark.parametrize("shards", ["4:3-5", "0", "two", "4:2-1"])
def test_a_bad_shards_setting_is_named(shards: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainerbot.config import load_settings

    monkeypatch.setenv("TRAINERBOT_SHARDS", shards)
    with pytest.raises(ConfigError, match="shards"):
        load_settings()


async def test_two_bot_processes_on_one_store_share_everything(
    postgres: str, tmp_path: Path, trainer: Caller, member: Caller
) -> None:
    db = new_database(postgres)
    first, second = (
        CoreService.open(Settings(_env_file=None, data_dir=tmp_path / "data", database_url=db))  # type: ignore[call-arg]
        for _ in range(2)
    )
    try:
        await first.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
        assert "`facts` — 3 examples" in (await second.datasets.summary(member)).content
        answer = await second.chat.reply(member, "What is the capital of Zorbia?")  # taught by what the first one imported
        await second.delivery.bind_reply(member, answer.data["reply_id"], "d-1001")
        assert "Rated 👎" in (await first.feedback.react(member, "d-1001", "👎")).content  # a reply the other process sent
        queued = await first.training.train(trainer, "facts")
        listed = await second.training.jobs(member)
        assert f"#{queued.data['job_id']}" in listed.content
        assert (await second.review.next(trainer)).data == {"kind": "flagged", "message_id": "d-1001"}
    finally:
        first.store.close()
        second.store.close()

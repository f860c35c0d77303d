"""Trainer-only commands refuse members and DMs, and change nothing when they do."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import JSONL_FACTS, att, row_counts, tree_state
from trainerbot.core import Caller, CoreService
from trainerbot.errors import NotAllowed

TRAINER_ONLY = {
    "import": lambda core, c: core.datasets.import_data(c, "facts", None, att("f.jsonl", JSONL_FACTS)),
    "archive": lambda core, c: core.datasets.archive(c, "facts"),
    "select_dataset": lambda core, c: core.datasets.select_dataset(c, "facts"),
    "export": lambda core, c: core.datasets.export(c, "facts", "sft"),
    "getfile": lambda core, c: core.datasets.getfile(c, None),
    "getfile_name": lambda core, c: core.datasets.getfile(c, "facts.jsonl"),
}


@pytest.fixture
async def seeded(core: CoreService, trainer: Caller) -> CoreService:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    return core


@pytest.mark.parametrize("command", sorted(TRAINER_ONLY))
async def test_members_are_refused_and_nothing_changes(seeded: CoreService, member: Caller, command: str) -> None:
    counts, files = row_counts(seeded), tree_state(seeded.data_dir)
    with pytest.raises(NotAllowed, match="Only trainers"):
        await TRAINER_ONLY[command](seeded, member)
    assert row_counts(seeded) == counts and tree_state(seeded.data_dir) == files


@pytest.mark.parametrize("command", sorted(TRAINER_ONLY))
async def test_dms_are_refused_even_with_the_role_name(seeded: CoreService, command: str) -> None:
    dm = Caller(guild_id="dm-5", user_id="5", is_dm=True, roles=frozenset({"trainer"}), can_manage=True)
    with pytest.raises(NotAllowed, match="in a server"):
        await TRAINER_ONLY[command](seeded, dm)


async def test_manage_server_and_owner_count_as_trainer(seeded: CoreService, member: Caller) -> None:
    manager = dataclasses.replace(member, can_manage=True)
    assert (await seeded.datasets.export(manager, "facts", "sft")).files
    owner_in_dm = Caller(guild_id="111", user_id="owner", is_owner=True, is_dm=True)
    assert (await seeded.datasets.export(owner_in_dm, "facts", "sft")).files


async def test_role_name_is_configurable_and_case_insensitive(seeded: CoreService, member: Caller) -> None:
    seeded.datasets.trainer_role = "Teacher"
    teacher = dataclasses.replace(member, roles=frozenset({"teacher"}))
    assert (await seeded.datasets.summary(teacher)).content
    await seeded.datasets.export(teacher, "facts", "sft")
    with pytest.raises(NotAllowed, match="`Teacher` role"):
        await seeded.datasets.export(dataclasses.replace(member, roles=frozenset({"trainer"})), "facts", "sft")


async def test_everyone_may_read_datasets_give_feedback_and_correct(seeded: CoreService, member: Caller, trainer: Caller) -> None:
    await seeded.delivery.record_exchange(trainer, "q", "a", reply_message_id="77")
    assert (await seeded.datasets.summary(member)).data["names"] == ["facts"]
    await seeded.feedback.leave(member, "nice")
    await seeded.feedback.correct(member, "77", "better")
    await seeded.feedback.react(member, "77", "👍")

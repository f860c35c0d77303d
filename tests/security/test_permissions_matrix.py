"""Every core command × (owner, trainer, member, DM, a trainer of another guild), in one
table: allowed or refused as DESIGN.md says, and what is refused — or done from another
guild — leaves guild A's rows and files exactly as they were."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import JSONL_FACTS, att, row_counts, tree_state
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.errors import NotAllowed, TrainerBotError

Command = Callable[[CoreService, Caller], Awaitable[Any]]

# name: (call, trainer only?)
COMMANDS: dict[str, tuple[Command, bool]] = {
    "hi": (lambda core, c: core.general.hi(c), False),
    "help": (lambda core, c: core.general.help(c), False),
    "suggest": (lambda core, c: core.suggestions.suggest(c, "dataset", "fa"), False),
    "bot_reply_text": (lambda core, c: core.feedback.bot_reply_text(c, "m1"), False),
    "instruction": (lambda core, c: core.general.instruction(c), False),
    "chat": (lambda core, c: core.chat.reply(c, "What is the capital of Zorbia?"), False),
    "feedback": (lambda core, c: core.feedback.leave(c, "more please"), False),
    "correct": (lambda core, c: core.feedback.correct(c, "m1", "Quillport."), False),
    "react": (lambda core, c: core.feedback.react(c, "m1", "👍"), False),
    "react with a reason": (lambda core, c: core.feedback.react(c, "m1", "👎", reason="too long"), False),
    "reason": (lambda core, c: core.feedback.reason(c, "m1", "wrong fact"), False),
    "datasets": (lambda core, c: core.datasets.summary(c), False),
    "dataset": (lambda core, c: core.datasets.stats(c, "facts"), False),
    "dataset item": (lambda core, c: core.datasets.item(c, "1"), False),
    "revisions": (lambda core, c: core.revisions.show(c, "1"), False),
    "revision chain": (lambda core, c: core.revisions.chain(c, "1"), False),
    "revert": (lambda core, c: core.revisions.revert(c, "3", "1", "the edit was wrong"), True),
    "edit": (lambda core, c: core.revisions.edit(c, "1", "Quillport, the port city."), True),
    "jobs": (lambda core, c: core.training.jobs(c), False),
    "job": (lambda core, c: core.training.job(c, "1"), False),
    "model list": (lambda core, c: core.models.versions(c), False),
    "model compare": (lambda core, c: core.models.compare(c, "v1", "v2"), False),
    "test": (lambda core, c: core.models.test(c, '[{"prompt": "a", "expected": "b"}]'), False),
    "handle_errors": (lambda core, c: core.models.handle_errors(c), False),
    "forget me": (lambda core, c: core.review.forget(c, "me"), False),
    "mydata": (lambda core, c: core.review.mydata(c), False),
    "audit": (lambda core, c: core.audit.latest(c), True),
    "audit entries": (lambda core, c: core.audit.entries(c), True),
    "contributors": (lambda core, c: core.contributors.contributors(c), False),
    "contributors hide": (lambda core, c: core.contributors.contributors(c, "hide"), False),
    "contributors rows": (lambda core, c: core.contributors.rows(c), False),
    "language (see)": (lambda core, c: core.voice.language(c), False),
    "persona (see)": (lambda core, c: core.persona.persona(c), False),
    "persona (set)": (lambda core, c: core.persona.persona(c, "You are a pirate."), True),
    "persona reset": (lambda core, c: core.persona.persona(c, "reset"), True),
    "say": (lambda core, c: core.voice.say(c, "Hello."), False),
    "import": (
        lambda core, c: core.datasets.import_data(c, "facts", None, att("more.jsonl", '{"prompt": "x", "response": "y"}\n')),
        True,
    ),
    "train": (lambda core, c: core.training.train(c, "facts"), True),
    "archive": (lambda core, c: core.datasets.archive(c, "facts"), True),
    "select_dataset": (lambda core, c: core.datasets.select_dataset(c, "facts"), True),
    "export": (lambda core, c: core.datasets.export(c, "facts", "sft"), True),
    "getfile": (lambda core, c: core.datasets.getfile(c, None), True),
    "cancel": (lambda core, c: core.training.cancel(c, "1"), True),
    "model use": (lambda core, c: core.models.use(c, "v1"), True),
    "review": (lambda core, c: core.review.next(c), True),
    "approve": (lambda core, c: core.review.approve(c, "1"), True),
    "approve edited": (lambda core, c: core.review.approve(c, "1", corrected="Quillport, the port."), True),
    "correction_text": (lambda core, c: core.review.correction_text(c, 1), True),
    "review next": (lambda core, c: core.review.next(c, after=1), True),
    "reject": (lambda core, c: core.review.reject(c, "1"), True),
    "forget someone": (lambda core, c: core.review.forget(c, "<@u-member>"), True),
    "language (set)": (lambda core, c: core.voice.language(c, "ru"), True),
    "delete item": (lambda core, c: core.datasets.delete_item(c, "1"), True),
    "dashboard logout": (lambda core, c: core.dashboard.logout(c), False),
    "dashboard jobs": (lambda core, c: core.dashboard.jobs(c), False),
    "dashboard job": (lambda core, c: core.dashboard.job(c, 1), False),
    "dashboard versions": (lambda core, c: core.dashboard.versions(c), False),
    "dashboard datasets": (lambda core, c: core.dashboard.datasets(c), False),
    "dashboard items": (lambda core, c: core.dashboard.items(c, None, "Zorbia"), False),
    "dashboard test runs": (lambda core, c: core.dashboard.test_runs(c), False),
    "dashboard test report": (lambda core, c: core.dashboard.test_report(c, 1), False),
    "dashboard pending": (lambda core, c: core.dashboard.pending(c), True),
    "dashboard flagged": (lambda core, c: core.dashboard.flagged(c), True),
    "dashboard archives": (lambda core, c: core.dashboard.archives(c), True),
    "dashboard feedback": (lambda core, c: core.dashboard.feedback(c), True),
    "dashboard decide": (lambda core, c: _decide(core, c), True),
}


async def _decide(core: CoreService, caller: Caller) -> None:
    core.dashboard.require_decider(caller)

ROLES: dict[str, Caller] = {
    "owner": Caller(guild_id="111", guild_name="Guild A", user_id="u-owner", channel_id="c1", is_owner=True),
    "trainer": Caller(guild_id="111", guild_name="Guild A", user_id="u-trainer", channel_id="c1", roles=frozenset({"trainer"})),
    "manager": Caller(guild_id="111", guild_name="Guild A", user_id="u-manager", channel_id="c1", can_manage=True),
    "member": Caller(guild_id="111", guild_name="Guild A", user_id="u-member2", channel_id="c1"),
    "DM": Caller(
        guild_id="dm-u-member2", user_id="u-member2", channel_id="dm", is_dm=True, roles=frozenset({"trainer"}), can_manage=True
    ),
    "other guild": Caller(guild_id="222", guild_name="Guild B", user_id="u-other", channel_id="c9", roles=frozenset({"trainer"})),
}
# In guild A the owner, trainers and Manage Server may do everything; members and DMs only
# what is not trainer-only; a trainer elsewhere may use every command in their own guild,
# which never reaches guild A.
ALLOWED = {
    "owner": lambda t: True,
    "trainer": lambda t: True,
    "manager": lambda t: True,
    "member": lambda t: not t,
    "DM": lambda t: not t,
    "other guild": lambda t: True,
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Guild A's data folder, built once: a dataset (its first answer edited once), a bot reply, a pending correction,
    a queued job, an export."""
    folder = tmp_path_factory.mktemp("template") / "data"

    async def build() -> None:
        core = CoreService.open(Settings(_env_file=None, data_dir=folder))  # type: ignore[call-arg]
        trainer, member = ROLES["trainer"], Caller(guild_id="111", guild_name="Guild A", user_id="u-member", channel_id="c1")
        await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
        await core.delivery.record_exchange(member, "What is the capital of Zorbia?", "Paris.", reply_message_id="m1")
        await core.feedback.correct(member, "m1", "Quillport, by the sea.")  # correction #1, pending
        await core.training.train(trainer, "facts")  # job #1, queued (no worker runs here)
        await core.datasets.export(trainer, "facts", "sft")
        await core.revisions.edit(trainer, "1", "Quillport, on the coast.")  # example #3, revision 2 of #1's question
        core.store.close()

    asyncio.run(build())
    return folder


@pytest.fixture
def seeded(template: Path, tmp_path: Path) -> Iterator[CoreService]:
    folder = tmp_path / "data"
    shutil.copytree(template, folder)
    core = CoreService.open(Settings(_env_file=None, data_dir=folder))  # type: ignore[call-arg]
    yield core
    core.store.close()


def _guild_a(core: CoreService) -> tuple[dict[str, int], dict[str, str]]:
    return row_counts(core), tree_state(core.data_dir / "guilds" / "111")


@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("command", sorted(COMMANDS))
async def test_permission_matrix(seeded: CoreService, command: str, role: str) -> None:
    call, trainer_only = COMMANDS[command]
    caller = ROLES[role]
    before = _guild_a(seeded)
    allowed = ALLOWED[role](trainer_only)
    try:
        await call(seeded, caller)
        outcome: BaseException | None = None
    except TrainerBotError as exc:
        outcome = exc
    if allowed:
        assert not isinstance(outcome, NotAllowed), f"{role} was refused `{command}`: {outcome}"
    else:
        assert isinstance(outcome, NotAllowed), f"{role} was not refused `{command}` ({outcome!r})"
        assert "Only trainers" in outcome.user_message
    if not allowed or role in ("other guild", "DM"):
        rows, files = _guild_a(seeded)
        # Another space may add its own rows (a guild row, its own chat); guild A's files never change.
        assert files == before[1]
        if not allowed:
            assert rows == before[0]


def test_the_matrix_covers_every_core_command(seeded: CoreService) -> None:
    """Every public method of every command group is in the matrix, or declared plumbing."""
    groups = {"general", "chat", "feedback", "review", "datasets", "training", "models", "voice", "delivery", "suggestions",
              "dashboard", "audit", "contributors", "revisions"}
    public = {
        f"{g}.{name}"
        for g in groups
        for name in dir(getattr(seeded, g))
        if not name.startswith("_") and callable(getattr(getattr(seeded, g), name))
    }
    plumbing = {
        f"delivery.{m}"
        for m in ("record_exchange", "bind_reply", "bind_review", "watch_job", "progress_updates", "mark_announced")
    } | {
        "voice.missing",
        "voice.speech",
        "voice.guild_language",
        "voice.transcribe",
        "chat.voice_message",
        "chat.close",  # the service closing its reply threads, not a command
        "review.reaction",
        "datasets.snapshot",
        # Sign-in plumbing of the web adapter; the link needs the dashboard on (tests/adapters/web).
        "dashboard.redeem",
        "dashboard.session",
        "dashboard.end_session",
        "dashboard.base_url",
        "dashboard.link",
    }
    covered = {
        "general.hi",
        "general.help",
        "general.instruction",
        "chat.reply",
        "feedback.leave",
        "feedback.correct",
        "feedback.react",
        "feedback.reason",
        "feedback.bot_reply_text",
        "datasets.summary",
        "datasets.stats",
        "datasets.item",
        "revisions.show",
        "revisions.chain",
        "revisions.revert",
        "revisions.edit",
        "datasets.import_data",
        "datasets.archive",
        "datasets.select_dataset",
        "datasets.export",
        "datasets.getfile",
        "training.train",
        "training.jobs",
        "training.job",
        "training.cancel",
        "models.versions",
        "models.use",
        "models.compare",
        "models.test",
        "models.handle_errors",
        "review.next",
        "review.approve",
        "review.reject",
        "review.correction_text",
        "review.forget",
        "review.mydata",
        "audit.latest",
        "audit.entries",
        "contributors.contributors",
        "contributors.rows",
        "voice.language",
        "voice.say",
        "suggestions.suggest",
        "datasets.delete_item",
        "datasets.guild_item",  # a lookup the revisions group shares, not a command
        "dashboard.logout",
        "dashboard.jobs",
        "dashboard.job",
        "dashboard.versions",
        "dashboard.datasets",
        "dashboard.items",
        "dashboard.test_runs",
        "dashboard.test_report",
        "dashboard.pending",
        "dashboard.flagged",
        "dashboard.archives",
        "dashboard.feedback",
        "dashboard.require_decider",
    }
    assert public - plumbing == covered, (public - plumbing) ^ covered

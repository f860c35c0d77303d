"""Discord's interaction tools around the core: answering slash commands in time, ephemeral
errors, the correction modal, and the review buttons.

- ``answer`` runs a command's work and, on a slash command, defers the response when the
  work has not finished within ``DEFER_AFTER_S`` (Discord drops an interaction that gets
  no response within 3 s). A prefix command shows typing instead.
- The review buttons are ``DynamicItem``s: their ``custom_id`` carries the action and the
  correction's ID, and ``TrainerBot.setup_hook`` registers the class, so a review message
  keeps working after the bot restarts (no view state lives in memory).
- ``CorrectModal`` is the one form for teaching a better answer to one of the bot's
  replies: the message context menu "Correct this reply" and a flagged reply's button
  open it, pre-filled with the reply's text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import discord
from discord.ext import commands

from trainerbot.adapters.discord.protocol import BotServices, services
from trainerbot.adapters.discord.render import NO_MENTIONS, caller_of, shown
from trainerbot.core import Caller, Reply
from trainerbot.core.corrections import REASONS
from trainerbot.core.permissions import require_trainer
from trainerbot.errors import NotAllowed, TrainerBotError
from trainerbot.ops import metrics
from trainerbot.store.tables import CorrectionStatus

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFER_AFTER_S = 1.5  # defer a slash command still working after this long (Discord's deadline: 3 s)
APOLOGY = "Sorry, something went wrong on my side. The error is in the bot's log."
DM_EVERY_S = 60.0  # at most one "your reaction was refused" DM a minute per person
MODAL_TEXT_MAX = 4000  # Discord's limit for a text input
NOT_MY_REPLY = ("That is not one of my replies — I can only take corrections to answers I gave "
                "in chat (mention me, DM me, or reply to me, then correct my answer).")


def interaction_caller(interaction: discord.Interaction[Any]) -> Caller:
    owners = services(interaction.client).owner_ids_known
    return caller_of(interaction.user, interaction.guild, interaction.channel_id or 0, owner_ids=owners)


async def answer(ctx: commands.Context[Any], work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work``; a slash command still waiting after ``DEFER_AFTER_S`` is deferred
    ("thinking…") so Discord keeps the interaction. A prefix command shows typing."""
    interaction = ctx.interaction
    if interaction is None:
        async with ctx.typing():
            return await work()
    task: asyncio.Future[T] = asyncio.ensure_future(work())
    done, _ = await asyncio.wait({task}, timeout=DEFER_AFTER_S)
    if not done and not interaction.response.is_done():
        await interaction.response.defer(thinking=True)
        interaction.extras["deferred"] = True
    return await task


async def tell(interaction: discord.Interaction[Any], text: str) -> None:
    """An ephemeral answer to an interaction, whatever state its response is in."""
    text = shown(text)[:2000]
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        return
    if interaction.extras.get("deferred") and not interaction.extras.get("answered"):
        # A public "thinking…" placeholder would turn the error public: remove it first.
        try:
            await interaction.delete_original_response()
        except discord.HTTPException:
            pass
    await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def tell_by_dm(bot: BotServices, user: discord.User | discord.Member, text: str) -> bool:
    """A reaction cannot be answered ephemerally: say it in a DM, at most once a minute each."""
    sent_at: dict[int, float] = bot.refusal_dm_at
    now = time.monotonic()
    if now - sent_at.get(user.id, -DM_EVERY_S) < DM_EVERY_S:
        return False
    sent_at[user.id] = now
    try:
        await user.send(shown(text)[:2000], allowed_mentions=discord.AllowedMentions.none())
    except discord.HTTPException:  # DMs closed: nothing more can be done
        log.info("could not DM a refused reaction to %s", user.id)
        return False
    return True


async def fail(interaction: discord.Interaction[Any], exc: BaseException) -> None:
    """Answer an interaction whose handling raised: the user's message, or an apology."""
    metrics.user_error(exc)
    if isinstance(exc, TrainerBotError):
        text = exc.user_message
    else:
        log.error("interaction %s failed", interaction.data and interaction.data.get("custom_id", interaction.data.get("name")),
                  exc_info=exc)
        text = APOLOGY
    try:
        await tell(interaction, text)
    except discord.HTTPException:
        log.info("could not answer a failed interaction")


# ---------------------------------------------------------------- correcting
class AnswerModal(discord.ui.Modal):
    """A form with one paragraph box for an answer, pre-filled; a failure is answered ephemerally."""

    def __init__(self, *, title: str, label: str, text: str, max_chars: int) -> None:
        super().__init__(title=title[:45], timeout=15 * 60)
        limit = min(MODAL_TEXT_MAX, max_chars)
        self.answer: discord.ui.TextInput[AnswerModal] = discord.ui.TextInput(
            label=label, style=discord.TextStyle.paragraph, default=text[:limit], max_length=limit, required=True)
        self.add_item(self.answer)

    # (override: discord.py types the interaction by the client's type variable; any client will do here)
    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, /) -> None:  # type: ignore[override]
        await fail(interaction, error)


class CorrectModal(AnswerModal):
    """"A better answer" to one of the bot's replies, stored through the core as ``correct``."""

    def __init__(self, message_id: str, original: str, *, max_chars: int) -> None:
        super().__init__(title="Correct this reply", label="A better answer", text=original, max_chars=max_chars)
        self.message_id = message_id

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        caller = interaction_caller(interaction)
        reply = await services(interaction.client).core.feedback.correct(caller, self.message_id, self.answer.value)
        await tell(interaction, reply.content)


async def open_correction(interaction: discord.Interaction[Any], message_id: str) -> None:
    """Open the correction form for the bot's reply ``message_id``, or say it is not one."""
    bot = services(interaction.client)
    original = await bot.core.feedback.bot_reply_text(interaction_caller(interaction), message_id)
    if original is None:
        await tell(interaction, NOT_MY_REPLY)
        return
    await interaction.response.send_modal(CorrectModal(message_id, original,
                                                       max_chars=bot.settings.limits.max_field_chars))


# ------------------------------------------------------------------ reviewing
REVIEW_ACTIONS = {
    "approve": ("Approve", discord.ButtonStyle.success, "✅"),
    "reject": ("Reject", discord.ButtonStyle.danger, "❌"),
    "edit": ("Edit", discord.ButtonStyle.secondary, "✏️"),
    "next": ("Next", discord.ButtonStyle.primary, "⏭️"),
}


class ReviewButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"trb:review:(?P<action>approve|reject|edit|next):(?P<cid>[0-9]{1,18})",
):
    """One of a review message's buttons; its ``custom_id`` is all the state it needs."""

    def __init__(self, action: str, correction_id: int) -> None:
        label, style, emoji = REVIEW_ACTIONS[action]
        super().__init__(
            discord.ui.Button(label=label, style=style, emoji=emoji, custom_id=f"trb:review:{action}:{correction_id}")
        )
        self.action = action
        self.correction_id = correction_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> ReviewButton:
        return cls(match["action"], int(match["cid"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self._press(interaction)
        except Exception as exc:  # every failure gets an ephemeral answer
            await fail(interaction, exc)

    async def _press(self, interaction: discord.Interaction[Any]) -> None:
        core = services(interaction.client).core
        caller = interaction_caller(interaction)
        if self.action == "edit":
            text = await core.review.correction_text(caller, self.correction_id)  # refuses non-trainers
            await interaction.response.send_modal(
                EditCorrectionModal(self.correction_id, text,
                                    max_chars=services(interaction.client).settings.limits.max_field_chars)
            )
            return
        if self.action == "next":
            await show_review(interaction, await core.review.next(caller, after=self.correction_id))
            return
        decided = await (core.review.approve if self.action == "approve" else core.review.reject)(caller, self.correction_id)
        await after_decision(interaction, caller, decided)


class ProposalSelect(
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=r"trb:review:pick:(?P<first>[0-9]{1,18})",
):
    """The answers proposed for one question, as a menu: picking one shows the question again
    with that one picked, and the buttons below act on it. Its ``custom_id`` and options are
    all the state it needs (it works after a restart)."""

    def __init__(self, first: int, options: list[discord.SelectOption]) -> None:
        super().__init__(discord.ui.Select(custom_id=f"trb:review:pick:{first}", placeholder="Pick the answer to teach",
                                           options=options, min_values=1, max_values=1))

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> ProposalSelect:
        return cls(int(match["first"]), item.options if isinstance(item, discord.ui.Select) else [])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            chosen = int(self.item.values[0])
            await show_review(interaction, await services(interaction.client).core.review.next(interaction_caller(interaction),
                                                                                     chosen=chosen))
        except Exception as exc:  # every failure gets an ephemeral answer
            await fail(interaction, exc)


class EditCorrectionModal(AnswerModal):
    """Change a pending correction's answer, then approve it."""

    def __init__(self, correction_id: int, text: str, *, max_chars: int) -> None:
        super().__init__(title=f"Edit correction #{correction_id}", label="The answer to teach", text=text, max_chars=max_chars)
        self.correction_id = correction_id

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        caller = interaction_caller(interaction)
        decided = await services(interaction.client).core.review.approve(caller, self.correction_id, corrected=self.answer.value)
        await after_decision(interaction, caller, decided)


async def after_decision(interaction: discord.Interaction[Any], caller: Caller, decided: Reply) -> None:
    """A decision was made (or found made already): update the review message in place."""
    decision = decided.decision
    assert decision is not None  # approve/reject always say what they decided
    if decision.already:
        await tell(interaction, decided.content)  # someone else decided it first: nothing applied twice
        return
    mark = "✅" if decision.status == CorrectionStatus.APPROVED else "❌"
    header = f"{mark} Correction #{decision.correction_id} {decision.status} by <@{caller.user_id}>."
    if decision.superseded:
        header += f" {', '.join(f'#{o}' for o in decision.superseded)} closed as superseded."
    following = await services(interaction.client).core.review.next(caller, after=decision.correction_id)
    await show_review(interaction, following, header=header)


def review_view(reply: Reply) -> discord.ui.View | None:
    """The buttons for a ``review`` reply: a pending correction's four (under a menu of the
    proposals where several answer one question), a flagged reply's one."""
    item = reply.review
    if item is not None and item.kind == "correction" and item.correction_id is not None:
        view = discord.ui.View(timeout=None)
        if len(item.proposals) > 1:  # several answers to one question: pick one, then Approve (or Reject, Edit)
            options = [discord.SelectOption(label=label[:100], value=str(cid), default=cid == item.correction_id)
                       for cid, label in list(zip(item.proposals, item.labels, strict=True))[:25]]
            view.add_item(ProposalSelect(item.proposals[0], options))
        for action in REVIEW_ACTIONS:
            view.add_item(ReviewButton(action, item.correction_id))
        return view
    if item is not None and item.kind == "flagged" and item.message_id:
        view = discord.ui.View(timeout=None)
        view.add_item(FlaggedCorrectButton(item.message_id))
        return view
    return None


async def show_review(interaction: discord.Interaction[Any], reply: Reply, *, header: str = "") -> None:
    """Edit the pressed review message to show ``reply`` (the next item) with its buttons."""
    content = shown(f"{header}\n\n{reply.content}" if header else reply.content)[:2000]
    view = review_view(reply)
    if interaction.response.is_done():
        await interaction.edit_original_response(content=content, view=view, allowed_mentions=NO_MENTIONS)
    else:
        await interaction.response.edit_message(content=content, view=view, allowed_mentions=NO_MENTIONS)
    if interaction.message is not None and reply.review is not None and reply.review.correction_id is not None:
        caller = interaction_caller(interaction)
        await services(interaction.client).core.delivery.bind_review(caller, reply.review.correction_id,
                                                                     str(interaction.message.id))


class FlaggedCorrectButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"trb:flagged:correct:(?P<mid>[A-Za-z0-9_-]{1,64})"
):
    """ "Correct it" under a 👎-flagged reply in the review queue: opens the correction form."""

    def __init__(self, message_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Correct it", style=discord.ButtonStyle.primary, emoji="✏️", custom_id=f"trb:flagged:correct:{message_id}"
            )
        )
        self.message_id = message_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> FlaggedCorrectButton:
        return cls(match["mid"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            role = services(interaction.client).settings.discord.trainer_role
            require_trainer(interaction_caller(interaction), role, "review corrections")
            await open_correction(interaction, self.message_id)
        except Exception as exc:
            await fail(interaction, exc)


class ReasonSelect(
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=r"trb:why:(?P<guild>[0-9]{1,20}):(?P<mid>[0-9]{1,20})",
):
    """"What was wrong?" after a 👎, sent to the rater by DM (a reaction has no ephemeral
    answer): a reason for their rating of that reply in that server. Optional; its
    ``custom_id`` is its state, and the core only sets the reason of the chooser's own 👎."""

    def __init__(self, guild_id: int, message_id: int) -> None:
        options = [discord.SelectOption(label=words, value=key) for key, words in REASONS.items()]
        super().__init__(discord.ui.Select(custom_id=f"trb:why:{guild_id}:{message_id}", placeholder="What was wrong?",
                                           options=options, min_values=1, max_values=1))
        self.guild_id, self.message_id = guild_id, message_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> ReasonSelect:
        return cls(int(match["guild"]), int(match["mid"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            bot = services(interaction.client)
            guild = interaction.client.get_guild(self.guild_id)
            member = guild.get_member(interaction.user.id) if guild is not None else None
            if guild is None or member is None:
                raise NotAllowed("You are no longer in that server, so that rating is not yours to explain.")
            caller = caller_of(member, guild, 0, owner_ids=bot.owner_ids_known)
            reply = await bot.core.feedback.reason(caller, str(self.message_id), self.item.values[0])
            await interaction.response.edit_message(content=shown(reply.content), view=None)
        except Exception as exc:  # every failure gets an ephemeral answer
            await fail(interaction, exc)


async def ask_why(bot: BotServices, user: discord.User | discord.Member, guild: discord.Guild, message_id: int) -> bool:
    """After a 👎: ask the rater by DM what was wrong (at most once a minute each; nothing when
    their DMs are closed)."""
    now = time.monotonic()
    if now - bot.reason_dm_at.get(user.id, -DM_EVERY_S) < DM_EVERY_S:
        return False
    bot.reason_dm_at[user.id] = now
    view = discord.ui.View(timeout=None)
    view.add_item(ReasonSelect(guild.id, message_id))
    try:
        await user.send(f"You rated one of my replies in **{discord.utils.escape_markdown(guild.name)}** 👎. "
                        "What was wrong with it? (Optional — it helps the trainers.)", view=view,
                        allowed_mentions=discord.AllowedMentions.none())
    except discord.HTTPException:  # DMs closed: the 👎 counts all the same
        return False
    return True


DYNAMIC_ITEMS = (ReviewButton, ProposalSelect, FlaggedCorrectButton, ReasonSelect)

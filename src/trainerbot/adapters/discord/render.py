"""Turning core values into Discord messages, and Discord input into core values."""

from __future__ import annotations

from typing import Any

import discord
from discord.ext import commands

from trainerbot.adapters.discord.protocol import services
from trainerbot.core import Attachment, Caller, Reply
from trainerbot.core.permissions import is_trainer
from trainerbot.core.text import with_prefix
from trainerbot.errors import BadInput

NO_MENTIONS = discord.AllowedMentions.none()
EMBED_COLOUR = discord.Colour.blurple()
RATINGS = ("👍", "👎")  # added under every chat reply; a reaction rates the reply
SLASH = "/"  # what the core's command mark becomes here: Discord's commands are slash commands
ROW_LABEL_HELP = "The label for rows that carry none (positive: a good answer, negative: a bad one)"


def shown(text: str) -> str:
    """A core text as Discord shows it: its commands written as slash commands."""
    return with_prefix(text, SLASH)


def caller_of(user: discord.abc.User, guild: discord.Guild | None, channel_id: int, *, owner_ids: set[int]) -> Caller:
    """The core's ``Caller`` for a Discord user in a guild (or a DM)."""
    is_owner = user.id in owner_ids
    if guild is None:
        return Caller(guild_id=f"dm-{user.id}", guild_name="DM", user_id=str(user.id), user_name=user.display_name,
                      channel_id=str(channel_id), is_owner=is_owner, is_dm=True)
    member = user if isinstance(user, discord.Member) else guild.get_member(user.id)
    roles = frozenset(r.name for r in member.roles) if member is not None else frozenset()
    manage = bool(member is not None and member.guild_permissions.manage_guild)
    return Caller(guild_id=str(guild.id), guild_name=guild.name, user_id=str(user.id), user_name=user.display_name,
                  channel_id=str(channel_id), roles=roles, can_manage=manage, is_owner=is_owner)


def first_attachment(ctx: commands.Context[Any], given: discord.Attachment | None) -> discord.Attachment | None:
    """The attachment a command was given: its slash-command argument, else the message's first file."""
    if given is not None:
        return given
    return ctx.message.attachments[0] if ctx.message is not None and ctx.message.attachments else None


def ctx_caller(ctx: commands.Context[Any]) -> Caller:
    return caller_of(ctx.author, ctx.guild, ctx.channel.id, owner_ids=services(ctx.bot).owner_ids_known)


def trainer_only() -> Any:
    """A command check: the trainer role or Manage Server (the core checks again)."""
    async def predicate(ctx: commands.Context[Any]) -> bool:
        role = services(ctx.bot).settings.discord.trainer_role
        if not is_trainer(ctx_caller(ctx), role):
            name = ctx.command.qualified_name if ctx.command is not None else ctx.invoked_with
            raise commands.CheckFailure(
                f"Only trainers can use `{name}`: you need the `{role}` role or Manage Server."
                if ctx.guild is not None
                else f"`{name}` works in a server, not in DMs."
            )
        return True

    return commands.check(predicate)


def embed_of(reply: Reply) -> discord.Embed | None:
    if reply.embed is None:
        return None
    e = discord.Embed(title=reply.embed.title, description=reply.embed.description or None, colour=EMBED_COLOUR)
    for f in reply.embed.fields[:25]:
        e.add_field(name=f.name[:256], value=(f.value or "—")[:1024], inline=f.inline)
    if reply.embed.footer:
        e.set_footer(text=reply.embed.footer[:2048])
    return e


async def send_reply(
    destination: discord.abc.Messageable | commands.Context[Any],
    reply: Reply,
    *,
    reference: discord.Message | None = None,
    view: discord.ui.View | None = None,
    ephemeral: bool = False,
) -> discord.Message | None:
    """Send every part of a reply; files (and ``view``, its buttons) go with the last part.
    ``ephemeral`` shows a slash command's answer to its caller only. Never pings anyone."""
    reply = reply.for_prefix(SLASH)
    embed = embed_of(reply)
    # An embed replaces the text parts (they are its plain-text rendering); with no text
    # at all, one empty part still carries the embed or the files.
    parts = ([] if embed is not None else list(reply.messages)) or [""]
    files = [discord.File(f.path, filename=f.name) for f in reply.files]
    last: discord.Message | None = None
    for i, part in enumerate(parts):
        final = i == len(parts) - 1
        kwargs: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
        if ephemeral and isinstance(destination, commands.Context) and destination.interaction is not None:
            kwargs["ephemeral"] = True
        if part:
            kwargs["content"] = part
        if final and embed is not None:
            kwargs["embed"] = embed
        if final and files:
            kwargs["files"] = files
        if final and view is not None:
            kwargs["view"] = view
        if reference is not None and i == 0:
            kwargs["reference"] = reference
            kwargs["mention_author"] = False
        if not kwargs.get("content") and "embed" not in kwargs and "files" not in kwargs:
            continue
        last = await destination.send(**kwargs)
        interaction = getattr(destination, "interaction", None)
        if interaction is not None:
            interaction.extras["answered"] = True  # an error after this is a new, ephemeral message
    return last


async def read_attachment(att: discord.Attachment, limit: int) -> Attachment:
    """The attachment's bytes, refused before reading when Discord says it is too large."""
    if att.size and att.size > limit:
        raise BadInput(f"`{att.filename[:80]}` is {att.size / 1024 / 1024:.1f} MiB; the limit is {limit / 1024 / 1024:.1f} MiB.")
    data = await att.read()
    if len(data) > limit:
        raise BadInput(f"`{att.filename[:80]}` is larger than the {limit / 1024 / 1024:.1f} MiB limit.")
    return Attachment(filename=att.filename, content_type=att.content_type, data=data)

"""Autocomplete callbacks for slash-command arguments: suggestions come from the core, for
the caller's server only (``CoreService.suggest``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from trainerbot.adapters.discord.ui import interaction_caller
from trainerbot.core.suggest import Kind

log = logging.getLogger(__name__)
Completer = Callable[[discord.Interaction[Any], str], Awaitable[list[app_commands.Choice[Any]]]]


def suggester(kind: Kind) -> Completer:
    async def complete(interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[Any]]:
        try:
            found = await interaction.client.core.suggestions.suggest(interaction_caller(interaction), kind, current)
        except Exception:  # a suggestion list must never turn into an error for the user
            log.exception("autocomplete for %s failed", kind)
            return []
        return [app_commands.Choice(name=s.label, value=s.value) for s in found]
    complete.__name__ = complete.__qualname__ = f"complete_{kind}"
    return complete


datasets = suggester("dataset")
versions = suggester("version")
jobs = suggester("job")
tests = suggester("test")
corrections = suggester("correction")

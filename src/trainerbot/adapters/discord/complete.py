"""Autocomplete callbacks for slash-command arguments: suggestions come from the core, for
the caller's server only (``CoreService.suggest``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import discord
from discord import app_commands

from trainerbot.adapters.discord.protocol import services
from trainerbot.adapters.discord.ui import interaction_caller
from trainerbot.core.suggest import Kind

log = logging.getLogger(__name__)
# discord.py's autocomplete takes a coroutine function of (interaction, current) → choices.
Completer = Callable[[discord.Interaction[Any], str], Coroutine[Any, Any, list[app_commands.Choice[str | int]]]]


def suggester(kind: Kind) -> Completer:
    async def complete(interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str | int]]:
        try:
            found = await services(interaction.client).core.suggestions.suggest(interaction_caller(interaction), kind, current)
        except Exception:  # a suggestion list must never turn into an error for the user
            log.exception("autocomplete for %s failed", kind)
            return []
        choices: list[app_commands.Choice[str | int]] = [app_commands.Choice(name=s.label, value=s.value) for s in found]
        return choices
    complete.__name__ = complete.__qualname__ = f"complete_{kind}"
    return complete


datasets = suggester("dataset")
versions = suggester("version")
jobs = suggester("job")
tests = suggester("test")
corrections = suggester("correction")

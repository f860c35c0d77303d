"""The one exception tree of trainerbot.

Every error a user can cause or meet is a ``TrainerBotError`` carrying a message fit to
show them as it is (the commands it names written with ``COMMAND``, which the adapter turns
into its prefix). Adapters catch the tree at one place and render ``user_message``; anything
else is a bug, logged with its trace and answered with a short apology.
This module imports nothing of the project, so every layer may raise these.

    TrainerBotError
    ├── BadInput        the request or its attachment is malformed; nothing was changed
    ├── NotAllowed      the caller lacks the role the command needs
    ├── NotFound        a named dataset, message, file, job or version does not exist here
    ├── Busy            a limit was hit (rate, queue); try again later
    ├── NotAvailable    the feature is not part of this build or not configured
    └── ConfigError     the settings are invalid (raised at start)
"""

from __future__ import annotations

# Where a message names a command, it holds this mark instead of a prefix
# (f"`{COMMAND}train sample`"): the core and what is under it do not know how their reader
# types commands. Each adapter puts its own prefix in its place (``core.text.with_prefix``):
# the console its `!`, Discord and the dashboard `/`. A character from Unicode's private use
# area, which no keyboard types.
COMMAND = "\ue000"


class TrainerBotError(Exception):
    """Base of every error with a user-facing message."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class BadInput(TrainerBotError):
    """Malformed command or attachment; the store and the disk are unchanged."""


class NotAllowed(TrainerBotError):
    """The caller lacks the permission the command needs."""


class NotFound(TrainerBotError):
    """A named thing does not exist, or not in the caller's guild."""


class Busy(TrainerBotError):
    """A bound was reached (per-user rate, queue length); retry later."""

    def __init__(self, user_message: str, retry_after: float | None = None) -> None:
        super().__init__(user_message)
        self.retry_after = retry_after


class NotAvailable(TrainerBotError):
    """The feature is not in this build, or not configured."""


class ConfigError(TrainerBotError):
    """Invalid settings; the message names the setting, never a secret's value."""


DISK_FULL = "The bot's disk is full, so nothing was saved. Ask whoever runs the bot to free some space."
STORE_DOWN = "I can't reach my database right now, so nothing was done. Try again in a moment."

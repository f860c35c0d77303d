"""The Discord adapter: a ``commands.Bot`` wired to the core, one cog per command group.

Cogs parse Discord input, check permissions, call the core and render its replies; no
business logic lives here. ``TrainerBot`` is built in ``trainerbot.cli`` with the core.
"""

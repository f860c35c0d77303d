"""trainerbot: a Discord bot through which a community chats with a language model and teaches it."""

__version__ = "0.1.0"

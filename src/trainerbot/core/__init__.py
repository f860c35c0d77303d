"""The core: command logic as plain async methods, shared by every adapter."""

from trainerbot.core.service import CoreService
from trainerbot.core.types import Attachment, Caller, Embed, EmbedField, OutFile, Reply

__all__ = ["Attachment", "Caller", "CoreService", "Embed", "EmbedField", "OutFile", "Reply"]

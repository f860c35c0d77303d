"""Logging set-up: plain text or one JSON object a line, secrets redacted, to standard error
and/or a rotating file.

``TRAINERBOT_LOG_FORMAT=json`` gives ``{"time", "level", "logger", "message", "guild",
"job"}`` per line (``guild`` and ``job`` when the record carries them, as
``extra={"guild": …, "job": …}``; an exception's trace goes in ``"exc"``). Whatever the
format, the values of the configured secrets (the Discord token, the OpenAI key, the
database password) are replaced by ``***`` in every record before it is written.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainerbot.config import OperationsSettings

LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Redact(logging.Filter):
    """Replace secret values in a record's message, arguments and trace with ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = self._clean(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self._clean(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "guild": getattr(record, "guild", None),
            "job": getattr(record, "job", None),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def rotating_file(path: Path) -> logging.handlers.RotatingFileHandler:
    """A log file rotated at ``LOG_MAX_BYTES``, keeping ``LOG_BACKUPS`` older ones (the bot's
    log and the worker's output alike)."""
    return logging.handlers.RotatingFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8",
                                                delay=True)


def configure(operations: OperationsSettings, secrets: list[str], *, log_file: Path | None = None,
              to_stderr: bool = True) -> None:
    """Send the process's logs to standard error and/or ``log_file`` (rotating), in the
    configured format, with every one of ``secrets`` (``Settings.secret_values()``) redacted."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter: logging.Formatter = JsonFormatter() if operations.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    redact = Redact(secrets)
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(rotating_file(log_file))
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(redact)
        root.addHandler(handler)
    root.setLevel(operations.log_level)

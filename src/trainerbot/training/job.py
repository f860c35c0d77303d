"""One claimed job as every step of running it sees it: read once when the job starts and
handed, whole and frozen, from the runner to the recipe's registration or to the remote
fine-tuning follower, instead of a dozen loose parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainerbot.config import ModelSettings, OpenAISettings, TrainingSettings
from trainerbot.evaluation.cases import Case
from trainerbot.store import Store
from trainerbot.store.tables import ModelVersion


@dataclass(frozen=True)
class JobSettings:
    """What running a job reads of the settings (the worker builds it: ``worker.job_settings``)."""

    model: ModelSettings  # the base model, and the runtimes the checks ask
    training: TrainingSettings  # the recipe's overrides, the held-out share, the promotion rule
    openai: OpenAISettings  # the server a remote job fine-tunes on
    data_dir: Path


@dataclass(frozen=True)
class JobContext:
    settings: JobSettings
    store: Store
    job_id: int
    worker: str  # "host:pid" of the worker holding the job's lease
    stop: Callable[[], bool]  # true once the worker itself is stopping
    guild_id: int  # the guild's row
    guild_pid: str  # the guild's platform ID (its data folder)
    snapshot_id: int
    recipe: str
    parent: ModelVersion | None  # the version active when the job started
    cases: tuple[Case, ...] = ()  # held-out questions the new version is judged on
    # Up to 8 of the trained questions (never rehearsal): where no held-out ones are left, the
    # llama.cpp runtime is compared with torch on these (they come out alike on both, or the merge broke).
    taught: tuple[Case, ...] = ()
    persona: str | None = None  # the server's persona when the job started (None: the shipped one)
    pause: Callable[[], float] | None = None  # waits while chat on this machine writes a reply (chat_first)

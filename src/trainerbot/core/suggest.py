"""Suggestions while a user types an argument (Discord's autocomplete): dataset names, model
versions, recent jobs, test runs and pending corrections — from the caller's server only.

Each answer is at most 25 entries (Discord's limit) with a label of at most 100
characters; user text in a label is shortened. Suggestions never raise for a user's
typing: an unknown server or an empty store gives an empty list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trainerbot.config import OpenAISettings
from trainerbot.core.base import Basis, Group
from trainerbot.core.permissions import is_trainer
from trainerbot.core.types import Caller
from trainerbot.plural import count
from trainerbot.store import repo
from trainerbot.store.tables import Correction, JobStatus

Kind = Literal["dataset", "version", "job", "test", "correction"]
MAX_SUGGESTIONS = 25  # Discord shows at most 25 choices
LABEL_CHARS = 100


@dataclass(frozen=True)
class Suggestion:
    label: str  # what the user sees
    value: str | int  # what the command receives


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    """One line of at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Suggestions(Group):
    def __init__(self, basis: Basis, *, openai: OpenAISettings) -> None:
        super().__init__(basis)
        self.openai = openai  # the configured remote model is offered as a version

    async def suggest(self, caller: Caller, kind: Kind, typed: str = "") -> list[Suggestion]:
        typed = (typed or "").strip().lower()[:100]
        if kind == "correction" and not is_trainer(caller, self.trainer_role):
            return []  # only trainers decide corrections; members get no list of them
        return await self._blocking(self._suggestions, caller, kind, typed)

    def _suggestions(self, caller: Caller, kind: Kind, typed: str) -> list[Suggestion]:
        with self.store.read() as s:
            guild = self._find_guild(s, caller)
            if guild is None:
                return []
            out: list[Suggestion] = []
            if kind == "dataset":
                for ds, current, _pos, _neg, archives in repo.dataset_summaries(s, guild.id):
                    if typed in ds.name.lower():
                        extra = f", {archives} archived" if archives else ""
                        out.append(Suggestion(_short(f"{ds.name} — {count(current, 'example')}{extra}"), ds.name))
            elif kind == "version":
                versions = repo.versions(s, guild.id, newest_first=True)
                for v in versions:
                    what = f"remote {v.base}" if v.backend == "openai" else f"{v.recipe.upper()}, job #{v.job_id}"
                    label = _short(f"{v.name} — {what}{' (active)' if v.active else ''}")
                    if typed in label.lower():
                        out.append(Suggestion(label, v.name))
                remote = f"openai:{self.openai.openai_model}"
                if (
                    self.openai.openai_api_key is not None
                    and typed in remote.lower()
                    and not any(v.backend == "openai" and v.base == self.openai.openai_model for v in versions)
                ):
                    out.append(Suggestion(_short(f"{remote} — the configured remote model"), remote))
            elif kind == "job":
                for job in repo.recent_jobs(s, guild.id, 200):
                    label = _short(
                        f"#{job.id} — {job.recipe.upper()}, {job.status}"
                        + (f" {job.progress * 100:.0f} %" if job.status == JobStatus.RUNNING else "")
                    )
                    if not typed or typed.lstrip("#") in str(job.id) or typed in label.lower():
                        out.append(Suggestion(label, job.id))
            elif kind == "test":
                for run in repo.recent_test_runs(s, guild.id, 200):
                    label = _short(
                        f"#{run.id} — {run.model_version}, {run.wrong} of {run.cases} wrong"
                        + (", handled" if run.handled else "")
                    )
                    if not typed or typed.lstrip("#") in str(run.id) or typed in label.lower():
                        out.append(Suggestion(label, run.id))
            elif kind == "correction":
                for corr in s.scalars(repo.pending_corrections(guild.id).order_by(Correction.id).limit(200)):
                    label = _short(f"#{corr.id} — {_short(corr.prompt, 40)} → {_short(corr.corrected, 45)}")
                    if not typed or typed.lstrip("#") in str(corr.id) or typed in label.lower():
                        out.append(Suggestion(label, corr.id))
            return out[:MAX_SUGGESTIONS]

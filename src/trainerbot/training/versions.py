"""Model versions: a finished job's model is evaluated (held-out cases; for a pretrained
model also the general questions), registered as the guild's next ``vN``, and made active
only when it is not worse than the active one. A version chat would serve through llama.cpp
is asked the same questions there too (``runtime_check``), and is served by torch instead
if llama.cpp answers worse. Both the local runner and the remote
(OpenAI-compatible) path finish here, so training flows one way: runner/remote → versions.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from trainerbot.config import Settings
from trainerbot.errors import NotAvailable
from trainerbot.evaluation import heldout
from trainerbot.evaluation.cases import Case
from trainerbot.evaluation.metrics import summarise
from trainerbot.evaluation.run import score_cases
from trainerbot.fileio import atomic_write_bytes
from trainerbot.model.files import DONE_MARKER
from trainerbot.model.runtime import scoring_runtime
from trainerbot.store import Store
from trainerbot.store.models import Guild, JobStatus, ModelVersion
from trainerbot.training import queue
from trainerbot.training.job import JobContext

log = logging.getLogger(__name__)

HELDOUT_MAX_TOKENS = 64  # held-out answers are short; a pretrained model rambles on what it does not know


def promotion(
    settings: Settings, candidate: Any, parent: ModelVersion | None, cases: list[Case], persona: str | None = None,
    pause: Callable[[], object] | None = None,
) -> tuple[bool, dict[str, Any], str, list[dict[str, Any]]]:
    """(promote?, metrics to keep, the reason in words, the candidate's answers) for the
    ``candidate`` model against ``parent``, both asked under the server's ``persona``
    (``pause``: before each question, the worker gives way to chat)."""
    metric = settings.promotion_metric
    if not cases:
        return True, {}, "no held-out cases to compare on", []
    limit = min(settings.reply_max_tokens, HELDOUT_MAX_TOKENS)
    rows, scored = score_cases(candidate, cases, max_new_tokens=limit, system=persona, pause=pause)
    kept: dict[str, Any] = {"heldout": scored.as_dict(), "promotion_metric": metric}
    ours = heldout.shown(metric, heldout.value(scored, metric))
    active_model = scoring_runtime(settings, parent, getattr(candidate, "weights", None)) if parent is not None else None
    if parent is None or active_model is None:
        return True, kept, f"held-out {metric} {ours}", rows
    active = score_cases(active_model, cases, max_new_tokens=limit, system=persona, pause=pause)[1]
    kept["heldout_active"] = {"version": parent.name, **active.as_dict()}
    theirs = heldout.shown(metric, heldout.value(active, metric))
    if heldout.not_worse(metric, scored, active, settings.promotion_tolerance):
        return True, kept, f"held-out {metric} {ours} vs {parent.name}'s {theirs}", rows
    return False, kept, f"held-out {metric} {ours} is worse than active {parent.name}'s {theirs}", rows


GENERAL_TOLERANCE = 5.0  # points of the general-question score a candidate may lose


def general_check(
    settings: Settings, store: Store, job_id: int, candidate: Any, parent: ModelVersion | None, persona: str | None = None,
    pause: Callable[[], object] | None = None,
) -> tuple[bool, dict[str, Any], str]:
    """(keeps conversing?, metrics, words): the candidate's score on the shipped general
    questions, asked under the server's ``persona``, against its parent's (or, for a first
    version, the base model's; the parent's stored score counts only under the same persona)."""
    from trainerbot.evaluation import general

    limit = settings.general_questions
    queue.add_event(store, job_id, kind="log", message=f"checking {limit} general questions")
    ours = general.score(candidate, limit=limit, system=persona, pause=pause)[0]
    before = (parent.metrics or {}) if parent is not None else {}
    same = before.get("general_questions") == limit and before.get("persona") == persona
    theirs = before.get("general") if same else None
    if theirs is None and getattr(candidate, "adapter", None) is not None:
        theirs = base_general(settings, candidate, limit, persona, pause)
    kept = {"general": round(ours, 1), "general_before": theirs, "general_questions": limit}
    if theirs is None or ours >= theirs - GENERAL_TOLERANCE:
        return True, kept, f"general questions {ours:.0f} %" + (f" vs {theirs:.0f} % before" if theirs is not None else "")
    return False, kept, f"it forgot general knowledge (general questions {ours:.0f} % vs {theirs:.0f} % before)"


def base_general(settings: Settings, candidate: Any, limit: int, persona: str | None,
                 pause: Callable[[], object] | None = None) -> float:
    """The untaught base's general score under ``persona``: the candidate's weights without
    its adapter, asked once per base, persona and question set, and kept under
    ``<data>/models/general/`` (a prepared base never changes: its done-marker names it), so
    every server's first version does not ask the base the same 40 questions again."""
    from trainerbot.evaluation import general

    folder = Path(candidate.weights.folder)
    marker = folder / DONE_MARKER
    identity = json.dumps([str(folder), marker.read_text() if marker.is_file() else "", persona, limit,
                           [(q.prompt, q.keywords) for q in general.questions()]])
    cached = settings.resolved_data_dir / "models" / "general" / (
        f"{folder.name}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.json")
    try:
        return float(json.loads(cached.read_text())["score"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    base = copy.copy(candidate)
    base.adapter = None  # the same weights without the adapter: the untaught base
    score = general.score(base, limit=limit, system=persona, pause=pause)[0]
    cached.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cached, json.dumps({"score": score, "base": folder.name, "persona": persona,
                                           "questions": limit}).encode())
    return score


RUNTIME_TOLERANCE = 5.0  # points (held-out exact match, chrF, general %) llama.cpp may lose against torch


def runtime_check(
    settings: Settings, store: Store, job_id: int, folder: Path, cases: list[Case], answers: list[dict[str, Any]],
    general_torch: float | None, persona: str | None = None, pause: Callable[[], object] | None = None,
) -> dict[str, Any] | None:
    """For a version chat would serve through llama.cpp: its merged file written now (so the
    first reply does not wait for it), the held-out questions — and the general ones, when
    the torch model was scored on them — answered there, and compared with the torch
    model's answers. ``serves`` is False (chat answers with torch) when llama.cpp scores more
    than ``RUNTIME_TOLERANCE`` points lower. None when llama.cpp would not serve it."""
    from trainerbot.model import gguf_export, llamacpp
    from trainerbot.model.pretrained import base_dir

    base = base_dir(settings.resolved_data_dir)
    if not llamacpp.enabled(settings) or not gguf_export.servable(folder, base):
        return None
    asked = len(cases) + (settings.general_questions if general_torch is not None else 0)
    queue.add_event(store, job_id, kind="log", message=f"checking the llama.cpp runtime on {asked} questions")
    # As many questions at once as chat's slots: llama.cpp decodes them in one batch.
    hub = llamacpp.LlamaCppHub(settings.resolved_data_dir, settings.runtime_precision, threads=settings.torch_threads,
                               slots=settings.chat_slots)
    try:
        served = hub.get(folder, base)
    except (OSError, ValueError, RuntimeError, NotAvailable) as exc:
        log.warning("llama.cpp cannot serve %s: %s", folder.name, exc)
        return {"engine": f"llama.cpp {settings.runtime_precision}", "serves": False,
                "why": f"it could not load the model ({type(exc).__name__})"}
    try:
        result = _compare(settings, served, cases, answers, general_torch, persona, pause)
    finally:
        hub.close()
    return result


def _compare(settings: Settings, served: Any, cases: list[Case], answers: list[dict[str, Any]],
             general_torch: float | None, persona: str | None = None,
             pause: Callable[[], object] | None = None) -> dict[str, Any]:
    from trainerbot.evaluation import general

    result: dict[str, Any] = {"engine": served.engine, "compared": len(cases)}
    serves = True
    if cases:
        rows, ours = score_cases(served, cases, max_new_tokens=min(settings.reply_max_tokens, HELDOUT_MAX_TOKENS),
                                 system=persona, pause=pause)
        theirs = summarise(answers)
        same = sum(1 for a, b in zip(rows, answers, strict=True) if a["prediction"] == b["prediction"])
        result |= {"same_answers": same, "exact_match": ours.exact_match, "exact_match_torch": theirs.exact_match,
                   "chrf": ours.chrf, "chrf_torch": theirs.chrf}
        if ours.exact_match is not None and theirs.exact_match is not None:
            serves &= 100 * ours.exact_match >= 100 * theirs.exact_match - RUNTIME_TOLERANCE
        if ours.chrf is not None and theirs.chrf is not None:
            serves &= ours.chrf >= theirs.chrf - RUNTIME_TOLERANCE
    if general_torch is not None:
        score = general.score(served, limit=settings.general_questions, system=persona, pause=pause)[0]
        result |= {"general": round(score, 1), "general_torch": general_torch}
        serves &= score >= general_torch - RUNTIME_TOLERANCE
    result["serves"] = serves
    return result


def register_version(
    job: JobContext, *, backend: str, path: str | None, base: str, metrics: dict[str, Any], candidate: Any, general: bool = False
) -> str:
    """Evaluate the finished job's model on the held-out cases (and, for a pretrained model,
    the general questions), register it as the next version — active only when it is not
    worse than the active one — and finish the job."""
    settings, store, job_id, guild_id, parent = job.settings, job.store, job.job_id, job.guild_id, job.parent
    persona = job.persona if getattr(candidate, "takes_system", False) else None  # a scratch model never had one
    cases = list(job.cases)
    if cases:
        queue.add_event(store, job_id, kind="log", message=f"evaluating on {len(cases)} held-out cases")
    promote, evaluation, why, answers = promotion(settings, candidate, parent, cases, persona, job.pause)
    if general and settings.general_questions:
        keeps, kept, words = general_check(settings, store, job_id, candidate, parent, persona, job.pause)
        evaluation.update(kept)
        if not keeps:
            promote, why = False, words
        elif promote:
            why = f"{why}; {words}"
    if path is not None:
        runtime = runtime_check(settings, store, job_id, settings.resolved_data_dir / path, cases, answers,
                                evaluation.get("general") if general else None, persona, job.pause)
        if runtime is not None:
            evaluation["runtime"] = runtime
            engine = runtime["engine"] if runtime["serves"] else "torch (llama.cpp answered worse)"
            why += f"; replies through {engine}"
    metrics = {**metrics, **evaluation, "promoted": promote}
    with store.session() as s:
        # Workers on other machines may register at the same moment: the guild's row, locked
        # (PostgreSQL; SQLite writers are serialised anyway), makes "the next vN" one at a time.
        s.execute(select(Guild.id).where(Guild.id == guild_id).with_for_update())
        n = s.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.guild_id == guild_id)) or 0
        name = f"v{n + 1}"
        if promote:
            s.execute(update(ModelVersion).where(ModelVersion.guild_id == guild_id).values(active=False))
        s.add(
            ModelVersion(
                guild_id=guild_id,
                name=name,
                backend=backend,
                path=path,
                base=base,
                recipe=job.recipe,
                job_id=job_id,
                snapshot_id=job.snapshot_id,
                metrics=metrics,
                active=promote,
            )
        )
    final_loss = metrics.get("final_loss")
    loss = f"final loss {final_loss:.3f}; " if isinstance(final_loss, (int, float)) else ""
    if promote:
        message = f"model {name} is active ({loss}{why})"
    else:
        message = f"model {name} is kept but not active: {why}; `model use {name}` would switch anyway"
    queue.finish(store, job_id, JobStatus.SUCCEEDED, message=message)
    return JobStatus.SUCCEEDED

"""Model versions: a finished job's model is evaluated (held-out cases; for a pretrained
model also the general questions), registered as the guild's next ``vN``, and made active
only when it is not worse than the active one. A version chat would serve through llama.cpp
is asked the held-out questions there too, and is served by torch instead if llama.cpp
answers worse; where both runtimes are known to agree, the general questions are asked once,
through llama.cpp (``checks``). Both the local runner and the remote
(OpenAI-compatible) path finish here, so training flows one way: runner/openai_jobs → versions.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import update

from trainerbot.errors import NotAvailable
from trainerbot.evaluation import heldout
from trainerbot.evaluation.cases import Case
from trainerbot.evaluation.run import score_cases
from trainerbot.evaluation.scores import summarise
from trainerbot.fileio import atomic_write_bytes
from trainerbot.model.files import DONE_MARKER
from trainerbot.model.runtime import scoring_runtime
from trainerbot.store import Store, repo
from trainerbot.store.tables import JobStatus, ModelVersion
from trainerbot.training import queue
from trainerbot.training.job import JobContext, JobSettings

log = logging.getLogger(__name__)

HELDOUT_MAX_TOKENS = 64  # held-out answers are short; a pretrained model rambles on what it does not know


def heldout_tokens(settings: JobSettings) -> int:
    """How long a held-out (or taught) question's answer may run, on either runtime."""
    return min(settings.model.reply_max_tokens, HELDOUT_MAX_TOKENS)


def promotion(
    settings: JobSettings, candidate: Any, parent: ModelVersion | None, cases: list[Case], persona: str | None = None,
    pause: Callable[[], object] | None = None,
) -> tuple[bool, dict[str, Any], str, list[dict[str, Any]]]:
    """(promote?, metrics to keep, the reason in words, the candidate's answers) for the
    ``candidate`` model against ``parent``, both asked under the server's ``persona``
    (``pause``: before each question, the worker gives way to chat)."""
    metric = settings.training.promotion_metric
    if not cases:
        return True, {}, "no held-out cases to compare on", []
    limit = heldout_tokens(settings)
    rows, scored = score_cases(candidate, cases, max_new_tokens=limit, system=persona, pause=pause)
    kept: dict[str, Any] = {"heldout": scored.as_dict(), "promotion_metric": metric}
    ours = heldout.shown(metric, heldout.value(scored, metric))
    active_model = scoring_runtime(settings.model, settings.openai, settings.data_dir,
                                   parent, getattr(candidate, "weights", None)) if parent is not None else None
    if parent is None or active_model is None:
        return True, kept, f"held-out {metric} {ours}", rows
    active = score_cases(active_model, cases, max_new_tokens=limit, system=persona, pause=pause)[1]
    kept["heldout_active"] = {"version": parent.name, **active.as_dict()}
    theirs = heldout.shown(metric, heldout.value(active, metric))
    if heldout.not_worse(metric, scored, active, settings.training.promotion_tolerance):
        return True, kept, f"held-out {metric} {ours} vs {parent.name}'s {theirs}", rows
    return False, kept, f"held-out {metric} {ours} is worse than active {parent.name}'s {theirs}", rows


GENERAL_TOLERANCE = 5.0  # points of the general-question score a candidate may lose
TORCH = "torch"


def general_check(
    settings: JobSettings, store: Store, job_id: int, candidate: Any, parent: ModelVersion | None, persona: str | None = None,
    pause: Callable[[], object] | None = None, *, base: Callable[[], float | None] | None = None,
) -> tuple[bool, dict[str, Any], str]:
    """(keeps conversing?, metrics, words): the candidate's score on the shipped general
    questions, asked under the server's ``persona`` through the runtime that will serve it
    (``candidate.engine``: torch, or llama.cpp), against its parent's under the same persona
    and runtime, or else the untaught base's (``base()``, None when there is none)."""
    from trainerbot.evaluation import general_questions

    limit = settings.training.general_questions
    engine = getattr(candidate, "engine", TORCH)
    through = "" if engine == TORCH else f" through {engine}"
    queue.add_event(store, job_id, kind="log", message=f"checking {limit} general questions{through}")
    ours = general_questions.score(candidate, limit=limit, system=persona, pause=pause)[0]
    before = (parent.metrics or {}) if parent is not None else {}
    same = (before.get("general_questions") == limit and before.get("persona") == persona
            and before.get("general_engine", TORCH) == engine)
    theirs = before.get("general") if same else None
    if theirs is None and base is not None:
        theirs = base()
    kept = {"general": round(ours, 1), "general_before": theirs, "general_questions": limit, "general_engine": engine}
    if theirs is None or ours >= theirs - GENERAL_TOLERANCE:
        return True, kept, f"general questions {ours:.0f} %" + (f" vs {theirs:.0f} % before" if theirs is not None else "")
    return False, kept, f"it forgot general knowledge (general questions {ours:.0f} % vs {theirs:.0f} % before)"


def base_general(settings: JobSettings, base: Any, limit: int, persona: str | None,
                 pause: Callable[[], object] | None = None) -> float:
    """The untaught ``base``'s general score under ``persona`` (a torch model without an
    adapter, or the base served by llama.cpp), asked once per base, runtime, persona and
    question set, and kept under ``<data>/models/general/`` (a prepared base never changes:
    its done-marker names it), so every server's first version does not ask the base the
    same 40 questions again."""
    from trainerbot.evaluation import general_questions

    folder = Path(base.weights.folder) if hasattr(base, "weights") else Path(base.folder)
    engine = getattr(base, "engine", TORCH)
    cached = kept_general(settings, folder, engine, persona, limit)
    try:
        return float(json.loads(cached.read_text())["score"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    score = general_questions.score(base, limit=limit, system=persona, pause=pause)[0]
    cached.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cached, json.dumps({"score": score, "base": folder.name, "engine": engine, "persona": persona,
                                           "questions": limit}).encode())
    return score


def kept_general(settings: JobSettings, folder: Path, engine: str, persona: str | None, limit: int) -> Path:
    """Where the base in ``folder``'s general score through ``engine`` is kept."""
    from trainerbot.evaluation import general_questions

    marker = folder / DONE_MARKER
    identity = [str(folder), marker.read_text() if marker.is_file() else "", persona, limit,
                [(q.prompt, q.keywords) for q in general_questions.questions()]]
    if engine != TORCH:  # (a torch score's key stays what it was: scores kept before still count)
        identity.append(engine)
    return settings.data_dir / "models" / "general" / (
        f"{folder.name}-{hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]}.json")


def untaught(candidate: Any) -> Any:
    """The torch ``candidate``'s weights without its adapter: the untaught base."""
    base = copy.copy(candidate)
    base.adapter = None
    return base


RUNTIME_TOLERANCE = 5.0  # points (held-out exact match, chrF, general %) llama.cpp may lose against torch


@dataclass
class LlamaCppCheck:
    """The llama.cpp side of a version's checks: the version served as chat would serve it
    (``model``; None when it could not load, with ``verdict`` saying why)."""

    engine: str
    base_folder: Path
    hub: Any = None
    model: Any = None
    verdict: dict[str, Any] = field(default_factory=dict)

    def base(self) -> Any:
        """The untaught base, served beside the version."""
        return self.hub.get(self.base_folder, self.base_folder)


@contextlib.contextmanager
def llamacpp_check(settings: JobSettings, folder: Path) -> Iterator[LlamaCppCheck | None]:
    """For a version chat would serve through llama.cpp: its merged file written now (so
    the first reply does not wait for it) and served for the checks; None when llama.cpp
    would not serve it."""
    from trainerbot.model import gguf_export, llamacpp
    from trainerbot.model.pretrained import base_dir

    base = base_dir(settings.data_dir)
    if not llamacpp.enabled(settings.model) or not gguf_export.servable(folder, base):
        yield None
        return
    # As many questions at once as chat's slots: llama.cpp decodes them in one batch. Room
    # for two servers: the untaught base may be asked too (once per machine and persona).
    hub = llamacpp.LlamaCppHub(settings.data_dir, settings.model.runtime_precision, threads=settings.model.torch_threads,
                               slots=settings.model.chat_slots, capacity=2)
    check = LlamaCppCheck(f"llama.cpp {settings.model.runtime_precision}", base, hub)
    try:
        try:
            check.model = hub.get(folder, base)
        except (OSError, ValueError, RuntimeError, NotAvailable) as exc:
            log.warning("llama.cpp cannot serve %s: %s", folder.name, exc)
            check.verdict = {"engine": check.engine, "serves": False,
                             "why": f"it could not load the model ({type(exc).__name__})"}
        yield check
    finally:
        hub.close()


def compare_answers(settings: JobSettings, served: Any, cases: list[Case], answers: list[dict[str, Any]],
                    persona: str | None = None, pause: Callable[[], object] | None = None) -> dict[str, Any]:
    """The ``cases`` answered through llama.cpp, against the torch model's ``answers``:
    ``serves`` is False (chat answers with torch) when llama.cpp scores more than
    ``RUNTIME_TOLERANCE`` points lower."""
    result: dict[str, Any] = {"engine": served.engine, "compared": len(cases), "serves": True}
    if not cases:
        return result
    rows, ours = score_cases(served, cases, max_new_tokens=heldout_tokens(settings),
                             system=persona, pause=pause)
    theirs = summarise(answers)
    same = sum(1 for a, b in zip(rows, answers, strict=True) if a["prediction"] == b["prediction"])
    result |= {"same_answers": same, "exact_match": ours.exact_match, "exact_match_torch": theirs.exact_match,
               "chrf": ours.chrf, "chrf_torch": theirs.chrf}
    if ours.exact_match is not None and theirs.exact_match is not None:
        result["serves"] &= 100 * ours.exact_match >= 100 * theirs.exact_match - RUNTIME_TOLERANCE
    if ours.chrf is not None and theirs.chrf is not None:
        result["serves"] &= ours.chrf >= theirs.chrf - RUNTIME_TOLERANCE
    return result


def runtimes_agree(settings: JobSettings, candidate: Any, check: LlamaCppCheck, persona: str | None,
                   pause: Callable[[], object] | None, runtime: dict[str, Any]) -> bool:
    """Whether torch and llama.cpp are known to agree on the general questions for this base
    and persona: the untaught base scores within ``RUNTIME_TOLERANCE`` points on both (each
    score kept, so asked once per machine). Both scores go into ``runtime``."""
    if getattr(candidate, "adapter", None) is None:  # no untaught base to ask under torch
        return False
    limit = settings.training.general_questions
    on_torch = base_general(settings, untaught(candidate), limit, persona, pause)
    on_llamacpp = base_general(settings, check.base(), limit, persona, pause)
    runtime["general_base"] = {TORCH: on_torch, check.engine: on_llamacpp}
    return abs(on_torch - on_llamacpp) <= RUNTIME_TOLERANCE


def checks(job: JobContext, candidate: Any, path: str | None, general: bool) -> tuple[bool, dict[str, Any], str]:
    """(promote?, metrics, the reason in words): every gate a finished job's model passes.

    - The held-out cases under torch, against the active version (``promotion``).
    - For a version llama.cpp would serve: the held-out cases there too (or, where none are
      left, up to 8 taught questions), against torch's answers; torch serves it if llama.cpp
      answers worse.
    - For a pretrained candidate (``general``): the general questions, once, through the
      runtime that will serve it when torch and llama.cpp are known to agree (on the held-out
      answers, or where none are left on some taught ones, and on the untaught base's general
      score); otherwise under torch, and again through llama.cpp, which must not score much
      lower.
    """
    settings, store, job_id, parent, pause = job.settings, job.store, job.job_id, job.parent, job.pause
    persona = job.persona if getattr(candidate, "takes_system", False) else None  # a scratch model never had one
    cases = list(job.cases)
    if cases:
        queue.add_event(store, job_id, kind="log", message=f"evaluating on {len(cases)} held-out cases")
    promote, evaluation, why, answers = promotion(settings, candidate, parent, cases, persona, pause)
    general = general and bool(settings.training.general_questions)
    with contextlib.ExitStack() as stack:
        check = stack.enter_context(llamacpp_check(settings, settings.data_dir / path)) if path else None
        runtime: dict[str, Any] | None = None
        judged, base = candidate, None
        if check is not None and check.model is None:
            runtime = check.verdict
        elif check is not None:
            # Compared on the held-out questions; where none are left, on some taught ones.
            probes, kind = (cases, "held-out") if cases else (list(job.taught), "taught")
            if probes:
                queue.add_event(store, job_id, kind="log",
                                message=f"checking the llama.cpp runtime on {len(probes)} {kind} questions")
            if not cases and probes:
                answers = score_cases(candidate, probes, max_new_tokens=heldout_tokens(settings),
                                      system=persona, pause=pause)[0]
            runtime = compare_answers(settings, check.model, probes, answers, persona, pause) | {"compared_on": kind}
            if general and runtime["serves"] and probes and runtimes_agree(settings, candidate, check, persona, pause,
                                                                          runtime):
                judged, base = check.model, check.base()
        if general:
            if judged is candidate and getattr(candidate, "adapter", None) is not None:
                base = untaught(candidate)
            keeps, kept, words = general_check(
                settings, store, job_id, judged, parent, persona, pause,
                base=functools.partial(base_general, settings, base, settings.training.general_questions, persona, pause)
                if base is not None else None)
            evaluation.update(kept)
            if not keeps:
                promote, why = False, words
            elif promote:
                why = f"{why}; {words}"
            if check is not None and check.model is not None and judged is candidate and runtime is not None \
                    and runtime["serves"]:  # (llama.cpp already answered the held-out cases worse: torch serves it)
                from trainerbot.evaluation import general_questions as asked

                queue.add_event(store, job_id, kind="log", message=f"checking the {settings.training.general_questions} general "
                                f"questions through {check.engine} too")
                score = asked.score(check.model, limit=settings.training.general_questions, system=persona, pause=pause)[0]
                runtime |= {"general": round(score, 1), "general_torch": kept["general"]}
                runtime["serves"] &= score >= kept["general"] - RUNTIME_TOLERANCE
    if runtime is not None:
        evaluation["runtime"] = runtime
        engine = runtime["engine"] if runtime["serves"] else "torch (llama.cpp answered worse)"
        why += f"; replies through {engine}"
    return promote, evaluation, why


def register_version(
    job: JobContext, *, backend: str, path: str | None, base: str, metrics: dict[str, Any], candidate: Any, general: bool = False
) -> str:
    """Evaluate the finished job's model on the held-out cases (and, for a pretrained model,
    the general questions), register it as the next version — active only when it is not
    worse than the active one — and finish the job."""
    store, job_id, guild_id = job.store, job.job_id, job.guild_id
    promote, evaluation, why = checks(job, candidate, path, general)
    metrics = {**metrics, **evaluation, "promoted": promote}
    with store.session() as s:
        name = repo.next_version_name(s, guild_id)
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

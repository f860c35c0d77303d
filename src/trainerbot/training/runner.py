"""Run one training job from start to finish, in the worker process.

Reads the job's snapshot, picks the starting model (the guild's active version, else a
pretrained folder from the settings, else a new one built from scratch), runs the job's
recipe with progress events and cancellation on the snapshot's training split, then saves
the model crash-safely — into a ``.partial`` folder, a ``DONE.json`` marker written last,
renamed into place — draws the loss curve, and registers a model version. The new version
and the active one answer the held-out split (``evaluation/heldout.py``); the new one
becomes active only when it is not worse by the configured metric.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from trainerbot.config import Settings
from trainerbot.datasets import paths
from trainerbot.datasets.records import Example
from trainerbot.datasets.snapshots import read_snapshot
from trainerbot.evaluation import heldout
from trainerbot.evaluation.cases import Case
from trainerbot.evaluation.run import score_cases
from trainerbot.fileio import atomic_write_bytes
from trainerbot.model.files import DONE_MARKER, is_complete
from trainerbot.model.remote import scorer_for
from trainerbot.store import Store
from trainerbot.store.models import Guild, Job, ModelVersion, Snapshot
from trainerbot.training import queue
from trainerbot.training.common import JobCallback, Progress, TrainParams, TrainResult
from trainerbot.training.plots import loss_curve

log = logging.getLogger(__name__)

RECIPE_DEFAULTS = {  # (epochs, learning rate) by recipe and start
    ("sft", "scratch"): (80.0, 2e-3),
    ("sft", "continue"): (30.0, 1e-3),
    ("kto", "continue"): (10.0, 5e-4),
    ("dpo", "continue"): (10.0, 5e-4),
}


def models_dir(settings: Settings, guild_platform_id: str) -> Path:
    return paths.guild_root(settings.resolved_data_dir, guild_platform_id) / "models"


def active_version(session: Any, guild_id: int) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.guild_id == guild_id, ModelVersion.active.is_(True))).first()


def params_for(settings: Settings, recipe: str, start: str) -> TrainParams:
    epochs, lr = RECIPE_DEFAULTS.get((recipe, start), (10.0, 5e-4))
    return TrainParams(epochs=settings.train_epochs or epochs, learning_rate=settings.learning_rate or lr,
                       batch_size=settings.train_batch_size, lora=settings.lora)


def _load_start(settings: Settings, data_dir: Path, parent: ModelVersion | None, examples: list[Example], recipe: str) -> tuple[Any, Any, str, str]:
    """(model, tokenizer, start kind, base description)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if parent is not None and parent.path and is_complete(data_dir / parent.path):
        folder = data_dir / parent.path
        return (AutoModelForCausalLM.from_pretrained(folder, local_files_only=True), AutoTokenizer.from_pretrained(folder, local_files_only=True),
                "continue", parent.name)
    if settings.base_model_dir is not None:
        folder = settings.base_model_dir
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True), tok, "continue", f"pretrained:{folder.name}"
    if recipe != "sft":
        raise ValueError(f"{recipe.upper()} needs a model to start from; train on positive examples first")
    from trainerbot.model.build import ModelShape, new_model, train_tokenizer

    shape = ModelShape() if settings.model_size == "small" else ModelShape(vocab_size=512, hidden_size=64, layers=2, heads=2, max_positions=256)
    texts = [t for ex in examples for t in (ex.prompt, ex.response, ex.rejected or "") if t]
    tok = train_tokenizer(texts, shape.vocab_size)
    return new_model(tok, shape), tok, "scratch", "scratch"


def save_model(model: Any, tokenizer: Any, target: Path, info: dict[str, Any]) -> None:
    """Write the model folder crash-safely: ``.partial`` first, the marker last, then rename."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    if hasattr(model, "merge_and_unload"):  # a LoRA model is saved merged, so it loads like any other
        model = model.merge_and_unload()
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    atomic_write_bytes(partial / DONE_MARKER, json.dumps(info, indent=2).encode())
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)


def clean_partials(data_dir: Path, store: Store) -> int:
    """Remove half-written model folders and trainer scratch folders of jobs that are not
    running (a crash left them; other workers' running jobs keep theirs); returns how many."""
    import re

    with store.read() as s:
        running = set(s.scalars(select(Job.id).where(Job.status == "running")))
    removed = 0
    for folder in (data_dir / "guilds").glob("*/models/.job-*"):
        m = re.fullmatch(r"\.job-(\d+)\.(partial|trainer)", folder.name)
        if m is not None and int(m.group(1)) not in running:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def run_job(settings: Settings, store: Store, job_id: int, worker: str, stop: Callable[[], bool] = lambda: False) -> str:
    """Run a claimed job; returns its final status. Never raises for a job's own failure.

    ``stop()`` true means the worker itself is stopping: training ends at the next step
    and the job is failed with that reason.
    """
    data_dir = settings.resolved_data_dir
    try:
        with store.read() as s:
            job = s.get(Job, job_id)
            assert job is not None
            guild = s.get(Guild, job.guild_id)
            snap = s.get(Snapshot, job.snapshot_id) if job.snapshot_id else None
            parent = active_version(s, job.guild_id)
            recipe, guild_pid, guild_id = job.recipe, guild.platform_id, guild.id  # type: ignore[union-attr]
            backend = (job.params or {}).get("backend", "local")
        if snap is None:
            raise ValueError("its dataset snapshot is gone")
        root = paths.guild_root(data_dir, guild_pid)
        _, examples = read_snapshot(root / "snapshots" / snap.file_name)
        examples, held = heldout.split(examples, settings.heldout_share)
        if backend == "openai":
            from trainerbot.training.remote import run_remote_job

            return run_remote_job(settings, store, job_id, worker, stop, guild_id=guild_id, snapshot_id=snap.id, recipe=recipe,
                                  examples=examples, parent=parent, cases=heldout.cases(held, min(settings.max_test_cases, 50)))
        queue.add_event(store, job_id, kind="log",
                        message=f"{len(examples)} examples from {snap.file_name} ({len(held)} more held out for evaluation)")
        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)
        model, tokenizer, start, base = _load_start(settings, data_dir, parent, examples, recipe)
        params = params_for(settings, recipe, start)
        peft_config = None
        if params.lora and start == "continue" and base.startswith("pretrained:"):
            from peft import LoraConfig

            peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM")
        queue.add_event(store, job_id, kind="log", message=f"{recipe} from {base}: {params.epochs:g} epochs, lr {params.learning_rate:g}")

        def report(p: Progress) -> None:
            queue.add_event(store, job_id, step=p.step, total_steps=p.total_steps, loss=p.loss,
                            learning_rate=p.learning_rate, tokens_per_s=p.tokens_per_s, eta_s=p.eta_s)

        def should_stop() -> bool:
            return queue.heartbeat(store, job_id, worker) or stop()

        callback = JobCallback(report, should_stop)
        from trainerbot.training import dpo, kto, sft

        recipe_module = {"sft": sft, "kto": kto, "dpo": dpo}[recipe]
        out_dir = root / "models" / f".job-{job_id}.trainer"
        trained, result = recipe_module.train(model, tokenizer, examples, params, callback, str(out_dir), peft_config)
        shutil.rmtree(out_dir, ignore_errors=True)
        if result.cancelled:
            if stop() and not queue.heartbeat(store, job_id, worker):
                queue.finish(store, job_id, "failed", error="The worker was stopped during training. Start it again with `train`.")
                return "failed"
            queue.finish(store, job_id, "cancelled", message=f"cancelled at step {result.steps}")
            return "cancelled"
        return _register(settings, store, job_id, guild_id, guild_pid, snap.id, recipe, base, trained, tokenizer, result,
                         parent, heldout.cases(held, settings.max_test_cases))
    except Exception as exc:  # the job fails; the worker goes on
        log.exception("job %s failed", job_id)
        queue.finish(store, job_id, "failed", error=_plain(exc))
        return "failed"


def _plain(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def promotion(settings: Settings, candidate: Any, parent: ModelVersion | None, cases: list[Case]) -> tuple[bool, dict[str, Any], str]:
    """(promote?, metrics to keep, the reason in words) for the ``candidate`` model against ``parent``."""
    metric = settings.promotion_metric
    if not cases:
        return True, {}, "no held-out cases to compare on"
    scored = score_cases(candidate, cases, max_new_tokens=settings.reply_max_tokens)[1]
    kept: dict[str, Any] = {"heldout": scored.as_dict(), "promotion_metric": metric}
    ours = heldout.shown(metric, heldout.value(scored, metric))
    active_model = scorer_for(settings, parent) if parent is not None else None
    if parent is None or active_model is None:
        return True, kept, f"held-out {metric} {ours}"
    active = score_cases(active_model, cases, max_new_tokens=settings.reply_max_tokens)[1]
    kept["heldout_active"] = {"version": parent.name, **active.as_dict()}
    theirs = heldout.shown(metric, heldout.value(active, metric))
    if heldout.not_worse(metric, scored, active, settings.promotion_tolerance):
        return True, kept, f"held-out {metric} {ours} vs {parent.name}'s {theirs}"
    return False, kept, f"held-out {metric} {ours} is worse than active {parent.name}'s {theirs}"


def register_version(settings: Settings, store: Store, job_id: int, guild_id: int, snapshot_id: int, recipe: str, *,
                     backend: str, path: str | None, base: str, metrics: dict[str, Any], candidate: Any,
                     parent: ModelVersion | None, cases: list[Case]) -> str:
    """Evaluate the finished job's model on the held-out cases, register it as the next
    version — active only when it is not worse than the active one — and finish the job."""
    if cases:
        queue.add_event(store, job_id, kind="log", message=f"evaluating on {len(cases)} held-out cases")
    promote, evaluation, why = promotion(settings, candidate, parent, cases)
    metrics = {**metrics, **evaluation, "promoted": promote}
    with store.session() as s:
        # Workers on other machines may register at the same moment: the guild's row, locked
        # (PostgreSQL; SQLite writers are serialised anyway), makes "the next vN" one at a time.
        s.execute(select(Guild.id).where(Guild.id == guild_id).with_for_update())
        n = s.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.guild_id == guild_id)) or 0
        name = f"v{n + 1}"
        if promote:
            s.execute(update(ModelVersion).where(ModelVersion.guild_id == guild_id).values(active=False))
        s.add(ModelVersion(guild_id=guild_id, name=name, backend=backend, path=path, base=base, recipe=recipe, job_id=job_id,
                           snapshot_id=snapshot_id, metrics=metrics, active=promote))
    final_loss = metrics.get("final_loss")
    loss = f"final loss {final_loss:.3f}; " if isinstance(final_loss, (int, float)) else ""
    if promote:
        message = f"model {name} is active ({loss}{why})"
    else:
        message = f"model {name} is kept but not active: {why}; `model use {name}` would switch anyway"
    queue.finish(store, job_id, "succeeded", message=message)
    return "succeeded"


def _register(settings: Settings, store: Store, job_id: int, guild_id: int, guild_pid: str, snapshot_id: int, recipe: str,
              base: str, model: Any, tokenizer: Any, result: TrainResult, parent: ModelVersion | None, cases: list[Case]) -> str:
    data_dir = settings.resolved_data_dir
    root = paths.guild_root(data_dir, guild_pid)
    folder = root / "models" / f"job-{job_id}"
    final_loss = result.losses[-1][1] if result.losses else result.metrics.get("train_loss")
    metrics = {"final_loss": final_loss, "train_loss": result.metrics.get("train_loss"), "steps": result.steps,
               "seconds": round(result.seconds, 2)}
    save_model(model, tokenizer, folder, {"job": job_id, "recipe": recipe, "base": base, "metrics": metrics, "saved_at": time.time()})
    loss_curve(result.losses, root / "artifacts" / f"job-{job_id}-loss.png", f"job {job_id} · {recipe}")
    from trainerbot.model.local import LocalModel

    candidate = LocalModel(folder, threads=settings.torch_threads)
    return register_version(settings, store, job_id, guild_id, snapshot_id, recipe, backend="local",
                            path=str(folder.relative_to(data_dir)), base=base, metrics=metrics, candidate=candidate,
                            parent=parent, cases=cases)

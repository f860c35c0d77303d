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

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from trainerbot.config import TrainingSettings
from trainerbot.datasets import paths
from trainerbot.datasets.records import Example
from trainerbot.datasets.snapshots import read_snapshot
from trainerbot.errors import BadInput, NotFound, TrainerBotError
from trainerbot.evaluation import heldout
from trainerbot.fileio import atomic_write_bytes
from trainerbot.model.build import CHAT_TEMPLATE
from trainerbot.model.files import DONE_MARKER, adapter_base, is_adapter, is_complete, offline, relative_base
from trainerbot.model.local import LocalModel, Weights
from trainerbot.model.pretrained import base_folder
from trainerbot.model.prompt import SYSTEM
from trainerbot.plural import count
from trainerbot.store import Store, repo
from trainerbot.store.repo import active_version
from trainerbot.store.tables import Guild, Job, JobStatus, ModelVersion, Snapshot
from trainerbot.training import queue, recipes, rehearsal
from trainerbot.training.common import JobCallback, Progress, TrainParams, TrainResult, native_bf16, quiet_libraries
from trainerbot.training.job import JobContext, JobSettings
from trainerbot.training.plots import loss_curve
from trainerbot.training.recipe_config import StartKind
from trainerbot.training.versions import register_version

log = logging.getLogger(__name__)

TAUGHT_PROBES = 8  # trained questions the llama.cpp runtime is compared on where no held-out ones are left
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_config(model_config: Any, top_layers: float = 1.0) -> Any:
    """The product's LoRA adapter for a new version on a pretrained base: r=16 on every
    projection of the top ``top_layers`` share of the layers (1.0: all of them). On fewer
    layers the backward pass stops sooner (the top third trained 100 facts in 161 s against
    324 s) but rephrased questions were answered worse and general answers dropped more
    (bench/RESULTS.md)."""
    from peft import LoraConfig

    layers = int(model_config.num_hidden_layers)
    first = layers - max(1, round(layers * top_layers))
    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM",
                      layers_to_transform=list(range(first, layers)) if first > 0 else None)


def params_for(training: TrainingSettings, recipe: str, start: StartKind, rows: int) -> TrainParams:
    """The recipe's own defaults for this start and a job of ``rows`` examples (its config,
    beside its trainer, as TRL keeps them), overridden by the settings."""
    config = recipes.recipe(recipe)
    hyper = config.hyper(start, rows)
    lora = start == "lora"
    # Mixed precision where it was measured for the recipe: every recipe under LoRA (SFT,
    # KTO, DPO); training a whole model stays float32.
    bf16 = lora and config.bf16 and (training.train_precision == "bf16" or
                                     (training.train_precision == "auto" and native_bf16()))
    return TrainParams(epochs=training.train_epochs or hyper.epochs, learning_rate=training.learning_rate or hyper.learning_rate,
                       batch_size=training.train_batch_size or hyper.batch_size, lora=lora, bf16=bf16,
                       compile=training.train_compile, pack_frozen=config.pack_frozen)


@dataclass
class Start:
    """Where a job starts: the model to train, its tokenizer, and how it was reached."""

    model: Any
    tokenizer: Any
    kind: StartKind  # scratch | continue (a whole model) | lora (an adapter on a pretrained base)
    base: str  # in words, for the job log and the version list
    base_dir: Path | None = None  # the pretrained folder under an adapter
    peft_config: Any = None  # a new adapter to add (None: none, or the parent's is already on)
    weights: Any = None  # the base served from the training copy's frozen weights (LoRA), if it can be


def _pretrained(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    offline()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True), tok


def _load_start(settings: JobSettings, parent: ModelVersion | None, examples: list[Example], recipe: str) -> Start:
    data_dir = settings.data_dir
    if parent is not None and parent.path and is_complete(data_dir / parent.path):
        folder = data_dir / parent.path
        if is_adapter(folder):  # keep teaching the parent's adapter on its base
            from peft import PeftModel

            under = adapter_base(folder)
            model, tok = _pretrained(under)
            weights = Weights.sharing(model, tok, under)
            model = PeftModel.from_pretrained(model, folder, is_trainable=True)
            return Start(model, tok, "lora", parent.name, under, weights=weights)
        model, tok = _pretrained(folder)
        return Start(model, tok, "continue", parent.name)
    base_dir = base_folder(settings.model, data_dir, progress=lambda text: log.info("%s", text))
    if base_dir is not None:
        model, tok = _pretrained(base_dir)
        if not settings.training.lora:
            return Start(model, tok, "continue", f"pretrained:{base_dir.name}")
        return Start(model, tok, "lora", f"pretrained:{base_dir.name}", base_dir,
                     lora_config(model.config, settings.training.lora_layers), Weights.sharing(model, tok, base_dir))
    if recipes.recipe(recipe).needs_model:
        raise BadInput(f"{recipe.upper()} needs a model to start from; train on positive examples first.")
    from trainerbot.model.build import ModelShape, new_model, train_tokenizer

    shape = (
        ModelShape()
        if settings.training.model_size == "small"
        else ModelShape(vocab_size=512, hidden_size=64, layers=2, heads=2, max_positions=256)
    )
    texts = [t for ex in examples for t in (ex.prompt, ex.response, ex.rejected or "") if t]
    tok = train_tokenizer(texts, shape.vocab_size)
    return Start(new_model(tok, shape), tok, "scratch", "scratch")


def save_model(model: Any, tokenizer: Any, target: Path, info: dict[str, Any], base_dir: Path | None = None) -> None:
    """Write the model folder crash-safely: ``.partial`` first, the marker last, then rename.
    A LoRA model on ``base_dir`` is saved as its adapter alone (megabytes), the marker naming the base."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    if hasattr(model, "peft_config") and base_dir is not None:
        model.save_pretrained(partial)  # PEFT writes adapter_config.json + adapter_model.safetensors
        info = {**info, "base_dir": relative_base(target, base_dir)}
    else:
        if hasattr(model, "merge_and_unload"):
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
        running = set(s.scalars(select(Job.id).where(Job.status == JobStatus.RUNNING)))
    removed = 0
    for folder in (data_dir / "guilds").glob("*/models/.job-*"):
        m = re.fullmatch(r"\.job-(\d+)\.(partial|trainer)", folder.name)
        if m is not None and int(m.group(1)) not in running:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def run_job(settings: JobSettings, store: Store, job_id: int, worker: str, stop: Callable[[], bool] = lambda: False,
            pause: Callable[[], float] | None = None) -> str:
    """Run a claimed job; returns its final status. Never raises for a job's own failure.

    ``stop()`` true means the worker itself is stopping: training ends at the next step
    and the job is failed with that reason. ``pause()`` is called before every training step
    and every check question, and waits while chat on this machine writes a reply
    (``chat_first``).
    """
    data_dir = settings.data_dir
    quiet_libraries()
    try:
        with store.read() as s:
            job = s.get(Job, job_id)
            assert job is not None
            guild = s.get(Guild, job.guild_id)
            snap = s.get(Snapshot, job.snapshot_id) if job.snapshot_id else None
            parent = active_version(s, job.guild_id)
            assert guild is not None  # a job's guild row outlives it (foreign key)
            recipe, guild_pid, guild_id, persona = job.recipe, guild.platform_id, guild.id, repo.persona(guild)
            backend = job.backend
        if snap is None:
            raise NotFound("Its dataset snapshot is gone; select the data again and start a new job.")
        root = paths.guild_root(data_dir, guild_pid)
        _, examples = read_snapshot(paths.snapshot_file(root, snap.kind, snap.file_name))
        examples, held = heldout.split(examples, settings.training.heldout_share)
        ctx = JobContext(settings, store, job_id, worker, stop, guild_id=guild_id, guild_pid=guild_pid, snapshot_id=snap.id,
                         recipe=recipe, parent=parent, cases=tuple(heldout.cases(held, settings.training.max_test_cases)),
                         taught=tuple(heldout.cases(examples, TAUGHT_PROBES)), persona=persona, pause=pause)
        if backend == "openai":
            from trainerbot.training.openai_jobs import run_remote_job

            fewer = tuple(heldout.cases(held, min(settings.training.max_test_cases, 50)))  # each one is a paid API call
            return run_remote_job(dataclasses.replace(ctx, cases=fewer), examples)
        queue.add_event(
            store,
            job_id,
            kind="log",
            message=f"{count(len(examples), 'example')} from {snap.file_name} ({len(held)} more held out for evaluation)",
        )
        if settings.model.torch_threads:
            import torch

            torch.set_num_threads(settings.model.torch_threads)
        start = _load_start(settings, parent, examples, recipe)
        weights = None
        if start.base_dir is not None:
            # The base, served beside the training copy: rehearsal answers now, evaluation after.
            weights = start.weights or Weights(start.base_dir, require_done=False)
            if recipes.recipe(recipe).rehearsal:
                extra = rehearsal.answers(
                    LocalModel(start.base_dir, weights=weights, require_done=False, threads=settings.model.torch_threads),
                    data_dir,
                    start.base_dir,
                )
                mixed = rehearsal.mix(examples, extra)
                queue.add_event(
                    store,
                    job_id,
                    kind="log",
                    message=f"{len(mixed) - len(examples)} rehearsal examples mixed in "
                    "(the base model's own answers to general prompts, so it keeps conversing)",
                )
                examples = mixed
        if start.kind == "lora" and start.tokenizer.chat_template != CHAT_TEMPLATE:  # taught under the server's persona
            examples = [ex if ex.system else dataclasses.replace(ex, system=persona or SYSTEM) for ex in examples]
        params = dataclasses.replace(params_for(settings.training, recipe, start.kind, len(examples)),
                                     compile_cache=str(data_dir / "models" / "compiled"))
        adapter = " with a LoRA adapter" if start.kind == "lora" else ""
        under = " under the server's persona" if persona and start.kind == "lora" else ""
        queue.add_event(
            store,
            job_id,
            kind="log",
            message=f"{recipe} from {start.base}{adapter}{under}: {params.epochs:g} epochs, "
            f"lr {params.learning_rate:g}, batch {params.batch_size}" + (", bfloat16 mixed precision" if params.bf16 else ""),
        )

        def report(p: Progress) -> None:
            queue.add_event(
                store,
                job_id,
                step=p.step,
                total_steps=p.total_steps,
                loss=p.loss,
                learning_rate=p.learning_rate,
                tokens_per_s=p.tokens_per_s,
                eta_s=p.eta_s,
            )

        def should_stop() -> bool:
            return queue.heartbeat(store, job_id, worker) or stop()

        def note(message: str) -> None:
            queue.add_event(store, job_id, kind="log", message=message)

        callback = JobCallback(report, should_stop, pause=pause, note=note)
        recipe_module = recipes.trainer(recipe)
        out_dir = root / "models" / f".job-{job_id}.trainer"
        trained, result = recipe_module.train(
            start.model, start.tokenizer, examples, params, callback, str(out_dir), start.peft_config
        )
        shutil.rmtree(out_dir, ignore_errors=True)
        if result.cancelled:
            if stop() and not queue.heartbeat(store, job_id, worker):
                queue.finish(
                    store, job_id, JobStatus.FAILED, error="The worker was stopped during training. Start it again with `train`."
                )
                return JobStatus.FAILED
            queue.finish(store, job_id, JobStatus.CANCELLED, message=f"cancelled at step {result.steps}")
            return JobStatus.CANCELLED
        return _register(ctx, start, trained, weights, result)
    except Exception as exc:  # the job fails; the worker goes on
        if isinstance(exc, TrainerBotError):
            log.info("job %s failed: %s", job_id, exc.user_message, extra={"job": job_id})
        else:
            log.exception("job %s failed", job_id, extra={"job": job_id})
        queue.finish(store, job_id, JobStatus.FAILED, error=_plain(exc))
        return JobStatus.FAILED


def _plain(exc: BaseException) -> str:
    """What `job` shows for a failure: a TrainerBotError's own words; for anything else a
    plain sentence (the trace is in the worker's log, never in chat)."""
    if isinstance(exc, TrainerBotError):
        return exc.user_message[:300]
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return (
            "The worker ran out of memory. Try a smaller batch (TRAINERBOT_TRAIN_BATCH_SIZE) or fewer examples; "
            "the details are in the worker's log."
        )
    return f"Training failed on the worker's side ({type(exc).__name__}); the details are in the worker's log."


def _register(job: JobContext, start: Start, model: Any, weights: Any, result: TrainResult) -> str:
    """Save the trained model (an adapter under LoRA), draw its loss curve, and register it."""
    settings, job_id, recipe = job.settings, job.job_id, job.recipe
    data_dir = settings.data_dir
    root = paths.guild_root(data_dir, job.guild_pid)
    folder = root / "models" / f"job-{job_id}"
    final_loss = result.losses[-1][1] if result.losses else result.metrics.get("train_loss")
    metrics = {
        "final_loss": final_loss,
        "train_loss": result.metrics.get("train_loss"),
        "steps": result.steps,
        "seconds": round(result.seconds, 2),
        "paused_for_chat_s": result.metrics.get("paused_for_chat_s"),  # of those seconds, waiting while chat replied
        "persona": job.persona,  # what it was taught under (None: the shipped persona)
    }
    save_model(
        model,
        start.tokenizer,
        folder,
        {"job": job_id, "recipe": recipe, "base": start.base, "metrics": metrics, "saved_at": time.time()},
        start.base_dir,
    )
    loss_curve(result.losses, paths.loss_curve_file(root, job_id), f"job {job_id} · {recipe}")
    if weights is not None and hasattr(model, "peft_config") and weights.fast is not None:
        candidate = LocalModel.from_trained(weights, model, folder, threads=settings.model.torch_threads)
    else:
        candidate = LocalModel(folder, threads=settings.model.torch_threads, weights=weights if is_adapter(folder) else None)
    return register_version(job, backend="local", path=str(folder.relative_to(data_dir)), base=start.base, metrics=metrics,
                            candidate=candidate, general=weights is not None)

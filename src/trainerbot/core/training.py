"""Training commands: ``train``, ``jobs``, ``job`` and ``cancel``.

``train`` imports an attached file (like ``import``), snapshots the dataset (like
``select_dataset``) and queues a job — it never trains in this process: the worker does.
The recipe follows from the data (``training.recipes.choose``): the first training (no model
yet) is SFT; afterwards corrections alone give DPO, data with 👎/negative examples gives KTO,
the rest SFT; an OpenAI-compatible backend offers SFT and DPO.
"""

from __future__ import annotations

from importlib import resources

from sqlalchemy import select

from trainerbot.config import ModelSettings, OpenAISettings, TrainingSettings
from trainerbot.core.base import Basis, Group
from trainerbot.core.datasets import DatasetCommands
from trainerbot.core.text import bar, eta_text
from trainerbot.core.types import Attachment, Caller, Embed, EmbedField, JobProgress, JobRef, OutFile, Reply
from trainerbot.datasets import paths
from trainerbot.datasets.importers import parse_label
from trainerbot.datasets.records import Example
from trainerbot.errors import COMMAND, BadInput, NotAvailable, NotFound
from trainerbot.plural import count
from trainerbot.store import repo
from trainerbot.store.tables import Dataset, Job, JobEvent, JobStatus, ModelVersion, Snapshot
from trainerbot.training import queue, recipes

SAMPLE = "sample"



def _job_id(raw: str | int) -> int:
    try:
        value = int(str(raw).lstrip("#"))
    except ValueError:
        raise BadInput(f"`{str(raw)[:20]}` is not a job ID; `jobs` lists them.") from None
    if value <= 0:
        raise BadInput("Job IDs are positive numbers.")
    return value


class TrainingCommands(Group):
    def __init__(self, basis: Basis, datasets: DatasetCommands, *,
                 model: ModelSettings, training: TrainingSettings, openai: OpenAISettings) -> None:
        super().__init__(basis)
        self.model, self.training, self.openai = model, training, openai
        self.datasets = datasets  # train imports the attached file and snapshots the dataset as those commands do

    # ------------------------------------------------------------------ train
    async def train(self, caller: Caller, dataset: str | None = None, label: str | None = None,
                    attachment: Attachment | None = None) -> Reply:
        self._require_trainer(caller, "start training")
        if self.model.base_model_gguf is not None and self.model.backend == "local":
            raise NotAvailable(
                f"I answer with a GGUF file (`{self.model.base_model_gguf.name}`, TRAINERBOT_BASE_MODEL_GGUF), and "
                "training needs Hugging Face weights. To train, unset it and set TRAINERBOT_BASE_MODEL_DIR to the "
                "model's Hugging Face folder (or leave both unset for the shipped model). Nothing was imported or "
                "queued; taught facts and corrections still answer at once through the context."
            )
        self._limit(caller, "train")
        only = parse_label(label) if label else None
        if dataset is None and attachment is None:
            return await self._train_selected(caller)
        name = paths.dataset_name(dataset or "default")
        if attachment is not None:
            await self.datasets.import_data(caller, name, label, attachment)
        elif name == SAMPLE:
            await self._seed_sample(caller)
        snap, examples = await self._blocking(self.datasets.snapshot, caller, name, "selection", only)
        return await self._queue(caller, snap, examples, f"`{name}`")

    async def _train_selected(self, caller: Caller) -> Reply:
        def selected() -> tuple[Snapshot, Dataset] | None:
            with self.store.read() as s:
                guild = self._find_guild(s, caller)
                snap = s.get(Snapshot, guild.selected_snapshot_id) if guild and guild.selected_snapshot_id else None
                ds = s.get(Dataset, snap.dataset_id) if snap else None
                return (snap, ds) if snap and ds else None
        found = await self._blocking(selected)
        if found is None:
            raise BadInput(
                f"Say what to train on: `{COMMAND}train <dataset>`, attach a file, or choose data with "
                f"`{COMMAND}select_dataset` first. "
                f"To try it out: `{COMMAND}train {SAMPLE}`."
            )
        snap, ds = found
        from trainerbot.datasets.snapshots import read_snapshot

        _, examples = await self._blocking(read_snapshot, paths.snapshot_file(self._root(caller), snap.kind, snap.file_name))
        return await self._queue(caller, snap, examples, f"the selected `{ds.name}` snapshot")

    async def _seed_sample(self, caller: Caller) -> None:
        """``train sample`` on an empty ``sample`` dataset fills it from the shipped sample file."""

        def count() -> int:
            with self.store.read() as s:
                guild = self._find_guild(s, caller)
                ds = repo.find_dataset(s, guild.id, SAMPLE) if guild else None
                return repo.count_current(s, ds.id) if ds else 0

        if await self._blocking(count) == 0:
            data = resources.files("trainerbot.resources").joinpath("sample.jsonl").read_bytes()
            await self.datasets.import_data(caller, SAMPLE, "positive", Attachment("sample.jsonl", "application/jsonl", data))

    async def _queue(self, caller: Caller, snap: Snapshot, examples: list[Example], what: str) -> Reply:
        def submit() -> tuple[queue.Submitted, str]:
            with self.store.read() as s:
                guild = self._known_guild(s, caller)
                has_model = (
                    self.model.base_model_dir is not None
                    or repo.active_version(s, guild.id) is not None
                )
                gid = guild.id
            backend = self.model.backend
            recipe = recipes.choose(examples, has_model, backend)
            submitted = queue.submit(
                self.store,
                guild_id=gid,
                snapshot_id=snap.id,
                recipe=recipe,
                requested_by=caller.user_id,
                channel_id=caller.channel_id,
                max_active=self.training.max_queued_jobs,
                backend=backend,
            )
            return submitted, recipe

        submitted, recipe = await self._blocking(submit)
        if submitted.existing:
            text = (f"That training is already queued or running as job #{submitted.job_id}. "
                    f"Follow it with `{COMMAND}job {submitted.job_id}`.")
        else:
            where = (
                f" through the fine-tuning API of `{self.openai.openai_base_url}`" if self.model.backend == "openai" else ""
            )
            text = (
                f"Training job #{submitted.job_id} queued: {recipe.upper()}{where} on {what} "
                f"({count(len(examples), 'example')}). "
                f"Follow it with `{COMMAND}job {submitted.job_id}`; `{COMMAND}cancel {submitted.job_id}` stops it."
            )
        return Reply.text(
            text,
            data={"job_id": submitted.job_id, "recipe": recipe, "existing": submitted.existing},
            job=JobRef(submitted.job_id, submitted.existing),
        )

    # ------------------------------------------------------------------- jobs
    async def jobs(self, caller: Caller) -> Reply:
        def load() -> list[Job]:
            with self.store.read() as s:
                guild = self._find_guild(s, caller)
                if guild is None:
                    return []
                return repo.recent_jobs(s, guild.id, 10)

        jobs = await self._blocking(load)
        if not jobs:
            return Reply.text(f"No training jobs yet. Start one with `{COMMAND}train <dataset>`.")
        lines = ["**Training jobs** (newest first)"]
        for job in jobs:
            lines.append(f"• #{job.id} {job.recipe.upper()} — {job.status} {bar(job.progress, 10)} {job.progress:.0%}")
        warning = await self._no_worker() if any(j.status == JobStatus.QUEUED for j in jobs) else None
        if warning:
            lines.append(warning)
        return Reply.text("\n".join(lines), data={"ids": [j.id for j in jobs], "no_worker": bool(warning)})

    async def _no_worker(self) -> str | None:
        """A warning when jobs wait and no training worker has beaten lately (None otherwise)."""
        seen = await self._blocking(queue.workers, self.store)
        if seen.alive or not seen.waiting:
            return None
        since = (
            "No training worker has run yet"
            if seen.silent_for_s is None
            else f"No training worker has been seen for {seen.silent_for_s:.0f} s"
        )
        return (
            f"⚠ {since}, so queued jobs wait. The bot restarts its own worker; on a separate machine "
            "start one with `trainerbot worker`."
        )

    async def job(self, caller: Caller, job_id: str | int, *, plot: bool = True) -> Reply:
        """One job's status, progress, last events and (with ``plot``) its loss curve."""
        jid = _job_id(job_id)
        job, events, version = await self._blocking(self._load_job, caller, jid)
        progress = [e for e in events if e.kind == "progress"]
        last = progress[-1] if progress else None
        fields = [
            EmbedField("Status", job.status),
            EmbedField("Recipe", job.recipe.upper()),
            EmbedField("Progress", f"{bar(job.progress)} {job.progress:.0%}", inline=False),
        ]
        if last is not None:
            rate = next((e.tokens_per_s for e in reversed(progress) if e.tokens_per_s), None)
            fields += [
                EmbedField("Step", f"{last.step}/{last.total_steps}"),
                EmbedField("Loss", f"{last.loss:.4f}" if last.loss is not None else "—"),
                EmbedField("Tokens/s", f"{rate:.0f}" if rate else "—"),
                EmbedField("ETA", eta_text(last.eta_s)),
            ]
        if job.error:
            fields.append(EmbedField("Error", job.error, inline=False))
        if version is not None:
            fields.append(EmbedField("Model", f"{version.name}{' (active)' if version.active else ''}"))
        notes = [
            m if len(m) <= 400 else m[:399] + "…"
            for m in (e.message for e in events if e.kind in ("status", "log") and e.message)
        ][-5:]  # (a Ray log tail is long)
        warning = await self._no_worker() if job.status == JobStatus.QUEUED else None
        if warning:
            notes.append(warning)
        embed = Embed(
            title=f"Training job #{job.id}",
            description="\n".join(notes),
            fields=tuple(fields),
            footer=f"requested by {job.requested_by}",
        )
        files: tuple[OutFile, ...] = ()
        losses = [(e.step, e.loss) for e in progress if e.step is not None and e.loss is not None]
        if losses and plot:
            png = paths.loss_curve_file(self._root(caller), job.id)
            if job.status not in queue.FINISHED or not png.exists():
                from trainerbot.training.plots import loss_curve

                await self._blocking(paths.area_dir, self._root(caller), "artifacts")
                await self._blocking(loss_curve, losses, png, f"job {job.id} · {job.recipe}")
            files = (OutFile(name=png.name, path=png),)
        return Reply(
            messages=(embed.as_text(),),
            embed=embed,
            files=files,
            job_status=job.status,
            progress=JobProgress(job.status, job.progress, last.step if last else None, last.total_steps if last else None,
                                 last.loss if last else None, last.eta_s if last else None),
            data={
                "status": job.status,
                "progress": job.progress,
                "events": len(events),
                "losses": losses,
                "no_worker": bool(warning),
                "step": last.step if last else None,
                "total_steps": last.total_steps if last else None,
                "loss": last.loss if last else None,
                "eta_s": last.eta_s if last else None,
            },
        )

    def _load_job(self, caller: Caller, jid: int) -> tuple[Job, list[JobEvent], ModelVersion | None]:
        with self.store.read() as s:
            guild = self._find_guild(s, caller)
            job = s.get(Job, jid)
            if job is None or guild is None or job.guild_id != guild.id:
                raise NotFound(f"There is no job #{jid} here. `{COMMAND}jobs` lists them.")
            events = repo.job_events(s, jid)
            version = s.scalar(select(ModelVersion).where(ModelVersion.job_id == jid))
            return job, events, version

    async def cancel(self, caller: Caller, job_id: str | int) -> Reply:
        self._require_trainer(caller, "cancel training")
        jid = _job_id(job_id)
        await self._blocking(self._load_job, caller, jid)
        status = await self._blocking(queue.request_cancel, self.store, jid)
        if status in (JobStatus.RUNNING, JobStatus.CANCELLED):
            await self._blocking(self._audit, caller, "cancel", f"job #{jid}",
                                 "asked to stop" if status == JobStatus.RUNNING else "cancelled before it started")
        if status == JobStatus.RUNNING:
            text = f"Asked job #{jid} to stop; it ends within seconds."
        elif status == JobStatus.CANCELLED:
            text = f"Job #{jid} is cancelled."
        else:
            text = f"Job #{jid} already finished ({status})."
        return Reply.text(text, data={"status": status})

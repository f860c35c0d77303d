"""What the adapters tell the core around the messages they send, and ask it for between
commands — no command of its own:

- the record of replies: every answer is stored with its prompt and context
  (``record_exchange``), and its platform message ID once sent (``bind_reply``), so it can
  be rated and corrected later;
- the message that shows a correction for review (``bind_review``), so ✅/❌ on it decide;
- the message that shows a job's progress (``watch_job``), which the adapter edits from
  ``progress_updates`` until the job ends (``mark_announced``), after restarts too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from trainerbot.core.base import Group
from trainerbot.core.text import bar, eta_text, read_message_id, speaker_name
from trainerbot.core.types import Caller
from trainerbot.errors import NotFound
from trainerbot.store.tables import Conversation, Correction, Guild, Job, JobEvent, Message
from trainerbot.training import queue


@dataclass(frozen=True)
class ProgressUpdate:
    job_id: int
    guild_id: str
    channel_id: str
    message_id: str
    text: str
    finished: bool


class Delivery(Group):
    # ------------------------------------------------------- record of replies
    async def record_exchange(self, caller: Caller, prompt: str, reply: str, *, prompt_message_id: str | None = None,
                              reply_message_id: str | None = None, context: list[dict[str, str]] | None = None,
                              model_version: str | None = None) -> int:
        """Store a user's message and the bot's reply to it; returns the reply's row ID."""
        def record() -> int:
            with self.store.session() as s:
                guild = self._guild(s, caller)
                conv = s.scalar(select(Conversation).where(Conversation.guild_id == guild.id,
                                                           Conversation.channel_id == caller.channel_id))
                if conv is None:
                    conv = Conversation(guild_id=guild.id, channel_id=caller.channel_id)
                    s.add(conv)
                    s.flush()
                asked = Message(guild_id=guild.id, conversation_id=conv.id, platform_message_id=prompt_message_id,
                                author_id=caller.user_id, author_name=speaker_name(caller.user_name), role="user",
                                content=prompt)
                s.add(asked)
                s.flush()
                answer = Message(guild_id=guild.id, conversation_id=conv.id, platform_message_id=reply_message_id,
                                 author_id="bot", role="assistant", content=reply, prompt=prompt, context=context or [],
                                 reply_to_id=asked.id, model_version=model_version)
                s.add(answer)
                s.flush()
                return answer.id
        return await self._blocking(record)

    async def bind_reply(self, caller: Caller, reply_id: int, platform_message_id: str) -> None:
        """Attach the platform's message ID to a stored reply, once it has been sent."""
        mid = read_message_id(platform_message_id)

        def bind() -> None:
            with self.store.session() as s:
                guild = self._guild(s, caller)
                msg = s.get(Message, reply_id)
                if msg is None or msg.guild_id != guild.id:
                    raise NotFound("That reply is not stored here.")
                msg.platform_message_id = mid
        await self._blocking(bind)

    # ------------------------------------------------------------ review
    async def bind_review(self, caller: Caller, correction_id: int, platform_message_id: str) -> None:
        """Remember the message that shows a correction for review, so ✅/❌ on it decide."""
        def bind() -> None:
            with self.store.session() as s:
                corr = s.get(Correction, correction_id)
                guild = self._find_guild(s, caller)
                if corr is not None and guild is not None and corr.guild_id == guild.id:
                    corr.review_message_id = platform_message_id[:64]
        await self._blocking(bind)

    # ------------------------------------------------------- live progress
    async def watch_job(self, caller: Caller, job_id: int, channel_id: str, message_id: str) -> None:
        """Remember the message that shows a job's progress, so it can be edited (after restarts too)."""
        def save() -> None:
            with self.store.session() as s:
                job = s.get(Job, job_id)
                guild = self._find_guild(s, caller)
                if job is None or guild is None or job.guild_id != guild.id:
                    raise NotFound(f"There is no job #{job_id} here.")
                job.channel_id, job.progress_message_id = channel_id, message_id
        await self._blocking(save)

    async def progress_updates(self, guild_ids: set[str]) -> list[ProgressUpdate]:
        """Jobs in these guilds whose progress message still needs updating."""
        def load() -> list[ProgressUpdate]:
            out: list[ProgressUpdate] = []
            with self.store.read() as s:
                rows = s.execute(select(Job, Guild.platform_id).join(Guild, Guild.id == Job.guild_id).where(
                    Job.progress_message_id.is_not(None), Guild.platform_id.in_(guild_ids)).order_by(Job.id)).all()
                for job, platform_id in rows:
                    if job.announced:
                        continue
                    last = s.scalars(select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.kind == "progress")
                                     .order_by(JobEvent.id.desc()).limit(1)).first()
                    out.append(ProgressUpdate(job_id=job.id, guild_id=platform_id, channel_id=job.channel_id or "",
                                              message_id=job.progress_message_id or "", text=progress_text(job, last),
                                              finished=job.status in queue.FINISHED))
            return out
        return await self._blocking(load)

    async def mark_announced(self, job_id: int) -> None:
        def save() -> None:
            with self.store.session() as s:
                job = s.get(Job, job_id)
                if job is not None:
                    job.announced = True
        await self._blocking(save)


def progress_text(job: Job, last: JobEvent | None) -> str:
    head = f"Training job #{job.id} ({job.recipe.upper()}) — {job.status}"
    progress = f"{bar(job.progress)} {job.progress:.0%}"
    if last is None:
        return f"{head}\n{progress}"
    loss = f"loss {last.loss:.4f}" if last.loss is not None else "loss —"
    tail = f"step {last.step}/{last.total_steps} · {loss} · ETA {eta_text(last.eta_s)}"
    if job.error:
        tail += f"\n{job.error}"
    return f"{head}\n{progress}\n{tail}"

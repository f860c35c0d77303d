"""The local console: a REPL over the core with the same command words as on Discord.

Lines that start with the prefix are commands (``!datasets``); any other line is chat.
``--attach PATH`` inside a command line attaches a local file as an upload would (the
console runs on the operator's own machine, so local paths are fine here, and the same
size limits apply). Files the bot sends are copied to ``<data>/outbox/`` and their paths
printed. With a terminal, lines are edited with readline and kept in a history file;
otherwise commands are read one a line from standard input, for scripts.
This module does not promise Discord's rendering: embeds are printed as plain text.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import mimetypes
import re
import shlex
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import TextIO

from rich.console import Console as RichConsole
from rich.markdown import Markdown
from rich.text import Text

from trainerbot.core import Attachment, Caller, CoreService, Reply
from trainerbot.core.commands import COMMANDS
from trainerbot.core.text import eta_text, with_prefix
from trainerbot.core.turns import waiting_words
from trainerbot.core.types import JobProgress
from trainerbot.errors import BadInput, TrainerBotError
from trainerbot.fileio import unique_path
from trainerbot.ops import metrics
from trainerbot.store.tables import JobStatus

log = logging.getLogger(__name__)
QUIT = ("quit", "exit")
PROMPT = "> "
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
# (command word, argument position) → what completes there
COMPLETES = {("dataset", 1): "dataset", ("import", 1): "dataset", ("train", 1): "dataset", ("archive", 1): "dataset",
             ("select_dataset", 1): "dataset", ("export", 1): "dataset"}
Handler = Callable[[list[str], str, Attachment | None], Awaitable[Reply | None]]
ATTACH = re.compile(r"""(?:^|\s)--attach(?:\s+|=)("[^"]*"|'[^']*'|\S+)""")

class Console:
    """One console session: a caller identity, and the core it talks to."""

    def __init__(self, core: CoreService, caller: Caller, out: TextIO = sys.stdout, *, prefix: str,
                 max_attachment_bytes: int) -> None:
        self.core = core
        self.caller = caller
        self.out = out
        self.prefix = prefix  # what a command line starts with, and how replies name commands
        self.max_attachment_bytes = max_attachment_bytes  # the largest file `--attach` reads
        self.outbox = core.data_dir / "outbox"
        # On a terminal: Markdown replies and a live line for jobs started here (never in a pipe).
        self.live = out.isatty()
        self.rich: RichConsole | None = RichConsole(file=out, highlight=False, soft_wrap=True) if self.live else None
        self.poll_s = 1.0
        self._live_drawn = False
        self._reading = False
        self._watchers: set[asyncio.Task[None]] = set()
        self._names: dict[str, list[str]] = {}
        handlers: dict[str, Handler] = {
            "hi": lambda a, r, f: core.general.hi(caller),
            "help": lambda a, r, f: core.general.help(caller, "console"),
            "instruction": lambda a, r, f: core.general.instruction(caller),
            "feedback": lambda a, r, f: core.feedback.leave(caller, r),
            "correct": self._correct,
            "react": self._react,
            "datasets": lambda a, r, f: core.datasets.summary(caller),
            "dataset": self._dataset,
            "revisions": lambda a, r, f: core.revisions.show(caller, self._arg(a, 0, "revisions <example id>")),
            "revert": self._revert,
            "edit": self._edit,
            "import": lambda a, r, f: core.datasets.import_data(
                caller, self._arg(a, 0, "import <dataset> [positive|negative] --attach FILE"), a[1] if len(a) > 1 else None, f
            ),
            "train": lambda a, r, f: core.training.train(caller, a[0] if a else None, a[1] if len(a) > 1 else None, f),
            "archive": lambda a, r, f: core.datasets.archive(caller, self._arg(a, 0, "archive <dataset>")),
            "select_dataset": lambda a, r, f: core.datasets.select_dataset(
                caller, self._arg(a, 0, "select_dataset <dataset> [positive|negative]"), a[1] if len(a) > 1 else None
            ),
            "export": lambda a, r, f: core.datasets.export(
                caller, self._arg(a, 0, "export <dataset> [openai|sft|kto|dpo|csv]"), a[1] if len(a) > 1 else None
            ),
            "getfile": lambda a, r, f: core.datasets.getfile(caller, a[0] if a else None),
            "jobs": lambda a, r, f: core.training.jobs(caller),
            "job": lambda a, r, f: core.training.job(caller, self._arg(a, 0, "job <id>")),
            "cancel": lambda a, r, f: core.training.cancel(caller, self._arg(a, 0, "cancel <id>")),
            "model": self._model,
            "persona": lambda a, r, f: core.persona.persona(caller, r),
            "test": lambda a, r, f: core.models.test(caller, r, f),
            "handle_errors": lambda a, r, f: core.models.handle_errors(caller, a[0] if a else None),
            "review": lambda a, r, f: core.review.next(caller),
            "approve": lambda a, r, f: core.review.approve(caller, self._arg(a, 0, "approve <correction id>")),
            "reject": lambda a, r, f: core.review.reject(caller, self._arg(a, 0, "reject <correction id>")),
            "forget": lambda a, r, f: core.review.forget(caller, self._arg(a, 0, "forget me")),
            "mydata": lambda a, r, f: core.review.mydata(caller),
            "audit": lambda a, r, f: core.audit.latest(caller, a[0] if a else None),
            "contributors": lambda a, r, f: core.contributors.contributors(caller, a[0] if a else None),
            "dashboard": lambda a, r, f: core.dashboard.logout(caller) if a[:1] == ["logout"] else core.dashboard.link(caller),
            "say": lambda a, r, f: core.voice.say(caller, r),
            "language": lambda a, r, f: core.voice.language(caller, a[0] if a else None),
        }
        # The words, and their help, come from the one command table (a word without a handler fails here).
        self.commands: dict[str, Handler] = {
            c.word: handlers[c.word] for c in COMMANDS if "console" in c.where and c.word not in QUIT
        }

    # ---------------------------------------------------------------- parsing
    def _arg(self, args: list[str], i: int, usage: str) -> str:
        if len(args) <= i:
            raise BadInput(f"Usage: `{self.prefix}{usage}`")
        return args[i]

    async def _correct(self, args: list[str], rest: str, _: Attachment | None) -> Reply:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise BadInput(f"Usage: `{self.prefix}correct <message id> <better answer>`")
        return await self.core.feedback.correct(self.caller, parts[0], parts[1])

    async def _revert(self, args: list[str], rest: str, _: Attachment | None) -> Reply:
        parts = rest.split(None, 2)
        if len(parts) < 2:
            raise BadInput(f"Usage: `{self.prefix}revert <example id> <revision> [why]`")
        return await self.core.revisions.revert(self.caller, parts[0], parts[1], parts[2] if len(parts) > 2 else None)

    async def _edit(self, args: list[str], rest: str, _: Attachment | None) -> Reply:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise BadInput(f"Usage: `{self.prefix}edit <example id> <new answer>`")
        return await self.core.revisions.edit(self.caller, parts[0], parts[1])

    async def _react(self, args: list[str], rest: str, _: Attachment | None) -> Reply | None:
        if len(args) < 2:
            raise BadInput(f"Usage: `{self.prefix}react <message id> 👍|👎 [remove]`, or `{self.prefix}react <message id> 👎 "
                           "<what was wrong>` (wrong fact, outdated, rude or unsafe, off-topic, too long, or your words)")
        removed = args[2:] == ["remove"]
        reason = " ".join(args[2:]) if len(args) > 2 and not removed else None
        reply = await self.core.feedback.react(self.caller, args[0], args[1], added=not removed, reason=reason)
        if reply is None:
            raise BadInput("Only 👍 and 👎 count as ratings.")
        return reply

    async def _dataset(self, args: list[str], rest: str, _: Attachment | None) -> Reply:
        name = self._arg(args, 0, "dataset <name>")
        if name.lower() == "item":  # `dataset item <id>`: where one example came from
            return await self.core.datasets.item(self.caller, self._arg(args, 1, "dataset item <id>"))
        return await self.core.datasets.stats(self.caller, name)

    async def _model(self, args: list[str], rest: str, _: Attachment | None) -> Reply:
        action = args[0].lower() if args else "list"
        if action == "list":
            return await self.core.models.versions(self.caller)
        if action == "use":
            return await self.core.models.use(self.caller, self._arg(args, 1, "model use <version>"))
        if action == "compare":
            if len(args) != 3:
                raise BadInput(f"Usage: `{self.prefix}model compare <version> <version>`, e.g. `model compare v1 v2`.")
            return await self.core.models.compare(self.caller, args[1], args[2])
        raise BadInput(
            f"Usage: `{self.prefix}model list`, `{self.prefix}model use <version>` or `{self.prefix}model compare <a> <b>`."
        )

    def _attachment(self, raw: str) -> Attachment:
        path = Path(raw.strip("'\"")).expanduser()
        limit = self.max_attachment_bytes
        if not path.is_file():
            raise BadInput(f"No such file to attach: {path}")
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise BadInput(f"`{path.name}` is larger than the attachment limit of {limit} bytes.")
        ctype = mimetypes.guess_type(path.name)[0]
        return Attachment(filename=path.name, content_type=ctype, data=data)

    # -------------------------------------------------------------- executing
    async def handle_line(self, line: str) -> bool:
        """Run one line; returns False when the user asked to quit."""
        line = line.strip()
        if not line:
            return True
        try:
            if not line.startswith(self.prefix):
                if (m := ATTACH.search(line)) is not None:  # a voice message: transcribe, then answer
                    audio = await asyncio.to_thread(self._attachment, m.group(1))
                    await self._chat(line, audio)
                else:
                    await self._chat(line)
                return True
            body = line[len(self.prefix) :]
            word, _, rest = body.partition(" ")
            word = word.lower()
            if word in QUIT:
                return False
            attachment = None
            if (m := ATTACH.search(rest)) is not None:
                attachment = await asyncio.to_thread(self._attachment, m.group(1))
                rest = (rest[: m.start()] + rest[m.end() :]).strip()
            handler = self.commands.get(word)
            if handler is None:
                close = difflib.get_close_matches(word, [*self.commands, *QUIT], n=1, cutoff=0.6)
                hint = f"Did you mean `{self.prefix}{close[0]}`? " if close else ""
                raise BadInput(f"Unknown command `{word[:30]}`. {hint}Try `{self.prefix}help`.")
            try:
                args = shlex.split(rest)
            except ValueError:
                args = rest.split()
            reply = await handler(args, rest.strip(), attachment)
            if reply is not None:
                self.render(reply)
                if reply.job is not None and self.live:
                    await self._watch(reply.job.job_id)
            if word in ("import", "train", "archive", "select_dataset", "model", "forget"):
                await self._refresh_names()
        except TrainerBotError as exc:
            metrics.user_error(exc)
            self._print(f"⚠ {exc.user_message}")
        except Exception as exc:
            metrics.user_error(exc)
            log.exception("command failed: %s", line[:80])
            self._print("⚠ Sorry, something went wrong on my side. The error is in the log.")
        return True

    async def _chat(self, line: str, audio: Attachment | None = None) -> None:
        shown: list[str] = []  # on a terminal the answer appears token by token

        async def partial(text: str) -> None:
            done = shown[0] if shown else ""
            if text.startswith(done):
                self.out.write(text[len(done) :])
                self.out.flush()
                shown[:] = [text]

        async def waiting(ahead: int) -> None:  # the model is busy with others (the dashboard, Discord)
            self._print(f"… {waiting_words(ahead)}")

        streaming = audio is None and self.out.isatty()
        reply = await (
            self.core.chat.voice_message(self.caller, audio, on_wait=waiting)
            if audio is not None
            else self.core.chat.reply(self.caller, line, on_partial=partial if streaming else None, partial_every_s=0,
                                      on_wait=waiting)
        )
        reply_id = reply.reply_id
        if reply_id is not None:
            # The console's message ID for a reply is its row ID: `!correct <id> ...`, `!react <id> 👍`.
            await self.core.delivery.bind_reply(self.caller, reply_id, str(reply_id))
            reply = Reply(messages=reply.messages[:-1] + (f"{reply.messages[-1]}  [#{reply_id}]",), files=reply.files)
        if shown and reply.messages[0].startswith(shown[0]):  # finish the streamed line
            self._print(reply.messages[0][len(shown[0]) :])
            reply = Reply(messages=reply.messages[1:], files=reply.files)
        elif shown:
            self._print("")
        self.render(reply)

    def render(self, reply: Reply) -> None:
        for part in reply.for_prefix(self.prefix).messages:
            if self.rich is not None:  # a terminal: Markdown rendered (bold, code, lists)
                self._end_live_line()
                self.rich.print(Markdown(_hard_breaks(part)))
            else:  # a pipe: the text as it is, no colours or control codes
                self._print(part)
        for f in reply.files:
            self.outbox.mkdir(parents=True, exist_ok=True)
            target = unique_path(self.outbox, Path(f.name).stem, "".join(Path(f.name).suffixes) or "")
            shutil.copyfile(f.path, target)
            self._print(f"📎 {target}")

    def _print(self, text: str) -> None:
        self._end_live_line()
        print(with_prefix(text, self.prefix), file=self.out, flush=True)

    # ------------------------------------------------------------ live progress
    async def _watch(self, job_id: int) -> None:
        """Follow a job this console started: one progress line above the prompt, redrawn in
        place while the user goes on typing, until the job ends. The first line is drawn
        before the prompt comes back."""
        first = await self.core.training.job(self.caller, job_id, plot=False)
        if first.progress is None:
            return
        line = self._progress_line(job_id, first.progress)
        self._draw_live(line)
        if first.job_status in FINISHED:
            self._live_drawn = False
            return
        task = asyncio.create_task(self._follow(job_id, line), name=f"console-job-{job_id}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _follow(self, job_id: int, last: Text) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                shown = await self.core.training.job(self.caller, job_id, plot=False)
            except TrainerBotError:
                return
            if shown.progress is None:
                return
            line = self._progress_line(job_id, shown.progress)
            if line != last:
                self._draw_live(line)
                last = line
            if shown.job_status in FINISHED:
                self._live_drawn = False  # the final line stays in the scrollback
                return

    @staticmethod
    def _progress_line(job_id: int, shown: JobProgress) -> Text:
        status, progress = shown.status, shown.progress
        width = 24
        done = round(progress * width)
        colour = "red" if status in (JobStatus.FAILED, JobStatus.CANCELLED) else "green"
        parts = [
            f"step {shown.step}/{shown.total_steps}" if shown.step is not None else "",
            f"loss {shown.loss:.3f}" if shown.loss is not None else "",
            f"ETA {eta_text(shown.eta_s)}" if shown.eta_s is not None and status == JobStatus.RUNNING else "",
        ]
        extra = " · ".join(p for p in parts if p)
        return Text.assemble(
            f"Job #{job_id} ",
            (status, "bold"),
            " ",
            ("━" * done, colour),
            ("━" * (width - done), "grey35"),
            f" {progress:4.0%}",
            f" · {extra}" if extra else "",
        )

    def _draw_live(self, line: Text) -> None:
        if self.rich is None:
            return
        import readline

        buffer = readline.get_line_buffer() if self._reading else ""
        out = self.out
        out.write("\r\x1b[2K")  # the prompt line
        if self._live_drawn:
            out.write("\x1b[1A\x1b[2K")  # the previous progress line
        out.flush()
        self.rich.print(line)
        self._live_drawn = True
        if self._reading:
            out.write(PROMPT + buffer)
        out.flush()

    def _end_live_line(self) -> None:
        self._live_drawn = False

    # ------------------------------------------------------------ completion
    async def _refresh_names(self) -> None:
        """Dataset names and model versions for tab completion (fetched off the input thread)."""
        try:
            self._names["dataset"] = [str(x.value) for x in await self.core.suggestions.suggest(self.caller, "dataset")]
            self._names["version"] = [str(x.value) for x in await self.core.suggestions.suggest(self.caller, "version")]
        except TrainerBotError:
            pass

    def complete(self, text: str, state: int) -> str | None:
        """readline's completer: command words, then dataset names or versions where they fit."""
        import readline

        line = readline.get_line_buffer()[: readline.get_endidx()]
        words = line.split()
        if len(words) <= 1 and not line.endswith(" "):  # the command word itself
            options = [f"{self.prefix}{w}" for w in sorted([*self.commands, *QUIT]) if f"{self.prefix}{w}".startswith(text)]
        else:
            word = words[0][len(self.prefix) :] if words[0].startswith(self.prefix) else ""
            kind = COMPLETES.get((word, len(words) - (0 if line.endswith(" ") else 1)))
            if word == "model" and len(words) >= 2 and words[1] in ("use", "compare"):
                kind = "version"
            options = [n for n in self._names.get(kind or "", []) if n.startswith(text)]
        return options[state] if state < len(options) else None

    async def run(self, stdin: TextIO = sys.stdin) -> None:
        interactive = stdin.isatty()
        if interactive:
            self._setup_readline()
            self._print(
                f"trainerbot console — guild `{self.caller.guild_name}`, user `{self.caller.user_name}`. "
                f"Type {self.prefix}help for commands, {self.prefix}quit to leave."
            )
        if interactive:
            await self._refresh_names()
        while True:
            if interactive:
                self._reading = True
                try:
                    line = await asyncio.to_thread(input, PROMPT)
                except EOFError:
                    break
                finally:
                    self._reading = False
                    self._live_drawn = False
            else:
                line = await asyncio.to_thread(stdin.readline)
                if not line:
                    break
            if not await self.handle_line(line):
                break

    def _setup_readline(self) -> None:
        try:
            import readline
        except ImportError:  # pragma: no cover - not on every platform
            return
        history = self.core.data_dir / ".console_history"
        try:
            readline.read_history_file(history)
        except OSError:
            pass
        readline.set_history_length(1000)
        readline.set_completer(self.complete)
        readline.set_completer_delims(" \t")
        readline.parse_and_bind("tab: complete")
        import atexit

        atexit.register(lambda: _save_history(readline, history))


def _save_history(readline: ModuleType, history: Path) -> None:
    try:
        readline.write_history_file(history)
    except OSError:
        pass


def console_caller(guild: str, user: str, role: str, trainer_role: str) -> Caller:
    def slug(s: str) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "_", s)[:48] or "_"

    return Caller(
        guild_id=f"console-{slug(guild)}",
        guild_name=guild,
        user_id=f"console-{slug(user)}",
        user_name=user,
        channel_id="console",
        roles=frozenset({trainer_role}) if role == "trainer" else frozenset(),
    )


def _hard_breaks(text: str) -> str:
    """Keep a reply's line breaks when it is rendered as Markdown (outside code blocks)."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        out.append(line if fenced or not line.strip() else line + "  ")
    return "\n".join(out)

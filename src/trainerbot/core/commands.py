"""The one table of command words: what each takes, who may use it, where it exists, and
what it does in one line.

The console's dispatch and its ``help``, the Discord cogs' descriptions and the
``help`` embed all read this table, so a command cannot be added on one side only
(a test compares the console's words and the bot's words with it).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

from trainerbot.core.types import Embed, EmbedField
from trainerbot.errors import COMMAND

Surface = Literal["console", "discord"]
HelpGroup = Literal["chat", "teaching", "data", "training", "voice"]  # a heading of `help` (not a core group)
BOTH: frozenset[Surface] = frozenset({"console", "discord"})

GROUP_TITLES: dict[HelpGroup, str] = {
    "chat": "💬 Chat",
    "teaching": "🧑‍🏫 Teaching",
    "data": "🗂️ Data",
    "training": "🏋️ Training and testing",
    "voice": "🔊 Voice",
}


@dataclass(frozen=True)
class CommandInfo:
    word: str
    args: str  # as the user types them after the word: "<dataset> [positive|negative]"
    group: HelpGroup
    description: str  # one line, at most 100 characters (Discord's limit for a slash command)
    trainer: bool = False
    where: frozenset[Surface] = BOTH


COMMANDS: tuple[CommandInfo, ...] = (
    CommandInfo("hi", "", "chat", "Say hello"),
    CommandInfo("help", "", "chat", "What I can do, grouped by purpose"),
    CommandInfo("instruction", "", "chat", "How to teach me"),
    CommandInfo("quit", "", "chat", "Leave the console", where=frozenset({"console"})),
    CommandInfo("feedback", "<text>", "teaching", "Leave feedback for the trainers"),
    CommandInfo("correct", "<message id> <better answer>", "teaching",
                "Correct one of my replies (on Discord also: Apps → Correct this reply)"),
    CommandInfo("react", "<message id> 👍|👎 [remove | what was wrong]", "teaching",
                "Rate one of my replies, and say what was wrong (on Discord: a reaction)", where=frozenset({"console"})),
    CommandInfo("review", "", "teaching", "The next correction or flagged reply waiting for review", trainer=True),
    CommandInfo("approve", "<correction id>", "teaching", "Approve a pending correction", trainer=True),
    CommandInfo("reject", "<correction id>", "teaching", "Reject a pending correction", trainer=True),
    CommandInfo("dashboard", "[logout]", "teaching", "A one-time link to the web dashboard (logout: sign out everywhere)"),
    CommandInfo("forget", "me | <user>", "teaching", "Delete someone's examples, ratings and corrections (others: trainers)"),
    CommandInfo("mydata", "", "teaching", "Get a file of everything I store about you here (only you get it)"),
    CommandInfo("audit", "[older than #]", "teaching", "Who decided what here, newest first", trainer=True),
    CommandInfo("contributors", "[hide | show]", "teaching", "Who taught me what here; hide: leave the list"),
    CommandInfo("datasets", "", "data", "List the datasets with their sizes"),
    CommandInfo("dataset", "<name> | item <id>", "data", "One dataset's statistics, or where one example came from"),
    CommandInfo("revisions", "<example id>", "data", "Every answer taught to an example's question: who, when, from what"),
    CommandInfo("revert", "<example id> <revision> [why]", "data", "Make an older taught answer current again",
                trainer=True),
    CommandInfo("edit", "<example id> <new answer>", "data", "Teach a new answer to an example's question", trainer=True),
    CommandInfo("import", "<dataset> [positive|negative] + a file", "data",
                "Import a JSONL, JSON, CSV or TXT file into a dataset", trainer=True),
    CommandInfo("archive", "<dataset>", "data", "Snapshot a dataset into an archive and start it afresh", trainer=True),
    CommandInfo("select_dataset", "<dataset> [positive|negative]", "data", "Choose the data the next training uses",
                trainer=True),
    CommandInfo("export", "<dataset> [openai|sft|kto|dpo|csv]", "data", "Export a dataset as a file", trainer=True),
    CommandInfo("getfile", "[name]", "data", "List the bot's files, or get one by name", trainer=True),
    CommandInfo("train", "[dataset] [positive|negative] [+ a file]", "training",
                "Import data (optional) and queue a training job", trainer=True),
    CommandInfo("jobs", "", "training", "Recent training jobs"),
    CommandInfo("job", "<id>", "training", "One job: status, progress, loss curve"),
    CommandInfo("cancel", "<job id>", "training", "Cancel a queued or running training job", trainer=True),
    CommandInfo("model", "[list | use <version> | compare <a> <b>]", "training",
                "Model versions: list them, switch (trainers), compare two"),
    CommandInfo("persona", "[<text> | reset]", "training",
                "The server's persona I answer under: show it, set it or reset it (trainers)"),
    CommandInfo("test", "<JSON> | + a .json/.jsonl file", "training", "Run the model on test cases and score it"),
    CommandInfo("handle_errors", "[test id]", "training", "Send a test's wrong answers to review as corrections"),
    CommandInfo("say", "<text>", "voice", "Speak a text into a sound file"),
    CommandInfo("language", "[en|ru]", "voice", "The language I speak and listen in here"),
    CommandInfo("join", "", "voice", "Join your voice channel and speak my replies there", where=frozenset({"discord"})),
    CommandInfo("leave", "", "voice", "Leave the voice channel", where=frozenset({"discord"})),
)

BY_WORD: dict[str, CommandInfo] = {c.word: c for c in COMMANDS}


def words(surface: Surface) -> frozenset[str]:
    return frozenset(c.word for c in COMMANDS if surface in c.where)


def describe(word: str) -> str:
    """A command's one-line description (a KeyError for a word the table lacks)."""
    return BY_WORD[word].description


def _width(text: str) -> int:
    """Columns a terminal gives ``text``: wide characters (emoji, CJK) take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 0 if unicodedata.combining(ch) else 1 for ch in text)


def help_text(surface: Surface) -> str:
    """The plain-text help: one aligned line per command, by group (each command written with
    the mark the adapter turns into its prefix)."""
    shown = [c for c in COMMANDS if surface in c.where]
    usage = {c.word: f"{COMMAND}{c.word}" + (f" {c.args}" if c.args else "") for c in shown}
    column = min(max(_width(u) for u in usage.values()), 34) + 2
    lines = [f"Commands (prefix {COMMAND}); 🔒 = trainers only:"]
    for group, title in GROUP_TITLES.items():
        rows = [c for c in shown if c.group == group]
        if not rows:
            continue
        lines.append(title)
        for c in rows:
            u, text = usage[c.word], c.description + (" 🔒" if c.trainer else "")
            if _width(u) + 2 > column:  # a long usage: the description goes on the next line
                lines.extend((f"  {u}", f"  {' ' * column}{text}"))
            else:
                lines.append(f"  {u}{' ' * (column - _width(u))}{text}")
    if surface == "console":
        lines.append("Anything else is chat; `--attach FILE` attaches a file, and on a chat line sends a voice message.")
    return "\n".join(lines)


def help_embed() -> Embed:
    """The Discord ``help``: one field per group. (The Discord adapter adds what its prefix is.)"""
    fields = []
    for group, title in GROUP_TITLES.items():
        rows = [c for c in COMMANDS if "discord" in c.where and c.group == group]
        value = "\n".join(f"`{COMMAND}{c.word}{' ' + c.args if c.args else ''}`{' 🔒' if c.trainer else ''} — {c.description}"
                          for c in rows)
        fields.append(EmbedField(name=title, value=value[:1024], inline=False))
    return Embed(title="What I can do",
                 description="Talk to me by mentioning me, in a DM, or by replying to my messages.",
                 fields=tuple(fields),
                 footer="🔒 trainers only (the trainer role or Manage Server). Rate replies with 👍/👎; "
                        "right-click a reply → Apps → Correct this reply.")

"""Adapters act on the typed fields of a ``Reply`` (``reply_id``, ``job``, ``progress``,
``review``, ``decision``, ``rating``…), never on ``Reply.data`` by key: what the core
writes there is for tests and numbers, and a renamed key would break an adapter silently."""

from __future__ import annotations

import ast
from pathlib import Path

import trainerbot.adapters

ADAPTERS = Path(trainerbot.adapters.__file__).parent
NOT_REPLIES = {"interaction", "attachment", "att", "payload"}  # discord.py's and the core's own `.data` fields


def _reads_of_data(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        target = None
        if isinstance(node, ast.Subscript):
            target = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            target = node.func.value
        if isinstance(target, ast.Attribute) and target.attr == "data":
            owner = target.value
            if not (isinstance(owner, ast.Name) and owner.id in NOT_REPLIES):
                lines.append(node.lineno)
    return lines


def test_no_adapter_reads_reply_data_by_key() -> None:
    found = {str(p.relative_to(ADAPTERS)): lines for p in ADAPTERS.rglob("*.py")
             if (lines := _reads_of_data(ast.parse(p.read_text())))}
    assert found == {}


def test_the_check_sees_a_read_by_key() -> None:
    assert _reads_of_data(ast.parse("x = reply.data['status']\ny = shown.data.get('loss')\nz = interaction.data['name']")) \
        == [1, 2]

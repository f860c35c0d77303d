"""Core groups depend on each other only through their constructors: no module of a command
group imports another group's module (``service.py``, which builds them all, aside). And only
the composition roots import the whole ``Settings``."""

from __future__ import annotations

import ast
from pathlib import Path

import trainerbot.core

CORE = Path(trainerbot.core.__file__).parent


def _group_modules() -> set[str]:
    """The core modules that define a command group (a subclass of ``base.Group``)."""
    out = set()
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id == "Group" for b in node.bases):
                out.add(path.stem)
    return out


def test_no_group_module_imports_another() -> None:
    groups = _group_modules()
    assert {"chat", "review", "datasets", "revisions", "models", "feedback"} <= groups
    found = []
    for stem in sorted(groups):
        tree = ast.parse((CORE / f"{stem}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trainerbot.core."):
                other = node.module.removeprefix("trainerbot.core.")
                names = {a.name for a in node.names}
                # Taking another group as a constructor argument means importing its class (for the type).
                only_the_class = all(n.endswith(("Commands", "Delivery")) for n in names)
                if other in groups and other != stem and not only_the_class:
                    found.append(f"{stem} imports {sorted(names)} from {other}")
    assert found == []



def test_only_the_roots_take_the_whole_settings() -> None:
    """Every module but the composition roots receives the sections of the settings it reads
    (``config.SECTIONS``), never the whole ``Settings``."""
    package = CORE.parent
    roots = {"cli.py", "config.py", "core/service.py", "training/worker.py", "adapters/discord/bot.py",
             "training/ray_executor.py"}  # (Ray: every setting goes on to the job as TRAINERBOT_*)
    takers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "trainerbot.config" and any(
                    a.name == "Settings" for a in node.names):
                takers.add(path.relative_to(package).as_posix())
    assert takers - roots == set() and "core/service.py" in takers

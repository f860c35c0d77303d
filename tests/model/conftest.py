from __future__ import annotations

from pathlib import Path

import pytest

from trainerbot.model import pretrained


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model prepared once for the whole run (about 20 s)."""
    return pretrained.prepare_base(tmp_path_factory.mktemp("shared"))

"""Fixtures for training tests: tiny models and few epochs, so real runs take seconds."""

from __future__ import annotations

import pytest

from trainerbot.config import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:  # overrides the global one: a tiny model
    return Settings(_env_file=None, data_dir=tmp_path / "data", model_size="tiny", train_epochs=2, train_batch_size=8,
                    torch_threads=2, start_worker=False)

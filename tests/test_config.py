from __future__ import annotations

import logging
import typing

import pytest

from trainerbot.config import Settings, load_settings
from trainerbot.errors import ConfigError

TOKEN = "MTIzNDU2Nzg5.dummy-token-for-tests.abcdefghijklmnop"


def test_defaults(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.prefix == "!" and s.mode == "dev" and s.discord_token is None
    assert s.db_url == f"sqlite:///{tmp_path / 'data' / 'trainerbot.db'}"
    assert s.trainer_role == "trainer" and s.history_messages == 20


def test_environment_and_dotenv_are_read(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={TOKEN}\nTRAINERBOT_PREFIX=?\n")
    monkeypatch.setenv("TRAINERBOT_TRAINER_ROLE", "Teacher")
    monkeypatch.setenv("TRAINERBOT_DATA_DIR", str(tmp_path / "elsewhere"))
    s = load_settings()
    assert s.discord_token is not None and s.discord_token.get_secret_value() == TOKEN
    assert (s.prefix, s.trainer_role) == ("?", "Teacher")
    assert s.resolved_data_dir == tmp_path / "elsewhere"


def test_redacted_settings_hide_secrets(tmp_path, caplog) -> None:
    s = Settings(_env_file=None, discord_token=TOKEN, database_url="postgresql+psycopg://bot:hunter2pass@db.example:5432/bot")
    shown = s.redacted()
    assert shown["discord_token"] == "**********"
    assert "hunter2pass" not in str(shown) and "db.example" in str(shown)
    assert TOKEN not in repr(s) and TOKEN not in str(s)
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("settings: %s", s.redacted())
    assert TOKEN not in caplog.text and "hunter2pass" not in caplog.text


@pytest.mark.parametrize("env,value,name", [
    ("TRAINERBOT_MAX_ATTACHMENT_BYTES", "secret-looking-value-123", "max_attachment_bytes"),
    ("TRAINERBOT_MODE", "secret-looking-value-123", "mode"),
    ("TRAINERBOT_PREFIX", "secret looking value", "prefix"),
    ("TRAINERBOT_HISTORY_MESSAGES", "-5", "history_messages"),
])
def test_invalid_settings_name_the_setting_not_the_value(monkeypatch, env: str, value: str, name: str) -> None:
    monkeypatch.setenv(env, value)
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    with pytest.raises(ConfigError) as exc:
        load_settings(_env_file=None)
    assert name in exc.value.user_message
    assert value not in exc.value.user_message and TOKEN not in exc.value.user_message
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_instructions_file_setting(tmp_path) -> None:
    custom = tmp_path / "mine.md"
    custom.write_text("# Ours\nBe kind.", encoding="utf-8")
    assert Settings(_env_file=None, instructions_file=custom).instructions_text().startswith("# Ours")
    with pytest.raises(ConfigError, match="instructions_file"):
        Settings(_env_file=None, instructions_file=tmp_path / "missing.md").instructions_text()


def test_every_setting_is_in_exactly_one_section_and_keeps_its_environment_name(monkeypatch, tmp_path) -> None:
    """The sections (``config.SECTIONS``) split the flat settings without a gap or an overlap,
    and a section read from ``TRAINERBOT_<NAME>`` carries the value, typed."""
    from dataclasses import fields

    from trainerbot.config import SECTIONS, OpenAISettings, VoiceSettings

    placed = [f.name for kind in SECTIONS.values() for f in fields(kind)]
    assert sorted(placed) == sorted(Settings.model_fields) and len(placed) == len(set(placed))
    flat = typing.get_type_hints(Settings)  # ... each typed in its section as it is in the settings
    assert [(kind.__name__, name) for kind in SECTIONS.values() for name, hint in typing.get_type_hints(kind).items()
            if hint != flat[name]] == []
    monkeypatch.setenv("TRAINERBOT_OPENAI_MODEL", "my-model")
    monkeypatch.setenv("TRAINERBOT_OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("TRAINERBOT_VOICE_IDLE_SECONDS", "42")
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    openai = settings.section(OpenAISettings)
    assert openai.openai_model == "my-model" and openai.openai_api_key is not None
    assert openai.openai_api_key.get_secret_value() == "sk-test" and "sk-test" not in repr(openai)
    assert settings.section(VoiceSettings).voice_idle_seconds == 42.0

"""Typed settings, read once at start from the environment and an optional ``.env``.

Every setting has the environment name ``TRAINERBOT_<NAME>`` (for example
``TRAINERBOT_DATA_DIR``); the Discord token is read from ``DISCORD_TOKEN``.
Secrets are ``SecretStr`` values: ``redacted()`` is what gets logged, and a validation
failure becomes a ``ConfigError`` naming the setting without echoing its value.
This module imports nothing of the project but ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trainerbot.errors import ConfigError

MiB = 1024 * 1024


# The settings by section: what one part of the bot reads, typed, handed to it instead of the
# whole ``Settings`` (which stays flat, so every ``TRAINERBOT_<NAME>`` keeps its name). Each
# field of ``Settings`` belongs to exactly one section (a test checks that).
@dataclass(frozen=True)
class DiscordSettings:
    discord_token: SecretStr | None
    prefix: str
    trainer_role: str
    chat_channels: list[str]
    shards: str
    discord_retries: int


@dataclass(frozen=True)
class StoreSettings:
    data_dir: Path
    database_url: SecretStr | None
    store_retries: int

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def db_url(self) -> str:
        """The database URL: the configured one, or a SQLite file in the data folder."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.resolved_data_dir / 'trainerbot.db'}"


@dataclass(frozen=True)
class ModelSettings:
    """The model and the runtime that serves chat."""

    model: Literal["smollm2", "scratch"]
    base_model_dir: Path | None
    base_model_gguf: Path | None
    runtime: Literal["llamacpp", "torch"]
    runtime_precision: Literal["q8_0", "f16", "f32"]
    backend: Literal["local", "openai"]
    reply_max_tokens: int
    chat_slots: int
    chat_queue: int
    torch_threads: int | None
    speaker_names: Literal["content", "field", "off"]
    history_messages: int


@dataclass(frozen=True)
class TrainingSettings:
    lora: bool
    lora_layers: float
    train_precision: Literal["auto", "bf16", "fp32"]
    train_compile: Literal["auto", "on", "off"]
    model_size: Literal["small", "tiny"]
    train_epochs: float | None
    train_batch_size: int | None
    learning_rate: float | None
    max_queued_jobs: int
    worker_nice: int
    worker_yields: bool
    start_worker: bool
    stale_jobs: Literal["fail", "requeue"]
    executor: Literal["local", "ray"]
    ray_address: str
    ray_storage_dir: Path | None
    max_test_cases: int
    heldout_share: float
    promotion_metric: Literal["chrf", "exact_match", "loss"]
    promotion_tolerance: float
    general_questions: int


@dataclass(frozen=True)
class TeachingSettings:
    """Facts in context, review and the persona's defaults."""

    feedback_dataset: str
    instructions_file: Path | None
    taught_threshold: float
    taught_context: int
    taught_context_chars: int
    taught_meaning: bool
    taught_meaning_threshold: float
    max_pending_per_user: int
    auto_approve_supporters: int

    def instructions_text(self, language: str) -> str:
        """The instructions Markdown: the configured file, else the shipped one in ``language``."""
        if self.instructions_file is not None:
            try:
                return self.instructions_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"instructions_file: cannot read {self.instructions_file.name!r} ({type(exc).__name__})"
                ) from exc
        name = f"bot_instruction.{language}.md"
        return resources.files("trainerbot.resources").joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class VoiceSettings:
    language: Literal["en", "ru"]
    tts_engine: Literal["espeak-ng", "piper", "gtts"]
    stt_engine: Literal["whisper", "pocketsphinx", "google"]
    piper_voice: Path | None
    whisper_model_dir: Path | None
    google_speech_key: SecretStr | None
    google_speech_endpoint: str
    google_tts_endpoint: str
    online_speech_timeout_s: float
    max_audio_seconds: float
    voice_idle_seconds: float


@dataclass(frozen=True)
class DashboardSettings:
    dashboard_port: int | None
    dashboard_host: str
    dashboard_url: str | None
    dashboard_session_hours: float


@dataclass(frozen=True)
class OperationsSettings:
    mode: Literal["dev", "prod"]
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    log_format: Literal["text", "json"]
    startup_retry_s: float
    metrics_port: int | None
    metrics_host: str


@dataclass(frozen=True)
class LimitsSettings:
    max_attachment_bytes: int
    max_send_bytes: int
    max_import_items: int
    max_field_chars: int
    user_rate_per_minute: int


@dataclass(frozen=True)
class OpenAISettings:
    """The OpenAI-compatible server: chat through it, and training through its fine-tuning API."""

    openai_base_url: str
    openai_api_key: SecretStr | None
    openai_model: str
    openai_system: str
    openai_timeout_s: float
    openai_max_retries: int
    openai_poll_s: float


SECTIONS: dict[str, type] = {
    "discord": DiscordSettings, "store": StoreSettings, "model": ModelSettings, "training": TrainingSettings,
    "teaching": TeachingSettings, "voice": VoiceSettings, "dashboard": DashboardSettings,
    "operations": OperationsSettings, "limits": LimitsSettings, "openai": OpenAISettings,
}
S = TypeVar("S")


class Settings(BaseSettings):
    """All of trainerbot's settings; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="TRAINERBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    discord_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DISCORD_TOKEN", "TRAINERBOT_DISCORD_TOKEN", "discord_token"),
    )
    prefix: str = Field(default="!", min_length=1, max_length=5)
    mode: Literal["dev", "prod"] = "dev"
    data_dir: Path = Path("data")
    database_url: SecretStr | None = None
    language: Literal["en", "ru"] = "en"
    instructions_file: Path | None = None
    trainer_role: str = Field(default="trainer", min_length=1, max_length=100)
    feedback_dataset: str = Field(default="feedback", pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")

    max_attachment_bytes: int = Field(default=8 * MiB, ge=1024, le=512 * MiB)
    max_send_bytes: int = Field(default=8 * MiB, ge=1024, le=512 * MiB)
    max_import_items: int = Field(default=50_000, ge=1, le=10_000_000)
    max_field_chars: int = Field(default=8_000, ge=16, le=1_000_000)
    history_messages: int = Field(default=20, ge=0, le=200)
    user_rate_per_minute: int = Field(default=30, ge=1, le=10_000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object a line (time, level, logger, message, guild, job)

    # Start-up: the first wait before trying again (doubling, with jitter), how many more tries
    # for the store, and for Discord (0: for ever, as the gateway's own reconnect does).
    startup_retry_s: float = Field(default=2.0, gt=0, le=300)
    store_retries: int = Field(default=5, ge=0, le=1000)
    discord_retries: int = Field(default=0, ge=0, le=100_000)

    # Operations: /healthz and /metrics (off unless a port is set).
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = Field(default="127.0.0.1", min_length=1, max_length=255)

    # The trainers' web dashboard (off unless a port is set). dashboard_url: the address people
    # open (behind a reverse proxy: its https URL); by default http://host:port.
    dashboard_port: int | None = Field(default=None, ge=0, le=65535)
    dashboard_host: str = Field(default="127.0.0.1", min_length=1, max_length=255)
    dashboard_url: str | None = Field(default=None, max_length=300, pattern=r"^https?://[^\s]+$")
    dashboard_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)

    # The model and its training.
    # smollm2: the shipped pretrained instruct model (taught with LoRA adapters); scratch: a
    # small model built from the data (tests, memorisation demos). base_model_dir overrides both.
    model: Literal["smollm2", "scratch"] = "smollm2"
    base_model_dir: Path | None = None
    # A GGUF file of the user's (any architecture llama.cpp reads) that answers chat through
    # llama.cpp with its own chat template, facts in context; it cannot be trained (no Hugging
    # Face weights), so `train` says so. Overrides model and base_model_dir for chat.
    base_model_gguf: Path | None = None
    # What serves chat replies from the shipped model and its versions: llama.cpp (merged
    # weights written as GGUF at runtime_precision; ~5x faster on CPU) or torch. Models
    # llama.cpp cannot serve (scratch, base_model_dir, full fine-tunes) always use torch.
    runtime: Literal["llamacpp", "torch"] = "llamacpp"
    runtime_precision: Literal["q8_0", "f16", "f32"] = "q8_0"
    lora: bool = True  # teach a pretrained model with LoRA adapters (false: fine-tune all its weights)
    # The share of a pretrained model's layers, from the top, a new LoRA adapter covers (1: all).
    lora_layers: float = Field(default=1.0, gt=0, le=1)
    # LoRA jobs (SFT, KTO, DPO) in bfloat16 mixed precision (float32 adapter and optimizer): "auto" where the
    # CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), else float32.
    train_precision: Literal["auto", "bf16", "fp32"] = "auto"
    # LoRA SFT jobs under bf16 with their decoder layers compiled (torch.compile; kernels kept in
    # data/models/compiled/): "auto" for jobs long enough to pay for compiling, where a C++ compiler is found.
    train_compile: Literal["auto", "on", "off"] = "auto"
    model_size: Literal["small", "tiny"] = "small"
    train_epochs: float | None = Field(default=None, gt=0, le=1000)
    train_batch_size: int | None = Field(default=None, ge=1, le=1024)  # default: the recipe's own
    learning_rate: float | None = Field(default=None, gt=0, le=1)
    reply_max_tokens: int = Field(default=128, ge=1, le=2048)
    # Replies written at once (llama.cpp decodes them in one batch; each slot holds a whole
    # 2,048-token conversation, about 45 MiB of cache for the shipped model), and how many more
    # members may wait in line for a turn before the bot answers that it is busy.
    chat_slots: int = Field(default=8, ge=1, le=64)
    chat_queue: int = Field(default=32, ge=0, le=10_000)
    taught_threshold: float = Field(default=0.8, gt=0, le=1)
    taught_context: int = Field(default=3, ge=0, le=20)  # best-matching taught facts put in the model's context
    taught_context_chars: int = Field(default=600, ge=0, le=20_000)
    # Facts found by meaning (sentence embeddings, all-MiniLM-L6-v2 shipped in a package) where
    # their words find none: the closest taught question, if its cosine reaches the threshold
    # and the message names what it is about (bench/retrieval.py).
    taught_meaning: bool = True
    taught_meaning_threshold: float = Field(default=0.7, gt=0, le=1)
    # Who said what in a shared channel: "Name: text" in the content (every model reads it), OpenAI's
    # `name` field (OpenAI itself takes it; llama.cpp's server ignores it), or off.
    speaker_names: Literal["content", "field", "off"] = "content"
    max_queued_jobs: int = Field(default=20, ge=1, le=10_000)
    torch_threads: int | None = Field(default=None, ge=1, le=256)
    # Chat comes first on a shared machine (training/chat_first.py): the worker's CPU priority
    # (0-19; 0 leaves it as started), and whether it pauses between steps while a reply is written.
    worker_nice: int = Field(default=19, ge=0, le=19)
    worker_yields: bool = True
    start_worker: bool = True
    stale_jobs: Literal["fail", "requeue"] = "fail"  # a job whose worker died: failed, or queued again once
    executor: Literal["local", "ray"] = "local"  # where a worker runs a claimed job: here, or on a Ray cluster
    ray_address: str = "http://127.0.0.1:8265"  # the cluster's Jobs API (its dashboard address)
    ray_storage_dir: Path | None = None  # a folder both the worker and the cluster see (default: the data folder)

    # The OpenAI-compatible backend (OpenAI itself, or a local Ollama / vLLM / llama.cpp server).
    backend: Literal["local", "openai"] = "local"  # what chat uses before any version is active, and what `train` trains
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "TRAINERBOT_OPENAI_API_KEY", "openai_api_key"))
    openai_model: str = Field(default="gpt-4.1-mini", min_length=1, max_length=200)
    openai_system: str = Field(default="You are a helpful assistant for this Discord community. Answer briefly.", max_length=4000)
    openai_timeout_s: float = Field(default=60.0, gt=0, le=600)
    openai_max_retries: int = Field(default=3, ge=0, le=10)
    openai_poll_s: float = Field(default=10.0, gt=0, le=600)

    # Evaluation and review.
    max_test_cases: int = Field(default=200, ge=1, le=100_000)
    heldout_share: float = Field(default=0.1, ge=0, le=0.5)
    promotion_metric: Literal["chrf", "exact_match", "loss"] = "chrf"
    promotion_tolerance: float = Field(default=0.0, ge=0)
    general_questions: int = Field(default=40, ge=0, le=40)  # shipped general questions a pretrained candidate must keep (0: off)
    max_pending_per_user: int = Field(default=20, ge=1, le=100_000)
    # A member's proposal is approved once this many different members support it, none of them
    # with more corrections rejected than approved, and it carries no link, mention or invite (0: off).
    auto_approve_supporters: int = Field(default=0, ge=0, le=1000)

    # Discord.
    chat_channels: list[str] = Field(default_factory=list)
    # none | auto | a shard count ("4") | a count and this process's shard IDs ("4:0-1")
    shards: str = Field(default="none", pattern=r"^(none|auto|[1-9][0-9]{0,4}(:[0-9]{1,5}-[0-9]{1,5})?)$")

    # Voice.
    tts_engine: Literal["espeak-ng", "piper", "gtts"] = "espeak-ng"
    stt_engine: Literal["whisper", "pocketsphinx", "google"] = "whisper"
    piper_voice: Path | None = None  # a piper voice (.onnx with its .onnx.json beside it); default: the shipped English one
    whisper_model_dir: Path | None = None
    # Online speech (off unless tts_engine=gtts or stt_engine=google is set).
    google_speech_key: SecretStr | None = None
    google_speech_endpoint: str = "http://www.google.com/speech-api/v2/recognize"
    google_tts_endpoint: str = "https://translate.google.com/_/TranslateWebserverUi/data/batchexecute"
    online_speech_timeout_s: float = Field(default=15.0, gt=0, le=300)
    max_audio_seconds: float = Field(default=120.0, gt=0, le=3600)
    voice_idle_seconds: float = Field(default=300.0, gt=0, le=86_400)

    @field_validator("prefix")
    @classmethod
    def _prefix_has_no_space(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise ValueError("the prefix may not contain spaces")
        return value

    @field_validator("google_speech_endpoint", "google_tts_endpoint", "openai_base_url", "ray_address")
    @classmethod
    def _endpoint_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or any(ch.isspace() for ch in value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("shards")
    @classmethod
    def _shard_range_fits(cls, value: str) -> str:
        if ":" in value:
            count, _, ids = value.partition(":")
            first, _, last = ids.partition("-")
            if not int(first) <= int(last) < int(count):
                raise ValueError("the shard IDs must be a range within the shard count, e.g. 4:0-1")
        return value

    def shard_options(self) -> dict[str, Any] | None:
        """None for one unsharded connection; else ``AutoShardedBot`` options (``{}``: Discord's count)."""
        if self.shards == "none":
            return None
        if self.shards == "auto":
            return {}
        count, _, ids = self.shards.partition(":")
        options: dict[str, Any] = {"shard_count": int(count)}
        if ids:
            first, _, last = ids.partition("-")
            options["shard_ids"] = list(range(int(first), int(last) + 1))
        return options

    def section(self, kind: type[S]) -> S:
        """One section of the settings, typed (``settings.section(OpenAISettings)``)."""
        return kind(**{f.name: getattr(self, f.name) for f in fields(kind)})  # type: ignore[arg-type]

    @property
    def resolved_data_dir(self) -> Path:
        return self.section(StoreSettings).resolved_data_dir

    @property
    def db_url(self) -> str:
        """The database URL: the configured one, or a SQLite file in the data folder."""
        return self.section(StoreSettings).db_url

    def instructions_text(self) -> str:
        """The instructions Markdown: the configured file, else the shipped one."""
        return self.section(TeachingSettings).instructions_text(self.language)

    def secret_values(self) -> list[str]:
        """Every secret's value, for the logs to redact: each ``SecretStr`` setting (the Discord
        token, the API keys, the database URL) and the database URL's password alone."""
        found: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                found.append(value.get_secret_value())
        if self.database_url is not None:
            from sqlalchemy.engine import make_url

            try:
                password = make_url(self.database_url.get_secret_value()).password
            except Exception:
                password = None
            if password:
                found.append(str(password))
        return [s for s in found if len(s) >= 4]

    def redacted(self) -> dict[str, Any]:
        """The settings as loggable values: secrets replaced, a database password hidden."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "**********"
            out[name] = value
        out["database_url"] = hide_password(self.db_url)
        return out


SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "auth")


def hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<unparsable database URL>"
    # Drivers also take credentials as query parameters (``?password=…``, ``sslkey=…``).
    hidden = {k: ("***" if any(w in k.lower() for w in SECRET_WORDS) else v) for k, v in parsed.query.items()}
    return parsed.set(query=hidden).render_as_string(hide_password=True)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one readable ``ConfigError``.

    The message names each bad setting and why; the offending value is never included,
    because it may be a secret.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in err["loc"]) or "settings"
            problems.append(f"{where}: {err['msg']}")
        raise ConfigError("Invalid settings — " + "; ".join(problems)) from None

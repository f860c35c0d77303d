"""Audio conversion with ffmpeg: any input Discord sends (OGG Opus voice messages, MP3, M4A,
WAV, WebM) to 16 kHz mono 16-bit WAV, with a timeout and a duration limit.

Runs ffmpeg as a subprocess on bytes (stdin → stdout), so no user-named path is ever
opened. Blocking: call from a thread.
"""

from __future__ import annotations

import io
import subprocess
import wave

from trainerbot.errors import BadInput, NotAvailable

SAMPLE_RATE = 16_000
FFMPEG_TIMEOUT_S = 60


def _run(args: list[str], data: bytes, timeout: float = FFMPEG_TIMEOUT_S) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(args, input=data, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise NotAvailable("Voice is unavailable here: ffmpeg is not installed (the operator can install it as root "
                           "with `apt-get install ffmpeg`, or run `make run` as root).") from None
    except subprocess.TimeoutExpired:
        raise BadInput("That audio took too long to convert.") from None


def to_wav16k(data: bytes, *, max_seconds: float) -> bytes:
    """The audio as 16 kHz mono 16-bit WAV; refuses empty, corrupt or over-long input."""
    if not data:
        raise BadInput("That audio file is empty.")
    proc = _run(["ffmpeg", "-v", "error", "-nostdin", "-i", "pipe:0", "-t", str(max_seconds + 0.5), "-ac", "1",
                 "-ar", str(SAMPLE_RATE), "-sample_fmt", "s16", "-f", "wav", "pipe:1"], data)
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        raise BadInput("I couldn't read that audio file (is it really audio?).")
    wav = rewrap_wav(proc.stdout)
    seconds = wav_seconds(wav)
    if seconds > max_seconds:
        raise BadInput(f"That audio is longer than {max_seconds:.0f} s; send a shorter clip.")
    if seconds < 0.1:
        raise BadInput("That audio is too short to understand.")
    return wav


def rewrap_wav(raw: bytes) -> bytes:
    """A WAV written to a pipe (ffmpeg, espeak-ng) has its sizes unset, as the writer
    cannot seek back; rebuild the file from its format chunk and its sample data."""
    fmt, data = raw.find(b"fmt "), raw.find(b"data")
    if fmt < 0 or data < 0:
        raise BadInput("I couldn't read that audio file.")
    channels = int.from_bytes(raw[fmt + 10: fmt + 12], "little")
    rate = int.from_bytes(raw[fmt + 12: fmt + 16], "little")
    width = int.from_bytes(raw[fmt + 22: fmt + 24], "little") // 8
    if not channels or not rate or not width:
        raise BadInput("I couldn't read that audio file.")
    pcm = raw[data + 8:]
    frame = width * channels
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm[: len(pcm) // frame * frame])
    return buf.getvalue()


def wav_seconds(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as w:
        return w.getnframes() / float(w.getframerate())


def encode(wav: bytes, fmt: str = "ogg") -> bytes:
    """WAV to another format (``ogg`` = Opus in OGG, as Discord voice messages are)."""
    codec = {"ogg": ["-c:a", "libopus", "-f", "ogg"], "mp3": ["-f", "mp3"], "wav": ["-f", "wav"]}[fmt]
    proc = _run(["ffmpeg", "-v", "error", "-nostdin", "-i", "pipe:0", *codec, "pipe:1"], wav)
    if proc.returncode != 0:
        raise BadInput("Audio encoding failed.")
    return proc.stdout


def to_discord_pcm(wav: bytes) -> bytes:
    """Raw 48 kHz stereo signed 16-bit PCM, what Discord voice plays in 20 ms frames of 3840 bytes."""
    proc = _run(["ffmpeg", "-v", "error", "-nostdin", "-i", "pipe:0", "-f", "s16le", "-ar", "48000", "-ac", "2", "pipe:1"], wav)
    if proc.returncode != 0 or not proc.stdout:
        raise BadInput("Audio conversion for playback failed.")
    return proc.stdout

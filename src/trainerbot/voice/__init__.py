"""Voice: text-to-speech (``tts.py``), speech-to-text (``stt.py``), shipped Whisper models
(``models.py``) and ffmpeg conversion (``audio.py``)."""

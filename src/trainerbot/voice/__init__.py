"""Text-to-speech and speech-to-text engines (arrives with the voice issue)."""

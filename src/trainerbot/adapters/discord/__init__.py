"""The Discord adapter (arrives with the Discord issue)."""

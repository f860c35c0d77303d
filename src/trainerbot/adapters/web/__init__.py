"""The web dashboard adapter (``server.py``), its templates and its one script."""

"""Adapters: thin layers that turn a platform's input into core calls and render the replies."""

"""The shipped model prepared once for the whole run: ``prepared`` is in ``tests/conftest.py``
(the Discord adapter's tests use it too)."""

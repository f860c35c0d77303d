"""The store: SQLAlchemy 2 tables, migrations and queries (SQLite by default, PostgreSQL by URL)."""

from trainerbot.store.db import Store

__all__ = ["Store"]

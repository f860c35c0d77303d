from __future__ import annotations

import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from trainerbot.store import Store, repo
from trainerbot.store.db import alembic_config, make_engine
from trainerbot.store.models import Base, Conversation, Dataset, Feedback, Guild, Message


@pytest.fixture
def store(db_url: str):  # every test that takes it runs on SQLite and on PostgreSQL
    s = Store.open(db_url)
    yield s
    s.close()


def test_migrations_create_every_table_and_match_the_models(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_reopening_is_idempotent(db_url: str) -> None:
    url = db_url
    Store.open(url).close()
    again = Store.open(url)
    with again.read() as s:
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert head == "0009" and s.execute(text("select version_num from alembic_version")).scalar() == head
    again.close()


def test_sqlite_runs_in_wal_with_busy_timeout_and_foreign_keys(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_a_failed_transaction_writes_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.session() as s:
            repo.ensure_guild(s, "1", "A")
            raise RuntimeError("boom")
    with store.read() as s:
        assert s.scalars(select(Guild)).all() == []


def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(IntegrityError):
        with store.session() as s:
            s.add(Dataset(guild_id=999, name="x"))


def test_one_reaction_per_user_per_reply(store: Store) -> None:
    with store.session() as s:
        g = repo.ensure_guild(s, "1")
        conv = Conversation(guild_id=g.id, channel_id="c")
        s.add(conv)
        s.flush()
        m = Message(guild_id=g.id, conversation_id=conv.id, author_id="bot", role="assistant", content="x")
        s.add(m)
        s.flush()
        s.add(Feedback(guild_id=g.id, user_id="u", kind="reaction", message_id=m.id, label="positive"))
    with pytest.raises(IntegrityError):
        with store.session() as s:
            s.add(Feedback(guild_id=g.id, user_id="u", kind="reaction", message_id=m.id, label="negative"))


def test_ensure_guild_and_dataset_are_get_or_create(store: Store) -> None:
    with store.session() as s:
        a = repo.ensure_guild(s, "1", "A")
        assert repo.ensure_guild(s, "1", "A renamed").id == a.id
        d = repo.ensure_dataset(s, a.id, "facts")
        assert repo.ensure_dataset(s, a.id, "facts").id == d.id
    with store.read() as s:
        assert s.scalars(select(Guild)).one().name == "A renamed"


def test_concurrent_writers_wait_instead_of_failing(db_url: str) -> None:
    """Four threads writing at once: SQLite's busy timeout serialises them, PostgreSQL runs
    them side by side; nothing is lost either way."""
    store = Store.open(db_url)
    with store.session() as s:
        gid = repo.ensure_guild(s, "1").id
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(100):
                with store.session() as s:
                    s.add(Feedback(guild_id=gid, user_id=f"w{n}", kind="text", text=str(i)))
        except BaseException as exc:  # pragma: no cover - only on failure
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(Feedback)) == 400
    if db_url.startswith("sqlite"):
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("pragma integrity_check").scalar() == "ok"
    store.close()


def test_a_store_from_the_first_release_upgrades_with_its_data(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg, engine = alembic_config(url), make_engine(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("insert into guilds (platform_id, name, settings, created_at) values ('g', 'G', '{}', '2026-11-25')"))
        conn.execute(text("insert into corrections (guild_id, user_id, prompt, original, corrected, status, source, created_at) "
                          "values (1, 'u', 'p', 'o', 'c', 'pending', 'message:1', '2026-11-25')"))
    engine.dispose()
    store = Store.open(url)
    with store.read() as s:
        assert s.execute(text("select supporters, status from corrections")).one() == (1, "pending")
        assert s.execute(text("select count(*) from test_runs")).scalar() == 0
    store.close()

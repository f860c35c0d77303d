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
from trainerbot.store.tables import Base, Conversation, Dataset, Feedback, Guild, Message


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
        assert head == "0011" and s.execute(text("select version_num from alembic_version")).scalar() == head
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


def test_a_store_from_before_revisions_keys_its_rows_and_keeps_the_answer_chat_gave(db_url: str) -> None:
    """Migration 0010 on a copy from before it (SQLite and PostgreSQL): every example and
    correction gets its question's key; where a question had several current answers, the one
    chat answered with (the correction, though a file line came later) stays current, the others
    are marked replaced, and each is a revision in that order. 👎 examples and 👍 votes teach
    no answer and get none."""
    from trainerbot.store.keys import question_key

    cfg, engine = alembic_config(db_url), make_engine(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0009")
        now = "2026-12-01 10:00:00+00:00"
        conn.execute(text("insert into guilds (platform_id, name, settings, created_at) values ('g', 'G', '{}', :t)"), {"t": now})
        conn.execute(text("insert into datasets (guild_id, name, created_at, updated_at) values (1, 'facts', :t, :t)"),
                     {"t": now})
        conn.execute(text("insert into corrections (guild_id, user_id, prompt, original, corrected, status, source, "
                          "created_at, supporters) values (1, 'u2', 'what is the capital of zorbia', 'Paris.', "
                          "'Zorbia City.', 'approved', 'message:1', :t, 1)"), {"t": now})
        rows = [  # (prompt, response, label, source, source_ref, author, correction_id)
            ("What is the capital of Zorbia?", "Quillport.", "positive", "file", "file:facts.jsonl line 1", "u1", None),
            ("what is the capital of zorbia", "Zorbia City.", "positive", "correction", "message:1", "u2", 1),
            ("What is the capital of Zorbia", "Port Quill.", "positive", "file", "file:more.jsonl line 4", "u1", None),
            ("Is Zorbia an island?", "Yes.", "negative", "file", "file:facts.jsonl line 3", "u1", None),
            ("Who founded Quillport?", "Vessa.", "positive", "reaction", "reaction:m9", "u3", None),
        ]
        for prompt, response, label, source, ref, author, cid in rows:
            conn.execute(text("insert into dataset_items (dataset_id, guild_id, prompt, response, label, source, source_ref, "
                              "author_id, correction_id, created_at) values (1, 1, :p, :r, :l, :s, :ref, :a, :c, :t)"),
                         {"p": prompt, "r": response, "l": label, "s": source, "ref": ref, "a": author, "c": cid, "t": now})
    engine.dispose()
    store = Store.open(db_url)
    key = question_key("What is the capital of Zorbia?")
    with store.read() as s:
        assert s.execute(text("select question_key from corrections")).scalar() == key
        items = s.execute(text("select id, question_key, replaced_at is not null from dataset_items order by id")).all()
        assert [k for _, k, _ in items] == [key, key, key, question_key("Is Zorbia an island?"),
                                            question_key("Who founded Quillport?")]
        assert [replaced for _, _, replaced in items] == [True, False, True, False, False]
        revisions = s.execute(text("select number, action, item_id, answer, source, author_id from revisions "
                                   "order by number")).all()
        assert [tuple(r) for r in revisions] == [
            (1, "import", 1, "Quillport.", "facts.jsonl line 1", "u1"),
            (2, "import", 3, "Port Quill.", "more.jsonl line 4", "u1"),
            (3, "correction", 2, "Zorbia City.", "correction #1", "u2"),
        ]
        assert [i.response for i in repo.current_items(s, 1)] == ["Zorbia City.", "Yes.", "Vessa."]
    store.close()


def test_a_store_from_before_job_columns_keeps_what_each_job_carried(db_url: str) -> None:
    """Migration 0011 on a copy from before it (SQLite and PostgreSQL): what ``jobs.params``
    held lands in its own column, and a job without params gets the defaults."""
    cfg, engine = alembic_config(db_url), make_engine(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")
        now = "2026-12-01 10:00:00+00:00"
        conn.execute(text("insert into guilds (platform_id, name, settings, created_at) values ('g', 'G', '{}', :t)"), {"t": now})
        bags = ['{}', '{"backend": "openai", "remote_job": "ftjob-7", "base": "gpt-4.1-mini", "announced": true}',
                '{"requeued": true, "ray_job": "trainerbot-job-3"}']
        for bag in bags:
            conn.execute(text("insert into jobs (guild_id, status, recipe, requested_by, params, progress, cancel_requested, "
                              "created_at) values (1, 'succeeded', 'sft', 'u', :p, 1.0, false, :t)"), {"p": bag, "t": now})
    engine.dispose()
    store = Store.open(db_url)
    with store.read() as s:
        rows = s.execute(text("select backend, requeued, backend_job, backend_base, announced from jobs order by id")).all()
        assert [tuple(r) for r in rows] == [
            ("local", False, None, None, False),
            ("openai", False, "ftjob-7", "gpt-4.1-mini", True),
            ("local", True, "trainerbot-job-3", None, False),
        ]
        assert "params" not in {c["name"] for c in inspect(s.get_bind()).get_columns("jobs")}
    store.close()

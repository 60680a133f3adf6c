"""The store: an append-only event log, and a progress table that is always its fold."""

from __future__ import annotations

import sqlite3

import pytest

import bot.store
from bot import engine
from bot.engine import Answer, Choose, Continue, Start, State
from bot.loader import load_text
from bot.store import Store
from bot.tutor import Tutor


def rows(store: Store, table: str) -> list[dict]:
    return sorted(store.db[table].rows, key=lambda row: sorted((k, str(v)) for k, v in row.items()))


def act(store: Store, lesson, learner: str, chat: str, value, lesson_hash: str = "h1"):
    """Apply and record one input for a learner, as the tutor does."""
    progress = store.progress(learner, lesson.id, chat)
    state = progress.state if progress and not isinstance(value, Start) else State()
    result = engine.step(lesson, state, value)
    store.record(learner, lesson.id, chat, lesson_hash, state.node, value, result)
    return result


def test_record_and_read_back_progress(store, clock, tiny):
    lesson = tiny.lesson
    act(store, lesson, "tg:1", "tg:1", Start())
    clock.tick(5)
    result = act(store, lesson, "tg:1", "tg:1", Continue("hello"))

    progress = store.progress("tg:1", "tiny", "tg:1")
    assert progress.state == result.state
    assert (progress.learner, progress.lesson, progress.chat, progress.lesson_hash) == ("tg:1", "tiny", "tg:1", "h1")
    assert progress.started_at == "2025-04-12T09:00:00.000+00:00"
    assert progress.updated_at == "2025-04-12T09:00:05.000+00:00"
    assert progress.finished_at is None
    assert store.progress("tg:1", "tiny", "tg:2") is None
    assert store.progress("tg:2", "tiny", "tg:1") is None

    events = store.events(learner="tg:1")
    assert [(e["node"], e["input"], e["state"]["node"], e["at"]) for e in events] == [
        (None, {"kind": "start", "seed": 0}, "hello", "2025-04-12T09:00:00.000+00:00"),
        ("hello", {"kind": "continue", "node": "hello"}, "claim", "2025-04-12T09:00:05.000+00:00"),
    ]
    row = store.db["progress"].get(("tg:1", "tiny", "tg:1"))
    assert (row["node"], row["section"], row["score"], row["finished"], row["last_event"]) == (
        "claim", "main", 0, 0, events[-1]["id"],
    )


def test_finish_and_restart_set_the_dates(store, clock, tiny):
    lesson = tiny.lesson
    for value in [Start(), Continue("hello"), Continue("claim"), Choose("q1", 1), Choose("poll", 0)]:
        act(store, lesson, "a", "c", value)
    clock.tick(60)
    act(store, lesson, "a", "c", Answer("keep a deal"))
    done = store.progress("a", "tiny", "c")
    assert done.state.finished and done.state.score == 1
    assert done.finished_at == "2025-04-12T09:01:00.000+00:00"

    clock.tick(60)
    act(store, lesson, "a", "c", Start())
    again = store.progress("a", "tiny", "c")
    assert again.state == State(node="hello", section="intro")
    assert (again.started_at, again.finished_at) == ("2025-04-12T09:02:00.000+00:00", None)


def fresh(store: Store, learner: str, lesson: str, chat: str):
    """The progress row read from the table itself, past the store's cache."""
    row = store.db.execute(
        f"SELECT {bot.store.PROGRESS_COLUMNS} FROM progress WHERE learner = ? AND lesson = ? AND chat = ?",
        [learner, lesson, chat],
    ).fetchone()
    return None if row is None else bot.store.Progress.from_row(dict(zip(bot.store.PROGRESS_FIELDS, row)))


def test_the_progress_read_is_always_the_table(store, clock, tiny):
    """`progress` answers from memory what the store itself committed; what a rolled-back
    transaction wrote, or `forget` deleted, is never answered from there."""
    lesson, key = tiny.lesson, ("a", "tiny", "c")
    assert store.progress(*key) is None
    act(store, lesson, "a", "c", Start())
    assert store.progress(*key) == fresh(store, *key) is not None
    clock.tick()
    act(store, lesson, "a", "c", Continue("hello"))  # a finish and a restart set dates in SQL
    assert store.progress(*key) == fresh(store, *key)
    assert store.progress(*key).state.node == "claim"

    with pytest.raises(RuntimeError), store.atomic():
        act(store, lesson, "a", "c", Continue("claim"))
        assert store.progress(*key) == fresh(store, *key)  # inside: its own write
        assert store.progress(*key).state.node != "claim"
        raise RuntimeError("the handler failed")
    assert store.progress(*key) == fresh(store, *key)
    assert store.progress(*key).state.node == "claim"  # the rolled-back move is gone

    with store.atomic():
        store.forget("a")
        assert store.progress(*key) is None
    assert store.progress(*key) is None and fresh(store, *key) is None
    act(store, lesson, "a", "c", Start())
    assert store.progress(*key) == fresh(store, *key) is not None

    act(store, lesson, "a", "c", Continue("hello"))
    store.rebuild_progress()
    assert store.progress(*key) == fresh(store, *key)


def test_latest_and_all_progress(store, clock, tiny, lesson_text):
    other = load_text(lesson_text(("id: tiny", "id: other")), "other.yaml").lesson
    act(store, tiny.lesson, "a", "c", Start())
    clock.tick()
    act(store, other, "a", "c", Start())
    clock.tick()
    act(store, tiny.lesson, "a", "elsewhere", Start())
    assert store.latest_progress("a", "c").lesson == "other"
    clock.tick()
    act(store, tiny.lesson, "a", "c", Continue("hello"))
    assert store.latest_progress("a", "c").lesson == "tiny"
    assert [(p.lesson, p.chat) for p in store.all_progress("a")] == [("tiny", "c"), ("tiny", "elsewhere"), ("other", "c")]
    assert store.latest_progress("b", "c") is None


def _busy_history(store, clock, tiny, lesson_text):
    """Several learners, lessons and chats; a restart, a finish, a resync."""
    other = load_text(lesson_text(("id: tiny", "id: other")), "other.yaml")
    tutor = Tutor(store, {"tiny": tiny, "other": other})
    script = [
        ("tg:1", "tg:1", "tiny", [Continue("hello"), Continue("claim"), Choose("q1", 2), Choose("q1", 1)]),
        ("tg:2", "tg:2", "tiny", [Continue("hello"), Continue("claim"), Choose("q1", 0)]),  # at fix-m1
        ("tg:1", "tg:-100", "other", [Continue("hello")]),
        ("tg:3", "tg:-100", "other", [Continue("hello"), Continue("claim"), Choose("q1", 1), Choose("poll", 1), Answer("they keep a deal")]),
    ]
    for learner, chat, lesson_id, inputs in script:
        tutor.begin(learner, chat, lesson_id)
        for value in inputs:
            clock.tick()
            reply = tutor.act(learner, chat, value, lesson_id)
            assert reply.error is None, (learner, value, reply)
    tutor.begin("tg:1", "tg:1", "tiny", restart=True)  # a restart
    tutor.act("tg:1", "tg:1", Continue("hello"), "tiny")
    tutor.act("tg:1", "tg:1", Continue("claim"), "tiny", update_id=77)
    # tg:2's step is edited away: a resync event
    edited = load_text(lesson_text(("      - id: fix-m1\n", "      - id: fix-m1b\n"), ("next: fix-m1\n", "next: fix-m1b\n")), "tiny.yaml")
    Tutor(store, {"tiny": edited}).begin("tg:2", "tg:2", "tiny")
    return tutor


def test_rebuild_gives_the_same_progress_rows(store, clock, tiny, lesson_text):
    _busy_history(store, clock, tiny, lesson_text)
    kinds = [e["input"]["kind"] for e in store.events()]
    assert {"start", "continue", "choose", "answer", "resync"} <= set(kinds) and kinds.count("start") == 5
    assert store.progress("tg:3", "other", "tg:-100").finished_at is not None
    assert store.progress("tg:2", "tiny", "tg:2").state.node == "claim"  # resynced
    before = rows(store, "progress")
    assert len(before) == 4

    store.rebuild_progress()
    assert rows(store, "progress") == before

    # It recomputes: damaged or lost rows come back exactly.
    store.db.execute("UPDATE progress SET score = 99, node = 'x' WHERE learner = 'tg:1'")
    store.db.execute("DELETE FROM progress WHERE learner = 'tg:3'")
    assert rows(store, "progress") != before
    store.rebuild_progress()
    assert rows(store, "progress") == before


def test_rebuild_on_an_empty_log(store):
    store.rebuild_progress()
    assert rows(store, "progress") == []


def test_forget_removes_one_learner(store, clock, tiny, lesson_text):
    _busy_history(store, clock, tiny, lesson_text)
    store.ensure_learner("tg:1", "Ann")
    store.ensure_learner("tg:2", "Bo")
    inbox = store.db["inbox"]
    inbox.insert({"update_id": 1, "learner": "tg:1", "chat": "tg:1", "payload": '{"text": "hi"}', "received_at": "t", "handled_at": "t"})
    inbox.insert({"update_id": 2, "learner": "tg:2", "chat": "tg:2", "payload": '{"text": "yo"}', "received_at": "t", "handled_at": "t"})
    others = [e for e in store.events() if e["learner"] != "tg:1"]

    store.forget("tg:1")
    for table, column in (("events", "learner"), ("progress", "learner"), ("inbox", "learner"), ("learners", "id")):
        assert store.db.execute(f"SELECT count(*) FROM {table} WHERE {column} = 'tg:1'").fetchone()[0] == 0
    assert store.events() == others
    assert [r["id"] for r in store.db["learners"].rows] == ["tg:2"]
    assert store.progress("tg:2", "tiny", "tg:2") is not None
    # A handled update keeps only its id (to recognise a redelivery); others' are untouched.
    assert [(r["update_id"], r["learner"], r["chat"], r["payload"]) for r in inbox.rows] == [
        (1, None, None, "{}"),
        (2, "tg:2", "tg:2", '{"text": "yo"}'),
    ]
    store.rebuild_progress()  # still consistent
    assert {r["learner"] for r in store.db["progress"].rows} == {"tg:2", "tg:3"}


def test_ensure_learner_keeps_the_first_date_and_a_known_name(store, clock):
    store.ensure_learner("tg:1", "Ann")
    clock.tick(60)
    store.ensure_learner("tg:1")
    store.ensure_learner("tg:2")
    assert list(store.db["learners"].rows) == [
        {"id": "tg:1", "name": "Ann", "created_at": "2025-04-12T09:00:00.000+00:00", "blocked_at": None},
        {"id": "tg:2", "name": None, "created_at": "2025-04-12T09:01:00.000+00:00", "blocked_at": None},
    ]


def test_file_database_migrates_once_uses_wal_and_keeps_data(tmp_path, tiny):
    path = tmp_path / "sub" / "tutor.db"
    first = Store(path)
    assert path.exists()
    assert first.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = set(first.db.table_names())
    assert {"learners", "events", "progress", "inbox"} <= tables
    act(first, tiny.lesson, "a", "c", Start())
    first.close()

    second = Store(path)  # re-open: migrations are not applied again
    assert set(second.db.table_names()) == tables
    assert second.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    applied = [(r["migration_set"], r["name"]) for r in second.db["_sqlite_migrations"].rows]
    assert applied == [
        ("tutorbot", "m001_events_and_progress"),
        ("tutorbot", "m002_inbox"),
        ("tutorbot", "m003_outbox_and_set_aside"),
        ("tutorbot", "m004_assignments"),
        ("tutorbot", "m005_study_sessions"),
        ("tutorbot", "m006_reviews"),
        ("tutorbot", "m007_indexes_for_chats"),
        ("tutorbot", "m008_untrimmed_outbox"),
        ("tutorbot", "m009_study_topics"),
        ("tutorbot", "m010_failed_text"),
    ]
    assert second.progress("a", "tiny", "c").state.node == "hello"
    second.close()

    with sqlite3.connect(path) as raw:  # a plain client sees the committed rows
        assert raw.execute("SELECT count(*) FROM events").fetchone()[0] == 1


def test_memory_database_is_not_wal(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "memory"


def test_event_and_progress_are_one_transaction(store, tiny, monkeypatch):
    act(store, tiny.lesson, "a", "c", Start())
    events_before, progress_before = rows(store, "events"), rows(store, "progress")

    def broken_fold(previous, event, state=None):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bot.store, "fold", broken_fold)
    with pytest.raises(RuntimeError, match="disk full"):
        act(store, tiny.lesson, "a", "c", Continue("hello"))
    assert rows(store, "events") == events_before
    assert rows(store, "progress") == progress_before

    # Inside a caller's transaction too (the tutor wraps resync and answer in one).
    with pytest.raises(RuntimeError):
        with store.atomic():
            act(store, tiny.lesson, "a", "c", Continue("hello"))
    assert rows(store, "events") == events_before
    assert rows(store, "progress") == progress_before

    monkeypatch.undo()
    act(store, tiny.lesson, "a", "c", Continue("hello"))  # the store still works
    assert store.progress("a", "tiny", "c").state.node == "claim"
    assert len(rows(store, "events")) == 2

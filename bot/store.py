"""Progress storage in one SQLite file (WAL), through sqlite-utils.

The event log is the truth: one append-only row per learner action (who, which lesson and
chat, the lesson file's hash, the node, the input, its outcome and the state after it).
The progress table is derived from it by `fold`, both when an event is recorded (in the
same transaction) and when `rebuild_progress` recomputes it from scratch.

Progress belongs to a learner, a lesson and a chat: one person can study one-to-one and
in several groups. Learner and chat ids are text ("tg:42", "local:alice", "console").
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bot import schema
from bot.database_file import Db, applied_migrations, open_database
from bot.engine import Input, Result, Start, State, input_to_dict

Clock = Callable[[], datetime]
T = TypeVar("T")
CACHE_KIB = 256  # SQLite's page cache per connection (see `Store._open`)
LINGER = 0.05  # seconds a lingering write waits for another transaction to commit it (`Store.lingering`)
log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def transient(exc: BaseException) -> bool:
    """A database error that may pass: locked, busy, full, read-only for now, I/O trouble.

    Worth waiting out and trying again; anything else (a constraint, a bug) is not."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


async def wait_out(work: Callable[[], T], what: str, stop: asyncio.Event | None = None) -> T:
    """Run a database step, waiting out (and logging) a locked, full or unavailable
    database; re-raise if `stop` is set meanwhile, or for an error that will not pass."""
    delay = 0.5
    while True:
        try:
            return work()
        except Exception as exc:
            if not transient(exc) or (stop is not None and stop.is_set()):
                raise
            log.warning("database unavailable while %s (%s); trying again in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


if TYPE_CHECKING:
    from sqlite_utils import Database

MIGRATION_SET = "tutorbot"


def m001_events_and_progress(db: Database) -> None:
    db["learners"].create(
        {"id": str, "name": str, "created_at": str, "blocked_at": str}, pk="id", not_null={"created_at"}
    )
    db["events"].create(
        {
            "id": int,
            "learner": str,
            "lesson": str,
            "chat": str,
            "lesson_hash": str,
            "node": str,
            "input": str,
            "outcome": str,
            "state": str,
            "at": str,
            "update_id": int,
        },
        pk="id",
        not_null={"learner", "lesson", "chat", "lesson_hash", "input", "outcome", "state", "at"},
    )
    db["events"].create_index(["learner", "lesson", "chat", "id"])
    db["events"].create_index(["lesson", "node"])
    db["progress"].create(
        {
            "learner": str,
            "lesson": str,
            "chat": str,
            "lesson_hash": str,
            "node": str,
            "section": str,
            "score": int,
            "finished": int,
            "started_at": str,
            "updated_at": str,
            "finished_at": str,
            "last_event": int,
            "state": str,
        },
        pk=("learner", "lesson", "chat"),
    )
    db["progress"].create_index(["chat", "updated_at"])


def m002_inbox(db: Database) -> None:
    # Telegram updates, stored before they are confirmed to Telegram and marked when handled.
    db["inbox"].create(
        {"update_id": int, "learner": str, "chat": str, "payload": str, "received_at": str, "handled_at": str},
        pk="update_id",
        not_null={"payload", "received_at"},
    )
    db["inbox"].create_index(["handled_at", "update_id"])


def m003_outbox_and_set_aside(db: Database) -> None:
    # Messages to send, stored in the transaction that decided them and marked when sent.
    db["outbox"].create(
        {
            "id": int,
            "chat": str,  # "tg:<chat id>", as elsewhere
            "chat_id": int,
            "kind": str,  # "send" or "edit"
            "body": str,  # JSON: text, buttons, message_id (edits)
            "step": str,  # "<lesson>:<node>" when the message shows a step
            "droppable": int,  # a newer reply to the chat makes it moot
            "priority": int,  # 0: a learner waits for it; 1: bulk
            "update_id": int,
            "created_at": str,
            "sent_at": str,
            "message_id": int,  # what Telegram called the sent message
            "failed_at": str,  # given up on: blocked, a permanent error, or superseded
            "error": str,
            "attempts": int,
        },
        pk="id",
        not_null={"chat", "chat_id", "kind", "body", "created_at"},
        defaults={"droppable": 0, "priority": 0, "attempts": 0},
    )
    db.execute(
        "CREATE INDEX outbox_pending ON outbox (chat_id, id) WHERE sent_at IS NULL AND failed_at IS NULL"
    )
    db["outbox"].create_index(["chat", "id"])
    # An update that cannot be read or handled is set aside: kept with its error, counted, shown.
    db["inbox"].add_column("failed_at", str)
    db["inbox"].add_column("error", str)
    db["inbox"].create_index(["learner"])


def m004_assignments(db: Database) -> None:
    # A lesson a group's leader assigned, done by each member at their own pace in their
    # private chat with the bot, and counted for the group.
    db["assignments"].create(
        {"id": int, "chat": str, "title": str, "lesson": str, "created_by": str, "created_at": str},
        pk="id",
        not_null={"chat", "lesson", "created_at"},
    )
    db["assignments"].create_index(["chat", "id"])
    db["assignment_members"].create(
        {"assignment": int, "learner": str, "joined_at": str},
        pk=("assignment", "learner"),
        foreign_keys=[("assignment", "assignments", "id")],
    )
    db["assignment_members"].create_index(["learner"])


def m005_study_sessions(db: Database) -> None:
    # Live group study: one row per group, the session it is in (or was in last). A new
    # session replaces the row with a new id (AUTOINCREMENT: never an earlier one's), so the
    # buttons of an older session are stale.
    db.execute(
        """CREATE TABLE study_sessions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            chat TEXT NOT NULL,          -- "tg:<group id>"
            chat_id INTEGER NOT NULL,
            title TEXT,
            lesson TEXT NOT NULL,
            leader TEXT,
            seed INTEGER NOT NULL,       -- orders every question's options, the same for the whole group
            node TEXT NOT NULL,          -- the group's step
            phase TEXT NOT NULL,         -- "shown"; at a question: "open" (taking answers) or "closed"
            state TEXT NOT NULL,         -- "running", "paused", "stopped" or "finished"
            advance INTEGER,             -- seconds a question stays open when the bot moves on by itself
            due_at TEXT,                 -- when the bot moves on by itself (store time); NULL: not by itself
            counted INTEGER,             -- answers shown in the open question's live count
            counted_at TEXT,
            started_at TEXT NOT NULL,
            updated_at TEXT
        )"""
    )
    db["study_sessions"].create_index(["chat"], unique=True)
    db["study_sessions"].create_index(["state", "due_at"])
    # Each member's first answer to each of a session's questions (their later taps count for nothing).
    db["group_answers"].create(
        {"session": int, "node": str, "learner": str, "option": int, "at": str},
        pk=("session", "node", "learner"),
    )
    db["group_answers"].create_index(["learner"])
    db["outbox"].add_column("poll_id", str)  # a sent poll's id: its answers name it
    db["outbox"].create_index(["poll_id"])


def m006_reviews(db: Database) -> None:
    # An instructor's review of a written answer (an `answer` event): reviewed, skipped for
    # now, or answered with feedback (which went to the learner through the outbox).
    db["reviews"].create(
        {"event": int, "status": str, "reviewer": str, "feedback": str, "at": str},
        pk="event",
        not_null={"status", "at"},
    )


def m007_indexes_for_chats(db: Database) -> None:
    # The outbox is read by chat id on every reply (what a chat was last sent, whether the bot
    # can write to someone, a group's messages this minute): without this, each read scans it.
    db["outbox"].create_index(["chat_id", "id"])
    db["reviews"].create_index(["reviewer", "status"])  # an instructor's feedback being written


# The sent messages and polls whose text is still kept (see `outbox.trim_sent`): the ones
# sent in the last two days, so dropping the older ones' text never scans the whole table.
UNTRIMMED = "kind IN ('send', 'poll') AND sent_at IS NOT NULL AND body != '{}'"


def m008_untrimmed_outbox(db: Database) -> None:
    db.execute(f"CREATE INDEX outbox_untrimmed ON outbox (id) WHERE {UNTRIMMED}")


# The messages given up on (refused, superseded, for a learner who blocked the bot) whose
# text is still kept: their text goes after the same retention as a sent one's.
FAILED_TEXT = "failed_at IS NOT NULL AND body != '{}'"


def m009_study_topics(db: Database) -> None:
    # The forum topic a group's study session runs in (its `message_thread_id`; NULL: the
    # group's only or General topic): Telegram puts a message sent without it in General.
    db["study_sessions"].add_column("thread", int)


def m010_failed_text(db: Database) -> None:
    db.execute(f"CREATE INDEX outbox_failed_text ON outbox (id) WHERE {FAILED_TEXT}")


MIGRATIONS = [
    m001_events_and_progress,
    m002_inbox,
    m003_outbox_and_set_aside,
    m004_assignments,
    m005_study_sessions,
    m006_reviews,
    m007_indexes_for_chats,
    m008_untrimmed_outbox,
    m009_study_topics,
    m010_failed_text,
]


def migrate(db: Db) -> None:
    """Apply the migrations `db` lacks: all at once from `bot.schema`'s snapshot to a new
    database, one by one with sqlite-utils' Migrations (only loaded then) otherwise."""
    applied = set(applied_migrations(db, MIGRATION_SET)) or set(schema.create(db, MIGRATION_SET))
    if all(step.__name__ in applied for step in MIGRATIONS):
        return
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(MIGRATION_SET)
    for step in MIGRATIONS:
        migrations()(step)
    migrations.apply(db.utils)


@dataclass(frozen=True)
class Progress:
    """One learner's place in one lesson in one chat."""

    learner: str
    lesson: str
    chat: str
    lesson_hash: str
    state: State
    started_at: str
    updated_at: str
    finished_at: str | None
    last_event: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Progress:
        return cls(
            learner=row["learner"],
            lesson=row["lesson"],
            chat=row["chat"],
            lesson_hash=row["lesson_hash"],
            state=State.from_dict(json.loads(row["state"])),
            started_at=row["started_at"],
            updated_at=row["updated_at"],
            finished_at=row["finished_at"],
            last_event=row["last_event"],
        )


def fold(previous: dict[str, Any] | None, event: dict[str, Any], state: State | None = None) -> dict[str, Any]:
    """The progress row after `event`, given the row before it (None for the first).
    `state`: the event's state, if the caller has it already (else read from its JSON)."""
    state = state or State.from_dict(json.loads(event["state"]))
    restarted = json.loads(event["input"])["kind"] == "start"
    started_at = event["at"] if restarted or previous is None else previous["started_at"]
    finished_at = None if restarted or previous is None else previous["finished_at"]
    if state.finished and finished_at is None:
        finished_at = event["at"]
    return {
        "learner": event["learner"],
        "lesson": event["lesson"],
        "chat": event["chat"],
        "lesson_hash": event["lesson_hash"],
        "node": state.node,
        "section": state.section,
        "score": state.score,
        "finished": int(state.finished),
        "started_at": started_at,
        "updated_at": event["at"],
        "finished_at": finished_at,
        "last_event": event["id"],
        "state": event["state"],
    }


PROGRESS_FIELDS = (
    "learner", "lesson", "chat", "lesson_hash", "state", "started_at", "updated_at", "finished_at", "last_event",
)
PROGRESS_COLUMNS = ", ".join(PROGRESS_FIELDS)


class Store:
    """The project's one SQLite database."""

    def __init__(self, path: Path | str = ":memory:", clock: Clock = utc_now, busy_timeout: float = 5.0):
        """`busy_timeout`: seconds a statement waits for another process's write lock
        before it fails with "database is locked" (a transient error, see `wait_out`)."""
        self.path = None if str(path) == ":memory:" else Path(path)
        self.clock = clock
        self.busy_timeout = busy_timeout
        self.known: dict[str, str | None] = {}  # learners recorded, with their names (`ensure_learner`)
        self.depth = 0  # transactions and savepoints open (`atomic`, `lingering`)
        self.linger: asyncio.TimerHandle | None = None  # the `settle` due for lingering writes
        self.committed: list[Callable[[], None]] = []  # `on_commit` actions waiting
        # Progress rows as committed, by (learner, lesson, chat): what `progress` read or `record`
        # wrote. While the bot runs it is the database's only writer (its single-instance lock),
        # so an answer needs no SELECT. Rows written in the open transaction are read from the
        # database until it commits; `forget` and `rebuild_progress` bypass it until theirs does.
        self.cached: dict[tuple[str, str, str], Progress | None] = {}
        self.written: set[tuple[str, str, str]] = set()
        self.bypass = False
        self.epoch = 0  # counts `forget` and `rebuild_progress`: what others keep in memory is stale
        self._open()

    def _open(self) -> None:
        if self.path is None:
            self.db = Db(sqlite3.connect(":memory:"))
        else:
            # Raises DatabaseError, one clear line, for a path that cannot be used.
            self.db = open_database(self.path, MIGRATION_SET, [step.__name__ for step in MIGRATIONS])
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")  # a commit survives power loss, not only a crash
        self.db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        self.db.execute("PRAGMA foreign_keys = ON")
        # SQLite's own page cache (2 MiB by default) only copies what the OS already caches
        # for the file; a small one keeps a busy bot's memory down at no measurable cost.
        self.db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        # Deleted content is overwritten, so that a forgotten learner leaves no trace in the file.
        self.db.execute("PRAGMA secure_delete = ON")
        migrate(self.db)

    def restore_if_deleted(self) -> bool:
        """If the database file was deleted while open, write it back from this connection.

        The open connection still holds every row; without this, all progress would be gone
        at the next start. True if it was restored. A file replaced by another one (a
        different file at the path) is left alone: that is someone's deliberate act."""
        if self.path is None or self.path.exists():
            return False
        self.settle()
        restored = sqlite3.connect(self.path)
        try:
            self.db.conn.backup(restored)
        finally:
            restored.close()
        self.db.close()  # before reopening: closing removes this connection's own -wal by name
        self._open()
        return True

    def close(self) -> None:
        self.settle()
        self.db.close()

    def now(self) -> str:
        return self.clock().isoformat(timespec="milliseconds")

    # --- transactions ---------------------------------------------------------------
    #
    # `atomic` is a transaction (a savepoint inside another one). `lingering` is for writes
    # that may wait a moment to be durable: they stay in an open transaction that the next
    # `atomic` commits with its own writes, or `settle` commits within `LINGER` seconds. Under
    # a full class the bot then makes one commit per answer, not one per answer and one per
    # reply sent. A crash in between loses the lingering writes, so only writes whose loss
    # costs a repeat belong there: an outbox "sent" mark (the reply goes out again).

    @contextmanager
    def atomic(self) -> Iterator[Db]:
        conn = self.db.conn
        self.depth += 1
        name = f"atomic_{self.depth}"
        begun = not conn.in_transaction
        conn.execute("BEGIN" if begun else f"SAVEPOINT {name}")
        actions = len(self.committed)
        try:
            yield self.db
            if self.depth > 1:
                conn.execute(f"RELEASE {name}")
            else:  # the outermost: commit, lingering writes included
                conn.execute("COMMIT")
                self._settled()
        except BaseException:
            self.known.clear()  # what it recorded of learners may have been rolled back
            del self.committed[actions:]
            if conn.in_transaction:  # (an error may have ended the transaction already)
                if begun:
                    conn.execute("ROLLBACK")
                    self._ended()
                else:  # only this block's writes: lingering ones stay, to be committed
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
            else:
                self.committed.clear()
                self._ended()
            raise
        finally:
            self.depth -= 1

    @contextmanager
    def joined(self) -> Iterator[Db]:
        """`atomic`; or, inside a transaction, a part of it without a savepoint of its own:
        for a block whose failure fails its caller's whole transaction anyway (the tutor's
        moves inside a handler's transaction), two statements fewer."""
        if self.depth:
            yield self.db
            return
        with self.atomic() as db:
            yield db

    @contextmanager
    def lingering(self) -> Iterator[Db]:
        """A block of writes that may wait up to `LINGER` seconds to be committed (see above).

        Without a running event loop to settle them, or inside a transaction, it is `atomic`."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self.depth:
            with self.atomic() as db:
                yield db
            return
        conn = self.db.conn
        joining = conn.in_transaction  # other lingering writes wait: a savepoint keeps them apart
        conn.execute("SAVEPOINT lingering" if joining else "BEGIN")
        if self.linger is None:
            self.linger = loop.call_later(LINGER, self.settle)
        self.depth += 1
        actions = len(self.committed)
        try:
            yield self.db
            if joining:
                conn.execute("RELEASE lingering")
        except BaseException:
            del self.committed[actions:]
            if conn.in_transaction and joining:
                conn.execute("ROLLBACK TO lingering")
                conn.execute("RELEASE lingering")
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
                self._ended()
            raise
        finally:
            self.depth -= 1

    def settle(self) -> None:
        """Commit the lingering writes now, if any (before the process stops). If the commit
        fails, they wait for the next try."""
        conn = self.db.conn
        if self.depth or not conn.in_transaction:
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                log.warning("database unavailable while committing (%s); trying again", exc)
                try:
                    self.linger = asyncio.get_running_loop().call_later(LINGER * 10, self.settle)
                except RuntimeError:
                    pass
                return
            log.error("lingering writes lost (%s): some replies may be sent twice", exc)
            self.committed.clear()
            self._ended()
        self._settled()

    def on_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once the current transaction commits (dropped if it rolls back)."""
        self.committed.append(action)

    def _settled(self) -> None:
        if self.linger is not None:
            self.linger.cancel()
            self.linger = None
        actions, self.committed = self.committed, []
        for action in actions:
            action()
        self._ended()

    def _ended(self) -> None:
        """The transaction is over (committed or rolled back): the progress cache holds again."""
        self.written.clear()
        self.bypass = False

    # --- learners -------------------------------------------------------------------

    def ensure_learner(self, learner: str, name: str | None = None) -> None:
        """Record a learner (and their name, if it changed); a learner who writes again is
        no longer marked as having blocked the bot. Known learners cost no statement."""
        if learner in self.known and (name is None or self.known[learner] == name):
            return
        row = {"id": learner, "name": name, "created_at": self.now()}
        self.db.execute(
            "INSERT INTO learners (id, name, created_at) VALUES (:id, :name, :created_at) "
            "ON CONFLICT(id) DO UPDATE SET name = COALESCE(excluded.name, learners.name), blocked_at = NULL",
            row,
        )
        self.known[learner] = name
        if len(self.known) > 100_000:  # a cache, not a register: start again
            self.known = {}

    def mark_blocked(self, learner: str) -> None:
        """The learner blocked the bot: keep their progress, stop writing to them."""
        self.known.pop(learner, None)  # so that their next message clears the mark
        self.db.execute("UPDATE learners SET blocked_at = ? WHERE id = ?", [self.now(), learner])

    # --- progress -------------------------------------------------------------------
    # Plain SQL here and in `record`: these run for every answer.

    def progress(self, learner: str, lesson: str, chat: str) -> Progress | None:
        key = (learner, lesson, chat)
        usable = not self.bypass and key not in self.written
        if usable and key in self.cached:
            return self.cached[key]
        row = self.db.execute(
            f"SELECT {PROGRESS_COLUMNS} FROM progress WHERE learner = ? AND lesson = ? AND chat = ?", [learner, lesson, chat]
        ).fetchone()
        found = None if row is None else Progress.from_row(dict(zip(PROGRESS_FIELDS, row)))
        if usable:
            self._cache(key, found)
        return found

    def _uncache(self) -> None:
        """Progress rows are being deleted in this transaction: read them from the database
        until it ends, and start the cache again once it commits."""
        self.bypass = True
        self.cached = {}
        self.epoch += 1
        self.on_commit(lambda: self.cached.clear())

    def _cache(self, key: tuple[str, str, str], progress: Progress | None) -> None:
        if len(self.cached) > 20_000:  # a cache: start again
            self.cached = {}
        self.cached[key] = progress

    def latest_progress(self, learner: str, chat: str) -> Progress | None:
        """The lesson this learner worked on last in this chat."""
        row = self.db.execute(
            f"SELECT {PROGRESS_COLUMNS} FROM progress WHERE learner = ? AND chat = ? "
            "ORDER BY updated_at DESC, last_event DESC LIMIT 1",
            [learner, chat],
        ).fetchone()
        return None if row is None else Progress.from_row(dict(zip(PROGRESS_FIELDS, row)))

    def all_progress(self, learner: str) -> list[Progress]:
        rows = self.db["progress"].rows_where("learner = ?", [learner], order_by="updated_at DESC")
        return [Progress.from_row(row) for row in rows]

    def record(
        self,
        learner: str,
        lesson: str,
        chat: str,
        lesson_hash: str,
        node: str | None,
        value: Input,
        result: Result,
        update_id: int | None = None,
    ) -> dict[str, Any]:
        """Append the event and update progress, in the caller's transaction or a new one."""
        if not self.db.conn.in_transaction:
            with self.atomic():
                return self.record(learner, lesson, chat, lesson_hash, node, value, result, update_id)
        event = {
            "learner": learner,
            "lesson": lesson,
            "chat": chat,
            "lesson_hash": lesson_hash,
            "node": node,
            "input": json.dumps(input_to_dict(value)),
            "outcome": json.dumps(result.outcome),
            "state": json.dumps(result.state.to_dict()),
            "at": self.now(),
            "update_id": update_id,
        }
        cursor = self.db.execute(
            "INSERT INTO events (learner, lesson, chat, lesson_hash, node, input, outcome, state, at, update_id) "
            "VALUES (:learner, :lesson, :chat, :lesson_hash, :node, :input, :outcome, :state, :at, :update_id)",
            event,
        )
        event["id"] = cursor.lastrowid
        # `fold` in SQL: one statement, without reading the row first.
        row = fold(None, event, result.state)
        row["restarted"] = int(isinstance(value, Start))
        started_at, finished_at = self.db.execute(
            "INSERT INTO progress (learner, lesson, chat, lesson_hash, node, section, score, finished, started_at, "
            "updated_at, finished_at, last_event, state) VALUES (:learner, :lesson, :chat, :lesson_hash, :node, :section, "
            ":score, :finished, :started_at, :updated_at, :finished_at, :last_event, :state) "
            "ON CONFLICT (learner, lesson, chat) DO UPDATE SET lesson_hash = excluded.lesson_hash, node = excluded.node, "
            "section = excluded.section, score = excluded.score, finished = excluded.finished, "
            "started_at = CASE WHEN :restarted THEN excluded.started_at ELSE progress.started_at END, "
            "finished_at = CASE WHEN :restarted THEN excluded.finished_at "
            "ELSE COALESCE(progress.finished_at, excluded.finished_at) END, "
            "updated_at = excluded.updated_at, last_event = excluded.last_event, state = excluded.state "
            "RETURNING started_at, finished_at",
            row,
        ).fetchone()
        key = (learner, lesson, chat)
        progress = Progress(
            learner, lesson, chat, lesson_hash, result.state, started_at, row["updated_at"], finished_at, event["id"]
        )
        self.written.add(key)
        self.on_commit(lambda: self._cache(key, progress))
        return event

    def last_input(self, learner: str, lesson: str, chat: str) -> dict[str, Any] | None:
        """The input of the learner's latest event in this lesson and chat (as stored), or None."""
        row = self.db.execute(
            "SELECT e.input FROM progress p JOIN events e ON e.id = p.last_event "
            "WHERE p.learner = ? AND p.lesson = ? AND p.chat = ?",
            [learner, lesson, chat],
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def rebuild_progress(self) -> None:
        """Recompute the whole progress table from the event log."""
        with self.atomic():
            self._uncache()
            self.db.execute("DELETE FROM progress")
            rows: dict[tuple[str, str, str], dict[str, Any]] = {}
            for event in self.db["events"].rows_where(order_by="id"):
                key = (event["learner"], event["lesson"], event["chat"])
                rows[key] = fold(rows.get(key), event)
            if rows:
                self.db["progress"].insert_all(rows.values(), pk=("learner", "lesson", "chat"))

    # --- the event log --------------------------------------------------------------

    def events(self, learner: str | None = None, lesson: str | None = None, chat: str | None = None) -> list[dict]:
        where, args = [], []
        for column, value in (("learner", learner), ("lesson", lesson), ("chat", chat)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        rows = self.db["events"].rows_where(" AND ".join(where) or None, args, order_by="id")
        return [{**row, **{k: json.loads(row[k]) for k in ("input", "outcome", "state")}} for row in rows]

    def last_event(self, learner: str) -> int:
        """When the learner's latest event anywhere was, in milliseconds since 1970 (0 if
        none): it tells whether they did anything since. (Not the event's id: after /forget
        the deleted ids are given out again.)"""
        row = self.db.execute("SELECT at FROM events WHERE learner = ? ORDER BY id DESC LIMIT 1", [learner]).fetchone()
        return 0 if row is None else int(datetime.fromisoformat(row[0]).timestamp() * 1000)

    def move_chat(self, old: int, new: int) -> bool:
        """A group became a supergroup, which Telegram gives a new chat id: its study session
        (the latest, if both ids have one), assignments, members' progress, history and
        messages, sent and waiting, move to the new id. False if nothing was there to move."""
        was, now = f"tg:{old}", f"tg:{new}"
        with self.atomic():
            ids = dict(self.db.execute("SELECT chat, id FROM study_sessions WHERE chat IN (?, ?)", [was, now]).fetchall())
            if len(ids) == 2:  # a /study in the new chat before the move was seen: the later one stays
                self.db.execute("DELETE FROM study_sessions WHERE id = ?", [min(ids.values())])
            self._uncache()
            moved = 0
            for table in ("study_sessions", "outbox"):
                moved += self.db.execute(f"UPDATE {table} SET chat = ?, chat_id = ? WHERE chat = ?", [now, new, was]).rowcount
            for table in ("assignments", "events"):
                moved += self.db.execute(f"UPDATE {table} SET chat = ? WHERE chat = ?", [now, was]).rowcount
            # (a member with progress under both ids, which only a race can make, keeps the new one)
            moved += self.db.execute("UPDATE OR IGNORE progress SET chat = ? WHERE chat = ?", [now, was]).rowcount
        return moved > 0

    def leave_topic(self, chat_id: int, thread: int) -> None:
        """The forum topic `thread` of the group `chat_id` is gone (deleted or closed): the
        messages still to go there, and the study session that ran there, go to the group's
        General topic instead."""
        with self.atomic():
            self.db.execute(
                "UPDATE outbox SET body = json_remove(body, '$.thread') WHERE chat_id = ? AND sent_at IS NULL "
                "AND failed_at IS NULL AND json_extract(body, '$.thread') = ?",
                [chat_id, thread],
            )
            self.db.execute("UPDATE study_sessions SET thread = NULL WHERE chat_id = ? AND thread = ?", [chat_id, thread])

    def forget(self, learner: str) -> None:
        """Delete everything stored about a learner.

        Handled inbox rows keep their bare update_id (so a redelivered update is still
        recognised) and lose the rest; updates not yet handled stay, to be handled.
        """
        # Deleted content is overwritten (secure_delete), and the file is rewritten and the
        # WAL emptied afterwards (`scrub`), so that no byte of the learner's texts or ids
        # stays behind in either: secure_delete alone misses the stale copy of a row that an
        # UPDATE moved within its page.
        self.known.pop(learner, None)
        with self.atomic():
            self._uncache()
            # Messages to others that name them (a leader's scores, a review, a note in a
            # group), sent or given up, lose their text now, not when their retention runs out.
            # Only rows that still have text are looked at, through their indexes.
            [name] = self.db.execute("SELECT name FROM learners WHERE id = ?", [learner]).fetchone() or [None]
            forms = {name, html.escape(name), html.escape(name, quote=False)} if name else set()
            marks = sorted({learner} | {json.dumps(form, ensure_ascii=False)[1:-1] for form in forms})
            self.db.execute(
                f"UPDATE outbox SET body = '{{}}' WHERE id IN (SELECT id FROM outbox WHERE {UNTRIMMED} "
                f"UNION ALL SELECT id FROM outbox WHERE {FAILED_TEXT}) AND ({' OR '.join(['instr(body, ?) > 0'] * len(marks))})",
                marks,
            )
            self.db.execute("UPDATE assignments SET created_by = NULL WHERE created_by = ?", [learner])
            self.db.execute("DELETE FROM reviews WHERE event IN (SELECT id FROM events WHERE learner = ?)", [learner])
            self.db.execute("UPDATE reviews SET reviewer = NULL WHERE reviewer = ?", [learner])
            tables = (
                ("events", "learner"), ("progress", "learner"), ("learners", "id"), ("outbox", "chat"),
                ("assignment_members", "learner"), ("group_answers", "learner"),
            )
            self.db.execute("UPDATE study_sessions SET leader = NULL WHERE leader = ?", [learner])
            for table, column in tables:
                self.db.execute(f"DELETE FROM {table} WHERE {column} = ?", [learner])
            self.db.execute(
                "UPDATE inbox SET learner = NULL, chat = NULL, payload = '{}', error = NULL "
                "WHERE learner = ? AND handled_at IS NOT NULL",
                [learner],
            )
        if not self.db.conn.in_transaction:
            self.scrub()  # else the caller does, once its transaction is committed

    # --- group assignments -------------------------------------------------------------

    def assign(self, chat: str, title: str | None, lesson: str, by: str) -> int:
        """Record that a group's leader assigned a lesson; its id goes in the join link."""
        cursor = self.db.execute(
            "INSERT INTO assignments (chat, title, lesson, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
            [chat, title, lesson, by, self.now()],
        )
        return int(cursor.lastrowid)

    def assignment(self, assignment_id: int) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT id, chat, title, lesson FROM assignments WHERE id = ?", [assignment_id]
        ).fetchone()
        return dict(zip(("id", "chat", "title", "lesson"), row)) if row else None

    def join(self, assignment_id: int, learner: str) -> None:
        """A member took up an assignment (again: changes nothing). The group's admins see
        their work on its lesson from the time they first joined (`bot.access`)."""
        self.db.execute(
            "INSERT OR IGNORE INTO assignment_members (assignment, learner, joined_at) VALUES (?, ?, ?)",
            [assignment_id, learner, self.now()],
        )

    def standings(self, chat: str) -> list[tuple[str, str, str | None, Progress | None]]:
        """(lesson, learner, name, their one-to-one progress) for each member of each lesson
        assigned in the group `chat`, in the order they joined; a lesson assigned twice counts once."""
        rows = self.db.execute(
            "SELECT a.lesson, m.learner, l.name, MIN(m.joined_at) AS joined FROM assignments a "
            "JOIN assignment_members m ON m.assignment = a.id LEFT JOIN learners l ON l.id = m.learner "
            "WHERE a.chat = ? GROUP BY a.lesson, m.learner ORDER BY a.lesson, joined",
            [chat],
        ).fetchall()
        # The member does the lesson in their private chat, whose id is their user id.
        return [(lesson, learner, name, self.progress(learner, lesson, learner)) for lesson, learner, name, _ in rows]

    def scrub(self) -> None:
        """Rewrite the database file (VACUUM) and empty the WAL: nothing deleted survives in
        free space. It takes time in proportion to the file, so it runs after /forget only."""
        self.settle()
        self.db.execute("VACUUM")
        self.checkpoint()

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and empty it (best effort: readers may hold it)."""
        self.settle()
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

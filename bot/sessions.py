"""Live group study sessions, as stored: one row per group (its lesson, the group's step,
whether that step is a question still taking answers, running or paused, and when the bot
moves on by itself), and each member's first answer to each of a session's questions.

A new session replaces the group's row with a new id, so the buttons of an older session
are stale. Nothing here knows about Telegram; `bot.telegram_bot.study` drives it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from bot.store import Store

ACTIVE = ("running", "paused")


@dataclass(frozen=True)
class Session:
    id: int
    chat: str  # "tg:<group id>"
    chat_id: int
    title: str | None
    lesson: str
    leader: str | None
    seed: int  # orders every question's options, the same for the whole group
    node: str  # the group's step
    phase: str  # "shown"; at a question: "open" or "closed"
    state: str  # "running", "paused", "stopped", "finished"
    advance: int | None  # seconds a question stays open when the bot moves on by itself
    due_at: str | None  # when the bot moves on by itself
    counted: int  # the live count shown under the open question
    counted_at: str | None
    started_at: str
    thread: int | None = None  # the forum topic it runs in (None: the General topic, or no topics)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


COLUMNS = ", ".join(f.name for f in fields(Session))


class Sessions:
    """The study_sessions and group_answers tables."""

    def __init__(self, store: Store):
        self.store = store

    def _one(self, where: str, args: list[Any]) -> Session | None:
        row = self.store.db.execute(f"SELECT {COLUMNS} FROM study_sessions WHERE {where}", args).fetchone()
        return None if row is None else Session(*row)

    def of(self, chat: str) -> Session | None:
        """The group's session (active or over), if it ever had one."""
        return self._one("chat = ?", [chat])

    def get(self, session_id: int) -> Session | None:
        return self._one("id = ?", [session_id])

    def due(self) -> list[Session]:
        """Running sessions whose next move by the bot is due."""
        rows = self.store.db.execute(
            f"SELECT {COLUMNS} FROM study_sessions WHERE state = 'running' AND due_at IS NOT NULL AND due_at <= ?",
            [self.store.now()],
        ).fetchall()
        return [Session(*row) for row in rows]

    def counting(self) -> list[Session]:
        """Active sessions at a question still taking answers."""
        rows = self.store.db.execute(
            f"SELECT {COLUMNS} FROM study_sessions WHERE state IN ('running', 'paused') AND phase = 'open'"
        ).fetchall()
        return [Session(*row) for row in rows]

    def begin(
        self, chat: str, chat_id: int, title: str | None, lesson: str, leader: str, seed: int, node: str, advance: int | None,
        thread: int | None = None,
    ) -> Session:
        """A new session in the group, in place of any earlier one."""
        now = self.store.now()
        self.store.db.execute("DELETE FROM study_sessions WHERE chat = ?", [chat])
        self.store.db.execute(
            "INSERT INTO study_sessions (chat, chat_id, title, lesson, leader, seed, node, phase, state, advance, "
            "counted, started_at, updated_at, thread) VALUES (?, ?, ?, ?, ?, ?, ?, 'shown', 'running', ?, 0, ?, ?, ?)",
            [chat, chat_id, title, lesson, leader, seed, node, advance, now, now, thread],
        )
        found = self.of(chat)
        assert found is not None
        return found

    def update(self, session: Session, **changes: Any) -> Session:
        """Change some of the session's columns; the session as it is now."""
        changes["updated_at"] = self.store.now()
        assignments = ", ".join(f"{column} = ?" for column in changes)
        self.store.db.execute(f"UPDATE study_sessions SET {assignments} WHERE id = ?", [*changes.values(), session.id])
        found = self.get(session.id)
        assert found is not None
        return found

    def after(self, seconds: float) -> str:
        """The store time `seconds` from now."""
        return (self.store.clock() + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")

    # --- answers ---------------------------------------------------------------------------

    def first_answer(self, session: Session | int, node: str, learner: str) -> int | None:
        """The option (or -1 for a written answer) the member gave first at `node`, if any,
        in `session` (or the session of that id: its answers outlive its row)."""
        number = session if isinstance(session, int) else session.id
        row = self.store.db.execute(
            "SELECT option FROM group_answers WHERE session = ? AND node = ? AND learner = ?", [number, node, learner]
        ).fetchone()
        return None if row is None else row[0]

    def answer(self, session: Session, node: str, learner: str, option: int) -> bool:
        """Record a member's answer; False (nothing recorded) if they had answered already."""
        cursor = self.store.db.execute(
            "INSERT OR IGNORE INTO group_answers (session, node, learner, option, at) VALUES (?, ?, ?, ?, ?)",
            [session.id, node, learner, option, self.store.now()],
        )
        return bool(cursor.rowcount)

    def count(self, session: Session, node: str) -> int:
        (count,) = self.store.db.execute(
            "SELECT COUNT(*) FROM group_answers WHERE session = ? AND node = ?", [session.id, node]
        ).fetchone()
        return count

    def tally(self, session: Session, node: str) -> dict[int, int]:
        """How many members chose each option (by its index in the file) at `node`."""
        rows = self.store.db.execute(
            "SELECT option, COUNT(*) FROM group_answers WHERE session = ? AND node = ? GROUP BY option",
            [session.id, node],
        ).fetchall()
        return dict(rows)

    def answers(self, session: Session) -> list[tuple[str, str, int]]:
        """(learner, node, option) of every answer in the session, in the order given."""
        return self.store.db.execute(
            "SELECT learner, node, option FROM group_answers WHERE session = ? ORDER BY at, rowid", [session.id]
        ).fetchall()

    def answered(self, session: Session, node: str) -> list[tuple[str, int]]:
        """(learner, option) of each member who answered at `node`."""
        return self.store.db.execute(
            "SELECT learner, option FROM group_answers WHERE session = ? AND node = ? ORDER BY at, rowid", [session.id, node]
        ).fetchall()

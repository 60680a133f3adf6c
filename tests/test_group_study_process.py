"""A live group study session survives a SIGKILL of the bot process, its timer included.

The bot runs as its own process (`tutorbot run`, see `tests.test_bot_process`) against the
fake Bot API server. An admin starts `/study madman-core 10` in a group and moves on with
/next until a question's poll is open; two members vote; the process is killed with
SIGKILL a moment later, well before the question's 10 seconds are up. The restarted
process, with no message from anyone, closes the poll and posts the tally at the stored
time, each vote counted once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot import engine
from bot.store import Store
from bot.telegram_bot import study
from tests.core_lesson import CHOICES, CORE, QUESTIONS, RIGHT, WRONG
from tests.fake_telegram import FakeTelegram
from tests.test_bot_process import BotProcess, fake_server  # noqa: F401 (a fixture)

GROUP = -100777
TEACHER, ANN, BEN = 9301, 9302, 9303
SECONDS = 10  # how long a question stays open: /study madman-core 10
PHASES = ("shown", "open", "closed")


def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows from the bot's database, opened read-only for this one query."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as connection:
        return connection.execute(sql, args).fetchall()


def session_row(db: Path) -> dict[str, Any]:
    rows = query(db, "SELECT id, node, phase, state, due_at, advance FROM study_sessions WHERE chat = ?", (f"tg:{GROUP}",))
    assert len(rows) == 1, rows
    return dict(zip(("id", "node", "phase", "state", "due_at", "advance"), rows[0]))


def wait_until(condition, timeout: float, every: float = 0.02) -> Any:
    """`condition()`'s first true value within `timeout` seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    return None


def has_next(message: dict) -> bool:
    return study.NEXT in [label for label, _ in FakeTelegram.buttons(message)]


def latest_step(telegram: FakeTelegram, after: int = 0) -> dict | None:
    """The group's latest bot message carrying the Next button, among those after number `after`."""
    return next((m for m in reversed(telegram.bot_messages(GROUP)[after:]) if has_next(m)), None)


def tallies(telegram: FakeTelegram) -> list[dict]:
    return [m for m in telegram.bot_messages(GROUP) if m["text"].startswith("📊")]


@pytest.fixture
def bot(fake_server, tmp_path: Path) -> Iterator[tuple[FakeTelegram, BotProcess]]:  # noqa: F811
    """The bot process on a fresh database; stopped with SIGTERM at the end, pass or fail."""
    telegram, server = fake_server
    process = BotProcess(server, tmp_path / "bot.db", tmp_path / "bot.log")
    try:
        yield telegram, process
    finally:
        if process.process is not None and process.process.poll() is None:
            assert process.stop() == 0, (tmp_path / "bot.log").read_text()


def test_a_group_question_closes_on_time_after_a_sigkill(bot, tmp_path: Path) -> None:
    telegram, process = bot
    db, log = tmp_path / "bot.db", tmp_path / "bot.log"
    telegram.admins[GROUP] = {TEACHER}
    process.start()

    # The teacher starts the session and moves on with /next until a question's poll is open.
    seen = len(telegram.bot_messages(GROUP))
    telegram.send_text(TEACHER, f"/study madman-core {SECONDS}", group=GROUP)
    for _ in range(12):
        step = wait_until(lambda after=seen: latest_step(telegram, after), 20)
        assert step is not None, log.read_text()
        if "poll" in step and not step["poll"]["is_closed"]:
            break
        seen = len(telegram.bot_messages(GROUP))
        telegram.send_text(TEACHER, "/next", group=GROUP)
    else:
        raise AssertionError("no poll came")
    poll_message, poll = step, step["poll"]
    opened = telegram.arrived[(GROUP, poll_message["message_id"])]
    before = session_row(db)
    assert before["phase"] == "open" and before["state"] == "running" and before["advance"] == SECONDS
    node = before["node"]
    assert CORE.nodes[node].ask == poll["question"]

    # Two members vote: one right, one wrong (at an ungraded question, any two options).
    options = [o["text"] for o in poll["options"]]
    if node in QUESTIONS:
        picks = {ANN: options.index(RIGHT[node]), BEN: options.index(WRONG[node])}
    else:
        assert node in CHOICES
        picks = {ANN: 0, BEN: 1}
    for member, position in picks.items():
        telegram.vote(member, poll["id"], [position])
    members = {f"tg:{member}" for member in picks}
    stored = lambda: {r[0] for r in query(db, "SELECT learner FROM group_answers WHERE node = ?", (node,))} == members
    assert wait_until(stored, 5), log.read_text()

    # SIGKILL within ~2 s of the poll opening: the question is open, its closing stored for later.
    due_at = session_row(db)["due_at"]
    assert due_at == before["due_at"]
    due = datetime.fromisoformat(due_at)
    left = (due - datetime.now(UTC)).total_seconds()
    due_monotonic = time.monotonic() + left  # the due time on the fake's clock
    assert time.monotonic() - opened < 2.5
    process.kill()
    killed_at = time.monotonic()
    assert left > 5, f"the kill came too late: {left:.1f} s to the due time"
    assert not poll_message["poll"]["is_closed"] and not tallies(telegram)
    assert not [c for c in telegram.calls if c[0] == "stopPoll"]

    # Restarted, with no message from anyone: the poll closes and the tally comes at the due time.
    process.start()
    restarted = time.monotonic()
    assert wait_until(lambda: tallies(telegram), 20, every=0.05), log.read_text()
    [tally] = tallies(telegram)
    posted = telegram.arrived[(GROUP, tally["message_id"])]
    assert posted > killed_at  # by the restarted process
    assert posted >= due_monotonic - 0.5, f"closed {due_monotonic - posted:.2f} s before the due time"
    assert posted - restarted < 20
    assert posted - due_monotonic < 8, f"closed {posted - due_monotonic:.2f} s after the due time"
    assert "📊 2 answered" in tally["text"]
    assert wait_until(lambda: telegram.message(GROUP, poll_message["message_id"])["poll"]["is_closed"], 5)
    assert len([c for c in telegram.calls if c[0] == "stopPoll"]) == 1
    assert len([c for c in telegram.calls if c[0] == "sendPoll"]) == 1  # the restart did not post the question again
    assert has_next(tally)

    # The same session, moved on; each vote counted exactly once.
    after = session_row(db)
    assert after["id"] == before["id"] and after["state"] == "running"
    steps = engine.group_path(CORE)
    assert (steps.index(after["node"]), PHASES.index(after["phase"])) > (steps.index(node), PHASES.index("open"))
    assert after["node"] == node and after["phase"] == "closed"  # the next move is 20 s away
    answers = query(db, "SELECT learner, option FROM group_answers WHERE session = ? AND node = ?", (before["id"], node))
    assert sorted(learner for learner, _ in answers) == sorted(members)

    assert process.stop() == 0  # SIGTERM: a clean stop, and the database is ours to open
    store = Store(db)
    try:
        for member, position in picks.items():
            learner = f"tg:{member}"
            chosen = [
                e for e in store.events(learner=learner, lesson="madman-core", chat=f"tg:{GROUP}")
                if e["input"]["kind"] == "choose"
            ]
            assert len(chosen) == 1 and chosen[0]["node"] == node, chosen
            option = CORE.nodes[node].options[chosen[0]["input"]["option"]]
            assert option.text == options[position]
            assert dict(answers)[learner] == chosen[0]["input"]["option"]
            progress = store.progress(learner, "madman-core", f"tg:{GROUP}")
            assert progress is not None
            if node in QUESTIONS:
                assert progress.state.score == (1 if member == ANN else 0)
    finally:
        store.close()

    assert "Traceback" not in log.read_text()

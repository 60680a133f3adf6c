"""The database fails under the running bot: locked, full, deleted. Nothing is lost, the
bot keeps running and says in its log what it waits for, and it catches up when the fault
passes. Also: what a person sees of the inbox with `tutorbot inbox`."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from bot.cli import main
from tests.core_lesson import START, text_of
from tests.test_telegram_bot import ALICE, BOB, Harness

WELCOME = text_of(START)  # the first step of the core lesson, which /start madman-core shows


def queued_start(update_id: int, user: int) -> dict:
    """An update as Telegram sends it: the learner typed /start madman-core."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "from": {"id": user, "is_bot": False, "first_name": f"Learner{user}"},
            "chat": {"id": user, "type": "private", "first_name": f"Learner{user}"},
            "text": "/start madman-core",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


def store_unhandled(h: Harness, raw: dict) -> None:
    """Put an update in the inbox as if the bot had stored it and then died."""
    h.store.db.execute(
        "INSERT INTO inbox (update_id, learner, chat, payload, received_at) VALUES (?, ?, ?, ?, 't')",
        [raw["update_id"], f"tg:{raw['message']['from']['id']}", f"tg:{raw['message']['chat']['id']}", json.dumps(raw)],
    )
    h.store.db.conn.commit()


async def test_a_lock_held_during_handling_delays_the_answer_but_loses_nothing(tmp_path: Path, caplog) -> None:
    h = Harness(tmp_path)
    store_unhandled(h, queued_start(1, ALICE))
    h.store.db.execute("PRAGMA busy_timeout = 100")
    other = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with caplog.at_level(logging.WARNING):
        async with h:
            await asyncio.sleep(1.5)
            assert h.telegram.bot_messages(ALICE) == []  # nothing yet: the answer cannot be stored
            assert not h.store.events(learner=f"tg:{ALICE}")
            other.execute("COMMIT")
            await h.handled(1, timeout=10)
            assert WELCOME in h.last(ALICE)["text"]
            starts = [e for e in h.events(ALICE) if e["input"]["kind"] == "start"]
            assert [e["update_id"] for e in starts] == [1]  # recorded once, with its update
            replies = await h.say(BOB, "/start madman-core")  # and the bot carries on
            assert WELCOME in replies[-1]["text"]
    assert "database unavailable" in caplog.text and "update 1 waits" in caplog.text
    other.close()


async def test_a_full_disk_is_waited_out(tmp_path: Path, caplog) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        (pages,) = h.store.db.execute("PRAGMA page_count").fetchone()
        h.store.db.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: SQLITE_FULL
        with caplog.at_level(logging.WARNING):
            update_ids = [h.telegram.send_text(BOB, "/start madman-core")]
            update_ids += [h.telegram.press(ALICE, h.last(ALICE)["message_id"], h.telegram.buttons(h.last(ALICE))[0][1])]
            for _ in range(100):  # long texts, until the room left in the file's pages is used up
                if "full" in caplog.text:
                    break
                update_ids.append(h.telegram.send_text(BOB, "a long message " * 200))
                await asyncio.sleep(0.02)
            assert "database or disk is full" in caplog.text
            await asyncio.sleep(0.5)
            h.store.db.execute("PRAGMA max_page_count = 1073741823")  # room again
            for update_id in update_ids:
                await h.handled(update_id, timeout=15)
        assert any(WELCOME in message["text"] for message in h.telegram.bot_messages(BOB))
        continues = [e for e in h.events(ALICE) if e["input"]["kind"] == "continue"]
        assert [e["update_id"] for e in continues] == [update_ids[1]]
        assert h.store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_a_deleted_database_file_is_written_back(tmp_path: Path, caplog) -> None:
    path = tmp_path / "bot.db"
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with caplog.at_level(logging.ERROR):
            replies = await h.say(BOB, "/start madman-core")
        assert WELCOME in replies[-1]["text"]
        assert "was deleted while the bot ran" in caplog.text
        assert path.exists()
    # The file on disk holds everything: Alice's start from before, Bob's from after.
    with sqlite3.connect(path) as db:
        learners = {row[0] for row in db.execute("SELECT learner FROM events")}
        assert learners == {f"tg:{ALICE}", f"tg:{BOB}"}
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_tutorbot_inbox_shows_what_was_set_aside(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        broken = {"update_id": 77, "message": {"message_id": 1, "date": 0, "chat": {"id": ALICE, "type": "private"},
                                               "from": {"id": ALICE, "is_bot": False}, "text": "hi"}}  # no first_name
        with h.telegram.lock:
            h.telegram.queue.append(broken)
        replies = await h.say(BOB, "/start madman-core")  # served although the broken one came first
        assert WELCOME in replies[-1]["text"]
        await h.handled(77)
    result = CliRunner().invoke(main, ["inbox", "--db", str(tmp_path / "bot.db")])
    assert result.exit_code == 0, result.output
    assert "1 set aside" in result.output and "0 waiting" in result.output
    assert "update 77" in result.output and "first_name" in result.output

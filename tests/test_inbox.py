"""The inbox's bookkeeping of polled updates: each is written once when its handler commits
in time, stored to be handled when not, and recognised when Telegram sends it again after
a crash."""

from __future__ import annotations

import asyncio
from pathlib import Path

from telegram import Bot

from bot.store import Store
from bot.telegram_bot.inbox import Inbox

BOT = Bot("123456:test-token")


def text(update_id: int, user: int = 5, words: str = "hello") -> dict:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 0, "chat": {"id": user, "type": "private"},
        "from": {"id": user, "is_bot": False, "first_name": "A"}, "text": words}}


def rows(store: Store) -> dict[int, tuple]:
    found = store.db.execute("SELECT update_id, learner, payload, handled_at IS NOT NULL, failed_at IS NOT NULL FROM inbox")
    return {row[0]: row[1:] for row in found}


def handle(inbox: Inbox, update_id: int) -> None:
    with inbox.store.atomic():
        inbox.mark_handled(update_id)


async def test_an_update_handled_in_time_is_written_once_already_handled(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    inbox = Inbox(store)
    fresh = inbox.receive([text(10)], BOT)
    assert [u.update_id for u in fresh] == [10] and rows(store) == {}  # held in memory
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    handle(inbox, 10)
    store.db.conn.set_trace_callback(None)
    assert [s.split()[0] for s in statements] == ["BEGIN", "INSERT", "COMMIT"]
    assert rows(store) == {10: ("tg:5", "{}", 1, 0)}
    assert inbox.is_handled(10)
    await asyncio.wait_for(inbox.confirmable(), 1)  # nothing left to store
    assert rows(store) == {10: ("tg:5", "{}", 1, 0)}


async def test_updates_not_handled_in_time_are_stored_before_they_are_confirmed(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    inbox = Inbox(store)
    inbox.receive([text(10), text(11, words="slow")], BOT)
    handle(inbox, 10)
    assert not inbox.is_handled(11)
    await asyncio.wait_for(inbox.confirmable(), 1)
    stored = rows(store)
    assert stored[10] == ("tg:5", "{}", 1, 0)
    assert stored[11][:1] == ("tg:5",) and '"slow"' in stored[11][1] and stored[11][2:] == (0, 0)
    assert [u.update_id for u in Inbox(store).pending(BOT)] == [11]
    handle(inbox, 11)  # its handler, late: the stored row is marked
    assert rows(store)[11] == ("tg:5", "{}", 1, 0)


async def test_a_rolled_back_handler_leaves_its_update_to_be_stored(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    inbox = Inbox(store)
    inbox.receive([text(10)], BOT)
    try:
        with store.atomic():
            inbox.mark_handled(10)
            raise RuntimeError("the handler failed")
    except RuntimeError:
        pass
    assert rows(store) == {} and not inbox.is_handled(10)
    await asyncio.wait_for(inbox.confirmable(), 1)
    assert rows(store)[10][2:] == (0, 0)  # waiting to be handled


async def test_after_a_crash_only_updates_never_stored_are_new(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    before = Inbox(store)
    before.receive([text(10), text(11), text(12)], BOT)
    handle(before, 11)  # 11 was handled; 10 and 12 were not, and never stored: the process dies
    await asyncio.wait_for(before.confirmable(), 1)  # (an earlier batch: 10 and 12 are stored now)
    before.receive([text(13), text(14)], BOT)
    handle(before, 14)  # the next batch: 14 handled, 13 lost with the process
    # Restarted, the bot does not confirm anything first: Telegram sends what it was not
    # told arrived, perhaps more than that.
    after = Inbox(store)
    assert [u.update_id for u in after.pending(BOT)] == [10, 12]
    fresh = after.receive([text(10), text(11), text(12), text(13), text(14), text(15)], BOT)
    assert [u.update_id for u in fresh] == [13, 15]
    assert after.receive([text(13), text(15)], BOT) == []  # within one run, a repeat is no news


async def test_an_update_that_cannot_be_read_is_set_aside_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    inbox = Inbox(store)
    broken = {"update_id": 10, "message": {"message_id": "x", "chat": {"id": 5}, "text": 3}}
    assert inbox.receive([broken, text(11)], BOT)[0].update_id == 11
    stored = rows(store)
    assert list(stored) == [10] and stored[10][2:] == (1, 1)
    assert inbox.set_aside_rows()[0]["error"].startswith("cannot be read")

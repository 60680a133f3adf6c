"""Poison updates: each crafted update that once took the bot down, stored in the inbox but
not handled (as if the bot had died right after storing it), next to ordinary updates of
two other learners. The bot must start on that database, serve the others, deal with
each poison update once (set it aside, or handle it harmlessly), and after a restart not
set anything aside again.

What each poison update gets (`POISON`):

- a `from` without `first_name`: set aside (python-telegram-bot cannot read it);
- a forwarded text (its `forward_origin` and `edit_date` parse into datetimes): handled,
  it is text like any other and gets the "Send /start" hint;
- `my_chat_member` (datetimes too; a kind the bot does not subscribe to): handled, ignored;
- a `poll_answer` without `option_persistent_ids` (not subscribed; python-telegram-bot 22.8
  requires that field since Bot API 9.6): set aside;
- a message with no `from`: handled, ignored (nobody to answer);
- a button press with `"message": null`: handled, ignored (no chat to answer in);
- an update_id near 2**52 (a /help): handled, answered;
- a button tapped in a group: handled; the tap is answered ("Group study is not
  available yet"), nothing is sent to the group and nothing recorded;
- "²" and "①" typed at a question: handled; each gets "not one of the options";
- `"text": 5` and a chat id of 2**70 (wrong types): set aside;
- "/start \\ud800" (a lone surrogate, which no UTF-8 text holds): handled, answered,
  the surrogate shown as U+FFFD.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from bot.store import Store
from bot.telegram_bot.study import UNKNOWN_BUTTON
from bot.telegram_bot.inbox import _raw_ids
from tests.core_lesson import (
    CORE,
    FIRST,
    OPENING,
    START,
    part_of,
    question_key,
    text_of,
)
from tests.fake_telegram import FakeTelegram
from tests.test_bot_process import BotProcess, fake_server  # noqa: F401 - a fixture
from tests.test_telegram_bot import Harness

ALICE, BOB = 501, 502  # ordinary learners
QUINN = 601  # at a question, types "²" and "①"
HUGE = 2**52 + 1
DATE = 1_700_000_000
NOT_AN_OPTION = "That answer is not one of the options"


def user(uid: int, **extra: Any) -> dict:
    return {"id": uid, "is_bot": False, "first_name": f"Learner{uid}", **extra}


def private(uid: int) -> dict:
    return {"id": uid, "type": "private", "first_name": f"Learner{uid}"}


def text(uid: int, words: str, **extra: Any) -> dict:
    message = {"message_id": 90_000 + uid, "from": user(uid), "chat": private(uid), "date": DATE, "text": words, **extra}
    if words.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(words.split()[0])}]
    return {"message": message}


# name -> (update, what the bot does with it: "set aside" or "handled")
POISON: dict[str, tuple[dict, str]] = {
    "from without first_name": (
        {"message": {**text(701, "/start")["message"], "from": {"id": 701, "is_bot": False}}}, "set aside"),
    "datetimes (forwarded text)": (
        text(702, "look at this", edit_date=DATE + 60,
             forward_origin={"type": "user", "date": DATE - 3600, "sender_user": user(7020)}), "handled"),
    "my_chat_member (not subscribed)": (
        {"my_chat_member": {"chat": private(703), "from": user(703), "date": DATE,
                            "old_chat_member": {"status": "member", "user": {"id": 123456789, "is_bot": True, "first_name": "Tutor"}},
                            "new_chat_member": {"status": "kicked", "until_date": 0,
                                                "user": {"id": 123456789, "is_bot": True, "first_name": "Tutor"}}}},
        "handled"),
    "poll_answer (not subscribed, old form)": (
        {"poll_answer": {"poll_id": "p1", "user": user(704), "option_ids": [0]}}, "set aside"),
    "message without from": (
        {"message": {k: v for k, v in text(705, "hello")["message"].items() if k != "from"}}, "handled"),
    "callback with message null": (
        {"callback_query": {"id": "q706", "from": user(706), "chat_instance": "c", "message": None,
                            "data": f"c:madman-core:{START}"}}, "handled"),
    "huge update_id": (text(707, "/help"), "handled"),
    "button in a group": (
        {"callback_query": {"id": "q708", "from": user(708), "chat_instance": "c", "data": f"c:madman-core:{START}",
                            "message": {"message_id": 3, "date": DATE, "text": "Welcome!",
                                        "chat": {"id": -100708, "type": "supergroup", "title": "Study group"}}}},
        "handled"),
    "typed ²": (text(QUINN, "²"), "handled"),
    "typed ①": (text(QUINN, "①"), "handled"),
    "text that is a number": ({"message": {**text(709, "x")["message"], "text": 5}}, "set aside"),
    "chat id of 2**70": ({"message": {**text(710, "hi")["message"], "chat": {"id": 2**70, "type": "private"}}}, "set aside"),
    "lone surrogate": (text(711, "/start \ud800 \udfff"), "handled"),
}
ORDINARY = [text(ALICE, "/start madman-core"), text(BOB, "/start madman-core"), text(BOB, "/help")]
SET_ASIDE = {name for name, (_, outcome) in POISON.items() if outcome == "set aside"}


def wait_until(condition, seconds: float) -> None:
    """Poll `condition` until it holds or `seconds` pass (the caller asserts what it needs)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)


def set_aside_lines(records: list[logging.LogRecord]) -> list[int]:
    """The update ids named by the log's "set aside" lines."""
    return [int(r.getMessage().split()[1]) for r in records if " set aside: " in r.getMessage()]


def tracebacks(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.exc_info]


async def quinn_at_a_question(folder: Path) -> FakeTelegram:
    """A database where Quinn is at the first question; the fake Telegram it ran against."""
    async with Harness(folder) as h:
        await h.say(QUINN, "/start madman-core")
        for _ in OPENING[:-1]:
            await h.tap(QUINN, h.last(QUINN), "Continue ▸")
        assert question_key(h.last(QUINN)) == FIRST
        return h.telegram


def store_unhandled(db: Path, first_id: int) -> dict[str, int]:
    """Put the poison and the ordinary updates into the inbox, stored but not handled,
    ordinary and poison interleaved; their update ids by name ("ordinary N" for the others)."""
    names = [f"ordinary {i}" for i in range(len(ORDINARY))]
    order = [n for pair in zip(POISON, names + [None] * len(POISON)) for n in pair if n is not None]
    ids, next_id = {}, first_id
    store = Store(db)
    try:
        with store.atomic():
            for name in order:
                raw = dict(POISON[name][0] if name in POISON else ORDINARY[int(name.split()[1])])
                if name == "huge update_id":
                    raw["update_id"] = HUGE
                else:
                    raw["update_id"], next_id = next_id, next_id + 1
                learner, chat = _raw_ids(raw)
                store.db.execute(
                    "INSERT INTO inbox (update_id, learner, chat, payload, received_at) VALUES (?, ?, ?, ?, ?)",
                    [raw["update_id"], learner, chat, json.dumps(raw), store.now()],
                )
                ids[name] = raw["update_id"]
    finally:
        store.close()
    return ids


def inbox(db: Path) -> dict[int, tuple]:
    store = Store(db)
    try:
        rows = store.db.execute("SELECT update_id, handled_at, failed_at, error FROM inbox").fetchall()
    finally:
        store.close()
    return {row[0]: row[1:] for row in rows}


async def settled(h: Harness, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not h.task.done(), h.task.exception() if not h.task.cancelled() else "cancelled"
        waiting = h.store.db.execute("SELECT COUNT(*) FROM inbox WHERE handled_at IS NULL").fetchone()[0]
        pending = h.store.db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL").fetchone()[0]
        if not waiting and not pending and not h.dispatcher.workers:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the stored updates were not all handled")


def restarted(folder: Path, before: FakeTelegram) -> Harness:
    """A new bot on the same database; Telegram's next update ids come after the huge one."""
    h = Harness(folder)
    h.telegram.chats = before.chats
    h.telegram.next_message_id = before.next_message_id
    h.telegram.next_update_id = max(HUGE + 100, before.next_update_id)
    return h


async def test_poison_in_the_inbox_is_dealt_with_once_and_the_others_are_served(tmp_path: Path, caplog) -> None:
    before = await quinn_at_a_question(tmp_path)
    store = Store(tmp_path / "bot.db")
    quinn_before = store.progress(f"tg:{QUINN}", "madman-core", f"tg:{QUINN}")
    store.close()
    ids = store_unhandled(tmp_path / "bot.db", before.next_update_id)
    by_id = {update_id: name for name, update_id in ids.items()}

    caplog.set_level(logging.WARNING)
    caplog.clear()  # what the setup logged is not this test's
    # The first start: everything stored is handled; the bot keeps running.
    h = restarted(tmp_path, before)
    async with h:
        await settled(h)
        rows = {u: r for u, r in inbox(tmp_path / "bot.db").items() if u in by_id}
        assert all(handled for handled, _, _ in rows.values())
        aside = {by_id[u] for u, (_, failed, _) in rows.items() if failed}
        print("\nset aside:", {name: rows[ids[name]][2] for name in sorted(aside)})
        assert aside == SET_ASIDE
        assert sorted(set_aside_lines(caplog.records)) == sorted(ids[name] for name in SET_ASIDE)  # one line each
        assert tracebacks(caplog.records) == []

        # The other learners were served, from what was stored before the start.
        assert text_of(START) in h.telegram.bot_messages(ALICE)[-1]["text"]
        bob = [m["text"] for m in h.telegram.bot_messages(BOB)]
        assert text_of(START) in bob[0] and "How this works" in bob[-1]

        # What each handled poison update got.
        assert [m["text"] for m in h.telegram.bot_messages(702)] == [
            "Hello! Send /start to begin a lesson, or /help to see what I can do."]
        assert "How this works" in h.telegram.bot_messages(707)[0]["text"]  # the huge update_id
        assert h.telegram.bot_messages(711)[0]["text"].startswith("There is no lesson called “\ufffd”.\n\nLessons")  # a lone surrogate
        for silent in (701, 703, 704, 705, 706, 708, 709, -100708):
            assert h.telegram.bot_messages(silent) == [], silent
        answers = [p for m, p in h.telegram.calls if m == "answerCallbackQuery"]
        assert [(a["callback_query_id"], a.get("text")) for a in answers] == [("q708", UNKNOWN_BUTTON)]
        refusals = [
            (update_id, json.loads(body)["text"], error)
            for update_id, body, error in h.store.db.execute(
                "SELECT update_id, body, error FROM outbox WHERE chat_id = ? AND update_id IN (?, ?) ORDER BY id",
                [QUINN, ids["typed ²"], ids["typed ①"]],
            )
        ]
        for name in ("typed ²", "typed ①"):  # each answered (the first reply may be overtaken by the second)
            assert any(u == ids[name] and NOT_AN_OPTION in t for u, t, _ in refusals), (name, refusals)
        assert NOT_AN_OPTION in "".join(m["text"] for m in h.telegram.bot_messages(QUINN))
        assert h.store.progress(f"tg:{QUINN}", "madman-core", f"tg:{QUINN}") == quinn_before
        assert h.store.events(learner="tg:706") == [] and h.store.events(learner="tg:708") == []

        # The bot goes on polling, from after the huge update_id: new updates are served.
        replies = await h.tap(ALICE, h.last(ALICE), "Continue ▸")
        assert replies and "Continue" in json.dumps(h.telegram.buttons(replies[-1]))
        replies = await h.say(BOB, "\ud800")  # a lone surrogate through the poller itself
        assert replies
        await settled(h)
    first = inbox(tmp_path / "bot.db")
    lines = len(set_aside_lines(caplog.records))

    # The second start: nothing is set aside again, nothing is handled again.
    sent_before = {chat: len(messages) for chat, messages in h.telegram.chats.items()}
    h2 = restarted(tmp_path, h.telegram)
    async with h2:
        await settled(h2)
        replies = await h2.say(ALICE, "/progress")  # she went on from the start with Continue
        assert part_of(OPENING[1]) in replies[0]["text"] and CORE.section_of[OPENING[1]].title in replies[0]["text"]
        await settled(h2)
    assert len(set_aside_lines(caplog.records)) == lines
    assert tracebacks(caplog.records) == []
    after = inbox(tmp_path / "bot.db")
    assert {u: after[u] for u in first} == first  # the same rows, handled and set aside as before
    for chat, count in sent_before.items():
        if chat != ALICE:
            assert len(h2.telegram.chats.get(chat, [])) == count, f"chat {chat} was sent something again"


def test_the_bot_process_starts_on_a_poisoned_inbox(fake_server, tmp_path: Path) -> None:  # noqa: F811
    """The same, with `tutorbot run` as its own process (logs written as in production)."""
    telegram, server = fake_server
    before = asyncio.run(quinn_at_a_question(tmp_path))
    ids = store_unhandled(tmp_path / "bot.db", before.next_update_id)
    telegram.next_update_id = HUGE + 100
    log = tmp_path / "bot.log"
    bot = BotProcess(server, tmp_path / "bot.db", log)
    bot.start()
    try:
        wait_until(lambda: telegram.bot_messages(ALICE) and len(telegram.bot_messages(BOB)) >= 2, 20)
        assert text_of(START) in telegram.bot_messages(ALICE)[-1]["text"], log.read_text()
        telegram.send_text(ALICE, "/progress")  # served live, after the huge update_id
        wait_until(lambda: "Questions answered" in telegram.bot_messages(ALICE)[-1]["text"], 15)
        assert part_of(START) in telegram.bot_messages(ALICE)[-1]["text"]
    finally:
        assert bot.stop() == 0
    text_of_log = log.read_text()
    assert "Traceback" not in text_of_log
    lines = [line for line in text_of_log.splitlines() if " set aside: " in line]
    assert sorted(int(line.split(" set aside: ")[0].split()[-1]) for line in lines) == sorted(ids[n] for n in SET_ASIDE)
    rows = inbox(tmp_path / "bot.db")
    assert all(handled for handled, _, _ in rows.values())

    bot.start()  # a second start: nothing is set aside again
    try:
        telegram.send_text(BOB, "/progress")
        wait_until(lambda: "Questions answered" in telegram.bot_messages(BOB)[-1]["text"], 15)
        assert part_of(START) in telegram.bot_messages(BOB)[-1]["text"]
    finally:
        assert bot.stop() == 0
    assert len([line for line in log.read_text().splitlines() if " set aside: " in line]) == len(lines)
    after = inbox(tmp_path / "bot.db")
    assert {u: after[u] for u in rows} == rows  # handled and set aside as before, nothing again

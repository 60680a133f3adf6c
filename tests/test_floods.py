"""Floods: one learner hammering the bot, a thousand learners at once, SIGTERM under load.

(a) One learner sends 100 updates a second for 3 seconds (text, taps on an old button,
    /help) while five others go through the lesson: their reply latency, with and
    without the flood; the flooder's replies stay within the `QUIET` allowance.
(b) 1,000 learners start and tap Continue at the same time: nothing lost, nothing twice.
(c) The bot as its own process gets SIGTERM while 200 taps are in hand: it exits 0 in
    time, and after a restart every tap is recorded once and every reply goes out.

Run with `-s` to see the figures.
"""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from unittest import mock

from telegram.ext import AIORateLimiter

from bot.store import Store
from bot.telegram_bot import app as app_module
from bot.telegram_bot.app import SHUTDOWN_GRACE, services
from bot.telegram_bot.services import QUIET
from tests.core_lesson import OPENING, START, text_of
from tests.fake_telegram import FakeBotAPIServer, FakeTelegram
from tests.test_bot_process import BotProcess, Learner, is_step
from tests.test_telegram_bot import Harness

FLOODER = 700
FLOOD_RATE = 100  # updates a second
FLOOD_SECONDS = 3.0
READING = 0.4  # seconds a learner takes to read a step before acting on it
ACTIONS = 8  # /start and the next seven steps: about as long as the flood


# --- (a) one learner floods, five go on ------------------------------------------------------


class Timed(Learner):
    """A learner who acts as soon as the next step arrives, timing each reply."""

    def __init__(self, telegram: FakeTelegram, user: int, wrong_first: bool):
        super().__init__(telegram, user, wrong_first)
        self.samples: list[tuple[float, float]] = []  # (pushed at, seconds until the next step arrived)

    async def next_step(self, timeout: float = 10.0) -> None:
        update_id = self.telegram.next_update_id - 1
        pushed = self.telegram.pushed[update_id]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            steps = [m for m in self.telegram.bot_messages(self.user)[self.seen:] if is_step(m)]
            if steps:
                self.step = steps[0]
                arrived = self.telegram.arrived[(self.user, self.step["message_id"])]
                self.samples.append((pushed, arrived - pushed))
                return
            await asyncio.sleep(0.002)
        raise AssertionError(f"learner {self.user}: no reply to update {update_id} in {timeout} s")

    async def go_through(self, actions: int) -> None:
        """/start, then the lesson step by step, `actions` in all (or to its end)."""
        for _ in range(actions):
            if self.step is not None:
                await asyncio.sleep(READING)
            self.act()
            await self.next_step()
            if self.done:
                return


async def flood(h: Harness, old: dict, ids: dict[int, str]) -> tuple[float, float]:
    """FLOOD_RATE updates a second for FLOOD_SECONDS: "hello?", a tap on `old`, /help in turn."""
    telegram = h.telegram
    data = telegram.buttons(old)[0][1] if telegram.buttons(old) else f"c:madman-core:{START}"
    started = time.monotonic()
    total = int(FLOOD_RATE * FLOOD_SECONDS)
    for n in range(total):
        due = started + n / FLOOD_RATE
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        kind = n % 3
        if kind == 0:
            ids[telegram.send_text(FLOODER, "hello?")] = "text"
        elif kind == 1:
            ids[telegram.press(FLOODER, old["message_id"], data)] = "button"
        else:
            ids[telegram.send_text(FLOODER, "/help")] = "command"
    return started, time.monotonic()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def test_a_flooding_learner_slows_nobody_down(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    telegram = h.telegram
    async with h:
        # The flooder starts the lesson and goes one step on: the first message's button is old.
        await h.say(FLOODER, "/start madman-core")
        old = h.last(FLOODER)
        await h.tap(FLOODER, old, "Continue ▸")
        old = telegram.message(FLOODER, old["message_id"])
        # Without the flood.
        quiet = [Timed(telegram, 710 + i, wrong_first=i % 2 == 0) for i in range(5)]
        await asyncio.gather(*(learner.go_through(ACTIONS) for learner in quiet))
        services(h.app).allowance.clear()  # every allowance full: the most the flooder can get (see the bound)
        # With the flood: the others start once it is under way.
        ids: dict[int, str] = {}
        flooding = asyncio.create_task(flood(h, old, ids))
        await asyncio.sleep(0.1)
        busy = [Timed(telegram, 720 + i, wrong_first=i % 2 == 0) for i in range(5)]
        await asyncio.gather(*(learner.go_through(ACTIONS) for learner in busy))
        flood_start, flood_end = await flooding
        flood_end_wall = time.time() - (time.monotonic() - flood_end)
        # Every one of the flooder's updates gets handled.
        deadline = time.monotonic() + 20
        marks = ",".join(map(str, ids))
        while time.monotonic() < deadline:
            stored = h.store.db.execute(
                f"SELECT COUNT(*), COUNT(handled_at), COUNT(failed_at), MAX(handled_at) FROM inbox WHERE update_id IN ({marks})"
            ).fetchone()
            if stored[:2] == (len(ids), len(ids)):
                break
            await asyncio.sleep(0.05)
        assert stored[:3] == (len(ids), len(ids), 0), stored
        drained = datetime.fromisoformat(stored[3]).timestamp() - flood_end_wall
        events = h.events(FLOODER)
        outbox = h.store.db.execute(
            f"SELECT kind, sent_at IS NOT NULL, error FROM outbox WHERE chat_id = ? AND update_id IN ({marks})", [FLOODER]
        ).fetchall()
        shown = h.store.db.execute(  # every step message the flooder was sent: (node, message id)
            "SELECT step, message_id FROM outbox WHERE chat_id = ? AND step IS NOT NULL AND message_id IS NOT NULL", [FLOODER]
        ).fetchall()
        calls = [m for m, p in telegram.calls if str(p.get("chat_id")) == str(FLOODER)]
        assert not h.task.done()

    base = [lat for learner in quiet for _, lat in learner.samples]
    during = [lat for learner in busy for pushed, lat in learner.samples if flood_start <= pushed <= flood_end]
    print(
        f"\n[flood a] latency without the flood: median {median_ms(base):.1f} ms, max {max(base) * 1000:.1f} ms "
        f"({len(base)} replies); during the flood: median {median_ms(during):.1f} ms, "
        f"max {max(during) * 1000:.1f} ms ({len(during)} replies)"
    )

    # The flooder's replies: a burst and then about one a second per kind of input.
    span = flood_end - flood_start + max(drained, 0.0)
    allowance = sum(QUIET[k][0] + math.ceil(span / QUIET[k][1]) for k in ("text", "button", "command"))
    # What moved the flooder's lesson on: "hello?" at a message step, read as Continue, but
    # only where that step had reached the flooder before they sent the text.
    advanced = [e for e in events if e["update_id"] in ids]
    assert all(ids[e["update_id"]] == "text" and e["input"]["kind"] == "continue" for e in advanced), advanced
    unseen = []
    for event in advanced:
        arrivals = [telegram.arrived[(FLOODER, mid)] for step, mid in shown if step == f"madman-core:{event['node']}"]
        if not arrivals or min(arrivals) > telegram.pushed[event["update_id"]]:
            unseen.append(event["update_id"])
    sent = [row for row in outbox if row[0] == "send" and row[1]]
    per_reply = 2  # a refusal is a note and the step again, at most
    bound = per_reply * (allowance + len(advanced))
    superseded = sum(1 for row in outbox if row[2] == "superseded")
    edits = sum(1 for row in outbox if row[0] == "edit")
    by_method = {method: calls.count(method) for method in sorted(set(calls))}
    print(
        f"[flood a] flooder: {len(ids)} updates in {flood_end - flood_start:.1f} s, the last handled {drained * 1000:.0f} ms "
        f"after the flood; {len(advanced)} moved the lesson on ({len(unseen)} at a step not yet shown); "
        f"{len(sent)} messages sent (bound {bound} = {per_reply} x ({allowance} rationed replies in {span:.1f} s "
        f"+ {len(advanced)} steps)), {superseded} superseded before sending; {edits} edits queued; "
        f"Bot API calls to the flooder's chat: {by_method}"
    )
    assert len(during) >= 20, "too few replies measured during the flood"
    assert median_ms(during) - median_ms(base) < 100
    assert len(sent) <= bound
    assert unseen == []
    assert drained < 2.0


# --- (b) a thousand learners at once -------------------------------------------------------


CROWD = 1000
TAPS = len(OPENING) - 1  # Continue taps after /start, through the opening messages to the first question


def no_rate_limiter():  # noqa: ANN201
    """python-telegram-bot's `AIORateLimiter` off (Telegram's 30 sends a second overall):
    with it, 1,000 learners' ~9,000 calls would take five minutes whatever the bot does."""
    return mock.patch.object(app_module, "AIORateLimiter", lambda **_: AIORateLimiter(overall_max_rate=0, group_max_rate=0))


async def test_a_thousand_learners_at_once(tmp_path: Path) -> None:
    # On this kind of disk each commit's fsync takes ~1.7 ms, and the ~11,000 commits would
    # take most of the time: the database goes on tmpfs, to measure the bot, not the disk
    # (FLOOD_DB_DIR=<folder> to measure on a disk).
    folder = Path(os.environ.get("FLOOD_DB_DIR") or ("/dev/shm" if Path("/dev/shm").is_dir() else tmp_path))
    with tempfile.TemporaryDirectory(dir=folder) as where:
        await thousand(Path(where))


async def thousand(tmp_path: Path) -> None:
    with no_rate_limiter():
        h = Harness(tmp_path)
    telegram = h.telegram
    users = [100_000 + i for i in range(CROWD)]
    taps: dict[int, list[int]] = {user: [] for user in users}
    seen = dict.fromkeys(users, 0)
    waiting = set(users)
    async with h:
        started = time.monotonic()
        for user in users:  # everybody at once
            telegram.send_text(user, "/start madman-core")
        deadline = started + 50
        while waiting and time.monotonic() < deadline:
            for user in list(waiting):
                messages = telegram.bot_messages(user)
                step = next((m for m in messages[seen[user]:] if is_step(m)), None)
                if step is None:
                    continue
                if len(taps[user]) == TAPS:
                    waiting.discard(user)
                    continue
                seen[user] = len(messages)
                taps[user].append(telegram.press(user, step["message_id"], telegram.buttons(step)[0][1]))
            await asyncio.sleep(0.05)
        took = time.monotonic() - started
        assert not waiting, f"{len(waiting)} learners did not get through in {took:.0f} s"
        # Nothing lost, nothing twice.
        for user in users:
            recorded = [e["update_id"] for e in h.events(user) if e["input"]["kind"] == "continue"]
            assert recorded == taps[user], user
            assert h.store.progress(f"tg:{user}", "madman-core", f"tg:{user}").state.node == OPENING[-1]
        await asyncio.sleep(0.2)  # the last edits
        rows = h.store.db.execute(
            "SELECT COUNT(*), COUNT(sent_at), COUNT(failed_at) FROM outbox"
        ).fetchone()
        assert rows[1] == rows[0] and rows[2] == 0, rows
        inbox = h.store.db.execute("SELECT COUNT(*), COUNT(handled_at), COUNT(failed_at) FROM inbox").fetchone()
        assert inbox == (CROWD * (TAPS + 1), CROWD * (TAPS + 1), 0), inbox
        calls = len(telegram.calls)
        messages = sum(len(telegram.bot_messages(user)) for user in users)
    print(
        f"\n[flood b] {CROWD} learners, /start and {TAPS} taps each: {inbox[0]} updates handled, "
        f"{rows[0]} outbox rows sent ({messages} messages, {rows[0] - messages} edits), {calls} Bot API calls "
        f"in {took:.1f} s: {inbox[0] / took:.0f} updates/s, {rows[0] / took:.0f} sends+edits/s "
        f"(Telegram itself allows 30 messages/s: {rows[0] / 30:.0f} s for these); database in {tmp_path.parent}"
    )
    assert took < 45  # ~9 s on 2 idle cores


# --- (c) SIGTERM under load, the bot as its own process ------------------------------------------


SIGTERM_CROWD = 200
SEND_DELAY = 0.05  # seconds the fake takes per send or edit, so the queue cannot drain before the stop


def read(db: Path, sql: str, args: list | tuple = ()) -> list[tuple]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


async def seed(telegram: FakeTelegram, folder: Path, users: list[int]) -> None:
    """The learners /start in a bot run in process (quick, no rate limit) on the same
    database and the same fake Telegram: each ends with the welcome step on screen."""
    with no_rate_limiter(), mock.patch("tests.test_telegram_bot.FakeTelegram", lambda: telegram):
        h = Harness(folder)
    async with h:
        ids = [telegram.send_text(user, "/start madman-core") for user in users]
        for update_id in ids:
            await h.handled(update_id, timeout=20)
        while h.store.db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]:
            await asyncio.sleep(0.02)


def test_sigterm_under_load_loses_nothing(tmp_path: Path) -> None:
    telegram = FakeTelegram()
    db = tmp_path / "bot.db"
    users = [200_000 + i for i in range(SIGTERM_CROWD)]
    asyncio.run(seed(telegram, tmp_path, users))
    with FakeBotAPIServer(telegram) as server:
        bot = BotProcess(server, db, tmp_path / "bot.log")
        bot.start()
        polls = lambda: sum(1 for m, _ in telegram.calls if m == "getUpdates")  # noqa: E731
        before = polls()
        deadline = time.monotonic() + 20
        while polls() < before + 2 and time.monotonic() < deadline:  # polling (its first call confirms the rest)
            time.sleep(0.02)
        telegram.delays.update({"sendMessage": SEND_DELAY, "editMessageText": SEND_DELAY, "editMessageReplyMarkup": SEND_DELAY})
        # Everybody taps Continue at once; SIGTERM as soon as the bot has fetched the taps.
        taps = {}
        for user in users:
            welcome = telegram.last_bot_message(user)
            taps[user] = telegram.press(user, welcome["message_id"], telegram.buttons(welcome)[0][1])
        while not all(update_id in telegram.delivered for update_id in taps.values()) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert all(update_id in telegram.delivered for update_id in taps.values())
        stopping = time.monotonic()
        assert bot.stop() == 0
        stopped_in = time.monotonic() - stopping
        assert stopped_in < SHUTDOWN_GRACE + 3, stopped_in
        done_before = read(db, "SELECT COUNT(*) FROM events WHERE update_id IN (%s)" % ",".join(map(str, taps.values())))[0][0]
        waiting_before = read(db, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL")[0][0]
        replied_before = sum(1 for user in users if len(telegram.bot_messages(user)) > 1)
        # Restart: the rest is handled and every reply goes out.
        restarted = time.monotonic()
        bot.start()
        deadline = time.monotonic() + 40
        marks = ",".join(map(str, taps.values()))
        while time.monotonic() < deadline:
            recorded = read(db, f"SELECT COUNT(*) FROM events WHERE update_id IN ({marks})")[0][0]
            unhandled = read(db, "SELECT COUNT(*) FROM inbox WHERE handled_at IS NULL")[0][0]
            unsent = read(db, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")[0][0]
            if recorded == len(taps) and unhandled == 0 and unsent == 0:
                break
            time.sleep(0.1)
        drained_in = time.monotonic() - restarted
        assert bot.stop() == 0
    log = (tmp_path / "bot.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    store = Store(db)
    try:
        for user in users:
            events = store.events(learner=f"tg:{user}")
            assert [e["input"]["kind"] for e in events] == ["start", "continue"], (user, events)
            assert events[1]["update_id"] == taps[user]
            assert store.progress(f"tg:{user}", "madman-core", f"tg:{user}").state.node == OPENING[1]
        rows = store.db.execute("SELECT COUNT(*), COUNT(sent_at), COUNT(failed_at) FROM outbox").fetchone()
        assert rows[0] == rows[1] and rows[2] == 0, rows
        sent_rows = store.db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'send'").fetchone()[0]
        inbox = store.db.execute("SELECT COUNT(*), COUNT(handled_at), COUNT(failed_at) FROM inbox").fetchone()
        assert inbox == (2 * len(users), 2 * len(users), 0), inbox
    finally:
        store.close()
    for user in users:  # every learner sees the next step
        assert any(text_of(OPENING[1]) in m["text"] for m in telegram.bot_messages(user)[1:])
    shown = sum(len(telegram.bot_messages(user)) for user in users)
    print(
        f"\n[flood c] {len(users)} taps, SIGTERM once fetched: exit 0 after {stopped_in:.2f} s "
        f"(grace {SHUTDOWN_GRACE:.0f} s); by then {done_before} taps recorded, {replied_before} learners answered, "
        f"{waiting_before} outbox rows waiting; after the restart all done in {drained_in:.1f} s; "
        f"duplicate messages: {shown - sent_rows} of {shown}"
    )

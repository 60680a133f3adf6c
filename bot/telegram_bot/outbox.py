"""The reply outbox: no reply the bot decided on is ever lost.

A handler never sends directly. It adds its messages (and edits) to the `outbox` table in
the same transaction that records the learner's answer and marks the update handled;
after the commit, the chat is asked for (`request`) and one of a few senders sends its
rows in order (`flush`), marking each one sent when Telegram confirms it. If the process
dies in between, the rows are still there and go out at the next start, before anything
newer for that chat. A send that fails for a
reason that may pass (network, 5xx, a long RetryAfter) stays in the outbox and is tried
again later, still in order; one that can never succeed (the learner blocked the bot, a
message that no longer exists) is marked failed with its error and skipped, and so is an
edit that failed `EDIT_ATTEMPTS` times (it only tidies up an older message).

A message goes out at least once. It can go out twice only in the narrow window between
Telegram's confirmation and the commit of its mark in the database (a crash right then,
or a database that refuses the write for longer than we wait): Telegram has no
idempotency key for sends, so that window cannot be closed from here. The mark lingers
(`Store.lingering`): it commits with the next answer any learner gives, or within 50 ms,
so that a busy bot makes one commit per answer rather than two.

Rows marked `droppable` (refusals, a step shown again) become moot when a newer reply for
the same chat is added before they went out; they are marked failed as "superseded".
Group study goes through this same table: polls (whose ids are kept, since their answers
name them) and the closing of a poll are rows too. A group gets at most `GROUP_PER_MINUTE`
rows in any minute (Telegram's limit for a bot in one group), counted from the table
itself, so a restart does not reset the count. Bulk traffic (a remedy to each of a
group's members) has `priority` 1: it goes only when no person's reply waits, in rounds
of at most `BULK_CHATS` chats, each `BULK_PAUSE` after the last was sent, which keeps the
bot under its overall limit (about 30 a second) with the replies people wait for.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timedelta
from typing import Any

from telegram import LinkPreviewOptions
from telegram.error import BadRequest, ChatMigrated, InvalidToken, TelegramError

from bot.store import FAILED_TEXT, UNTRIMMED, Store, wait_out
from bot.telegram_bot.render import OutMessage, split
from bot.telegram_bot.sending import Blocked, Sender

log = logging.getLogger(__name__)

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
RETRY_FIRST = 2.0  # seconds before a failed send is tried again; doubles up to RETRY_MAX
RETRY_MAX = 120.0
EDIT_ATTEMPTS = 5  # an edit that failed this often is given up (a message is retried for ever)
PENDING = "sent_at IS NULL AND failed_at IS NULL"
GROUP_PER_MINUTE = 20  # rows a group chat (negative id) gets in any 60 seconds
PRIVATE_PER_SECOND = 1.0  # rows a second to one person, after a burst of PRIVATE_BURST
PRIVATE_BURST = 3
BULK_CHATS = 20  # chats with bulk rows only that start sending per `flush_due`
BULK_PAUSE = 1.0  # seconds from one round of bulk chats sent to the next asked for
READ_AT_ONCE = 20  # a chat's waiting rows read in one statement by `flush`
TOPIC_GONE = ("thread not found", "topic_closed", "topic_deleted", "topic closed", "topic deleted")  # Telegram's words
SENDS_AT_ONCE = 8  # calls in flight from the outbox (Telegram takes ~0.1 s a call: room for 80 a second)


def well_formed(text: str) -> str:
    """`text` with each lone surrogate (a learner's odd input, echoed back) made U+FFFD:
    neither SQLite nor a UTF-8 request to Telegram can carry one."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass(frozen=True)
class Row:
    """A waiting row, its body as the JSON text stored: a chat's rows can wait in memory
    a while (a full class queues hundreds), and the text is a fraction of the parsed dict."""

    id: int
    chat_id: int
    kind: str
    text: str
    attempts: int

    @cached_property
    def body(self) -> dict[str, Any]:
        return json.loads(self.text)


class Outbox:
    """The outbox table, and sending it."""

    def __init__(self, store: Store, sender: Sender, group_per_minute: int | None = GROUP_PER_MINUTE, private_per_second: float | None = PRIVATE_PER_SECOND):
        """`group_per_minute`: rows a group may get in any minute; `private_per_second`: the
        pace of rows to one person, after a burst of `PRIVATE_BURST` (None: no limit)."""
        self.store = store
        self.sender = sender
        self.group_per_minute = group_per_minute
        self.private_per_second = private_per_second
        self.private_allowance: dict[int, tuple[float, float]] = {}  # chat id -> (tokens, loop time)
        self.clean: set[int] = set()  # chats with no droppable row waiting (see `supersede`)
        self.locks: dict[int, asyncio.Lock] = {}  # one flush at a time per chat
        self.users: dict[int, int] = {}  # chat id -> flushes running or waiting
        self.retry_at: dict[int, float] = {}  # chat id -> loop time of the next try
        # Chat id -> the `tick` of the last committed change to its waiting rows (rows added,
        # superseded, given up): a flush that saw none since it read them need not read again.
        self.changes: dict[int, int] = {}
        self.tick = 0
        self.forgot_changes_at = 0  # `changes` is a cache: older entries are dropped at times
        # Chat id -> its waiting rows, for chats where this process knows them all: read whole
        # from the table, then kept up to date as rows are added (on commit) and sent, so a
        # flush need not read them. Any other change to a chat's waiting rows (superseded,
        # given up, an attempt counted) drops its entry, and so does `Store.forget`.
        self.queued: dict[int, list[Row]] = {}
        self.epoch = store.epoch
        # Turns to send, first come first served. python-telegram-bot's rate limiter lets its
        # waiters race for each free slot, so with hundreds of chats waiting some waited two
        # rounds and others none; only `SENDS_AT_ONCE` wait there now, the rest queue in order.
        self.turns = asyncio.Semaphore(SENDS_AT_ONCE)
        # Chats asked for (`request`), first asked first served, people's replies before bulk
        # traffic; `SENDS_AT_ONCE` senders work through them. A chat waiting for its turn costs
        # an entry here (its rows are in `queued`), not a task with its frames: a full class
        # has hundreds waiting behind Telegram's 30 messages a second.
        self.ready: dict[int, None] = {}
        self.bulk_ready: dict[int, None] = {}
        self.senders: set[asyncio.Task[None]] = set()
        self.paced: dict[int, float] = {}  # chat id -> loop time its next row's token is due
        # A round of bulk chats (`flush_due`) starts `BULK_PAUSE` after the last one is sent,
        # so that with the people's replies Telegram never gets much over 30 in a second.
        self.bulk_sending = 0
        self.bulk_next_at = float("-inf")  # loop time the next round may start
        self.stopping = False
        self.sent_at: dict[int, float] = {}  # chat id -> loop time its last row went out

    # --- adding (inside the caller's transaction) ------------------------------------------

    def add(
        self,
        chat_id: int,
        message: OutMessage,
        update_id: int | None = None,
        droppable: bool = False,
        priority: int = 0,
        erase: bool = False,
        thread: int | None = None,
    ) -> None:
        """Queue one message (split at Telegram's length limit: a row per piece).

        `erase`: delete the row once it is sent (a reply to a learner who was just forgotten).
        `thread`: the forum topic it goes to (None: the General topic, or a chat without topics).
        """
        if droppable:
            self.clean.discard(chat_id)
        pieces = split(message.text)
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            body: dict[str, Any] = {"text": piece}
            if last and message.buttons:
                body["buttons"] = message.buttons
            if erase:
                body["erase"] = True
            if thread is not None:
                body["thread"] = thread
            self._insert(chat_id, "send", body, message.step if last else None, update_id, droppable, priority)

    def add_edit(
        self,
        chat_id: int,
        message_id: int | str,
        text: str | None,
        update_id: int | None = None,
        erase: bool = False,
        buttons: tuple = (),
    ) -> None:
        """Queue an edit of a message: its buttons removed (or replaced by `buttons`, which
        keeps the message open for taps), and its text replaced if given. The message is
        given by its id, or by the step it shows (a "<lesson>:<node>" string: see `add_stop_poll`)."""
        body: dict[str, Any] = {"of_step": message_id} if isinstance(message_id, str) else {"message_id": message_id}
        if text is not None:
            body["text"] = split(text)[0]
        if buttons:
            body["buttons"] = buttons
        if erase:
            body["erase"] = True
        self._insert(chat_id, "edit", body, None, update_id, False, 0)

    def add_poll(
        self,
        chat_id: int,
        question: str,
        options: list[str],
        correct: int | None,
        explanation: str | None,
        buttons: tuple,
        step: str,
        update_id: int | None = None,
        thread: int | None = None,
    ) -> None:
        """Queue a non-anonymous poll: a quiz if `correct` (its option's position) is given."""
        poll = {"question": question, "options": options, "correct": correct, "explanation": explanation}
        body: dict[str, Any] = {"poll": poll, "buttons": buttons}
        if thread is not None:
            body["thread"] = thread
        self._insert(chat_id, "poll", body, step, update_id, False, 0)

    def add_stop_poll(self, chat_id: int, step: str, buttons: tuple = (), update_id: int | None = None) -> None:
        """Queue closing the poll that shows `step` (its buttons replaced by `buttons`).

        The poll is named by its step, not its message id: it may still be waiting in the
        outbox itself (a group's messages wait for its minute), and rows go out in order."""
        self._insert(chat_id, "stop_poll", {"of_step": step, "buttons": buttons}, None, update_id, False, 0)

    def move(self, old: int, new: int) -> bool:
        """The group `old` is now the supergroup `new`: everything stored for it moves (see
        `Store.move_chat`), its waiting rows included. Ask for `new` after the commit."""
        for chat in (old, new):
            self._rewritten(chat)
        return self.store.move_chat(old, new)

    def leave_topic(self, chat_id: int, thread: int) -> None:
        """The group's forum topic `thread` is gone: its waiting rows go to the General topic
        (see `Store.leave_topic`). Ask for the chat after the commit."""
        self._rewritten(chat_id)
        self.store.leave_topic(chat_id, thread)

    def _rewritten(self, chat_id: int) -> None:
        """The chat's waiting rows are being rewritten in the store: what is kept of them in
        memory goes, and they are read again once the change is committed."""
        self.queued.pop(chat_id, None)
        self.clean.discard(chat_id)
        self.store.on_commit(lambda: self._changed(chat_id))

    def supersede(self, chat_id: int) -> None:
        """A newer reply for the chat is coming: droppable rows that have not gone out are moot.
        (No statement for a chat this process knows has none.)"""
        if chat_id in self.clean:
            return
        self.clean.add(chat_id)
        self.queued.pop(chat_id, None)
        if len(self.clean) > 100_000:  # a cache: start again
            self.clean = {chat_id}
        self.store.on_commit(lambda: self._changed(chat_id))
        self.store.db.execute(
            f"UPDATE outbox SET failed_at = ?, error = 'superseded' WHERE chat_id = ? AND droppable = 1 AND {PENDING}",
            [self.store.now(), chat_id],
        )

    def _insert(self, chat_id: int, kind: str, body: dict, step: str | None, update_id: int | None, droppable: bool, priority: int) -> None:
        text = well_formed(json.dumps(body, ensure_ascii=False))
        cursor = self.store.db.execute(
            "INSERT INTO outbox (chat, chat_id, kind, body, step, droppable, priority, update_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [f"tg:{chat_id}", chat_id, kind, text, step, int(droppable), priority, update_id, self.store.now()],
        )
        row = Row(cursor.lastrowid, chat_id, kind, text, 0)
        self.store.on_commit(lambda: self._added(row))

    def _added(self, row: Row) -> None:
        self._changed(row.chat_id)
        if row.chat_id in self.queued:
            self.queued[row.chat_id].append(row)

    # --- reading ---------------------------------------------------------------------------

    def delivered(self, chat_id: int, step: str, before: str | None = None, older_than: int | None = None) -> bool:
        """Whether `step` ("<lesson>:<node>") is the last step this chat was sent, and it
        arrived (by the time `before`, a store timestamp, if given; and before the chat's
        message `older_than`, if given: Telegram numbers a chat's messages in order, so this
        holds even when the learner's message was fetched after the step was marked sent).

        True for a chat with no step in the outbox at all (nothing to go by)."""
        row = self.store.db.execute(
            "SELECT step, sent_at, message_id FROM outbox WHERE chat_id = ? AND step IS NOT NULL "
            "AND (failed_at IS NULL OR error != 'superseded') ORDER BY id DESC LIMIT 1",
            [chat_id],
        ).fetchone()
        if row is None:
            return True
        sent_at, message_id = row[1], row[2]
        if older_than is not None and (message_id is None or message_id >= older_than):
            return False
        return row[0] == step and sent_at is not None and (before is None or sent_at <= before)

    def edited(self, chat_id: int, message_id: int) -> bool:
        """Whether the bot has taken the buttons off this message (an answer was accepted there)."""
        row = self.store.db.execute(
            "SELECT 1 FROM outbox WHERE chat = ? AND kind = 'edit' AND json_extract(body, '$.message_id') = ? "
            "AND json_extract(body, '$.buttons') IS NULL LIMIT 1",
            [f"tg:{chat_id}", message_id],
        ).fetchone()
        return row is not None

    def waiting_chats(self) -> list[tuple[int, bool]]:
        """Chats with rows not yet sent, those waiting longest first, each with whether all
        its waiting rows are bulk traffic (priority 1)."""
        rows = self.store.db.execute(
            f"SELECT chat_id, MIN(id) AS first, MIN(priority) FROM outbox WHERE {PENDING} GROUP BY chat_id ORDER BY first"
        ).fetchall()
        return [(chat_id, low >= 1) for chat_id, _, low in rows]

    def message_of(self, chat_id: int, step: str) -> int | None:
        """The id of the latest message sent to the chat showing `step` ("<lesson>:<node>")."""
        row = self.store.db.execute(
            "SELECT message_id FROM outbox WHERE chat_id = ? AND step = ? AND message_id IS NOT NULL ORDER BY id DESC LIMIT 1",
            [chat_id, step],
        ).fetchone()
        return None if row is None else row[0]

    def step_of(self, chat_id: int, message_id: int) -> str | None:
        """The step ("<lesson>:<node>") the chat's message `message_id` showed, if it showed one."""
        row = self.store.db.execute(
            "SELECT step FROM outbox WHERE chat_id = ? AND message_id = ? AND step IS NOT NULL LIMIT 1", [chat_id, message_id]
        ).fetchone()
        return None if row is None else row[0]

    def reached(self, chat_id: int) -> bool:
        """Whether the bot can write to this private chat: it has sent something there, and
        the learner has not blocked it since."""
        row = self.store.db.execute(
            "SELECT 1 FROM outbox WHERE chat_id = ? AND sent_at IS NOT NULL LIMIT 1", [chat_id]
        ).fetchone()
        if row is None:
            return False
        blocked = self.store.db.execute("SELECT blocked_at FROM learners WHERE id = ?", [f"tg:{chat_id}"]).fetchone()
        return blocked is None or blocked[0] is None

    def poll(self, poll_id: str) -> tuple[int, str] | None:
        """(chat id, step) of the poll a poll answer names, if the bot sent it."""
        row = self.store.db.execute("SELECT chat_id, step FROM outbox WHERE poll_id = ? LIMIT 1", [poll_id]).fetchone()
        return None if row is None else (row[0], row[1])

    def private_wait(self, chat_id: int) -> float:
        """Seconds to wait before the next row to this person (0: now), and count it: a
        token bucket of `PRIVATE_BURST`, refilled at `private_per_second`. Kept in memory:
        after a restart a person may get one more burst."""
        if chat_id < 0 or self.private_per_second is None:
            return 0.0
        now = asyncio.get_running_loop().time()
        tokens, then = self.private_allowance.get(chat_id, (float(PRIVATE_BURST), now))
        tokens = min(float(PRIVATE_BURST), tokens + (now - then) * self.private_per_second)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.private_per_second
        # This row takes a token now, or (waiting) the one that will have come by then.
        self.private_allowance[chat_id] = (tokens - 1, now) if not wait else (0.0, now + wait)
        if len(self.private_allowance) > 10_000:  # a full bucket need not be kept
            self.private_allowance = {k: v for k, v in self.private_allowance.items() if now - v[1] < PRIVATE_BURST / self.private_per_second}
        return wait

    def group_wait(self, chat_id: int) -> float:
        """Seconds until the group `chat_id` may get another row (0: now), by `GROUP_PER_MINUTE`."""
        if chat_id >= 0 or self.group_per_minute is None:
            return 0.0
        now = self.store.clock()
        since = (now - timedelta(seconds=60)).isoformat(timespec="milliseconds")
        rows = self.store.db.execute(
            "SELECT sent_at FROM outbox WHERE chat_id = ? AND sent_at > ? ORDER BY sent_at DESC LIMIT ?",
            [chat_id, since, self.group_per_minute],
        ).fetchall()
        if len(rows) < self.group_per_minute:
            return 0.0
        oldest = datetime.fromisoformat(rows[-1][0])
        return max(0.05, (oldest + timedelta(seconds=60) - now).total_seconds())

    def _waiting(self, chat_id: int) -> list[Row]:
        """The chat's first `READ_AT_ONCE` rows waiting to go out, in order."""
        if self.epoch != self.store.epoch:  # learners were forgotten: their rows are gone
            self.queued.clear()
            self.epoch = self.store.epoch
        if chat_id in self.queued:
            return self.queued[chat_id][:READ_AT_ONCE]
        found = self.store.db.execute(
            f"SELECT id, chat_id, kind, body, attempts FROM outbox WHERE chat_id = ? AND {PENDING} ORDER BY id LIMIT ?",
            [chat_id, READ_AT_ONCE],
        ).fetchall()
        rows = [Row(*row) for row in found]
        if len(rows) < READ_AT_ONCE:  # all of them
            if len(self.queued) >= 10_000:  # a cache: keep the chats with rows waiting
                self.queued = {chat: waiting for chat, waiting in self.queued.items() if waiting}
            self.queued[chat_id] = list(rows)
        return rows

    def _went(self, row: Row) -> None:
        """The row is no longer waiting (sent, or given up): out of `queued`."""
        rows = self.queued.get(row.chat_id)
        if rows and rows[0].id == row.id:
            rows.pop(0)
        elif rows is not None:
            del self.queued[row.chat_id]  # not what it expected: read the table next time

    def _changed(self, chat_id: int) -> None:
        """Note a committed change to the chat's waiting rows."""
        self.tick += 1
        self.changes[chat_id] = self.tick
        if len(self.changes) > 100_000:  # a cache: start again, and count every chat as changed
            self.changes, self.forgot_changes_at = {}, self.tick

    def _changed_since(self, chat_id: int, tick: int) -> bool:
        return self.changes.get(chat_id, self.forgot_changes_at) > tick

    # --- sending ---------------------------------------------------------------------------

    def request(self, chat_id: int, bulk: bool = False) -> None:
        """Have the chat's waiting rows sent, in turn (`bulk`: after every chat of people's
        replies asked for). Ask after the rows' commit. An ask made while the chat's rows are
        being sent is served after that flush: it leaves what came since to this ask."""
        if self.stopping or chat_id in self.ready:
            return
        if bulk:
            self.bulk_ready.setdefault(chat_id, None)
        else:
            self.bulk_ready.pop(chat_id, None)
            self.ready[chat_id] = None
        if len(self.senders) < SENDS_AT_ONCE:
            self.senders.add(asyncio.get_running_loop().create_task(self._sender(), name="outbox sender"))

    def busy(self, chat_id: int) -> bool:
        """Whether the chat is asked for or its rows are being sent."""
        return chat_id in self.ready or chat_id in self.bulk_ready or chat_id in self.locks

    async def _sender(self) -> None:
        """Send the chats asked for, one at a time, until none is left."""
        me = asyncio.current_task()
        try:
            while self.ready or self.bulk_ready:
                chats = self.ready or self.bulk_ready
                bulk = chats is self.bulk_ready
                chat_id = next(iter(chats))
                del chats[chat_id]
                self.bulk_sending += bulk
                try:  # (if the chat is being sent, this waits for that flush, then sends the rest)
                    await self.flush(chat_id, patient=False)
                except Exception:  # noqa: BLE001 - the rows stay; the next ask or `run` tries again
                    log.exception("outbox: sending to chat %s failed", chat_id)
                finally:
                    self.bulk_sending -= bulk
                    if bulk and not self.bulk_sending and not self.bulk_ready:
                        self._bulk_round_sent()
        finally:
            self.senders.discard(me)  # no await since the loop found nothing: no ask is missed

    async def stop_sending(self, grace: float) -> None:
        """Send what is asked for for up to `grace` seconds, then stop; the rest waits in the
        table for the next start."""
        self.stopping = True
        if self.senders:
            await asyncio.wait(self.senders, timeout=grace)
        for task in list(self.senders):
            task.cancel()
        await asyncio.gather(*self.senders, return_exceptions=True)

    async def _paced(self, chat_id: int, patient: bool) -> bool:
        """Take the token for the chat's next row by the pace for one person; wait for it if
        `patient`, else False if it is not due yet (the chat is asked for again when it is)."""
        loop = asyncio.get_running_loop()
        due = self.paced.pop(chat_id, None)
        asked = due is not None  # its ask is scheduled already
        if due is None:
            due = loop.time() + self.private_wait(chat_id)
        wait = due - loop.time()
        if wait <= 0:
            return True
        if patient:
            await asyncio.sleep(wait)
            return True
        self.paced[chat_id] = self.retry_at[chat_id] = due
        if not asked:
            loop.call_later(wait, self.request, chat_id)
        return False

    async def flush(self, chat_id: int, patient: bool = True) -> bool:
        """Send the chat's waiting rows in order; True if none is left waiting.

        Stops at the first row that cannot go out yet, so nothing overtakes it. Not
        `patient` (a sender serving an ask): leaves to a later ask the wait for the person's
        pace, and the rows added after the flush began, so that a learner who answers at
        once does not get a second turn before the chats that asked earlier."""
        lock = self.locks.setdefault(chat_id, asyncio.Lock())
        self.users[chat_id] = self.users.get(chat_id, 0) + 1
        try:
            async with lock:
                last: int | None = None  # a sender's turn: the newest row there was when it began
                newer = False
                while True:
                    read_at = self.tick
                    rows = await wait_out(lambda: self._waiting(chat_id), "reading the outbox")
                    if not patient and last is None and len(rows) < READ_AT_ONCE:
                        last = rows[-1].id if rows else 0
                    if last is not None and rows and rows[-1].id > last:
                        # Added since (the learner answered at once): they wait for that answer's
                        # turn, behind the chats that asked before it.
                        rows, newer = [row for row in rows if row.id <= last], True
                        if not rows:
                            return False
                    for row in rows:
                        if self._changed_since(chat_id, read_at):
                            break  # rows added, superseded or given up meanwhile: read them again
                        wait = await wait_out(lambda: self.group_wait(chat_id), "reading the outbox")
                        if wait:  # the group has had its messages for this minute
                            self.retry_at[chat_id] = asyncio.get_running_loop().time() + wait
                            return False
                        if not await self._paced(chat_id, patient) or not await self._send(row):
                            return False
                    else:
                        if len(rows) < READ_AT_ONCE and not self._changed_since(chat_id, read_at):
                            break  # all sent, and nothing new: no need to read again
                self.retry_at.pop(chat_id, None)
                self.paced.pop(chat_id, None)
                return not newer
        finally:
            self.users[chat_id] -= 1
            if not self.users[chat_id]:  # nobody else is flushing or waiting to: forget the lock
                del self.users[chat_id], self.locks[chat_id]

    async def flush_due(self) -> None:
        """Ask for every chat with waiting rows whose retry time has come."""
        now = asyncio.get_running_loop().time()
        chats = await wait_out(self.waiting_chats, "reading the outbox")
        round_done = not self.bulk_ready and not self.bulk_sending and now >= self.bulk_next_at - 0.001
        bulk = 0
        for chat, bulk_only in chats:
            if self.retry_at.get(chat, 0) > now or self.busy(chat):
                continue
            if bulk_only:
                bulk += 1
                if not round_done or bulk > BULK_CHATS:
                    continue
            self.request(chat, bulk=bulk_only)

    def _bulk_round_sent(self) -> None:
        """The last round's bulk chats are sent: the next round starts `BULK_PAUSE` from now."""
        loop = asyncio.get_running_loop()
        self.bulk_next_at = loop.time() + BULK_PAUSE
        loop.call_at(self.bulk_next_at, lambda: self.stopping or loop.create_task(self._flush_due_logged()))

    async def _flush_due_logged(self) -> None:
        try:
            await self.flush_due()
        except Exception:  # noqa: BLE001 - the loop must outlive any one failure
            log.exception("outbox: sending failed")

    async def run(self, stop: asyncio.Event, every: float = 1.0) -> None:
        """Until `stop`: send what is waiting (at start-up, and rows whose send failed)."""
        left = await wait_out(lambda: self.store.db.execute(f"SELECT COUNT(*) FROM outbox WHERE {PENDING}").fetchone()[0], "reading the outbox")
        if left:
            log.info("outbox: %d message(s) left waiting at the last stop go out first", left)
        while not stop.is_set():
            await self._flush_due_logged()
            try:
                await asyncio.wait_for(stop.wait(), every)
            except asyncio.TimeoutError:
                pass

    async def _send(self, row: Row) -> bool:
        """Send one row and record the outcome; False if it must wait and be tried again."""
        try:
            async with self.turns:
                message_id, poll_id = await self._call(row)
        except Blocked as exc:
            error = f"blocked: {exc}"
            await wait_out(lambda: self._fail_chat(row.chat_id, error), "recording what was sent")
            return True
        except ChatMigrated as exc:  # the group became a supergroup: its rows go to the new id
            new = exc.new_chat_id
            log.info("outbox: chat %s is now chat %s; its messages follow it", row.chat_id, new)
            await wait_out(lambda: self.move(row.chat_id, new), "recording what was sent")
            self.request(new)
            return False
        except BadRequest as exc:
            if "not modified" in str(exc).lower() or "poll has already been closed" in str(exc).lower():
                await wait_out(lambda: self._mark_sent(row, None), "recording what was sent")  # done already
                return True
            if row.body.get("thread") is not None and any(gone in str(exc).lower() for gone in TOPIC_GONE):
                thread = row.body["thread"]
                log.info("outbox: topic %s of chat %s is gone (%s); its messages go to the General topic", thread, row.chat_id, exc)
                await wait_out(lambda: self.leave_topic(row.chat_id, thread), "recording what was sent")
                self.request(row.chat_id)  # sent again at once, without the topic
                return False
            log.warning("outbox: %s to chat %s refused by Telegram: %s", row.kind, row.chat_id, exc)
            error = f"refused: {exc}"
            await wait_out(lambda: self._fail(row, error), "recording what was sent")
            return True
        except (TelegramError, OSError) as exc:  # network, 5xx, flood control, a revoked token
            attempts, error = row.attempts + 1, f"{type(exc).__name__}: {exc}"
            if row.kind in ("edit", "stop_poll") and attempts >= EDIT_ATTEMPTS and not isinstance(exc, InvalidToken):
                # An edit only tidies a message up: it must not hold the chat's replies back for good.
                log.warning("outbox: giving up on an edit in chat %s after %d tries (%s)", row.chat_id, attempts, error)
                await wait_out(lambda: self._fail(row, f"gave up: {error}"), "recording what was sent")
                return True
            wait = min(RETRY_FIRST * 2 ** (attempts - 1), RETRY_MAX)
            self.retry_at[row.chat_id] = asyncio.get_running_loop().time() + wait
            level = logging.ERROR if isinstance(exc, InvalidToken) else logging.WARNING
            log.log(level, "outbox: %s to chat %s failed (%s); trying again in %.0f s", row.kind, row.chat_id, error, wait)
            await wait_out(lambda: self._count_attempt(row, error), "recording what was sent")
            return False
        # Telegram has it now. A crash before the next line sends it again at the next start.
        await wait_out(lambda: self._mark_sent(row, message_id, poll_id), "recording what was sent")
        if len(self.sent_at) > 10_000:  # only the last few seconds matter (see services.typing)
            self.sent_at.clear()
        self.sent_at[row.chat_id] = asyncio.get_running_loop().time()
        return True

    async def _call(self, row: Row) -> tuple[int | None, str | None]:
        """Make the row's call; the message id it created, and the poll's id for a poll."""
        bot, body = self.sender.bot, row.body
        if row.kind == "send":
            markup = OutMessage(body["text"], _buttons(body.get("buttons"))).markup()
            sent = await self.sender.call(
                lambda: bot.send_message(
                    row.chat_id, body["text"], parse_mode="HTML", reply_markup=markup, link_preview_options=NO_PREVIEW,
                    message_thread_id=body.get("thread"),
                ),
            )
            return sent.message_id, None
        markup = OutMessage("", _buttons(body.get("buttons"))).markup()
        if "of_step" in body:  # sent before this row, as rows go out in order
            found = await wait_out(lambda: self.message_of(row.chat_id, body["of_step"]), "reading the outbox")
            if found is None:
                raise BadRequest("Message to edit not found (it was never sent)")
            body = {**body, "message_id": found}
        if row.kind == "poll":
            poll = body["poll"]
            quiz = poll["correct"] is not None
            sent = await self.sender.call(
                lambda: bot.send_poll(
                    row.chat_id, poll["question"], poll["options"], is_anonymous=False,
                    type="quiz" if quiz else "regular", allows_revoting=False,
                    correct_option_ids=[poll["correct"]] if quiz else None,
                    explanation=poll["explanation"], reply_markup=markup, message_thread_id=body.get("thread"),
                ),
            )
            return sent.message_id, sent.poll.id if sent.poll else None
        if row.kind == "stop_poll":
            await self.sender.call(lambda: bot.stop_poll(row.chat_id, body["message_id"], reply_markup=markup))
            return None, None
        if "text" in body:
            await self.sender.call(
                lambda: bot.edit_message_text(
                    body["text"], chat_id=row.chat_id, message_id=body["message_id"], parse_mode="HTML",
                    reply_markup=markup, link_preview_options=NO_PREVIEW,
                ),
            )
        else:
            await self.sender.call(
                lambda: bot.edit_message_reply_markup(chat_id=row.chat_id, message_id=body["message_id"], reply_markup=markup),
            )
        return None, None

    # --- recording outcomes ----------------------------------------------------------------

    def _mark_sent(self, row: Row, message_id: int | None, poll_id: str | None = None) -> None:
        self._went(row)
        if row.body.get("erase"):
            with self.store.atomic():
                self.store.db.execute("DELETE FROM outbox WHERE id = ?", [row.id])
            self.store.scrub()
            return
        # Lingering: it commits with the next answer, or within `LINGER` (see `Store.lingering`).
        # A crash before then sends this row again at the next start.
        with self.store.lingering():
            self.store.db.execute(
                "UPDATE outbox SET sent_at = ?, message_id = ?, poll_id = ?, attempts = attempts + 1 WHERE id = ?",
                [self.store.now(), message_id, poll_id, row.id],
            )

    def _fail(self, row: Row, error: str) -> None:
        self._went(row)
        with self.store.atomic():
            self.store.db.execute(
                "UPDATE outbox SET failed_at = ?, error = ?, attempts = attempts + 1 WHERE id = ?",
                [self.store.now(), error[:500], row.id],
            )

    def _fail_chat(self, chat_id: int, error: str) -> None:
        """The chat is closed to the bot: nothing waiting for it can be sent."""
        self.queued.pop(chat_id, None)
        self.store.on_commit(lambda: self._changed(chat_id))
        with self.store.atomic():
            if chat_id > 0:  # a private chat: its learner blocked the bot; their progress is kept
                self.store.mark_blocked(f"tg:{chat_id}")
            else:  # the bot was removed from the group: its study session cannot go on
                self.store.db.execute(
                    "UPDATE study_sessions SET state = 'stopped', due_at = NULL "
                    "WHERE chat_id = ? AND state IN ('running', 'paused')",
                    [chat_id],
                )
            self.store.db.execute(
                f"UPDATE outbox SET failed_at = ?, error = ? WHERE chat_id = ? AND {PENDING}",
                [self.store.now(), error[:500], chat_id],
            )

    def _count_attempt(self, row: Row, error: str) -> None:
        self.queued.pop(row.chat_id, None)
        with self.store.atomic():
            self.store.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, error = ? WHERE id = ?", [error[:500], row.id]
            )


def trim_sent(store: Store, before: str, limit: int = 2000) -> int:
    """Drop the text of up to `limit` messages and polls sent before `before` (a store time),
    the oldest first, then of messages given up on before then; return how many (`limit`
    means there may be more). Once sent or given up, nothing reads it again, it is most of
    the table, and it holds learners' answers echoed back. The row stays: the step it
    showed, its message id and when it went out are what the bot reads of sent rows. (The
    rows still to trim have indexes: `UNTRIMMED`, `FAILED_TEXT`.)"""
    trimmed = store.db.execute(
        f"UPDATE outbox SET body = '{{}}' WHERE id IN (SELECT id FROM outbox WHERE {UNTRIMMED} AND sent_at < ? "
        "ORDER BY id LIMIT ?)",
        [before, limit],
    ).rowcount
    if trimmed < limit:
        trimmed += store.db.execute(
            f"UPDATE outbox SET body = '{{}}' WHERE id IN (SELECT id FROM outbox WHERE {FAILED_TEXT} AND failed_at < ? "
            "ORDER BY id LIMIT ?)",
            [before, limit - trimmed],
        ).rowcount
    return trimmed


def counts(store: Store) -> dict[str, int]:
    """Replies waiting to be sent, and those given up on (blocked, refused; not superseded)."""
    waiting, given_up = store.db.execute(
        f"SELECT COUNT(*) FILTER (WHERE {PENDING}), "
        "COUNT(*) FILTER (WHERE failed_at IS NOT NULL AND error != 'superseded') FROM outbox"
    ).fetchone()
    return {"waiting": waiting, "given up": given_up}


def _buttons(stored: list | None) -> tuple:
    """Button rows as stored in JSON (lists) back to the tuples `OutMessage` holds."""
    return tuple(tuple((label, data) for label, data in row) for row in stored or ())

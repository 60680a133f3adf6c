"""The inbox: every Telegram update is stored before Telegram is told it arrived.

`Inbox` keeps updates in SQLite exactly as Telegram sent them (raw JSON, keyed by
`update_id`; a redelivered id is a no-op) and marks them handled, in the same transaction
as the answer they carry when there is one. A handled update keeps only its id: what it
said lives on in the event log, if anywhere.

A polled update is written once: its handler's transaction stores it already handled.
Until then it is held in memory (`receive`), and before the next getUpdates call tells
Telegram it arrived, those whose handlers have not committed by then are stored to be
handled (`confirmable`). A crash before that call loses nothing: Telegram sends the
unconfirmed updates again, and those already stored are recognised.

An update that cannot be read (python-telegram-bot cannot parse it) or that a handler
failed on for good is *set aside*: marked handled with its error, its content kept for
a person to look at (`tutorbot inbox`), so that it never stops the bot nor blocks the chat
behind it.

`Dispatcher` handles updates one chat at a time, in order, while different chats go on
side by side, so one slow or flooding learner holds up nobody else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

from telegram import Bot, Update

from bot.store import Store, wait_out

log = logging.getLogger(__name__)

# Seconds the handlers of a polled batch get to commit (writing each update once) before
# the rest of the batch is stored to be handled (`Inbox.confirmable`).
HANDLING_WAIT = 0.05
MAX_UPDATE_ID = 2**53  # Telegram's ids fit in 52 bits; anything larger is not from Telegram


def chat_key(update: Update) -> str:
    """Who an update belongs to: its chat, else its user, else the update itself."""
    if update.effective_chat is not None:
        return f"tg:{update.effective_chat.id}"
    if update.effective_user is not None:
        return f"tg:{update.effective_user.id}"
    return f"update:{update.update_id}"


def valid_update_id(value: object) -> bool:
    return type(value) is int and 0 <= value < MAX_UPDATE_ID


def _raw_ids(raw: dict[str, Any]) -> tuple[str | None, str | None]:
    """The learner and chat of a raw update, read defensively (it may be malformed)."""

    def int_id(thing: object) -> int | None:
        value = thing.get("id") if isinstance(thing, dict) else None
        return value if type(value) is int else None

    for kind, content in raw.items():
        if kind == "update_id" or not isinstance(content, dict):
            continue
        user = int_id(content.get("from")) or int_id(content.get("user"))
        message = content.get("message") if kind == "callback_query" else content
        chat = int_id(message.get("chat")) if isinstance(message, dict) else None
        chat = chat or int_id(content.get("chat"))
        if user is not None or chat is not None:
            return (f"tg:{user}" if user is not None else None, f"tg:{chat or user}")
    return None, None


def _payload(raw: dict[str, Any]) -> str:
    """A raw update as JSON text SQLite can store: as sent, or with \\u escapes if it holds
    a lone surrogate ("\\ud800" is valid JSON, but no UTF-8 text can hold it)."""
    text = json.dumps(raw, ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(raw)
    return text


def read_update(raw: dict[str, Any], bot: Bot) -> Update:
    """python-telegram-bot's `Update` for a raw update; raises whatever parsing raises."""
    update = Update.de_json(raw, bot)
    if update is None:
        raise ValueError("empty update")
    _check(update)
    return update


SQLITE_INT = 2**63  # the database's integers are 64-bit


def _check(update: Update) -> None:
    """Refuse what Telegram never sends and python-telegram-bot parses anyway, but which
    would trip the handlers or the outbox: a user, chat or message id that is not a 64-bit
    integer, a message without a chat, text that is not a string."""
    message = update.effective_message
    for what, thing, field in (
        ("user", update.effective_user, "id"),
        ("chat", update.effective_chat, "id"),
        ("message", message, "message_id"),
    ):
        value = getattr(thing, field, 0)
        if type(value) is not int or not -SQLITE_INT <= value < SQLITE_INT:
            raise ValueError(f"the {what} id is not a 64-bit integer: {value!r:.40}")
    if message is not None and message.chat is None:
        raise ValueError("a message without a chat")
    if not isinstance(getattr(message, "text", None), (str, type(None))):
        raise ValueError("message text that is not a string")


class Arrival(NamedTuple):
    """A polled update, held in memory until its handler stores it (`Inbox.receive`)."""

    raw: dict[str, Any]  # as Telegram sent it
    received_at: str


class Inbox:
    """Stored Telegram updates."""

    def __init__(self, store: Store):
        self.store = store
        self.handled: set[int] = set()  # ids marked handled in a committed transaction (see `is_handled`)
        self.arrived: dict[int, Arrival] = {}  # polled, not yet in a committed row (see `receive`)
        self.seen_below: int | None = None  # ids below may be stored already: `receive` looks them up
        self.emptied: asyncio.Event | None = None  # set when the last arrival is stored (`confirmable`)

    def add(self, raws: Iterable[dict[str, Any]], bot: Bot) -> list[Update]:
        """Store raw updates in one transaction; return those not seen before, parsed, in order
        (a webhook's updates: stored before Telegram hears back).

        One that cannot be parsed is stored and set aside at once, in the same transaction.
        Every item must be a dict with a valid `update_id` (see `valid_update_id`)."""
        fresh: list[Update] = []
        now = self.store.now()
        with self.store.atomic():
            for raw in raws:
                if not self._insert(raw, now):
                    continue
                try:
                    fresh.append(read_update(raw, bot))
                except Exception as exc:  # noqa: BLE001 - any parse failure sets the update aside
                    self.set_aside(raw["update_id"], f"cannot be read: {type(exc).__name__}: {exc}")
        return fresh

    def receive(self, raws: Iterable[dict[str, Any]], bot: Bot) -> list[Update]:
        """Polled updates: those not seen before, parsed, in order, held in memory until
        their handlers store them (`mark_handled`) or `confirmable` does.

        One that cannot be parsed is stored and set aside at once. Every item must be a dict
        with a valid `update_id` (see `valid_update_id`)."""
        seen_below = (self.next_offset() or 0) if self.seen_below is None else self.seen_below
        new: dict[int, dict[str, Any]] = {}
        for raw in raws:  # (reads first: a failure here changes nothing, and the batch is read again)
            update_id = raw["update_id"]
            if update_id in self.arrived or update_id in new or update_id < seen_below and self._stored(update_id):
                continue
            new[update_id] = raw
        self.seen_below = max([seen_below, *(update_id + 1 for update_id in new)])
        fresh: list[Update] = []
        now = self.store.now()
        for update_id, raw in new.items():
            self.arrived[update_id] = Arrival(raw, now)
            try:
                fresh.append(read_update(raw, bot))
            except Exception as exc:  # noqa: BLE001 - any parse failure sets the update aside
                error = f"cannot be read: {type(exc).__name__}: {exc}"
                try:
                    with self.store.atomic():
                        self.set_aside(update_id, error)
                except Exception:  # noqa: BLE001 - stored unhandled instead; set aside at the next start
                    log.warning("update %s cannot be read (%s); it waits for the next start", update_id, error)
        return fresh

    def _stored(self, update_id: int) -> bool:
        return self.store.db.execute("SELECT 1 FROM inbox WHERE update_id = ?", [update_id]).fetchone() is not None

    def _insert(self, raw: dict[str, Any], received_at: str) -> bool:
        """Store an update to be handled, unless its id is stored already (then False)."""
        learner, chat = _raw_ids(raw)
        cursor = self.store.db.execute(
            "INSERT OR IGNORE INTO inbox (update_id, learner, chat, payload, received_at) VALUES (?, ?, ?, ?, ?)",
            [raw["update_id"], learner, chat, _payload(raw), received_at],
        )
        return cursor.rowcount > 0

    def _store_arrival(self, update_id: int, handled: bool = False) -> None:
        """Write an arrival's row in the open transaction; forget the arrival once it commits."""
        raw, received_at = self.arrived[update_id]
        if handled:  # one statement on an answer's path: a row stored since is marked instead
            learner, chat = _raw_ids(raw)
            self.store.db.execute(
                "INSERT INTO inbox (update_id, learner, chat, payload, received_at, handled_at) "
                "VALUES (?, ?, ?, '{}', ?, ?) ON CONFLICT (update_id) DO UPDATE SET "
                "handled_at = excluded.handled_at, payload = '{}' WHERE inbox.handled_at IS NULL",
                [update_id, learner, chat, received_at, self.store.now()],
            )
        else:
            self._insert(raw, received_at)
        self.store.on_commit(lambda: self._arrival_stored(update_id))

    def _arrival_stored(self, update_id: int) -> None:
        self.arrived.pop(update_id, None)
        if not self.arrived and self.emptied is not None:
            self.emptied.set()

    async def confirmable(self, stop: asyncio.Event | None = None) -> None:
        """Return once every update received is in a committed row, so that the next
        getUpdates call may tell Telegram they arrived. Handlers usually commit theirs
        within milliseconds: they get up to `HANDLING_WAIT` seconds, then the rest are stored to
        be handled (a database that cannot commit for now is waited out)."""
        if self.arrived:
            self.emptied = asyncio.Event()
            try:
                await asyncio.wait_for(self.emptied.wait(), HANDLING_WAIT)
            except asyncio.TimeoutError:
                pass
            finally:
                self.emptied = None
        while self.arrived and not (stop is not None and stop.is_set()):
            await wait_out(self._store_arrivals, "storing updates", stop)

    def _store_arrivals(self) -> None:
        with self.store.atomic():
            for update_id in list(self.arrived):
                self._store_arrival(update_id)

    def pending(self, bot: Bot) -> list[Update]:
        """Stored updates not yet handled, oldest first; one that cannot be read is set aside."""
        rows = self.store.db.execute(
            "SELECT update_id, payload FROM inbox WHERE handled_at IS NULL ORDER BY update_id"
        ).fetchall()
        updates = []
        for update_id, payload in rows:
            try:
                updates.append(read_update(json.loads(payload), bot))
            except Exception as exc:  # noqa: BLE001
                with self.store.atomic():
                    self.set_aside(update_id, f"cannot be read: {type(exc).__name__}: {exc}")
        return updates

    def mark_handled(self, update_id: int) -> None:
        """Done with an update: keep its id (to spot a redelivery), drop its content."""
        if update_id in self.arrived:
            self._store_arrival(update_id, handled=True)
        else:
            self.store.db.execute(
                "UPDATE inbox SET handled_at = ?, payload = '{}' WHERE update_id = ? AND handled_at IS NULL",
                [self.store.now(), update_id],
            )
        self.store.on_commit(lambda: self.handled.add(update_id))

    def set_aside(self, update_id: int, error: str) -> None:
        """Give up on an update: mark it handled, keep its content and the error."""
        if update_id in self.arrived:
            self._store_arrival(update_id)
        now = self.store.now()
        error = error[:2000].encode("utf-8", "backslashreplace").decode()  # storable, whatever the update held
        self.store.db.execute(
            "UPDATE inbox SET handled_at = ?, failed_at = ?, error = ? WHERE update_id = ?",
            [now, now, error, update_id],
        )
        log.error("update %s set aside: %s", update_id, error)

    def prune(self, before: str, limit: int = 5000) -> int:
        """Forget up to `limit` handled updates received before `before` (a store time), the
        oldest first: Telegram redelivers an update for at most 24 hours, so older ids are
        never needed. The newest id stays (it gives the offset), and so do updates set aside
        (for a person to look at). Returns how many were removed: `limit` means there may
        be more (a big backlog goes in small transactions, never blocking the bot long)."""
        cursor = self.store.db.execute(
            "DELETE FROM inbox WHERE update_id IN (SELECT update_id FROM inbox WHERE received_at < ? "
            "AND handled_at IS NOT NULL AND failed_at IS NULL AND update_id < (SELECT MAX(update_id) FROM inbox) "
            "ORDER BY update_id LIMIT ?)",
            [before, limit],
        )
        return cursor.rowcount

    def received_at(self, update_id: int) -> str | None:
        """When the update was received (a store timestamp), or None if it is not in the inbox."""
        if update_id in self.arrived:
            return self.arrived[update_id].received_at
        row = self.store.db.execute("SELECT received_at FROM inbox WHERE update_id = ?", [update_id]).fetchone()
        return None if row is None else row[0]

    def is_handled(self, update_id: int) -> bool:
        """Whether the update is handled (or not in the inbox). An id this process marked is
        answered from memory, once: the question is asked once per update, after its handler."""
        if update_id in self.handled:
            self.handled.discard(update_id)
            return True
        if len(self.handled) > 10_000:  # ids marked by handlers nobody asked about: start again
            self.handled.clear()
        row = self.store.db.execute("SELECT handled_at FROM inbox WHERE update_id = ?", [update_id]).fetchone()
        if row is None:
            return update_id not in self.arrived
        return row[0] is not None

    def next_offset(self) -> int | None:
        """One past the highest update id stored (None if there is none)."""
        (highest,) = self.store.db.execute("SELECT MAX(update_id) FROM inbox").fetchone()
        return None if highest is None else highest + 1

    def counts(self) -> dict[str, int]:
        """How many updates are stored, waiting to be handled, and set aside."""
        total, waiting, aside = self.store.db.execute(
            "SELECT COUNT(*), COUNT(*) - COUNT(handled_at), COUNT(failed_at) FROM inbox"
        ).fetchone()
        return {"stored": total, "waiting": waiting, "set aside": aside}

    def set_aside_rows(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest updates set aside, with their error and content."""
        rows = self.store.db.execute(
            "SELECT update_id, failed_at, error, payload FROM inbox WHERE failed_at IS NOT NULL "
            "ORDER BY update_id DESC LIMIT ?",
            [limit],
        ).fetchall()
        return [dict(zip(("update_id", "failed_at", "error", "payload"), row)) for row in rows]


class Dispatcher:
    """Runs `handle` for each update: in order within a chat, concurrently across chats."""

    def __init__(
        self,
        handle: Callable[[Update], Awaitable[None]],
        flush: Callable[[str], Awaitable[None]] | None = None,
        flush_every: float = 1.0,
    ):
        """`flush(chat key)` has a chat's replies sent (the bot's own only asks the outbox,
        `Outbox.request`): after its last queued update, and at least every `flush_every`
        seconds while it keeps sending more (a flood's replies are then folded: see
        `Outbox.add`)."""
        self.handle = handle
        self.flush = flush
        self.flush_every = flush_every
        # A chat's updates not yet handled (a list: a deque costs ~600 bytes a chat, and a
        # full class has hundreds of chats each with one or two).
        self.queues: dict[str, list[Update]] = {}
        self.workers: dict[str, asyncio.Task[None]] = {}

    def submit(self, update: Update) -> None:
        key = chat_key(update)
        queue = self.queues.setdefault(key, [])
        queue.append(update)
        if key not in self.workers:
            self.workers[key] = asyncio.create_task(self._work(key, queue), name=f"chat {key}")

    async def _work(self, key: str, queue: list[Update]) -> None:
        loop = asyncio.get_running_loop()
        flushed = loop.time()
        try:
            while queue:
                update = queue.pop(0)
                try:
                    await self.handle(update)
                except Exception:  # one bad update must not stop the chat's queue
                    log.exception("update %s could not be handled", update.update_id)
                if self.flush is not None and (not queue or loop.time() - flushed >= self.flush_every):
                    try:
                        await self.flush(key)
                    except Exception:  # the outbox keeps what it could not send
                        log.exception("sending the replies to %s failed", key)
                    flushed = loop.time()
        finally:
            del self.workers[key]
            if not queue:
                del self.queues[key]

    async def drain(self) -> None:
        """Wait until every submitted update is handled."""
        while self.workers:
            await asyncio.gather(*list(self.workers.values()), return_exceptions=True)

    async def stop(self, grace: float) -> None:
        """Wait up to `grace` seconds for the updates in hand, then cancel the rest.

        What is cancelled is safe: an update is handled in one transaction, so it is
        either done (its replies in the outbox, sent at the next start) or still waiting
        in the inbox, handled at the next start."""
        try:
            await asyncio.wait_for(self.drain(), grace)
        except asyncio.TimeoutError:
            workers = list(self.workers.values())
            log.info("stopping: %d chat(s) still busy are left to the next start", len(workers))
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

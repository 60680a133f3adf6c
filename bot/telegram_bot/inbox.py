"""The inbox: every Telegram update is stored before Telegram is told it arrived.

`Inbox` keeps updates in SQLite keyed by `update_id` (a redelivered id is a no-op) and
marks them handled, in the same transaction as the answer they carry when there is one.
A handled update keeps only its id: what it said lives on in the event log, if anywhere.
`Dispatcher` handles updates one chat at a time, in order, while different chats go on
side by side, so one slow or flooding learner holds up nobody else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable

from telegram import Bot, Update

from bot.store import Store

log = logging.getLogger(__name__)


def chat_key(update: Update) -> str:
    """Who an update belongs to: its chat, else its user, else the update itself."""
    if update.effective_chat is not None:
        return f"tg:{update.effective_chat.id}"
    if update.effective_user is not None:
        return f"tg:{update.effective_user.id}"
    return f"update:{update.update_id}"


class Inbox:
    """Stored Telegram updates."""

    def __init__(self, store: Store):
        self.store = store

    def add(self, updates: Iterable[Update]) -> list[Update]:
        """Store updates in one transaction; return those not seen before, in order."""
        fresh: list[Update] = []
        now = self.store.now()
        with self.store.atomic():
            for update in updates:
                user = update.effective_user
                cursor = self.store.db.execute(
                    "INSERT OR IGNORE INTO inbox (update_id, learner, chat, payload, received_at) VALUES (?, ?, ?, ?, ?)",
                    [
                        update.update_id,
                        f"tg:{user.id}" if user else None,
                        chat_key(update),
                        json.dumps(update.to_dict()),
                        now,
                    ],
                )
                if cursor.rowcount:
                    fresh.append(update)
        return fresh

    def pending(self, bot: Bot) -> list[Update]:
        """Stored updates not yet handled, oldest first."""
        rows = self.store.db.execute(
            "SELECT payload FROM inbox WHERE handled_at IS NULL ORDER BY update_id"
        ).fetchall()
        return [Update.de_json(json.loads(payload), bot) for (payload,) in rows]

    def mark_handled(self, update_id: int) -> None:
        """Done with an update: keep its id (to spot a redelivery), drop its content."""
        self.store.db.execute(
            "UPDATE inbox SET handled_at = ?, payload = '{}' WHERE update_id = ? AND handled_at IS NULL",
            [self.store.now(), update_id],
        )

    def is_handled(self, update_id: int) -> bool:
        row = self.store.db.execute("SELECT handled_at FROM inbox WHERE update_id = ?", [update_id]).fetchone()
        return row is None or row[0] is not None

    def next_offset(self) -> int | None:
        """The getUpdates offset that confirms everything stored so far."""
        (highest,) = self.store.db.execute("SELECT MAX(update_id) FROM inbox").fetchone()
        return None if highest is None else highest + 1


class Dispatcher:
    """Runs `handle` for each update: in order within a chat, concurrently across chats."""

    def __init__(self, handle: Callable[[Update], Awaitable[None]]):
        self.handle = handle
        self.queues: dict[str, asyncio.Queue[Update]] = {}
        self.workers: dict[str, asyncio.Task[None]] = {}

    def submit(self, update: Update) -> None:
        key = chat_key(update)
        queue = self.queues.setdefault(key, asyncio.Queue())
        queue.put_nowait(update)
        if key not in self.workers:
            self.workers[key] = asyncio.create_task(self._work(key, queue), name=f"chat {key}")

    async def _work(self, key: str, queue: asyncio.Queue[Update]) -> None:
        try:
            while not queue.empty():
                update = queue.get_nowait()
                try:
                    await self.handle(update)
                except Exception:  # one bad update must not stop the chat's queue
                    log.exception("update %s could not be handled", update.update_id)
        finally:
            del self.workers[key]
            if queue.empty():
                del self.queues[key]

    async def drain(self) -> None:
        """Wait until every submitted update is handled."""
        while self.workers:
            await asyncio.gather(*list(self.workers.values()), return_exceptions=True)

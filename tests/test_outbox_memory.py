"""The outbox sends a chat's waiting rows from memory when it knows them all: that memory
must always be what the table says, whatever happened to the rows (added in a transaction
that rolled back, superseded, sent, refused, tried and failed, the chat blocked, the
learner forgotten), and no row may go out twice or after it stopped waiting."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

from telegram.error import BadRequest, TimedOut

from bot.store import Store
from bot.telegram_bot.outbox import PENDING, Outbox
from bot.telegram_bot.render import OutMessage
from bot.telegram_bot.sending import Blocked

CHATS = (1, 2, 3)


class Telegram:
    """Takes sends, or fails them as told; remembers every text it took."""

    def __init__(self) -> None:
        self.fail_next: Exception | None = None
        self.taken: list[str] = []
        self.bot = SimpleNamespace(send_message=self.send_message)

    async def send_message(self, chat_id: int, text: str, **_: object) -> SimpleNamespace:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.taken.append(text)
        return SimpleNamespace(message_id=len(self.taken))

    async def call(self, make, attempts: int = 1):
        return await make()


def table(store: Store, chat_id: int) -> list[tuple[int, str, int]]:
    rows = store.db.execute(
        f"SELECT id, body, attempts FROM outbox WHERE chat_id = ? AND {PENDING} ORDER BY id", [chat_id]
    ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def memory(outbox: Outbox, chat_id: int) -> list[tuple[int, str, int]]:
    return [(row.id, json.dumps(row.body, ensure_ascii=False), row.attempts) for row in outbox._waiting(chat_id)]


async def test_the_outbox_memory_is_always_the_table(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    telegram = Telegram()
    outbox = Outbox(store, telegram, private_per_second=None)  # type: ignore[arg-type]
    rng = random.Random(5)
    texts = iter(range(10**6))
    for step in range(600):
        chat = rng.choice(CHATS)
        action = rng.random()
        if action < 0.35:
            with store.atomic():
                if rng.random() < 0.3:
                    outbox.supersede(chat)
                outbox.add(chat, OutMessage(f"m{next(texts)}"), droppable=rng.random() < 0.3)
        elif action < 0.45:
            try:
                with store.atomic():
                    outbox.add(chat, OutMessage(f"rolled back {next(texts)}"))
                    raise RuntimeError("the handler failed")
            except RuntimeError:
                pass
        elif action < 0.8:
            failure = rng.choice([None, None, None, TimedOut(), BadRequest("message is too long"), Blocked("blocked")])
            telegram.fail_next = failure
            outbox.retry_at.clear()
            await outbox.flush(chat)
            telegram.fail_next = None
            if isinstance(failure, Blocked):
                store.db.execute("UPDATE learners SET blocked_at = NULL")
        elif action < 0.85:
            store.ensure_learner(f"tg:{chat}")
            store.forget(f"tg:{chat}")
        else:
            store.settle()  # the lingering "sent" marks commit
        for other in CHATS:
            assert memory(outbox, other) == table(store, other), f"step {step}, chat {other}"
    assert not any("rolled back" in text for text in telegram.taken)
    assert len(telegram.taken) == len(set(telegram.taken)), "a row went out twice"
    sent = {row[0] for row in store.db.execute("SELECT json_extract(body, '$.text') FROM outbox WHERE sent_at IS NOT NULL")}
    assert sent <= set(telegram.taken)
    gone = {row[0] for row in store.db.execute("SELECT json_extract(body, '$.text') FROM outbox WHERE failed_at IS NOT NULL")}
    assert not gone & set(telegram.taken) - sent, "a row went out after it was given up on"
    (both,) = store.db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL AND failed_at IS NOT NULL").fetchone()
    assert both == 0, "a row was sent after it was given up on"
    assert len(telegram.taken) > 100

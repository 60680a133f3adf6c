"""Whose replies go out when: chats are served in the order they were asked for, people's
replies before bulk traffic, by a few senders; a chat waiting for its turn (or for its
person's pace) holds up nobody and costs no task of its own; a stop leaves the rest in
the table."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from bot.store import Store
from bot.telegram_bot.outbox import PENDING, SENDS_AT_ONCE, Outbox
from bot.telegram_bot.render import OutMessage


class SlowTelegram:
    """Takes each send after `delay` seconds; remembers (chat, text) in the order taken."""

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay
        self.taken: list[tuple[int, str]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.bot = SimpleNamespace(send_message=self.send_message)

    async def send_message(self, chat_id: int, text: str, **_: object) -> SimpleNamespace:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.on_send(chat_id, text)
        try:
            await asyncio.sleep(self.delay)  # the learner has the message; the bot waits for the answer
        finally:
            self.in_flight -= 1
        self.taken.append((chat_id, text))
        return SimpleNamespace(message_id=len(self.taken))

    def on_send(self, chat_id: int, text: str) -> None:
        """What the learner does the moment a message reaches them (here: nothing)."""

    async def call(self, make, attempts: int = 1):
        return await make()


def add(store: Store, outbox: Outbox, chat_id: int, *texts: str, priority: int = 0) -> None:
    with store.atomic():
        for text in texts:
            outbox.add(chat_id, OutMessage(text), priority=priority)


def waiting(store: Store) -> int:
    return store.db.execute(f"SELECT COUNT(*) FROM outbox WHERE {PENDING}").fetchone()[0]


async def until(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "not in time"
        await asyncio.sleep(0.005)


async def test_chats_go_in_the_order_asked_with_a_few_senders_and_no_task_per_chat(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    telegram = SlowTelegram()
    outbox = Outbox(store, telegram, private_per_second=None)  # type: ignore[arg-type]
    chats = list(range(1000, 1300))
    tasks_before = len(asyncio.all_tasks())
    for chat in chats:
        add(store, outbox, chat, f"reply to {chat}", f"then the next step for {chat}")
        outbox.request(chat)
    assert len(asyncio.all_tasks()) - tasks_before <= SENDS_AT_ONCE  # 300 chats wait as entries, not tasks
    await until(lambda: not outbox.senders)
    store.settle()
    assert waiting(store) == 0
    assert telegram.most_in_flight <= SENDS_AT_ONCE
    # Each chat's rows in order; the chats by when they asked, give or take the senders at work.
    firsts = [chat for chat, text in telegram.taken if text.startswith("reply")]
    assert all(abs(firsts.index(chat) - i) <= SENDS_AT_ONCE for i, chat in enumerate(chats))
    for chat in chats:
        assert [text for c, text in telegram.taken if c == chat] == [f"reply to {chat}", f"then the next step for {chat}"]


async def test_a_learner_who_answers_at_once_waits_behind_the_chats_that_asked_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    telegram = SlowTelegram()
    outbox = Outbox(store, telegram, private_per_second=None)  # type: ignore[arg-type]

    def answers_at_once(chat_id: int, text: str) -> None:
        if text == "reply 1":  # learner 1's next answer is handled while that send finishes
            add(store, outbox, 1, "second reply 1")
            outbox.request(1)

    telegram.on_send = answers_at_once  # type: ignore[method-assign]
    for chat in range(1, 41):
        add(store, outbox, chat, f"reply {chat}")
        outbox.request(chat)
    await until(lambda: not outbox.senders)
    order = [text for _, text in telegram.taken]
    assert len(order) == 41 and order.index("reply 1") < order.index("second reply 1")
    # The 39 others asked first: at most the senders' last round finishes after it.
    assert order.index("second reply 1") >= 40 - SENDS_AT_ONCE


async def test_an_answer_given_while_the_reply_goes_out_is_served_at_once_when_nobody_waits(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    telegram = SlowTelegram(delay=0.05)
    outbox = Outbox(store, telegram, private_per_second=None)  # type: ignore[arg-type]

    def answers_at_once(chat_id: int, text: str) -> None:
        if text == "reply":  # handled before Telegram's answer to that send is back
            add(store, outbox, chat_id, "next reply")
            outbox.request(chat_id)

    telegram.on_send = answers_at_once  # type: ignore[method-assign]
    add(store, outbox, 7, "reply")
    outbox.request(7)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await until(lambda: [text for _, text in telegram.taken] == ["reply", "next reply"], timeout=2)
    assert loop.time() - began < 0.3  # two sends of 50 ms, not a wait for the outbox's next round


async def test_people_are_served_before_bulk_traffic(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    telegram = SlowTelegram()
    outbox = Outbox(store, telegram, private_per_second=None)  # type: ignore[arg-type]
    for chat in range(2000, 2040):
        add(store, outbox, chat, f"remedy {chat}", priority=1)
        outbox.request(chat, bulk=True)
    await asyncio.sleep(0.001)  # the senders are at work on bulk chats
    assert telegram.in_flight == SENDS_AT_ONCE
    for chat in range(3000, 3020):
        add(store, outbox, chat, f"reply {chat}")
        outbox.request(chat)
    await until(lambda: not outbox.senders)
    order = [text.split()[0] for _, text in telegram.taken]
    # Only the bulk sends the senders had begun before the people asked come before them.
    last_reply = len(order) - 1 - order[::-1].index("reply")
    assert order[: last_reply + 1].count("remedy") == SENDS_AT_ONCE
    assert order.count("remedy") == 40


async def test_a_person_at_their_pace_holds_up_nobody_and_gets_every_reply(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    telegram = SlowTelegram(delay=0.001)
    outbox = Outbox(store, telegram, private_per_second=20.0)  # a burst of 3, then one every 50 ms
    flooding = list(range(10, 10 + SENDS_AT_ONCE))  # as many as there are senders
    for chat in flooding:
        add(store, outbox, chat, *(f"flood {chat} #{i}" for i in range(8)))
        outbox.request(chat)
    await asyncio.sleep(0.01)  # every sender has met a flooding chat's pace by now
    add(store, outbox, 99, "the reply someone waits for")
    loop = asyncio.get_running_loop()
    asked = loop.time()
    outbox.request(99)
    await until(lambda: (99, "the reply someone waits for") in telegram.taken)
    assert loop.time() - asked < 0.04  # not behind the floods' paced rows (one every 50 ms)
    await until(lambda: waiting(store) == 0 and not outbox.senders and not outbox.paced, timeout=5)
    for chat in flooding:
        assert [text for c, text in telegram.taken if c == chat] == [f"flood {chat} #{i}" for i in range(8)]


async def test_a_stop_sends_for_the_grace_then_leaves_the_rest_in_the_table(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    telegram = SlowTelegram(delay=0.02)
    outbox = Outbox(store, telegram, private_per_second=None)  # type: ignore[arg-type]
    for chat in range(500, 700):
        add(store, outbox, chat, f"reply {chat}")
        outbox.request(chat)
    await outbox.stop_sending(0.1)
    assert not outbox.senders
    store.settle()
    sent = len(telegram.taken)
    assert 0 < sent < 200
    assert waiting(store) == 200 - sent  # the rest goes out at the next start
    outbox.request(700)  # asked after the stop: nothing starts
    assert not outbox.senders

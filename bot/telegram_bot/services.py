"""What every Telegram handler shares: the services, who is asking, one transaction per
update, and the replies it decides on.

`handling` is the heart of "never lose an answer": the learner's row, whatever the tutor
records, the replies (into the outbox) and the inbox mark of the update commit together,
or not at all. The replies go out after the commit (`bot.telegram_bot.outbox`).
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.engine import LessonFinished, Summary
from bot.sessions import Sessions
from bot.settings import Settings
from bot.store import Store
from bot.telegram_bot.inbox import Inbox
from bot.telegram_bot.outbox import Outbox, well_formed
from bot.telegram_bot.render import OutMessage, messages
from bot.telegram_bot.sending import Sender
from bot.tutor import Reply, Tutor

log = logging.getLogger(__name__)

# Replies that change nothing (refusals of old buttons and of text where a tap is wanted,
# a step shown again, /help, /progress, hints) are rationed per chat and kind of input:
# a burst of a few, then one per interval. A person never notices; a flood gets about
# one reply a second (one per three seconds for taps on old buttons).
# "typing…" is rationed too: it shows for seconds anyway, and a flood must not spend the
# bot's 30 calls a second on it.
QUIET = {
    "button": (1, 3.0),
    "command": (5, 1.0),
    "text": (5, 1.0),
    "other": (3, 1.0),
    "typing": (1, 1.0),
    "group": (3, 15.0),  # a group's answers that change nothing: its 20 messages a minute are for the lesson
    "refusal": (1, 5.0),  # "only the group's admins can do that"
}  # kind -> (burst, seconds)
TYPING_AFTER = 1.0  # seconds a reply may take before "typing…" shows
TYPING_BUSY = 10  # with more chats than this waiting for their replies, no "typing…" for anyone
AFTER_THE_END = "/lessons shows the other lessons; /restart goes through this one again."
HINTS = {  # what the bot expects at each kind of step
    "message": "Tap <b>Continue</b> under the message to go on.",
    "choice": "Tap one of the buttons under the question, or type the number of your answer.",
    "text": "Please type your answer as a text message.",
    "check": "Tap the points your answer makes, then <b>Done</b> (or type their numbers, e.g. 1 3).",
    "end": f"You have finished this lesson. {AFTER_THE_END}",
}


@dataclass
class Services:
    """What the handlers need, kept in `application.bot_data["services"]`."""

    tutor: Tutor
    inbox: Inbox
    outbox: Outbox
    sender: Sender
    settings: Settings
    allowance: dict[tuple[int, str], tuple[float, float]] = field(default_factory=dict)  # (chat, kind) -> (tokens, when)
    failures: dict[int, BaseException] = field(default_factory=dict)  # update id -> its handler's error
    background: set[asyncio.Task[None]] = field(default_factory=set)  # "typing…" signals pending

    @property
    def store(self) -> Store:
        return self.tutor.store

    @property
    def sessions(self) -> Sessions:
        return Sessions(self.tutor.store)

    def quiet(self, chat_id: int, kind: str) -> bool:
        """True if this chat has used up its replies to this kind of input for now; else
        count one (a token bucket: `QUIET[kind]` is its size and refill interval)."""
        burst, interval = QUIET[kind]
        now = time.monotonic()
        tokens, then = self.allowance.get((chat_id, kind), (float(burst), now))
        tokens = min(float(burst), tokens + (now - then) / interval)
        if tokens < 1:
            return True
        self.allowance[(chat_id, kind)] = (tokens - 1, now)
        if len(self.allowance) > 10_000:  # keep the memory small: a full bucket need not be kept
            self.allowance = {k: v for k, v in self.allowance.items() if now - v[1] < burst * interval}
        return False


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.bot_data["services"]


@dataclass(frozen=True)
class Who:
    learner: str
    chat: str
    chat_id: int
    name: str | None
    private: bool


def who(update: Update) -> Who | None:
    """Who sent an update, and in which chat; None if it names no user or no chat."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return None
    name = well_formed(user.full_name) if isinstance(user.full_name, str) else None  # storable, whatever was sent
    return Who(f"tg:{user.id}", f"tg:{chat.id}", chat.id, name, chat.type == ChatType.PRIVATE)


class Replies:
    """The replies a handler decides on, added to the outbox in the handler's transaction."""

    def __init__(self, s: Services, person: Who, update: Update):
        self.s = s
        self.person = person
        self.update_id = update.update_id
        self.source = source(update)
        self.superseded = False  # older droppable replies are dropped once, before the first message

    def send(self, outgoing: list[OutMessage], droppable: bool = False, erase: bool = False) -> None:
        if outgoing and not self.superseded:
            self.s.outbox.supersede(self.person.chat_id)
            self.superseded = True
        for message in outgoing:
            self.s.outbox.add(self.person.chat_id, message, self.update_id, droppable=droppable, erase=erase)

    def inform(self, outgoing: list[OutMessage]) -> None:
        """A reply that changes nothing: at most one per `QUIET` window in a flood, and
        dropped if a newer reply overtakes it before it went out."""
        if not self.s.quiet(self.person.chat_id, self.source):
            self.send(outgoing, droppable=True)

    refuse = inform  # a reply to input that did not fit: the same rules

    def show(self, reply: Reply, before: list[OutMessage] | None = None, echo: str | None = None) -> None:
        """The tutor's reply as messages (after `before`; `echo`, the learner's answer, on
        top of the first); a refusal, or the step shown again, is rate-limited and droppable."""
        outgoing = (before or []) + self.render(reply, echo)
        if reply.error is not None or reply.again:
            self.refuse(outgoing)
        else:
            self.send(outgoing)

    def render(self, reply: Reply, echo: str | None = None) -> list[OutMessage]:
        lesson = self.s.tutor.loaded(reply.lesson).lesson if reply.lesson in self.s.tutor.lessons else None
        if lesson is None:
            outgoing = [OutMessage("\n\n".join(html.escape(getattr(o, "text", "")) for o in reply.outputs))]
        else:
            outgoing = messages(lesson, reply.outputs, echo)
        shown_end = any(isinstance(output, Summary) for output in reply.outputs)  # it says what next itself
        if isinstance(reply.error, LessonFinished) and not shown_end:  # what next, in the same message
            last = outgoing[-1] if outgoing else None
            if last is not None and not last.buttons:
                outgoing[-1] = replace(last, text=f"{last.text}\n{AFTER_THE_END}")
            else:
                outgoing.append(OutMessage(AFTER_THE_END))
        return outgoing

    def edit(self, message_id: int, text: str | None = None, erase: bool = False, buttons: tuple = ()) -> None:
        """Take the buttons off a sent message (or set `buttons`), and replace its text if given."""
        self.s.outbox.add_edit(self.person.chat_id, message_id, text, self.update_id, erase=erase, buttons=buttons)


def source(update: Update) -> str:
    """The kind of input an update is, for the flood windows in `QUIET`."""
    if update.callback_query is not None:
        return "button"
    text = update.message.text if update.message is not None else None
    if text is None:
        return "other"
    return "command" if text.startswith("/") else "text"


@contextmanager
def handling(s: Services, update: Update, person: Who) -> Iterator[Replies]:
    """One transaction: the learner's row, what the handler records and replies, the inbox mark."""
    with s.store.atomic():
        s.store.ensure_learner(person.learner, person.name)
        yield Replies(s, person, update)
        s.inbox.mark_handled(update.update_id)


def drafting(s: Services, reviewer: str) -> int | None:
    """The reflection this reviewer is writing feedback on, if any (see /review). Asked of
    every text message, so it lives here and not with the rest of review."""
    row = s.store.db.execute("SELECT event FROM reviews WHERE status = 'drafting' AND reviewer = ?", [reviewer]).fetchone()
    return None if row is None else row[0]


def typing(s: Services, person: Who) -> None:
    """Show "typing…" if this input's reply is slow to go out: still waiting to be sent
    after `TYPING_AFTER` seconds (Telegram slow to take it, a short queue). Never
    while many chats wait for their replies: the bot's 30 calls a second are theirs. Best
    effort, never retried, at most about once a second per chat (`QUIET["typing"]`), and
    it never holds up the handler."""
    loop = asyncio.get_running_loop()
    task = loop.create_task(_typing_later(s, person.chat_id, loop.time()))
    s.background.add(task)  # (a task nobody holds may be collected before it runs)
    task.add_done_callback(s.background.discard)


async def _typing_later(s: Services, chat_id: int, asked: float) -> None:
    await asyncio.sleep(TYPING_AFTER)
    waiting = chat_id in s.outbox.locks and s.outbox.sent_at.get(chat_id, 0.0) < asked
    if not waiting or len(s.outbox.locks) > TYPING_BUSY or s.quiet(chat_id, "typing"):
        return
    try:
        await s.sender.bot.send_chat_action(chat_id, "typing")
    except TelegramError:
        pass

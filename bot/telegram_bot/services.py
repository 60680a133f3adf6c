"""What every Telegram handler shares: the services, who is asking, one transaction per
update, and sending a reply.

`handling` is the heart of "never lose an answer": the learner's row, whatever the tutor
records and the inbox mark of the update commit together, or not at all.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.engine import LessonFinished
from bot.settings import Settings
from bot.store import Store
from bot.telegram_bot.inbox import Inbox
from bot.telegram_bot.render import OutMessage, messages
from bot.telegram_bot.sending import Blocked, Sender
from bot.tutor import Reply, Tutor

log = logging.getLogger(__name__)

REFUSAL_QUIET = 3.0  # seconds
AFTER_THE_END = "/lessons shows the other lessons; /restart goes through this one again."
HINTS = {  # what the bot expects at each kind of step
    "message": "Tap <b>Continue</b> under the message to go on.",
    "choice": "Tap one of the buttons under the question, or type the number of your answer.",
    "text": "Please type your answer as a text message.",
    "end": f"You have finished this lesson. {AFTER_THE_END}",
}


@dataclass
class Services:
    """What the handlers need, kept in `application.bot_data["services"]`."""

    tutor: Tutor
    inbox: Inbox
    sender: Sender
    settings: Settings
    refused_at: dict[int, float] = field(default_factory=dict)  # chat id -> last refusal shown

    @property
    def store(self) -> Store:
        return self.tutor.store

    def just_refused(self, chat_id: int) -> bool:
        """True if this chat was shown a refusal moments ago; else note that it is shown now.

        A burst of taps on old buttons then gets one "nothing changed", not one per tap.
        """
        now = time.monotonic()
        if now - self.refused_at.get(chat_id, -REFUSAL_QUIET) < REFUSAL_QUIET:
            return True
        self.refused_at[chat_id] = now
        return False


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.bot_data["services"]


@dataclass(frozen=True)
class Who:
    learner: str
    chat: str
    chat_id: int
    name: str | None


def who(update: Update) -> Who:
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    return Who(f"tg:{user.id}", f"tg:{chat.id}", chat.id, user.full_name)


@contextmanager
def handling(s: Services, update: Update, person: Who) -> Iterator[None]:
    """One transaction: the learner's row, whatever the handler records, the inbox mark."""
    with s.store.atomic():
        s.store.ensure_learner(person.learner, person.name)
        yield
        s.inbox.mark_handled(update.update_id)


async def send(s: Services, person: Who, outgoing: list[OutMessage]) -> None:
    try:
        await s.sender.send_all(person.chat_id, outgoing)
    except Blocked:
        log.info("chat %s has blocked the bot; its progress is kept", person.chat_id)


async def show(s: Services, person: Who, reply: Reply) -> None:
    lesson = s.tutor.loaded(reply.lesson).lesson if reply.lesson in s.tutor.lessons else None
    if lesson is None:
        outgoing = [OutMessage("\n\n".join(html.escape(getattr(o, "text", "")) for o in reply.outputs))]
    else:
        outgoing = messages(lesson, reply.outputs)
    if isinstance(reply.error, LessonFinished):
        outgoing.append(OutMessage(AFTER_THE_END))
    await send(s, person, outgoing)


async def typing(s: Services, person: Who) -> None:
    """Show "typing…" while the bot works; best effort."""
    try:
        await s.sender.bot.send_chat_action(person.chat_id, "typing")
    except TelegramError:
        pass

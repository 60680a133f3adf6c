"""What the bot does with each kind of update in a one-to-one chat.

Every handler has the same shape: work out who is asking, run the tutor inside one
transaction that also marks the update handled in the inbox, then send the reply. A
button press is answered at once; stale, forged or garbled buttons change nothing and
show the learner where they are.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from telegram import BotCommand, CallbackQuery, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.engine import Choose, Continue, StaleInput, LessonFinished, view
from bot.settings import Settings
from bot.store import Store
from bot.telegram_bot.inbox import Inbox
from bot.telegram_bot.render import (
    BadButton,
    ChoiceButton,
    ConfirmButton,
    ContinueButton,
    LessonButton,
    OutMessage,
    answered,
    button_data,
    messages,
    parse_button,
)
from bot.telegram_bot.sending import Blocked, Sender
from bot.tutor import Reply, Tutor, typed_input
from bot.validate import estimated_minutes

log = logging.getLogger(__name__)

COMMANDS = [
    BotCommand("start", "Begin, or go on where you left off"),
    BotCommand("lessons", "The lessons you can take"),
    BotCommand("progress", "Where you are and how it has gone"),
    BotCommand("restart", "Start the current lesson over"),
    BotCommand("help", "How this works"),
    BotCommand("forget", "Delete everything stored about you"),
]

WELCOME = (
    "👋 Hello! I am a tutor for reading arguments closely.\n\n"
    "We go through an opinion column claim by claim. I explain, you answer questions; "
    "a wrong answer is fine, you get an explanation and another try. You can stop at any "
    "time and come back days later: I keep your place."
)
HELP = (
    "<b>How this works</b>\n"
    "I send a step of the lesson; you tap a button or type an answer.\n\n"
    "/start – go on where you left off\n"
    "/lessons – choose a lesson\n"
    "/progress – where you are, your score so far\n"
    "/restart – start the current lesson over\n"
    "/forget – delete everything stored about you\n"
    "/help – this message"
)
REFUSAL_QUIET = 3.0  # seconds
HINTS = {
    "message": "Tap <b>Continue</b> under the message to go on.",
    "choice": "Tap one of the buttons under the question, or type the number of your answer.",
    "text": "Please type your answer as a text message.",
    "end": "You have finished this lesson. /lessons shows the others; /restart goes through it again.",
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
        outgoing.append(OutMessage(HINTS["end"]))
    await send(s, person, outgoing)


async def typing(s: Services, person: Who) -> None:
    """Show "typing…" while the bot works; best effort."""
    try:
        await s.sender.bot.send_chat_action(person.chat_id, "typing")
    except TelegramError:
        pass


def lesson_list(s: Services, person: Who) -> OutMessage:
    lines, rows = ["<b>Lessons</b>"], []
    for loaded in sorted(s.tutor.lessons.values(), key=lambda l: l.lesson.id != s.settings.default_lesson):
        lesson = loaded.lesson
        progress = s.store.progress(person.learner, lesson.id, person.chat)
        status = "not started"
        if progress and progress.state.finished:
            status = "finished"
        elif progress and progress.state.node in lesson.nodes:
            part, parts = lesson.part_of(progress.state.node)
            status = f"in progress, part {part} of {parts}"
        lines.append(
            f"\n<b>{html.escape(lesson.title)}</b> (about {estimated_minutes(lesson)} min, {status})\n"
            f"{html.escape(lesson.lesson.description)}"
        )
        rows.append(((lesson.title[:60], button_data(LessonButton(lesson.id))),))
    return OutMessage("\n".join(lines), tuple(rows))


# --- commands -------------------------------------------------------------------------


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start and /start <lesson>: welcome, then resume or pick a lesson."""
    s, person = services(context), who(update)
    await typing(s, person)
    wanted = context.args[0] if context.args else None
    with handling(s, update, person):
        if wanted in s.tutor.lessons:
            reply = s.tutor.begin(person.learner, person.chat, wanted)
        elif s.store.latest_progress(person.learner, person.chat) and wanted is None:
            reply = s.tutor.current(person.learner, person.chat)
        else:
            reply = None
            intro = WELCOME if wanted is None else f"There is no lesson called “{html.escape(wanted)}”."
            outgoing = [OutMessage(intro), lesson_list(s, person)]
    if reply is not None:
        await show(s, person, reply)
    else:
        await send(s, person, outgoing)


async def lessons(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/lessons: the lessons with their status, a button each."""
    s, person = services(context), who(update)
    with handling(s, update, person):
        outgoing = [lesson_list(s, person)]
    await send(s, person, outgoing)


async def progress(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/progress: where the learner is and how it has gone."""
    s, person = services(context), who(update)
    with handling(s, update, person):
        text = s.tutor.progress_text(person.learner, person.chat)
    await send(s, person, [OutMessage(html.escape(text))])


async def restart(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/restart: ask before starting the current lesson over."""
    s, person = services(context), who(update)
    with handling(s, update, person):
        latest = s.store.latest_progress(person.learner, person.chat)
    if latest is None or latest.lesson not in s.tutor.lessons:
        await send(s, person, [OutMessage("You have no lesson to restart yet. Use /start to begin.")])
        return
    title = html.escape(s.tutor.lessons[latest.lesson].lesson.title)
    buttons = (
        (("Yes, start over", button_data(ConfirmButton("restart", latest.lesson, True))),),
        (("No, keep my place", button_data(ConfirmButton("restart", latest.lesson, False))),),
    )
    await send(s, person, [OutMessage(f"Start “{title}” over from the beginning? Your score starts again.", buttons)])


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forget: ask before deleting everything stored about the learner."""
    s, person = services(context), who(update)
    with handling(s, update, person):
        pass
    buttons = (
        (("Yes, delete everything", button_data(ConfirmButton("forget", None, True))),),
        (("No, keep it", button_data(ConfirmButton("forget", None, False))),),
    )
    text = "Delete everything I have stored about you: your progress, answers and written reflections? This cannot be undone."
    await send(s, person, [OutMessage(text, buttons)])


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: what the bot does and its commands."""
    s, person = services(context), who(update)
    with handling(s, update, person):
        pass
    await send(s, person, [OutMessage(HELP)])


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any other /command."""
    s, person = services(context), who(update)
    with handling(s, update, person):
        pass
    await send(s, person, [OutMessage("I don't know that command. /help lists the ones I know.")])


# --- messages -------------------------------------------------------------------------


async def text_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Typed text: an answer to the current step (or Continue, or an option by number)."""
    s, person = services(context), who(update)
    assert update.message is not None and update.message.text is not None
    log.debug("text from %s: %r", person.learner, update.message.text)
    await typing(s, person)
    with handling(s, update, person):
        latest = s.store.latest_progress(person.learner, person.chat)
        if latest is None or latest.lesson not in s.tutor.lessons:
            reply = None
        elif latest.state.finished or latest.state.node not in s.tutor.lessons[latest.lesson].lesson.nodes:
            reply = s.tutor.current(person.learner, person.chat)
        else:
            step = view(s.tutor.lessons[latest.lesson].lesson, latest.state)
            value = typed_input(step, update.message.text)
            reply = s.tutor.act(person.learner, person.chat, value, latest.lesson, update.update_id)
    if reply is None:
        await send(s, person, [OutMessage("Hello! Send /start to begin a lesson, or /help to see what I can do.")])
    else:
        await show(s, person, reply)


async def other_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, voice and the like: say what the bot expects instead."""
    s, person = services(context), who(update)
    with handling(s, update, person):
        latest = s.store.latest_progress(person.learner, person.chat)
    kind = None
    if latest and latest.lesson in s.tutor.lessons:
        lesson = s.tutor.lessons[latest.lesson].lesson
        if latest.state.finished:
            kind = "end"
        elif latest.state.node in lesson.nodes:
            kind = view(lesson, latest.state).kind
    hint = HINTS[kind] if kind else "Send /start to begin a lesson."
    await send(s, person, [OutMessage(f"I can only read text and button taps. {hint}")])


# --- buttons --------------------------------------------------------------------------


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on an inline button."""
    s, person = services(context), who(update)
    query = update.callback_query
    assert query is not None
    try:
        await query.answer()  # at once, so the button stops spinning
    except TelegramError:
        pass  # too old to answer (e.g. handled again after a restart); the reply still follows
    try:
        pressed = parse_button(query.data)
        if isinstance(pressed, (ChoiceButton, ContinueButton, LessonButton)) and pressed.lesson not in s.tutor.lessons:
            raise BadButton("unknown lesson")
    except BadButton:
        with handling(s, update, person):
            reply = s.tutor.current(person.learner, person.chat)
        if not s.just_refused(person.chat_id):
            await send(s, person, [OutMessage("<i>I don't recognise that button, so nothing changed.</i>")])
            await show(s, person, reply)
        return
    if isinstance(pressed, (ChoiceButton, ContinueButton)):
        await answer_step(s, person, update, query, pressed)
    elif isinstance(pressed, LessonButton):
        with handling(s, update, person):
            reply = s.tutor.begin(person.learner, person.chat, pressed.lesson)
        await show(s, person, reply)
    else:
        await confirm(s, person, update, query, pressed)


async def answer_step(s: Services, person: Who, update: Update, query: CallbackQuery, pressed: ChoiceButton | ContinueButton) -> None:
    if isinstance(pressed, ChoiceButton):
        value = Choose(pressed.node, pressed.option)
    else:
        value = Continue(pressed.node)
    with handling(s, update, person):
        reply = s.tutor.act(person.learner, person.chat, value, pressed.lesson, update.update_id)
    if reply.error is not None and s.just_refused(person.chat_id):
        return
    if reply.error is None or isinstance(reply.error, (StaleInput, LessonFinished)):
        # Answered now, or it belongs to a step that is over: it takes no more taps.
        text = None
        if reply.error is None and isinstance(pressed, ChoiceButton) and isinstance(query.message, Message):
            node = s.tutor.lessons[pressed.lesson].lesson.nodes[pressed.node]
            text = answered(query.message.text_html, node.options[pressed.option].text)
        await edit(s, query, text)
    await show(s, person, reply)


async def confirm(s: Services, person: Who, update: Update, query: CallbackQuery, pressed: ConfirmButton) -> None:
    reply = None
    with handling(s, update, person):
        if pressed.action == "forget" and pressed.yes:
            s.inbox.mark_handled(update.update_id)  # first, so that forget scrubs this update too
            s.store.forget(person.learner)
            note = "Done: everything stored about you is deleted. Send /start whenever you want to begin again."
        elif pressed.action == "forget":
            note = "Nothing was deleted."
        elif pressed.yes and pressed.lesson in s.tutor.lessons:
            reply = s.tutor.begin(person.learner, person.chat, pressed.lesson, restart=True, update_id=update.update_id)
            note = "Starting over."
        else:
            note = "OK, you keep your place."
            if s.store.latest_progress(person.learner, person.chat):
                reply = s.tutor.current(person.learner, person.chat)
    await edit(s, query, None)
    await send(s, person, [OutMessage(f"<i>{note}</i>")])
    if reply is not None:
        await show(s, person, reply)


async def edit(s: Services, query: CallbackQuery, text: str | None) -> None:
    """Take the buttons off a message, and show the answer in it if `text` is given."""
    message = query.message
    if not isinstance(message, Message):  # too old to be edited (or gone)
        return
    try:
        if text is None:
            await s.sender.call(lambda: message.edit_reply_markup(reply_markup=None))
        else:
            await s.sender.call(lambda: message.edit_text(text, parse_mode="HTML", reply_markup=None))
    except (TelegramError, Blocked) as exc:
        log.info("could not edit message %s: %s", message.message_id, exc)


# --- groups ---------------------------------------------------------------------------


async def group_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Commands in groups: group study is not available yet; point to the private chat."""
    s = services(context)
    chat = update.effective_chat
    assert chat is not None
    with s.store.atomic():
        s.inbox.mark_handled(update.update_id)
    username = context.bot.username
    text = f"Group study is not available yet. Talk to me one-to-one: @{html.escape(username)}"
    try:
        await s.sender.send(chat.id, OutMessage(text))
    except Blocked:
        pass


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log a handler's failure; the learner's stored progress is untouched by it."""
    update_id = getattr(update, "update_id", "?")
    log.error("error while handling update %s", update_id, exc_info=context.error)

"""What the bot does when a learner taps an inline button.

A tap is answered at once, so the button stops spinning. Button data is untrusted:
garbled or forged data, or a button of a step that is over, changes nothing and shows
the learner where they are (once per burst of taps).
"""

from __future__ import annotations

import logging

from telegram import CallbackQuery, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.engine import Choose, Continue, LessonFinished, StaleInput
from bot.telegram_bot.render import (
    BadButton,
    ChoiceButton,
    ConfirmButton,
    ContinueButton,
    LessonButton,
    OutMessage,
    answered,
    parse_button,
)
from bot.telegram_bot.sending import Blocked
from bot.telegram_bot.services import Services, Who, handling, send, services, show, who

log = logging.getLogger(__name__)


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

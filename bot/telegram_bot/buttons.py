"""What the bot does when a learner taps an inline button.

A tap is answered at once, so the button stops spinning. Button data is untrusted:
garbled or forged data, or a button of a step that is over, changes nothing and shows
the learner where they are (once per burst of taps). A second tap on a button that was
just accepted changes nothing and sends nothing. A confirmation ("start over?") is as
stale-proof as an answer: it carries the learner's last event, and a "yes" tapped after
they moved on is refused.
"""

from __future__ import annotations

import logging

from telegram import CallbackQuery, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import engine
from bot.engine import Check, Choose, Continue, Input, LessonFinished, Revisit, StaleInput
from bot.telegram_bot.render import (
    BadButton,
    CheckButton,
    ChoiceButton,
    ConfirmButton,
    ContinueButton,
    LessonButton,
    OutMessage,
    RevisitButton,
    answered,
    check_buttons,
    checked,
    is_review_button,
    parse_button,
)
from bot.telegram_bot import study
from bot.telegram_bot.sending import Blocked
from bot.telegram_bot.services import Replies, Services, Who, handling, services, who

log = logging.getLogger(__name__)


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on an inline button."""
    s, person, query = services(context), who(update), update.callback_query
    if person is None or query is None:
        return
    if not person.private:  # group study's buttons; it answers the tap itself
        await study.button(update, context)
        return
    if is_review_button(query.data):  # instructor review: the files, and reviewing reflections
        await _review_button(update, context, s, query)
        return
    # The answer is recorded (and committed) first, then the tap answered so the button
    # stops spinning: the commit does not wait for a Bot API call, which queues under load.
    try:
        take(s, person, update, query)
    finally:
        await _answer(s, query, None)


def take(s: Services, person: Who, update: Update, query: CallbackQuery) -> None:
    """Record what a tap in a private chat means, and queue its replies."""
    try:
        pressed = parse_button(query.data)
        if not isinstance(pressed, ConfirmButton) and pressed.lesson not in s.tutor.lessons:
            raise BadButton("unknown lesson")
    except BadButton:
        with handling(s, update, person) as out:
            note = OutMessage("<i>I don't recognise that button, so nothing changed.</i>")
            out.show(s.tutor.current(person.learner, person.chat), before=[note])
        return
    if isinstance(pressed, CheckButton) and not pressed.done and _toggled(s, person, update, query, pressed):
        return
    if isinstance(pressed, (ChoiceButton, ContinueButton, CheckButton, RevisitButton)):
        answer_step(s, person, update, query, pressed)
    elif isinstance(pressed, LessonButton):
        with handling(s, update, person) as out:
            out.show(s.tutor.begin(person.learner, person.chat, pressed.lesson, update_id=update.update_id))
    else:
        confirm(s, person, update, query, pressed)


async def _review_button(update: Update, context: ContextTypes.DEFAULT_TYPE, s: Services, query: CallbackQuery) -> None:
    from bot.telegram_bot import review  # instructors only: learners never load it

    data = query.data
    assert isinstance(data, str)
    if data.startswith("x:"):
        _, fmt, lesson = data.split(":")
        await _answer(s, query, "Making the file…")
        await review.export(update, context, fmt, None if lesson == "*" else lesson)
        return
    _, action, event = data.split(":")
    note = await review.review_button(update, context, action, int(event))
    await _answer(s, query, note)


async def _answer(s: Services, query: CallbackQuery, text: str | None) -> None:
    """Answer the tap at once, so the button stops spinning; tried twice, then let go."""
    try:
        await s.sender.call(lambda: query.answer(text), attempts=2)
    except (TelegramError, Blocked):
        pass  # e.g. too old to answer (handled again after a restart); the reply still follows


def _toggled(s: Services, person: Who, update: Update, query: CallbackQuery, pressed: CheckButton) -> bool:
    """A tap on a self-check point: its mark flips in the message's buttons, and nothing is
    recorded until Done. False if the self-check is not the learner's current step."""
    progress = s.store.progress(person.learner, pressed.lesson, person.chat)
    lesson = s.tutor.lessons[pressed.lesson].lesson
    if progress is None or not progress.state.checking or progress.state.node != pressed.node:
        return False
    if progress.state.node not in lesson.nodes:
        return False
    step = engine.view(lesson, progress.state)
    if pressed.marked >= 1 << len(step.options):
        return False
    with handling(s, update, person) as out:
        if isinstance(query.message, Message):  # else too old to edit: the tap changes nothing
            out.edit(query.message.message_id, buttons=check_buttons(pressed.lesson, step, pressed.marked))
    return True


def _input(pressed: ChoiceButton | ContinueButton | CheckButton | RevisitButton) -> Input:
    if isinstance(pressed, ChoiceButton):
        return Choose(pressed.node, pressed.option)
    if isinstance(pressed, ContinueButton):
        return Continue(pressed.node)
    if isinstance(pressed, CheckButton):
        return Check(pressed.node, tuple(i for i in range(8) if pressed.marked >> i & 1))
    return Revisit(pressed.section)


def answer_step(
    s: Services, person: Who, update: Update, query: CallbackQuery, pressed: ChoiceButton | ContinueButton | CheckButton | RevisitButton
) -> None:
    value = _input(pressed)
    with handling(s, update, person) as out:
        reply = s.tutor.act(person.learner, person.chat, value, pressed.lesson, update.update_id)
        if isinstance(reply.error, StaleInput) and s.tutor.accepted_already(person.learner, person.chat, pressed.lesson, value):
            return  # a second tap on the very button just accepted: its reply is on its way
        if isinstance(pressed, RevisitButton):  # the end keeps its buttons, to look at another part later
            out.show(reply)
            return
        if reply.error is None:
            # One message answers it: the learner's answer echoed, the feedback, the next step.
            # The tapped message keeps its buttons (taking them off would cost a second call
            # per answer); a later tap on one of them is refused below, and takes them off.
            echo = None
            if isinstance(pressed, ChoiceButton):
                echo = answered(s.tutor.lessons[pressed.lesson].lesson.nodes[pressed.node].options[pressed.option].text)
            elif isinstance(value, Check):
                echo = checked(list(value.points))
            out.show(reply, echo=echo)
            return
        edited = isinstance(query.message, Message) and s.outbox.edited(person.chat_id, query.message.message_id)
        if isinstance(reply.error, (StaleInput, LessonFinished)) and not edited:
            # It belongs to a step that is over: it takes no more taps. (Once: a flood of taps
            # on an old button must not cost a Bot API call each.)
            edit(out, query, None)
        out.show(reply)


def confirm(s: Services, person: Who, update: Update, query: CallbackQuery, pressed: ConfirmButton) -> None:
    forgotten = False
    with handling(s, update, person) as out:
        reply = None
        if pressed.action == "forget" and pressed.yes and pressed.event != s.store.last_event(person.learner):
            note = "That question is from earlier, and you have gone on learning since, so nothing was deleted. Send /forget to delete everything."
        elif pressed.action == "forget" and pressed.yes:
            s.inbox.mark_handled(update.update_id)  # first, so that forget scrubs this update too
            s.store.forget(person.learner)
            forgotten = True
            note = "Done: everything stored about you is deleted. Send /start whenever you want to begin again."
        elif pressed.action == "forget":
            note = "Nothing was deleted."
        elif pressed.yes and _still_current(s, person, pressed):
            reply = s.tutor.begin(person.learner, person.chat, pressed.lesson or "", restart=True, update_id=update.update_id)
            note = "Starting over."
        elif pressed.yes:
            note = "That question is from earlier, and you have moved on since, so nothing changed. Send /restart to start over."
            if s.store.latest_progress(person.learner, person.chat):
                reply = s.tutor.current(person.learner, person.chat)
        else:
            note = "OK, you keep your place."
            if s.store.latest_progress(person.learner, person.chat):
                reply = s.tutor.current(person.learner, person.chat)
        # After /forget, these replies are deleted from the outbox as soon as they are sent.
        edit(out, query, None, erase=forgotten)
        notice = [OutMessage(f"<i>{note}</i>")]
        if forgotten:
            out.send(notice, erase=True)
        elif reply is None or reply.again:  # nothing changed: rationed like any refusal
            out.inform(notice + (out.render(reply) if reply else []))
        else:
            out.show(reply, before=notice)
    if forgotten:
        s.store.scrub()  # rewrite the file and empty the WAL, so no byte of the learner's stays in either


def _still_current(s: Services, person: Who, pressed: ConfirmButton) -> bool:
    """Whether the learner is where they were when asked (no event since)."""
    if pressed.lesson not in s.tutor.lessons or pressed.event is None:
        return False
    progress = s.store.progress(person.learner, pressed.lesson, person.chat)
    return progress is not None and progress.last_event == pressed.event


def edit(out: Replies, query: CallbackQuery, text: str | None, erase: bool = False) -> None:
    """Take the buttons off the tapped message, and show the answer in it if `text` is given."""
    message = query.message
    if isinstance(message, Message):  # else too old to be edited (or gone)
        out.edit(message.message_id, text, erase=erase)

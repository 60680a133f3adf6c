"""What the bot does with commands and messages in a one-to-one chat, and with the group
commands it does not know (those it knows are in `groups` and `study`).

Every handler has the same shape: work out who is asking, then run the tutor inside
`handling`: one transaction that records the answer, adds the replies to the outbox and
marks the update handled. The outbox sends the replies after the commit. Replies that
change nothing are rate-limited per chat (`Replies.inform`, `Replies.refuse`), so a
flood of messages gets a bounded number of answers. Button taps are in
`bot.telegram_bot.buttons`.
"""

from __future__ import annotations

import html
import logging

from telegram import BotCommand, Update
from telegram.ext import ContextTypes

from bot.engine import LessonFinished
from bot.telegram_bot import groups, study
from bot.telegram_bot.render import ConfirmButton, LessonButton, OutMessage, answered, button_data, shortened
from bot.telegram_bot.services import (
    HINTS,
    Services,
    Who,
    drafting,
    handling,
    services,
    typing,
    who,
)
from bot.validate import estimated_minutes

log = logging.getLogger(__name__)

COMMANDS = [
    BotCommand("start", "Begin, or go on where you left off"),
    BotCommand("lessons", "The lessons you can take"),
    BotCommand("progress", "Where you are and how it has gone"),
    BotCommand("restart", "Start the current lesson over"),
    BotCommand("help", "How this works"),
    BotCommand("transcript", "Your whole history with me, as a file"),
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
    "/transcript – your whole history with me, as a file\n"
    "/forget – delete everything stored about you\n"
    "/help – this message\n\n"
    "<b>Instructors and group admins:</b> /report [lesson] – how learners are doing, and the "
    "files (CSV, JSON Lines, xAPI, HTML); /review – written answers waiting for you, to mark or "
    "answer with feedback.\n\n"
    "<b>In a group</b> (a group admin adds me to it): an admin sends /study to go through a lesson "
    "together, each member answering for themselves, or /assign for a lesson each of you does here "
    "with me; /help in the group says more."
)


def lesson_list(s: Services, person: Who) -> OutMessage:
    lines, rows = ["<b>Lessons</b>"], []
    for loaded in sorted(s.tutor.lessons.values(), key=lambda each: each.lesson.id != s.settings.default_lesson):
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
        rows.append(((shortened(lesson.title, 60), button_data(LessonButton(lesson.id))),))
    return OutMessage("\n".join(lines), tuple(rows))


# --- commands -------------------------------------------------------------------------


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start and /start <lesson>: welcome, then resume or pick a lesson."""
    s, person = services(context), who(update)
    if person is None:
        return
    typing(s, person)
    wanted = context.args[0] if context.args else None
    if wanted is not None and wanted not in s.tutor.lessons and wanted.lower() in s.tutor.lessons:
        wanted = wanted.lower()  # lesson ids are lower case; a link typed by hand may not be
    with handling(s, update, person) as out:
        latest = s.store.latest_progress(person.learner, person.chat)
        assigned = groups.joined(s, person.learner, wanted)  # a group's assignment link
        remedy = study.own_remedy(s, person.learner, wanted)  # a group question's "your own explanation"
        if remedy is not None:
            out.send([remedy, OutMessage("<i>Send /start to take a lesson here one-to-one as well.</i>")])
        elif assigned:
            lesson_id, group = assigned
            note = OutMessage(
                f"<i>This lesson was assigned in “{html.escape(group)}”: your progress counts for the group, and "
                "the group's admins will see your answers and written reflections on this lesson from now on "
                "(not what you did here before).</i>"
            )
            out.show(s.tutor.begin(person.learner, person.chat, lesson_id, update_id=update.update_id), before=[note])
        elif wanted in s.tutor.lessons:
            out.show(s.tutor.begin(person.learner, person.chat, wanted, update_id=update.update_id, result=True))
        elif wanted is None and latest and latest.lesson in s.tutor.lessons:
            out.show(s.tutor.begin(person.learner, person.chat, latest.lesson, update_id=update.update_id, result=True))
        else:
            intro = WELCOME if wanted is None else f"There is no lesson called “{html.escape(shortened(wanted, 64))}”."
            listing = lesson_list(s, person)
            out.inform([OutMessage(f"{intro}\n\n{listing.text}", listing.buttons)])  # one message: one Bot API call


async def lessons(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/lessons: the lessons with their status, a button each."""
    s, person = services(context), who(update)
    if person is None:
        return
    with handling(s, update, person) as out:
        out.inform([lesson_list(s, person)])


async def progress(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/progress: where the learner is and how it has gone."""
    s, person = services(context), who(update)
    if person is None:
        return
    with handling(s, update, person) as out:
        out.inform([OutMessage(html.escape(s.tutor.progress_text(person.learner, person.chat)))])


async def restart(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/restart: ask before starting the current lesson over.

    The buttons carry the learner's last event, so that a "yes" tapped after they moved
    on changes nothing (see `buttons.confirm`)."""
    s, person = services(context), who(update)
    if person is None:
        return
    with handling(s, update, person) as out:
        latest = s.store.latest_progress(person.learner, person.chat)
        if latest is None or latest.lesson not in s.tutor.lessons:
            out.inform([OutMessage("You have no lesson to restart yet. Use /start to begin.")])
            return
        title = html.escape(s.tutor.lessons[latest.lesson].lesson.title)
        buttons = (
            (("Yes, start over", button_data(ConfirmButton("restart", latest.lesson, True, latest.last_event))),),
            (("No, keep my place", button_data(ConfirmButton("restart", latest.lesson, False, latest.last_event))),),
        )
        out.inform([OutMessage(f"Start “{title}” over from the beginning? Your score starts again.", buttons)])


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forget: ask before deleting everything stored about the learner.

    As with /restart, the buttons carry the learner's last event: a "yes" tapped under an
    old question, after they went on learning, deletes nothing (see `buttons.confirm`)."""
    s, person = services(context), who(update)
    if person is None:
        return
    text = "Delete everything I have stored about you: your progress, answers and written reflections? This cannot be undone."
    with handling(s, update, person) as out:
        last = s.store.last_event(person.learner)
        buttons = (
            (("Yes, delete everything", button_data(ConfirmButton("forget", None, True, last))),),
            (("No, keep it", button_data(ConfirmButton("forget", None, False, last))),),
        )
        out.inform([OutMessage(text, buttons)])


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: what the bot does and its commands."""
    s, person = services(context), who(update)
    if person is None:
        return
    with handling(s, update, person) as out:
        out.inform([OutMessage(HELP)])


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any other /command."""
    s, person = services(context), who(update)
    if person is None:
        return
    with handling(s, update, person) as out:
        out.refuse([OutMessage("I don't know that command. /help lists the ones I know.")])


# --- messages -------------------------------------------------------------------------


async def text_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Typed text: an answer to the current step (or Continue, or an option by number).

    Text counts only at a step whose message had reached the learner when they sent it;
    otherwise they are shown the step (again) and nothing is recorded."""
    s, person = services(context), who(update)
    if person is None or update.message is None or update.message.text is None:
        return
    log.debug("text from %s: %r", person.learner, update.message.text)
    event = drafting(s, person.learner)
    if event is not None:  # an instructor's feedback on a reflection (see /review)
        from bot.telegram_bot import review  # instructors only: learners never load it

        await review.take_feedback(update, context, event, update.message.text)
        return
    typing(s, person)
    with handling(s, update, person) as out:
        received = s.inbox.received_at(update.update_id)
        reply = s.tutor.typed(
            person.learner,
            person.chat,
            update.message.text,
            update.update_id,
            seen=lambda step: s.outbox.delivered(
                person.chat_id, step, before=received, older_than=update.message.message_id
            ),
        )
        if reply is None:
            out.inform([OutMessage("Hello! Send /start to begin a lesson, or /help to see what I can do.")])
        else:
            out.show(reply, echo=answered(reply.chosen) if reply.chosen else None)


async def other_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, voice and the like: say what the bot expects instead."""
    s, person = services(context), who(update)
    if person is None:
        return
    with handling(s, update, person) as out:
        reply = s.tutor.current(person.learner, person.chat)
        kind = "end" if isinstance(reply.error, LessonFinished) else reply.step.kind if reply.step else None
        hint = HINTS[kind] if kind else "Send /start to begin a lesson."
        out.refuse([OutMessage(f"I can only read text and button taps. {hint}")])


# --- groups ---------------------------------------------------------------------------

GROUP_NOTE = (
    "In a group I know /study, /next, /pause, /resume, /stop, /assign, /standings and /help. "
    "To take a lesson one-to-one, talk to me: @{username}"
)


async def group_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Other commands in groups: say which ones the bot knows there (not for a command
    addressed to another bot, `/next@otherbot`: a bot that is an admin sees those too)."""
    s, message = services(context), update.effective_message
    addressed = (message.text or "").split(maxsplit=1)[0].partition("@")[2] if message is not None else ""
    if addressed and addressed.lower() != (context.bot.username or "").lower():
        with s.store.atomic():
            s.inbox.mark_handled(update.update_id)
        return
    if update.effective_chat is not None:
        groups.reply(s, update, GROUP_NOTE.format(username=html.escape(context.bot.username)), rationed=True)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Note a handler's failure for `app.update_handler`, which retries or sets the update aside.

    The handler's transaction was rolled back, so the learner's stored progress is untouched."""
    update_id = getattr(update, "update_id", None)
    if isinstance(update_id, int) and context.error is not None:
        services(context).failures[update_id] = context.error
    else:
        log.error("error outside any update", exc_info=context.error)

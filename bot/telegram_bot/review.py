"""Instructor review in a private chat with the bot: `/report [lesson]` (a lesson's summary,
with buttons that send the export files), `/review` (written reflections waiting, one at a
time: mark reviewed, skip, or reply with feedback that the bot delivers to the learner),
and `/transcript` (a learner's own history; an instructor may name a learner).

Who sees what is `bot.access`; every refusal is the same polite line, whether the reader
may not see something or it does not exist. Feedback is recorded and put in the outbox in
one transaction, so a crash between the two cannot lose it.
"""

from __future__ import annotations

import html
import io
import logging

from telegram import InputFile, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import access, reports
from bot.reports import Filters, Scope
from bot.telegram_bot import groups
from bot.telegram_bot.render import MARKS, OutMessage, shortened
from bot.telegram_bot.sending import Blocked
from bot.telegram_bot.services import Services, Who, drafting, handling, services, who

log = logging.getLogger(__name__)

FORMATS = {"csv": ("CSV gradebook", "csv"), "jsonl": ("JSON Lines", "jsonl"), "xapi": ("xAPI", "json"), "html": ("HTML report", "html")}


async def scope_of(s: Services, context: ContextTypes.DEFAULT_TYPE, user_id: int) -> Scope:
    """What this user may see: everything for an instructor, else the groups they lead."""
    if user_id in s.settings.instructors:
        return reports.EVERYTHING
    led = [group for group in access.groups_of_interest(s.store) if await groups.may_lead(s, context, group, user_id)]
    return access.scope_for(False, s.store, led)


def refuse(s: Services, update: Update, person: Who) -> None:
    with handling(s, update, person) as out:
        out.refuse([OutMessage(access.REFUSAL)])


# --- /report ---------------------------------------------------------------------------------


async def report(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/report [lesson]: each lesson's summary, and buttons for the files."""
    s, person = services(context), who(update)
    if person is None or update.effective_user is None:
        return
    scope = await scope_of(s, context, update.effective_user.id)
    wanted = context.args[0] if context.args else None
    if scope is access.NOTHING or (wanted is not None and wanted not in s.tutor.lessons):
        refuse(s, update, person)
        return
    summaries = reports.summarize(s.store, s.tutor.lessons, Filters(lesson=wanted), scope)
    with handling(s, update, person) as out:
        if not summaries:
            out.inform([OutMessage("No learner has started a lesson that you may see yet.")])
            return
        key = wanted or "*"
        buttons = (tuple((label, f"x:{fmt}:{key}") for fmt, (label, _) in list(FORMATS.items())[:2]),
                   tuple((label, f"x:{fmt}:{key}") for fmt, (label, _) in list(FORMATS.items())[2:]))
        texts = [summary_text(s, summary) for summary in summaries]
        out.send([OutMessage("\n\n".join(texts), buttons)])


def summary_text(s: Services, summary: reports.LessonSummary) -> str:
    lesson = s.tutor.lessons[summary.lesson].lesson
    median = reports.duration(None if summary.median_minutes is None else summary.median_minutes * 60)
    mean = f"{summary.mean_score:.1f} of {summary.questions_total}" if summary.mean_score is not None else "–"
    lines = [
        f"<b>{html.escape(summary.title)}</b>",
        f"Learners: {summary.who()}",
        f"Median time to finish: {median}; mean score at the first try: {mean}",
    ]
    hardest = summary.hardest(5)
    if hardest:
        lines.append("\n<b>The hardest questions</b> (right at the first try):")
        lines += [f"• {q.right} of {q.answered}: {html.escape(shortened(q.ask.strip(), 90))}" for q in hardest]
    if summary.misconceptions:
        lines.append("\n<b>The misconceptions chosen most:</b>")
        for idea, count in summary.misconceptions.most_common(5):
            lines.append(f"• {html.escape(idea)} ({count}): {html.escape(lesson.lesson.argument_map.get(idea, ''))}")
    waiting = summary.reflections_waiting
    lines.append(f"\nReflections waiting for review: {waiting}" + (" — /review" if waiting else ""))
    return "\n".join(lines)


async def export(update: Update, context: ContextTypes.DEFAULT_TYPE, fmt: str, lesson: str | None) -> None:
    """Send one export file as a document (made now, so it is never stale)."""
    s, person, user = services(context), who(update), update.effective_user
    assert person is not None and user is not None
    scope = await scope_of(s, context, user.id)
    if scope is access.NOTHING or (lesson is not None and lesson not in s.tutor.lessons):
        return refuse(s, update, person)
    from bot import exports, html_report  # the writers; imported here, as only this needs them

    writers = {"csv": exports.write_csv, "jsonl": exports.write_jsonl, "xapi": exports.write_xapi, "html": html_report.write_html}
    buffer = io.StringIO()
    writers[fmt](s.store, s.tutor.lessons, buffer, filters=Filters(lesson=lesson), scope=scope)
    name = f"tutorbot-{lesson or 'all'}.{FORMATS[fmt][1] if fmt != 'xapi' else 'xapi.json'}"
    data = buffer.getvalue().encode("utf-8-sig" if fmt == "csv" else "utf-8")  # Excel reads UTF-8 CSV only after a BOM
    try:
        await s.sender.call(lambda: context.bot.send_document(person.chat_id, InputFile(data, filename=name)))
    except (TelegramError, Blocked) as exc:
        log.warning("sending an export to %s failed: %s", person.chat_id, exc)
        with handling(s, update, person) as out:
            out.send([OutMessage("Sending the file failed. Please tap the button again in a moment.")])
        return
    with s.store.atomic():
        s.inbox.mark_handled(update.update_id)


# --- /review ---------------------------------------------------------------------------------


async def review(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/review: the oldest reflection waiting for review (`/review skipped`: skipped ones too)."""
    s, person, user = services(context), who(update), update.effective_user
    if person is None or user is None:
        return
    scope = await scope_of(s, context, user.id)
    if scope is access.NOTHING:
        return refuse(s, update, person)
    skipped = bool(context.args) and context.args[0] == "skipped"
    with handling(s, update, person) as out:
        out.send([next_reflection(s, scope, skipped)])


def next_reflection(s: Services, scope: Scope, skipped: bool = False, after: int | None = None) -> OutMessage:
    found = reports.waiting_reflections(s.store, Filters(), scope, limit=2, skipped=skipped)
    found = [r for r in found if r.event != after] or ([] if after else found)
    if not found:
        return OutMessage("No reflection is waiting for review." + ("" if skipped else " (/review skipped shows the skipped ones.)"))
    return reflection_message(s, found[0])


def reflection_message(s: Services, item: reports.Reflection) -> OutMessage:
    question = reports.written_question(s.tutor.lessons, item.lesson, item.node)
    asked = question.write.strip() if question else item.node
    model = f"\n\n{MARKS['model']}{html.escape(question.model_answer.strip())}" if question else ""
    where = "" if item.chat == item.learner else f" (in {html.escape(item.chat)})"
    text = (
        f"<b>{html.escape(item.name or item.learner)}</b>{where}, {html.escape(item.at[:16].replace('T', ' '))}:\n"
        f"<blockquote>{html.escape(asked)}</blockquote>\n<b>They wrote:</b>\n{html.escape(item.text)}{model}"
    )
    buttons = (
        (("✓ Reviewed", f"rv:ok:{item.event}"), ("Skip", f"rv:skip:{item.event}")),
        (("Reply with feedback", f"rv:fb:{item.event}"),),
    )
    return OutMessage(text, buttons)


async def review_button(update: Update, context: ContextTypes.DEFAULT_TYPE, action: str, event: int) -> str | None:
    """Reviewed, skip, or reply: what to tell the reviewer in the tap's answer."""
    s, person, user = services(context), who(update), update.effective_user
    assert person is not None and user is not None
    scope = await scope_of(s, context, user.id)
    item = reports.reflection(s.store, event, scope) if scope is not access.NOTHING else None
    if item is None:
        refuse(s, update, person)
        return None
    message = update.callback_query.message if update.callback_query else None
    with handling(s, update, person) as out:
        if message is not None:
            out.edit(message.message_id)
        taken = _taken(s, item, person.learner)
        if taken:  # an old message's buttons, or another reviewer's: what was recorded stands
            out.send([OutMessage(f"<i>{taken}</i>"), next_reflection(s, scope, after=event)])
            return None
        if action == "fb":
            clear_drafts(s, person.learner)
            s.store.db.execute(
                "INSERT OR REPLACE INTO reviews (event, status, reviewer, at) VALUES (?, 'drafting', ?, ?)",
                [event, person.learner, s.store.now()],
            )
            out.send([OutMessage(f"Send your feedback to {html.escape(item.name or item.learner)} as your next message, or /cancel.")])
            return None
        status = "reviewed" if action == "ok" else "skipped"
        s.store.db.execute(
            "INSERT OR REPLACE INTO reviews (event, status, reviewer, at) VALUES (?, ?, ?, ?)",
            [event, status, person.learner, s.store.now()],
        )
        out.send([next_reflection(s, scope, after=event)])
    return "Marked reviewed." if action == "ok" else "Skipped for now."


def _taken(s: Services, item: reports.Reflection, reviewer: str) -> str | None:
    """Why this reflection is no longer open to `reviewer` (None if it is): reviewed, answered,
    or someone else is writing feedback on it. A reviewed or answered one is never changed:
    a second reviewer's tap must not wipe feedback the learner already has."""
    if item.status == "answered":
        return "Feedback on this one was sent already, so nothing changed."
    if item.status == "reviewed":
        return "This one was marked reviewed already, so nothing changed."
    if item.status == "drafting":
        row = s.store.db.execute("SELECT reviewer FROM reviews WHERE event = ?", [item.event]).fetchone()
        if row is not None and row[0] != reviewer:
            return "Another reviewer is writing feedback on this one, so nothing changed."
    return None


def clear_drafts(s: Services, reviewer: str) -> None:
    s.store.db.execute("DELETE FROM reviews WHERE status = 'drafting' AND reviewer = ?", [reviewer])


async def take_feedback(update: Update, context: ContextTypes.DEFAULT_TYPE, event: int, text: str) -> None:
    """The reviewer's message is their feedback: record it and queue it for the learner,
    in one transaction (so it is delivered even if the bot dies right after)."""
    s, person, user = services(context), who(update), update.effective_user
    assert person is not None and user is not None
    scope = await scope_of(s, context, user.id)
    item = reports.reflection(s.store, event, scope) if scope is not access.NOTHING else None
    with handling(s, update, person) as out:
        if item is None:  # the learner was forgotten meanwhile, or the reviewer no longer leads
            clear_drafts(s, person.learner)
            out.send([OutMessage("That reflection is no longer there for you to answer, so nothing was sent.")])
            return
        if not s.store.db.execute(
            "UPDATE reviews SET status = 'answered', feedback = ?, at = ? WHERE event = ? AND status = 'drafting' "
            "AND reviewer = ?",
            [text, s.store.now(), event, person.learner],
        ).rowcount:  # reviewed by someone else since the draft began
            out.send([OutMessage("That reflection was reviewed by someone else meanwhile, so nothing was sent.")])
            return
        question = reports.written_question(s.tutor.lessons, item.lesson, item.node)
        asked = html.escape(question.write.strip() if question else item.node)
        note = (
            f"📝 <b>Feedback from your instructor</b> on your answer to:\n<blockquote>{asked}</blockquote>\n"
            f"<b>You wrote:</b> <i>{html.escape(shortened(item.text, 300))}</i>\n\n{html.escape(text)}"
        )
        delivered = item.learner.startswith("tg:")
        if delivered:
            s.outbox.add(int(item.learner[3:]), OutMessage(note), update.update_id, priority=1)
        done = "Sent to them, and recorded." if delivered else "Recorded (this learner is not on Telegram)."
        out.send([OutMessage(f"<i>{done}</i>"), next_reflection(s, scope, after=event)])


async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel: stop writing feedback."""
    s, person = services(context), who(update)
    if person is None:
        return
    with handling(s, update, person) as out:
        had = drafting(s, person.learner) is not None
        clear_drafts(s, person.learner)
        out.inform([OutMessage("OK, no feedback sent." if had else "There is nothing to cancel.")])


# --- /transcript -------------------------------------------------------------------------------


async def transcript(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/transcript: your own history as a file; an instructor or group admin may name a
    learner (their id, e.g. tg:123456)."""
    s, person, user = services(context), who(update), update.effective_user
    if person is None or user is None:
        return
    wanted = context.args[0] if context.args else person.learner
    if wanted.isascii() and wanted.isdigit():  # a Telegram id alone, as TUTORBOT_INSTRUCTORS has them
        wanted = f"tg:{wanted}"
    scope = access.own_scope(person.learner) if wanted == person.learner else await scope_of(s, context, user.id)
    lines = reports.transcript(s.store, s.tutor.lessons, wanted, scope=scope) if scope is not access.NOTHING else []
    if not lines:
        if wanted == person.learner:
            with handling(s, update, person) as out:
                out.inform([OutMessage("You have no history with me yet. Send /start to begin.")])
            return
        return refuse(s, update, person)
    text = "\n".join(reports.plain(line) for line in lines)
    try:
        await s.sender.call(
            lambda: context.bot.send_document(person.chat_id, InputFile(text.encode(), filename="transcript.txt"))
        )
    except (TelegramError, Blocked) as exc:
        log.warning("sending a transcript to %s failed: %s", person.chat_id, exc)
        with handling(s, update, person) as out:
            out.send([OutMessage("Sending the file failed. Please send /transcript again in a moment.")])
        return
    with s.store.atomic():
        s.inbox.mark_handled(update.update_id)



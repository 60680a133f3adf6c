"""Live group study: a group goes through a lesson together, paced by its leader.

The leader (a group admin or an instructor, see `groups.may_lead`) starts a session with
`/study [lesson] [seconds]` and moves it on with `/next` or the Next button under each
step; `/pause`, `/resume` and `/stop` do what they say. With seconds given, the bot moves
on by itself: a question closes that many seconds after it opens, a passage after the
time it takes to read it. The session is a row in SQLite (`bot.sessions`) with its step
and the time of its next move, so a restart goes on where it was, timer included.

The group walks the lesson's main path (a right answer's way on), skipping steps marked
`solo_only`. Each member answers for themselves: a question is a non-anonymous quiz poll
where Telegram's limits allow, else buttons whose tap is acknowledged to that member
alone; a written step is answered by replying to it. A member's first answer counts and
goes through the engine into their own group progress (chat "tg:<group>"). When a
question closes the group gets one tally message; a member who answered wrong gets their
own remedy in private if they have talked to the bot before, else through the tally's
link. The group never sees anyone's answers or score; the leader gets the scores in private.

Everything goes through the outbox, which keeps a group under Telegram's 20 messages a
minute; the live count under an open question is one message edited at most every
`COUNT_EVERY` seconds.
"""

from __future__ import annotations

import html
import logging
import re
from collections import Counter

from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import engine
from bot.engine import Answer, Choose, InputError, State, Step, TooShort, group_path
from bot.lesson import ChoiceNode, EndNode, Lesson, Node, WriteNode
from bot.sessions import Session
from bot.telegram_bot import groups
from bot.telegram_bot.render import MARKS, OutMessage, listed, shortened, step_body
from bot.telegram_bot.sending import Blocked
from bot.telegram_bot.services import Services, services

log = logging.getLogger(__name__)

ADVANCE = (10, 3600)  # seconds a question may stay open when the bot moves on by itself
COUNT_EVERY = 15.0  # seconds between edits of an open question's live count
AFTER_TALLY = 20.0  # seconds a tally stays up before the bot moves on by itself
READ_WPM = 200
POLL_LIMITS = {"question": 300, "option": 100, "explanation": 200, "options": 10}  # Telegram's
NEXT = "Next ▸"
UNKNOWN_BUTTON = "I don't recognise that button, so nothing changed."
AS_CHAT = "You are writing as a chat, not as yourself, so your reply was not recorded. Please send it from your own account."
REMEDY = "gq-"  # /start gq-<session>-<step>: a member's own explanation of a group question
HOW = (
    "Each of you answers for yourself, and your answers are recorded for you. My tallies show only "
    "how many chose what; but a question asked as a poll is not anonymous, so, as in any such Telegram "
    "poll, the group can see who voted for what (a tap on a button only I see). Written questions are "
    "answered by <b>replying</b> to them, which the group sees too."
)


# --- the group's path through a lesson (bot.engine.group_path) ------------------------------


def post(s: Services, session: Session, message: OutMessage, update_id: int | None, droppable: bool = False) -> None:
    """A message of the session to its group, in the forum topic it runs in (if any)."""
    s.outbox.add(session.chat_id, message, update_id, droppable=droppable, thread=session.thread)


def view(lesson: Lesson, session: Session, node_id: str) -> Step:
    return engine.view(lesson, State(node=node_id, seed=session.seed))


def is_question(node: Node) -> bool:
    return isinstance(node, (ChoiceNode, WriteNode))


def reading_seconds(text: str) -> float:
    return min(90.0, max(8.0, len(text.split()) * 60 / READ_WPM))


# --- button data ----------------------------------------------------------------------------
# g:a:<session>:<step>:<option>   a member's answer (<step>: the node's place in `path`)
# g:n:<session>:<step>:<phase>    the leader's Next, valid only at that step and phase
# g:s:<lesson>[:<seconds>]        the leader picks a lesson from /study's menu

_ANSWER = re.compile(r"g:a:([0-9]{1,12}):([0-9]{1,4}):([0-9])")
_NEXT = re.compile(r"g:n:([0-9]{1,12}):([0-9]{1,4}):(shown|open|closed)")
_PICK = re.compile(r"g:s:([a-z0-9][a-z0-9_-]*)(?::([0-9]{1,4}))?")


def next_button(session: Session, lesson: Lesson, node_id: str, phase: str) -> tuple[str, str]:
    return NEXT, f"g:n:{session.id}:{group_path(lesson).index(node_id)}:{phase}"


def remedy_link(username: str, session: Session, lesson: Lesson, node_id: str) -> str:
    """The link to a member's own explanation of a group question. It names the lesson too
    (where Telegram's 64 characters allow), so that it still works once the group has begun
    another session, which replaces this one's row."""
    start = f"{REMEDY}{session.id}-{group_path(lesson).index(node_id)}"
    if len(f"{start}-{lesson.id}") <= 64:
        start += f"-{lesson.id}"
    return f"https://t.me/{username}?start={start}"


# --- what the group sees --------------------------------------------------------------------


def poll_fits(step: Step, node: ChoiceNode) -> bool:
    """Whether a question fits in a Telegram poll."""
    return (
        len(step.text) <= POLL_LIMITS["question"]
        and 2 <= len(step.options) <= POLL_LIMITS["options"]
        and all(len(option) <= POLL_LIMITS["option"] for option in step.options)
        and (not node.graded or sum(o.correct for o in node.options) == 1)
    )


def question_text(lesson: Lesson, session: Session, node_id: str, heading: str | None, count: int | None = None) -> str:
    """An open question with buttons (or a written question), as the group sees it."""
    step = view(lesson, session, node_id)
    body = step_body(step, heading, lesson.lesson.source.author)
    if step.kind == "choice" and any(len(option) > 30 for option in step.options):
        body += "\n\n" + listed(step.options)
    if step.kind == "text":
        body += "\n\n<i>✍️ Reply to this message with your answer (the group sees replies).</i>"
    if count is not None:
        body += f"\n\n🙋 {count} answered so far"
    return body


def answer_buttons(lesson: Lesson, session: Session, node_id: str) -> tuple:
    step = view(lesson, session, node_id)
    at = group_path(lesson).index(node_id)
    data = [f"g:a:{session.id}:{at}:{step.option_id(i)}" for i in range(len(step.options))]
    if all(len(option) <= 30 for option in step.options):
        return tuple(((option, d),) for option, d in zip(step.options, data))
    return (tuple((str(i), d) for i, d in enumerate(data, 1)),)


def heading_for(lesson: Lesson, before: str | None, node_id: str) -> str | None:
    """The part's title, when the group's step `node_id` begins a new part."""
    section = lesson.section_of[node_id]
    if before is not None and lesson.section_of[before].id == section.id:
        return None
    part, parts = lesson.part_of(node_id)
    return f"<b>Part {part} of {parts}: {html.escape(section.title)}</b>"


def show(s: Services, session: Session, node_id: str, update_id: int | None, before: str | None) -> Session:
    """Post the group's step `node_id` (a question opens) and move the session there."""
    lesson = s.tutor.lessons[session.lesson].lesson
    node = lesson.nodes[node_id]
    step = view(lesson, session, node_id)
    heading = heading_for(lesson, before, node_id)
    key = f"{lesson.id}:{node_id}"
    author = lesson.lesson.source.author
    if isinstance(node, EndNode):
        summary = group_summary(s, session, lesson, node_id)
        session = s.sessions.update(session, node=node_id, phase="shown", state="finished", due_at=None)
        hint = finish(s, session, lesson, update_id)
        post(s, session, OutMessage(step_body(step, heading, author) + "\n\n" + summary + hint, step=key), update_id)
        return session
    phase = "open" if is_question(node) else "shown"
    nxt = (next_button(session, lesson, node_id, phase),)
    if isinstance(node, ChoiceNode) and poll_fits(step, node):
        if heading or step.quote:  # the poll carries only the question
            post(s, session, OutMessage(step_body(step, heading, author, text=False)), update_id)
        right = [i for i, option_id in enumerate(step.order) if node.options[option_id].correct]
        explanation = None
        if node.graded and len(node.options[step.order[right[0]]].feedback) <= POLL_LIMITS["explanation"]:
            explanation = node.options[step.order[right[0]]].feedback
        s.outbox.add_poll(
            session.chat_id, step.text, list(step.options), right[0] if node.graded else None, explanation, (nxt,), key, update_id,
            thread=session.thread,
        )
    elif isinstance(node, ChoiceNode):
        text = question_text(lesson, session, node_id, heading)
        post(s, session, OutMessage(text, answer_buttons(lesson, session, node_id) + (nxt,), key), update_id)
    elif isinstance(node, WriteNode):
        post(s, session, OutMessage(question_text(lesson, session, node_id, heading), (nxt,), key), update_id)
    else:
        post(s, session, OutMessage(step_body(step, heading, author), (nxt,), key), update_id)
    session = s.sessions.update(session, node=node_id, phase=phase, counted=0, counted_at=s.store.now())
    if session.advance and session.state == "running":
        session = s.sessions.update(session, due_at=s.sessions.after(wait_at(s, session)))
    return session


def close(s: Services, session: Session, update_id: int | None) -> Session:
    """Close the open question: its buttons go, the group gets the tally, and each member
    who answered wrong and can be written to gets their own explanation in private."""
    lesson = s.tutor.lessons[session.lesson].lesson
    node = lesson.nodes[session.node]
    key = f"{lesson.id}:{node.id}"
    nxt = ((next_button(session, lesson, node.id, "closed"),),)
    step = view(lesson, session, node.id)
    if isinstance(node, ChoiceNode) and poll_fits(step, node):
        s.outbox.add_stop_poll(session.chat_id, key, update_id=update_id)
    else:  # the question without its answer buttons, with its final count
        count = s.sessions.count(session, node.id)
        heading = heading_for(lesson, _before(lesson, node.id), node.id)
        s.outbox.add_edit(session.chat_id, key, question_text(lesson, session, node.id, heading, count), update_id)
    if isinstance(node, ChoiceNode):
        post(s, session, OutMessage(tally(s, session, lesson, node), nxt + remedy_row(s, session, lesson, node)), update_id)
        send_remedies(s, session, lesson, node, update_id)
    else:
        count = s.sessions.count(session, node.id)
        wrote = f"✍️ {count} of you wrote an answer." if count != 1 else "✍️ One of you wrote an answer."
        text = f"{wrote}\n\n{MARKS['model']}{html.escape(node.model_answer.strip())}"
        post(s, session, OutMessage(text, nxt), update_id)
    session = s.sessions.update(session, phase="closed", due_at=None)
    if session.advance and session.state == "running":
        session = s.sessions.update(session, due_at=s.sessions.after(wait_at(s, session)))
    return session


def remedy_row(s: Services, session: Session, lesson: Lesson, node: ChoiceNode) -> tuple:
    if not node.graded or not s.sessions.count(session, node.id):
        return ()
    link = remedy_link(s.sender.bot.username, session, lesson, node.id)
    return ((("Your own explanation, in private", link),),)


def tally(s: Services, session: Session, lesson: Lesson, node: ChoiceNode) -> str:
    """How many chose what (right marked), and the explanation of the most chosen wrong answer."""
    counts = s.sessions.tally(session, node.id)
    total = sum(counts.values())
    step = view(lesson, session, node.id)
    lines = [f"📊 <b>{total} answered</b>" if total else "📊 <b>No one answered this one.</b>"]
    for position, option_id in enumerate(step.order, 1):
        option = node.options[option_id]
        mark = " ✅" if node.graded and option.correct else ""
        lines.append(f"{position}. {html.escape(shortened(option.text, 80))}: <b>{counts.get(option_id, 0)}</b>{mark}")
    if node.graded:
        right = next(o for o in node.options if o.correct)
        lines.append(f"\n{MARKS['correct']}{html.escape(right.feedback.strip())}")
        wrong = [(n, i) for i, n in counts.items() if 0 <= i < len(node.options) and not node.options[i].correct and n]
        if wrong:
            chosen = node.options[max(wrong)[1]]
            lines.append(f"\n<b>Most chosen of the others:</b> {html.escape(shortened(chosen.text, 80))}\n{MARKS['wrong']}{html.escape(chosen.feedback.strip())}")
    return "\n".join(lines)


def remedy_text(lesson: Lesson, node: ChoiceNode, option: int | None, group: str) -> str:
    """A member's own explanation of a group question: what they chose, why it is right or
    not, the lesson's remedy for their misconception, and the right answer."""
    lines = [f"<i>From the group study in “{html.escape(group)}”:</i>\n<b>{html.escape(node.ask.strip())}</b>"]
    right = next((o for o in node.options if o.correct), None)
    if option is None or not 0 <= option < len(node.options):
        lines.append("You did not answer this one.")
    else:
        chosen = node.options[option]
        verdict = "correct" if chosen.correct else "wrong"
        lines.append(f"<b>Your answer:</b> {html.escape(chosen.text)}\n{MARKS[verdict]}{html.escape(chosen.feedback.strip())}")
        if not chosen.correct:
            for message_id in lesson.remedy_chain(chosen.next):
                lines.append(html.escape(lesson.nodes[message_id].say.strip()))  # type: ignore[union-attr]
    if right is not None and (option is None or not node.options[option].correct):
        lines.append(f"<b>The answer:</b> {html.escape(right.text)}\n{MARKS['correct']}{html.escape(right.feedback.strip())}")
    return "\n\n".join(lines)


def send_remedies(s: Services, session: Session, lesson: Lesson, node: ChoiceNode, update_id: int | None) -> None:
    """Each member who answered wrong and has a private chat with the bot gets their remedy
    there (bulk traffic: paced so that it holds nobody up)."""
    if not node.graded:
        return
    for learner, option in s.sessions.answered(session, node.id):
        if 0 <= option < len(node.options) and not node.options[option].correct:
            user_id = int(learner.removeprefix("tg:"))
            if s.outbox.reached(user_id):
                text = remedy_text(lesson, node, option, session.title or "your group")
                s.outbox.add(user_id, OutMessage(text), update_id, priority=1)


def group_summary(s: Services, session: Session, lesson: Lesson, upto: str) -> str:
    """How the session went, for the whole group: who took part, the hardest questions and
    the misconceptions chosen most; never anyone's answers or score."""
    steps = group_path(lesson)
    asked = [n for n in steps[: steps.index(upto) + 1] if isinstance(lesson.nodes[n], ChoiceNode) and lesson.nodes[n].graded]
    answers = s.sessions.answers(session)
    members = {learner for learner, _, _ in answers}
    every = [m for m in members if {n for learner, n, _ in answers if learner == m} >= set(asked)]
    if not asked:
        return "<b>This session:</b> no question was asked yet."
    took_part = "1 took part" if len(members) == 1 else f"{len(members)} took part"
    questions = "the 1 question asked" if len(asked) == 1 else f"all {len(asked)} questions asked"
    lines = [f"<b>This session:</b> {took_part}; {len(every)} answered {questions}."]
    hardest = []
    misconceptions: Counter[str] = Counter()
    for question in asked:
        node = lesson.nodes[question]
        assert isinstance(node, ChoiceNode)
        chosen = [option for _, n, option in answers if n == question and 0 <= option < len(node.options)]
        right = sum(node.options[o].correct for o in chosen)
        misconceptions.update(node.options[o].misconception for o in chosen if node.options[o].misconception)
        if chosen and right < len(chosen):
            hardest.append((right / len(chosen), question, right, len(chosen)))
    if hardest:
        lines.append("\n<b>The hardest questions:</b>")
        for _, question, right, of in sorted(hardest)[:3]:
            ask = lesson.nodes[question].ask  # type: ignore[union-attr]
            lines.append(f"• {html.escape(shortened(ask.strip(), 90))} ({right} of {of} right)")
    if misconceptions:
        lines.append("\n<b>The misconceptions chosen most:</b>")
        for idea, count in misconceptions.most_common(3):
            lines.append(f"• {html.escape(lesson.lesson.argument_map.get(idea, idea))} ({count})")
    return "\n".join(lines)


def finish(s: Services, session: Session, lesson: Lesson, update_id: int | None) -> str:
    """The session reached the end: each member's group progress is finished too, and the
    leader gets each member's score in private (see `send_scores`, whose hint it returns)."""
    for learner in dict.fromkeys(learner for learner, _, _ in s.sessions.answers(session)):
        s.tutor.in_group(learner, session.chat, lesson.id, session.node, None, session.seed, session.started_at, update_id)
    return send_scores(s, session, lesson, update_id)


def send_scores(s: Services, session: Session, lesson: Lesson, update_id: int | None) -> str:
    """Each member's score (right at the first try) to the leader, in private. If the bot
    cannot write to them (Telegram lets a bot write only to someone who wrote to it), the
    hint for the group's last message that says how they get the scores; else ""."""
    members = list(dict.fromkeys(learner for learner, _, _ in s.sessions.answers(session)))
    if not members or session.leader is None:
        return ""
    leader = int(session.leader.removeprefix("tg:"))
    if not s.outbox.reached(leader):
        return (f"\n\n<i>The scores go to the leader in private, but they have no chat with me yet: "
                f"they can start one (@{html.escape(s.sender.bot.username or '')}) and send /report.</i>")
    scores = []
    for learner in members:
        progress = s.store.progress(learner, lesson.id, session.chat)
        scores.append((learner, progress.state.score if progress else 0))
    names = dict(s.store.db.execute(
        "SELECT DISTINCT l.id, l.name FROM group_answers g JOIN learners l ON l.id = g.learner WHERE g.session = ?", [session.id]
    ).fetchall())
    questions = engine.graded_questions(lesson)
    upto = "" if session.state == "finished" else ", so far (the session was stopped)"
    lines = [f"<b>Scores in “{html.escape(session.title or 'your group')}”, {html.escape(lesson.title)}</b> "
             f"(right at the first try, of {questions}{upto}):"]
    lines += [f"• {html.escape(names.get(m) or m)}: {score}" for m, score in sorted(scores, key=lambda x: -x[1])]
    lines.append("\n<i>Only you see this; the group saw no one's score.</i>")
    s.outbox.add(leader, OutMessage("\n".join(lines)), update_id, priority=1)
    return ""


def wait_at(s: Services, session: Session) -> float:
    """Seconds the session stays at its step when the bot moves on by itself."""
    if session.phase == "open":
        return float(session.advance or 0)
    if session.phase == "closed":
        return AFTER_TALLY
    return reading_seconds(view(s.tutor.lessons[session.lesson].lesson, session, session.node).text)


def move_on(s: Services, session: Session, update_id: int | None) -> Session:
    """One step of the session: close the open question, else show the next step."""
    if session.phase == "open":
        return close(s, session, update_id)
    lesson = s.tutor.lessons[session.lesson].lesson
    steps = group_path(lesson)
    at = steps.index(session.node) if session.node in steps else -1
    if at + 1 >= len(steps):
        return s.sessions.update(session, state="finished", due_at=None)
    return show(s, session, steps[at + 1], update_id, session.node)


# --- commands -------------------------------------------------------------------------------


def _session(s: Services, chat_id: int) -> Session | None:
    session = s.sessions.of(f"tg:{chat_id}")
    if session is not None and session.lesson not in s.tutor.lessons:
        return None  # its lesson is gone from dialogues/
    return session


async def study(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/study [lesson] [seconds]: start a study session (the lesson menu if none is named)."""
    s, chat = services(context), update.effective_chat
    if chat is None or not await groups.leading(s, update, context):
        return
    args = list(context.args or [])
    seconds = None
    if args and args[-1].isdecimal():
        seconds = int(args.pop()[:6])
        if not ADVANCE[0] <= seconds <= ADVANCE[1]:
            groups.reply(s, update, f"The seconds a question stays open must be between {ADVANCE[0]} and {ADVANCE[1]}.", rationed=True)
            return
    current = _session(s, chat.id)
    if current is not None and current.active:
        title = html.escape(s.tutor.lessons[current.lesson].lesson.title)
        groups.reply(s, update, f"A study session is on here already: {title}. /stop ends it.", rationed=True)
        return
    if not args:
        pace = f":{seconds}" if seconds else ""
        rows = tuple(((loaded.lesson.title[:60], f"g:s:{loaded.lesson.id}{pace}"),) for loaded in s.tutor.lessons.values())
        with s.store.atomic():
            s.outbox.add(
                chat.id, OutMessage("Which lesson shall we study? (Admins pick.)", rows), update.update_id, priority=1,
                thread=groups.topic(update.effective_message),
            )
            s.inbox.mark_handled(update.update_id)
        return
    if args[0] not in s.tutor.lessons:
        names = ", ".join(sorted(s.tutor.lessons))
        groups.reply(s, update, f"There is no lesson called “{html.escape(args[0][:64])}”. Lessons: {names}.", rationed=True)
        return
    user = update.effective_user
    assert user is not None
    with s.store.atomic():
        begin(s, chat.id, chat.title, args[0], f"tg:{user.id}", user.full_name, seconds, update.update_id,
              groups.topic(update.effective_message))
        s.inbox.mark_handled(update.update_id)


def begin(
    s: Services, chat_id: int, title: str | None, lesson_id: str, leader: str, name: str | None, seconds: int | None, update_id: int,
    thread: int | None = None,
) -> None:
    lesson = s.tutor.lessons[lesson_id].lesson
    s.store.ensure_learner(leader, name)
    session = s.sessions.begin(f"tg:{chat_id}", chat_id, title, lesson_id, leader, s.tutor.seeds(), group_path(lesson)[0], seconds, thread)
    pace = (
        f"I move on by myself: a question stays open {seconds} seconds." if seconds
        else "The group's admins move on with /next or the Next button."
    )
    text = (
        f"📚 <b>Group study: {html.escape(lesson.title)}</b>\n\n{HOW}\n\n{pace} /pause, /resume and /stop "
        "are for admins too; /help says more."
    )
    post(s, session, OutMessage(text), update_id)
    show(s, session, session.node, update_id, None)


async def next_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/next: close the open question, or go on to the next step."""
    await _control(update, context, "next")


async def pause(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _control(update, context, "pause")


async def resume(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _control(update, context, "resume")


async def stop(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _control(update, context, "stop")


async def _control(update: Update, context: ContextTypes.DEFAULT_TYPE, action: str) -> None:
    s, chat = services(context), update.effective_chat
    if chat is None or not await groups.leading(s, update, context):
        return
    session = _session(s, chat.id)
    if session is None or not session.active:
        groups.reply(s, update, "No study session is on here. An admin can start one with /study.", rationed=True)
        return
    with s.store.atomic():
        note = control(s, session, action, update.update_id)
        if note:
            post(s, session, OutMessage(note), update.update_id, droppable=True)
        s.inbox.mark_handled(update.update_id)


def control(s: Services, session: Session, action: str, update_id: int | None) -> str | None:
    """Carry out a leader's command; a note for the group, if one is due."""
    if action == "next":
        if session.state == "paused":
            return "The session is paused: /resume goes on."
        move_on(s, session, update_id)
        return None
    if action == "pause":
        if session.state == "paused":
            return None
        s.sessions.update(session, state="paused", due_at=None)
        return "⏸ Paused. /resume goes on." + (" Answers still count meanwhile." if session.phase == "open" else "")
    if action == "resume":
        if session.state == "running":
            return None
        due = None
        if session.advance:
            due = s.sessions.after(wait_at(s, session))
        s.sessions.update(session, state="running", due_at=due)
        return "▶️ Going on."
    # stop
    if session.phase == "open":
        session = close(s, session, update_id)
    lesson = s.tutor.lessons[session.lesson].lesson
    summary = group_summary(s, session, lesson, session.node)
    session = s.sessions.update(session, state="stopped", due_at=None)
    hint = send_scores(s, session, lesson, update_id)
    post(s, session, OutMessage(f"⏹ The study session has ended.\n\n{summary}{hint}"), update_id)
    return None


# --- taps, poll answers and replies -----------------------------------------------------------


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on a button in a group: a member's answer, the leader's Next or lesson pick."""
    s, query, user, chat = services(context), update.callback_query, update.effective_user, update.effective_chat
    if query is None or user is None or chat is None:
        return
    data = query.data if isinstance(query.data, str) else ""
    moving, pick = _NEXT.fullmatch(data), _PICK.fullmatch(data)
    leads = await groups.may_lead(s, context, chat.id, user.id) if moving or pick else False
    with s.store.atomic():
        if match := _ANSWER.fullmatch(data):
            note = answer(s, update, int(match[1]), int(match[2]), int(match[3]))
        elif (moving or pick) and not leads:
            note = groups.LEADERS_ONLY
        elif moving:
            note = leader_next(s, update, int(moving[1]), int(moving[2]), moving[3])
        elif pick:
            note = picked(s, update, pick[1], int(pick[2]) if pick[2] else None)
        else:
            note = UNKNOWN_BUTTON
        s.inbox.mark_handled(update.update_id)
    try:
        await s.sender.call(lambda: query.answer(note), attempts=2)
    except (TelegramError, Blocked):
        pass  # too old to answer (handled again after a restart): what it did is done


def _step_at(s: Services, chat_id: int, session_id: int, at: int) -> tuple[Session, Lesson, str] | None:
    """The group's session and step, if a button's session and step are the current ones."""
    session = _session(s, chat_id)
    if session is None or session.id != session_id or not session.active:
        return None
    lesson = s.tutor.lessons[session.lesson].lesson
    steps = group_path(lesson)
    if not 0 <= at < len(steps) or steps[at] != session.node:
        return None
    return session, lesson, session.node


def answer(s: Services, update: Update, session_id: int, at: int, option: int) -> str:
    """A member's tap on an answer button; what to tell them (only them)."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    with s.store.atomic():
        found = _step_at(s, chat.id, session_id, at)
        if found is None or found[0].phase != "open":
            return "This question is closed, so nothing changed."
        session, lesson, node_id = found
        node = lesson.nodes[node_id]
        if not isinstance(node, ChoiceNode) or not 0 <= option < len(node.options):
            return UNKNOWN_BUTTON
        return record(s, session, lesson, f"tg:{user.id}", user.full_name, option, update.update_id)


def record(s: Services, session: Session, lesson: Lesson, learner: str, name: str | None, option: int, update_id: int) -> str:
    """Record a member's first answer to the open question (a later one changes nothing)."""
    node = lesson.nodes[session.node]
    assert isinstance(node, ChoiceNode)
    s.store.ensure_learner(learner, name)
    first = s.sessions.first_answer(session, node.id, learner)
    if first is not None:
        return f"You answered already ({shortened(node.options[first].text, 60)}); your first answer counts."
    s.tutor.in_group(learner, session.chat, lesson.id, node.id, Choose(node.id, option), session.seed, session.started_at, update_id)
    s.sessions.answer(session, node.id, learner, option)
    return f"Recorded: {shortened(node.options[option].text, 80)}. The tally comes when the question closes."


def leader_next(s: Services, update: Update, session_id: int, at: int, phase: str) -> str | None:
    chat = update.effective_chat
    assert chat is not None
    with s.store.atomic():
        found = _step_at(s, chat.id, session_id, at)
        if found is None or found[0].phase != phase:
            return "That step is over, so nothing changed."
        note = control(s, found[0], "next", update.update_id)
    return note


def picked(s: Services, update: Update, lesson_id: str, seconds: int | None) -> str | None:
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    if lesson_id not in s.tutor.lessons or (seconds is not None and not ADVANCE[0] <= seconds <= ADVANCE[1]):
        return UNKNOWN_BUTTON
    with s.store.atomic():
        current = _session(s, chat.id)
        if current is not None and current.active:
            return "A study session is on here already; /stop ends it."
        message = update.callback_query.message if update.callback_query else None
        thread = groups.topic(message) if isinstance(message, Message) else None
        begin(s, chat.id, chat.title, lesson_id, f"tg:{user.id}", user.full_name, seconds, update.update_id, thread)
        if isinstance(message, Message):
            s.outbox.add_edit(chat.id, message.message_id, None, update.update_id)
    return None


async def poll_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A member's vote in a group question's poll."""
    s, vote = services(context), update.poll_answer
    if vote is None:
        return
    with s.store.atomic():
        # A vote cast as a chat (an anonymous admin) names a placeholder bot as its user: no one's.
        user = vote.user if vote.voter_chat is None else None
        sent = s.outbox.poll(vote.poll_id)
        if user is not None and sent is not None and len(vote.option_ids) == 1:
            session = _session(s, sent[0])
            lesson = s.tutor.lessons[session.lesson].lesson if session else None
            if session and lesson and session.active and session.phase == "open" and sent[1] == f"{lesson.id}:{session.node}":
                step = view(lesson, session, session.node)
                position = vote.option_ids[0]
                if 0 <= position < len(step.order):
                    record(s, session, lesson, f"tg:{user.id}", user.full_name, step.order[position], update.update_id)
        s.inbox.mark_handled(update.update_id)


async def reflection(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A reply in a group to the bot's written question: that member's answer."""
    s, message, user, chat = services(context), update.effective_message, update.effective_user, update.effective_chat
    text = message.text or message.caption if message is not None else None  # a photo's caption answers too
    if message is None or user is None or chat is None or message.reply_to_message is None or not text:
        return
    session = _session(s, chat.id)
    lesson = s.tutor.lessons[session.lesson].lesson if session else None
    replied = message.reply_to_message.message_id
    step = s.outbox.step_of(chat.id, replied)  # which step the replied message showed, if any
    written = step is not None and lesson is not None and isinstance(lesson.nodes.get(step.split(":", 1)[1]), WriteNode)
    if not written:
        return  # a reply to something else: talk among members, not for the bot
    assert session is not None and lesson is not None
    if message.sender_chat is not None:  # an anonymous admin, or a channel: no one's own answer
        groups.reply(s, update, AS_CHAT, rationed=True)
        return
    if not session.active or step != f"{lesson.id}:{session.node}" or session.phase != "open":
        groups.reply(s, update, "That question is closed; your reply was not recorded.", rationed=True)
        return
    learner = f"tg:{user.id}"
    with s.store.atomic():
        s.store.ensure_learner(learner, user.full_name)
        note, recorded = None, False
        again = s.sessions.first_answer(session, session.node, learner) is not None
        if not again:
            try:
                s.tutor.in_group(
                    learner, session.chat, lesson.id, session.node, Answer(text), session.seed, session.started_at, update.update_id
                )
                s.sessions.answer(session, session.node, learner, -1)
                recorded = True
            except TooShort as error:
                note = f"{html.escape(user.first_name)}, could you say a little more? {str(error).capitalize()}."
            except InputError:
                pass
        elif not s.quiet(chat.id, "group"):  # (rationed: a group's 20 messages a minute are for the lesson)
            note = f"{html.escape(user.first_name)}, only your first answer counts, and it is recorded already."
        if note:
            s.outbox.add(chat.id, OutMessage(note), update.update_id, droppable=True, thread=groups.topic(message))
        s.inbox.mark_handled(update.update_id)
    if recorded:  # acknowledged to the member with a reaction, not a message to the whole group
        try:
            await s.sender.call(lambda: context.bot.set_message_reaction(chat.id, message.message_id, "✍"), attempts=1)
        except (TelegramError, Blocked):
            pass


# --- a member's own explanation, in private ----------------------------------------------------


def own_remedy(s: Services, learner: str, start_arg: str | None) -> OutMessage | None:
    """For `/start gq-<session>-<step>` in a private chat: the member's own explanation of
    that group question; None if the argument is no such link."""
    match = re.fullmatch(r"gq-([0-9]{1,12})-([0-9]{1,4})(?:-([a-z0-9][a-z0-9_-]*))?", start_arg or "")
    if match is None:
        return None
    session = s.sessions.get(int(match[1]))
    lesson_id = session.lesson if session is not None else match[3]  # (a later session replaced its row)
    if lesson_id not in s.tutor.lessons:
        return OutMessage("That group question is no longer stored.")
    lesson = s.tutor.lessons[lesson_id].lesson
    steps = group_path(lesson)
    at = int(match[2])
    node = lesson.nodes.get(steps[at]) if at < len(steps) else None
    if not isinstance(node, ChoiceNode):
        return OutMessage("That group question is no longer stored.")
    option = s.sessions.first_answer(int(match[1]), node.id, learner)
    title = session.title if session is not None else None
    return OutMessage(remedy_text(lesson, node, option, title or "your group"))


# --- the clock ---------------------------------------------------------------------------------


async def tick(s: Services) -> None:
    """Make every move that is due (a question closes, the next step comes), and refresh the
    live counts under open questions (each at most every `COUNT_EVERY` seconds)."""
    moved: set[int] = set()
    for session in s.sessions.due():
        with s.store.atomic():
            current = s.sessions.get(session.id)
            if current is None or current.lesson not in s.tutor.lessons:
                continue
            if current.state == "running" and current.due_at == session.due_at:
                move_on(s, current, None)
                moved.add(current.chat_id)
    for session in s.sessions.counting():
        if session.lesson in s.tutor.lessons and count_due(s, session):
            moved.add(session.chat_id)
    for chat_id in moved:
        await s.outbox.flush(chat_id)


def count_due(s: Services, session: Session) -> bool:
    """Edit the open question's live count if it changed and the last edit is old enough."""
    lesson = s.tutor.lessons[session.lesson].lesson
    node = lesson.nodes.get(session.node)
    if node is None or (isinstance(node, ChoiceNode) and poll_fits(view(lesson, session, node.id), node)):
        return False  # a poll shows its own count
    if session.counted_at and session.counted_at > s.sessions.after(-COUNT_EVERY):
        return False
    count = s.sessions.count(session, node.id)
    if count == session.counted:
        return False
    message_id = s.outbox.message_of(session.chat_id, f"{lesson.id}:{node.id}")
    if message_id is None:
        return False
    with s.store.atomic():
        heading = heading_for(lesson, _before(lesson, node.id), node.id)
        text = question_text(lesson, session, node.id, heading, count)
        buttons = (answer_buttons(lesson, session, node.id) if isinstance(node, ChoiceNode) else ()) + (
            (next_button(session, lesson, node.id, "open"),),
        )
        s.outbox.add_edit(session.chat_id, message_id, text, buttons=buttons)
        s.sessions.update(session, counted=count, counted_at=s.store.now())
    return True


def _before(lesson: Lesson, node_id: str) -> str | None:
    steps = group_path(lesson)
    at = steps.index(node_id)
    return steps[at - 1] if at else None

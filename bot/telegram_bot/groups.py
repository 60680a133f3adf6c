"""Group study, self-paced, and what all group study shares: a group's leader assigns a
lesson with `/assign`; each member does it in a private chat with the bot (a deep link
takes them there) and counts for the group; `/standings` shows the group who has finished
and how far the others are, never anyone's answers. (Live study, together in the group,
is `bot.telegram_bot.study`.)

Who may lead: the group's admins (asked of Telegram, remembered for a minute) and the
user ids in TUTORBOT_INSTRUCTORS. Anyone else gets one short refusal (rationed per group);
an anonymous admin, who writes as the group itself, is asked to use their own account.
"""

from __future__ import annotations

import html
import logging
import time

from telegram import BotCommand, Message, Update
from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.telegram_bot.render import OutMessage
from bot.telegram_bot.sending import Blocked
from bot.telegram_bot.services import Services, services
from bot.tutor import progress_bar

log = logging.getLogger(__name__)

COMMANDS = [  # the command menu in groups
    BotCommand("study", "Admins: study a lesson together here (/study madman 90: by itself)"),
    BotCommand("next", "Admins: close the question, or go on"),
    BotCommand("pause", "Admins: pause the study session"),
    BotCommand("resume", "Admins: go on after a pause"),
    BotCommand("stop", "Admins: end the study session"),
    BotCommand("assign", "Admins: assign a lesson, done one-to-one, counted for the group"),
    BotCommand("standings", "Who has finished the assigned lesson"),
    BotCommand("help", "How group study works"),
]
HELP = (
    "<b>Studying in this group</b>\n"
    "<b>Together, now:</b> an admin sends /study (or /study madman 90 to move on by itself, a question "
    "staying open 90 seconds). Each of you answers for yourself, by tapping or in the poll; written "
    "questions are answered by <i>replying</i> to them. Your first answer counts. My tallies show how many "
    "chose what, never who; but a poll is not anonymous (the group can see who voted for what), and a "
    "reply is seen by the group. A tap on a button only I see. After each question, the "
    "button under the tally opens your own explanation in a private chat with me.\n"
    "Admins: /next closes a question or goes on (or the Next button), /pause, /resume, /stop.\n\n"
    "<b>Each at your own pace:</b> an admin sends /assign; the button takes each of you to a private "
    "chat with me (from then on, the group's admins see your answers on that lesson), and /standings "
    "shows who has finished (never anyone's answers).\n\n"
    "Only the group's admins (and the bot's instructors) lead. I see only commands, replies to my "
    "messages and taps on my buttons, not your other messages (Telegram's privacy mode)."
)
ADMINS_FOR = 60.0  # seconds a "who is an admin" answer from Telegram is trusted
JOIN = "as-"  # /start as-<assignment id>: the deep link of an assignment
LEADERS_ONLY = "Only the group's admins or instructors can do that."
ANONYMOUS = "You are writing as the group (an anonymous admin). Please send that from your own account."


async def may_lead(s: Services, context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int) -> bool:
    """Whether a user may lead study in a group: an instructor, or one of its admins."""
    if user_id in s.settings.instructors:
        return True
    cache = context.bot_data.setdefault("admins", {})
    known = cache.get((chat_id, user_id))
    if known is not None and time.monotonic() - known[1] < ADMINS_FOR:
        return known[0]
    try:
        member = await s.sender.call(lambda: context.bot.get_chat_member(chat_id, user_id), attempts=2)
    except (TelegramError, Blocked) as exc:
        log.warning("could not ask Telegram who leads group %s (%s)", chat_id, exc)
        return False
    leads = member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
    cache[(chat_id, user_id)] = (leads, time.monotonic())
    return leads


def topic(message: Message | None) -> int | None:
    """The forum topic `message` was sent in, for a reply to go there too (Telegram puts a
    message sent without its topic in the General one); None outside a topic."""
    return message.message_thread_id if message is not None and message.is_topic_message else None


def reply(s: Services, update: Update, text: str, rationed: bool = False, kind: str = "group") -> None:
    """Queue a message to the group and mark the update handled, in one transaction.
    A reply that changes nothing is `rationed` (a group gets only 20 messages a minute, and
    they are for the lesson): a few per group, then one per 15 seconds; a refusal to lead
    (`kind` "refusal") one per 5 seconds."""
    chat = update.effective_chat
    assert chat is not None
    with s.store.atomic():
        if not (rationed and s.quiet(chat.id, kind)):
            s.outbox.add(chat.id, OutMessage(text), update.update_id, droppable=rationed, priority=1, thread=topic(update.effective_message))
        s.inbox.mark_handled(update.update_id)


async def leading(s: Services, update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Whether a command in a group comes from someone who may lead there; if not, they are
    told (an anonymous admin is asked to use their own account)."""
    chat, message, user = update.effective_chat, update.effective_message, update.effective_user
    if chat is None or message is None:
        return False
    if message.sender_chat is not None and message.sender_chat.id == chat.id:
        reply(s, update, ANONYMOUS, rationed=True, kind="refusal")
        return False
    if user is None or not await may_lead(s, context, chat.id, user.id):
        reply(s, update, LEADERS_ONLY, rationed=True, kind="refusal")
        return False
    return True


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help in a group: how group study works."""
    if update.effective_chat is not None:
        reply(services(context), update, HELP, rationed=True)


async def migrated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The group became a supergroup, with a new chat id (Telegram says so in both chats):
    its study session, assignments and history go on under the new id."""
    s, message = services(context), update.effective_message
    if message is None:
        return
    if message.migrate_to_chat_id:
        old, new = message.chat_id, message.migrate_to_chat_id
    elif message.migrate_from_chat_id:
        old, new = message.migrate_from_chat_id, message.chat_id
    else:
        return
    with s.store.atomic():
        moved = s.outbox.move(old, new)
        s.inbox.mark_handled(update.update_id)
    if moved:
        log.info("group %s is now supergroup %s; its study goes on there", old, new)
        s.outbox.request(new)


async def assign(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/assign [lesson] in a group: a button that takes each member to the lesson in private."""
    s, chat, user = services(context), update.effective_chat, update.effective_user
    if chat is None or user is None or not await leading(s, update, context):
        return
    wanted = context.args[0] if context.args else s.settings.default_lesson
    if wanted not in s.tutor.lessons:
        names = ", ".join(sorted(s.tutor.lessons))
        reply(s, update, f"There is no lesson called “{html.escape(wanted[:64])}”. Lessons: {names}.", rationed=True)
        return
    lesson = s.tutor.lessons[wanted].lesson
    with s.store.atomic():
        s.store.ensure_learner(f"tg:{user.id}", user.full_name)
        number = s.store.assign(f"tg:{chat.id}", chat.title, wanted, f"tg:{user.id}")
        link = f"https://t.me/{context.bot.username}?start={JOIN}{number}"
        text = (
            f"📚 <b>{html.escape(lesson.title)}</b> is assigned to this group.\n\n"
            "Tap the button to do it in a private chat with me, at your own pace; your progress "
            "counts for this group, and its admins will see your answers on it from then on. "
            "/standings shows who has finished (never anyone's answers)."
        )
        s.outbox.add(
            chat.id, OutMessage(text, ((("Start the lesson", link),),)), update.update_id, priority=1, thread=topic(update.effective_message)
        )
        s.inbox.mark_handled(update.update_id)


async def standings(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/standings in a group: for each assigned lesson, who has finished and where the others are."""
    s, chat = services(context), update.effective_chat
    if chat is None:
        return
    rows = s.store.standings(f"tg:{chat.id}")
    if not rows:
        assigned = s.store.db.execute("SELECT 1 FROM assignments WHERE chat = ? LIMIT 1", [f"tg:{chat.id}"]).fetchone()
        empty = "No one has started the lesson assigned here yet." if assigned else (
            "Nothing is assigned in this group yet. An admin can send /assign."
        )
        reply(s, update, empty, rationed=True)
        return
    lines: list[str] = []
    heading = None
    for lesson_id, _, name, progress in rows:  # by lesson, then in the order members joined
        loaded = s.tutor.lessons.get(lesson_id)
        if loaded is None:
            continue
        lesson = loaded.lesson
        if lesson_id != heading:
            lines.append(f"\n<b>{html.escape(lesson.title)}</b>")
            heading = lesson_id
        who = html.escape(name or "A member")
        if progress is None or progress.state.node not in lesson.nodes and not progress.state.finished:
            lines.append(f"• {who}: not started")
        elif progress.state.finished:
            lines.append(f"• {who}: ✅ finished")
        else:
            part, parts = lesson.part_of(progress.state.node)
            lines.append(f"• {who}: {progress_bar(part, parts)}")
    reply(s, update, "<b>Standings</b>" + "\n".join(lines), rationed=True)


def joined(s: Services, learner: str, start_arg: str | None) -> tuple[str, str] | None:
    """For `/start as-<id>` in a private chat: record the member (the group's admins see
    their work on the lesson from the first time they join, see `bot.access`) and return
    (lesson id, the group's title); None if the argument is no assignment's."""
    if not start_arg or not start_arg.startswith(JOIN) or not start_arg[len(JOIN):].isdecimal():
        return None
    found = s.store.assignment(int(start_arg[len(JOIN):][:18]))
    if found is None or found["lesson"] not in s.tutor.lessons:
        return None
    s.store.join(found["id"], learner)
    return found["lesson"], found["title"] or "your group"

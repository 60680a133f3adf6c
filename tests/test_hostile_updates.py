"""Property-based tests: hostile and clumsy Telegram updates through the real polling path.

Hypothesis generates batches of updates (forged and garbage button data, presses on old
messages and on other chats' messages, 10,000-character texts, lone surrogates and other
odd Unicode, stickers, photos, edits, business messages, channel posts, chat-member and
poll updates, unknown kinds, odd commands, group traffic, missing fields and wrong types).
Each batch goes into the fake Telegram's queue of a freshly started bot (the real
python-telegram-bot Application and our own polling loop, see `Harness`), on a copy of a
database where five learners are mid-lesson (at a question, a passage, a written question,
a self-check, and at the end with its "Look again" buttons). Then:

- the bot is still running, and every inbox row is handled within a few seconds;
- an update is set aside only if it is malformed (wrong types, missing required fields,
  or a kind python-telegram-bot cannot read); a well-formed one never is;
- the log holds no traceback at all, and no ERROR but the one line of each set-aside update
  (`update N set aside: ...`; the update is kept for a person to look at, so one line is
  the right amount of noise; a traceback would mean our code failed on an update);
- every learner's progress is what replaying their events gives, and every new event
  was caused by an update from that learner, in their own chat, that validly means that
  input (forged data never moves anybody; the mid-lesson learners keep exactly their
  state unless one of their own updates validly moved them);
- a private text, command, sticker or photo from a real user gets a reply, or is
  rationed (`Services.quiet`: a few replies per second per chat at most);
- a group only ever gets the answers a member who leads nothing gets: the list of group
  commands, /help, a refusal to lead, "nothing is on";
- nothing is left unsent in the outbox (the fake accepts every chat id; only edits of
  messages that never existed are refused, and only superseded or refused rows fail).

python-telegram-bot's `AIORateLimiter` (Telegram's own flood limits: 30 sends a second)
is switched off here: the fake has no such limits, and with it 10,000 updates would take
minutes. Our own rationing (`Services.quiet`) stays, and is checked.

Run with `-rP` (or `-s`) to see the totals printed by the last test.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram.ext import AIORateLimiter

import bot.telegram_bot.app as app_module
from bot.engine import (
    Answer,
    Check,
    Choose,
    Continue,
    Input,
    Revisit,
    Start,
    State,
    input_from_dict,
    input_to_dict,
    step,
    view,
)
from bot.loader import load_file
from bot.telegram_bot.render import (
    BadButton,
    CheckButton,
    ChoiceButton,
    ConfirmButton,
    ContinueButton,
    LessonButton,
    RevisitButton,
    parse_button,
)
from bot.telegram_bot.services import QUIET
from bot.tutor import typed_input
from tests.core_lesson import OPENING, REMEDIED, answer, option_data, question_key
from tests.test_telegram_bot import CORE, Harness

LESSON = load_file(CORE).lesson
NODES = sorted(LESSON.nodes)
SECTIONS = [section.id for section in LESSON.sections]
# Mid-lesson: at a question, a passage, a written answer, its self-check, and the end (finished,
# with a question missed: its part is offered for another look).
M_CHOICE, M_MESSAGE, M_WRITE, M_CHECK, M_END = 701, 702, 703, 704, 705
MIDS = (M_CHOICE, M_MESSAGE, M_WRITE, M_CHECK, M_END)
REFLECTION = "Nobody yields to a leader who may not keep the deal: giving in would gain them nothing at all."
FRESH = (801, 802, 803, 804)  # no lesson yet
USERS = MIDS + FRESH
GROUPS = ((-1001234567890, "supergroup"), (-4321, "group"))
DATE = 1_700_000_000
SETTLE = 20.0  # seconds for a batch to be handled and its replies sent (generous: CI machines are busy)
GROUP_REPLIES = (  # all a group's members who lead nothing can get from the bot
    "In a group I know", "Studying in this group", "Only the group's admins", "No study session is on here",
    "Nothing is assigned in this group yet",
)

TOTALS: Counter = Counter()  # across all examples, printed by the last test


# --- the world before each batch: three learners mid-lesson -------------------------------


@dataclass
class World:
    folder: Path
    chats: dict[int, list[dict]]
    next_message_id: int
    next_update_id: int
    data: list[str]  # every button data the learners were shown


def _message(stored: dict) -> dict:
    """A message as Telegram puts it under a button press."""
    return {k: v for k, v in stored.items() if k not in ("from_bot", "html")}


async def _go(h: Harness, user: int, until) -> None:
    """The learner goes on (right answers, but a wrong first one at the remedied question)
    until `until(the last message)` holds."""
    for _ in range(60):
        last = h.last(user)
        if until(last):
            return
        labels = [label for label, _ in h.telegram.buttons(last)]
        if labels == ["Continue ▸"]:
            await h.tap(user, last, "Continue ▸")
        elif "Type your answer" in last["text"]:
            await h.say(user, REFLECTION)
        elif "Done ▸" in labels:
            await h.tap(user, last, "☐ 1")
            await h.tap(user, h.telegram.message(user, last["message_id"]), "Done ▸")
        else:
            key = question_key(last)
            first = not any(e["node"] == key for e in h.events(user))
            await h.tap(user, last, data=option_data(last, answer(key, wrong=key == REMEDIED and first)))
    raise AssertionError(f"learner {user} did not get there")


async def _build(folder: Path) -> World:
    async with Harness(folder) as h:
        for user in MIDS:
            await h.say(user, "/start madman-core")
        await h.tap(M_MESSAGE, h.last(M_MESSAGE), "Continue ▸")  # at the second message
        assert h.store.progress(f"tg:{M_MESSAGE}", "madman-core", f"tg:{M_MESSAGE}").state.node == OPENING[1]
        for _ in OPENING[:-1]:
            await h.tap(M_CHOICE, h.last(M_CHOICE), "Continue ▸")  # at the first question
        assert question_key(h.last(M_CHOICE)) == OPENING[-1]
        # At the written reflection, and at its self-check (or at the end, if the lesson has none).
        await _go(h, M_WRITE, lambda last: "Type your answer" in last["text"] or "🏁" in last["text"])
        await _go(h, M_CHECK, lambda last: "Done ▸" in dict(h.telegram.buttons(last)) or "🏁" in last["text"])
        await _go(h, M_END, lambda last: "🏁" in last["text"])  # at the end
        assert any(d.startswith("v:") for _, d in h.telegram.buttons(h.last(M_END))), "no part to look at again"
        data = sorted(
            {d for (body,) in h.store.db.execute("SELECT body FROM outbox") for row in json.loads(body).get("buttons", []) for _, d in row}
        )
        return World(folder, copy.deepcopy(h.telegram.chats), h.telegram.next_message_id, h.telegram.next_update_id, data)


@functools.cache
def world() -> World:
    folder = Path(tempfile.mkdtemp(prefix="tutorbot-hostile-"))
    with no_rate_limiter():
        built = asyncio.run(_build(folder))
    return built


@pytest.fixture(scope="module", autouse=True)
def _clean_world():
    yield
    if world.cache_info().currsize:
        shutil.rmtree(world().folder, ignore_errors=True)
        world.cache_clear()


def no_rate_limiter():
    return mock.patch.object(app_module, "AIORateLimiter", lambda **_: AIORateLimiter(overall_max_rate=0, group_max_rate=0))


# --- strategies -----------------------------------------------------------------------

ODD = [
    "\ud800", "\udfff", "a\ud800b", "\udc00\ud800",  # lone surrogates (valid JSON escapes, not UTF-8)
    "\u200f", "\u202e", "\u2066", "\u200d", "\u200b", "\ufeff",  # RTL marks, joiners, zero width
    "e\u0301", "\u0301", "a\u0308\u0308\u0308",  # combining marks
    "²", "①", "½", "Ⅻ", "一",  # digits to Python, not numbers to int()
    "１", "２", "٢", "۳", "߃",  # full-width, Arabic-Indic, Persian, NKo digits: real numbers
    "🙂", "👨\u200d👩\u200d👧", "🏳️\u200d🌈", "\U0001f1fa\U0001f1f8",  # emoji, ZWJ sequences, flags
    "\x00", "\x7f", "\n\n", "\t", " ", "", "&amp;", "<b>", "</i>", "\\", '"',
]
DIGITS = ["0", "1", "2", "3", "4", " 2 ", "9", "-1", "1.0", "99999999999999999999999", "01", "²", "①", "１", "٢", "3٣"]

odd_piece = st.one_of(
    st.sampled_from(ODD),
    st.text(max_size=8),
    st.text(st.characters(categories=["Cs", "Mn", "Me", "Cf", "Nd", "No", "Nl", "So", "Zs"]), max_size=6),
)
long_text = st.builds(lambda piece, n: (piece * (10_000 // len(piece) + 1))[:n], st.text(min_size=1, max_size=8) | st.sampled_from(ODD[:4] + ["🙂", "²"]), st.sampled_from([10_000, 9_999, 4_097]))
odd_text = st.one_of(
    st.lists(odd_piece, min_size=1, max_size=5).map("".join),
    st.sampled_from(DIGITS),
    st.text(max_size=40),
    long_text,
)
name = st.one_of(st.just("Learner"), odd_text.map(lambda t: t[:64] or "X"))
ident = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,12}", fullmatch=True)

button_data = st.one_of(
    st.text(max_size=200),  # garbage
    st.text(st.characters(categories=["Cs", "So", "Cf"]), max_size=20),
    st.builds("a:madman-core:{}:{}".format, st.one_of(st.sampled_from(NODES), ident), st.integers(0, 9)),
    st.builds("c:madman-core:{}".format, st.one_of(st.sampled_from(NODES), ident)),
    # Self-check toggles (t) and Done (k) with a mask of points; "Look again" at a part.
    st.builds("{}:madman-core:{}:{:02x}".format, st.sampled_from("tk"), st.one_of(st.sampled_from(NODES), ident), st.integers(0, 300)),
    st.builds("v:madman-core:{}".format, st.one_of(st.sampled_from(SECTIONS), st.sampled_from(NODES), ident)),
    st.builds("a:{}:{}:{}".format, ident, st.sampled_from(NODES), st.integers(0, 9)),
    st.builds("restart:madman-core:{}:yes".format, st.integers(0, 10**15 - 1)),
    st.builds("restart:{}:{}:{}".format, ident, st.integers(0, 99), st.sampled_from(["yes", "no"])),
    st.sampled_from(["restart:madman-core:yes", "restart:madman-core:no", "forget:yes", "forget:no", "l:madman-core", "l:no-such-lesson", "x" * 64, "a" * 65]),
    st.deferred(lambda: st.sampled_from(world().data)),  # buttons the learners were shown
)


def user_dict(uid: int, first_name: str) -> dict:
    return {"id": uid, "is_bot": False, "first_name": first_name, "language_code": "en"}


def private_chat(uid: int) -> dict:
    return {"id": uid, "type": "private", "first_name": f"Learner{uid}"}


def group_chat(gid: int, kind: str) -> dict:
    return {"id": gid, "type": kind, "title": "Study group"}


def command_message(uid: int, chat: dict, first_name: str, text: str, message_id: int) -> dict:
    token = text.split(" ")[0]
    units = len(token.encode("utf-16-le", "surrogatepass")) // 2
    return {
        "message_id": message_id, "from": user_dict(uid, first_name), "chat": chat, "date": DATE, "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": units}],
    }


COMMANDS = [
    "/start", "/start@argument_tutor_bot", "/start@other_bot", "/start@Argument_Tutor_Bot", "/START", "/help",
    "/progress", "/lessons", "/restart", "/forget", "/nonsense", "/help@other_bot", "/",
    "/study", "/next", "/stop", "/assign", "/standings",
]


@st.composite
def private_message(draw) -> tuple[str, dict, str]:
    """Text, a command, a sticker or a photo from a real user in their own private chat."""
    uid = draw(st.sampled_from(USERS))
    first = draw(name)
    message_id = draw(st.integers(1, 2**31))
    kind = draw(st.sampled_from(["text", "text", "command", "sticker", "photo", "no-entity-command"]))
    chat = private_chat(uid)
    if kind == "command":
        command = draw(st.sampled_from(COMMANDS))
        arg = draw(st.one_of(st.just(""), st.sampled_from(["madman-core", "no-such-lesson", "madman-core extra"]), odd_text.map(lambda t: t[:200])))
        return "private", {"message": command_message(uid, chat, first, f"{command} {arg}" if arg else command, message_id)}, "ok"
    content: dict[str, Any]
    if kind == "text":
        content = {"text": draw(odd_text)}
    elif kind == "no-entity-command":
        content = {"text": draw(st.sampled_from(COMMANDS))}  # a command typed without Telegram's entity
    elif kind == "sticker":
        content = {"sticker": {"file_id": "s", "file_unique_id": "s1", "width": 512, "height": 512,
                               "is_animated": False, "is_video": False, "type": "regular", "emoji": draw(st.sampled_from(ODD))}}
    else:
        content = {"photo": [{"file_id": "p", "file_unique_id": "p1", "width": 90, "height": 90}], "caption": draw(odd_text)[:1024]}
    return "private", {"message": {"message_id": message_id, "from": user_dict(uid, first), "chat": chat, "date": DATE, **content}}, "ok"


@st.composite
def press(draw) -> tuple[str, dict, str]:
    """A button press: forged, garbled, stale or valid data, on any message or on none."""
    uid = draw(st.sampled_from(USERS))
    data = draw(st.one_of(button_data, st.none(), st.just(5)))
    where = draw(st.sampled_from(["own", "own", "other", "none", "null", "inaccessible", "group", "made-up"]))
    w = world()
    own = [m for m in w.chats.get(uid, []) if m["from_bot"]]
    others = [m for u in MIDS if u != uid for m in w.chats.get(u, []) if m["from_bot"]]
    if where == "own" and not own:
        where = "other"
    if data == "forget:yes" and uid in MIDS and where not in ("group", "none", "null"):
        uid = draw(st.sampled_from(FRESH))  # a mid-lesson learner's own "yes, delete" would be a valid move
        where = "made-up"
    query: dict[str, Any] = {"id": f"q{draw(st.integers(0, 10**9))}", "from": user_dict(uid, draw(name)), "chat_instance": "ci"}
    if data is not None:
        query["data"] = data
    if where == "own":
        query["message"] = _message(draw(st.sampled_from(own)))
    elif where == "other":
        query["message"] = _message(draw(st.sampled_from(others)))
    elif where == "null":
        query["message"] = None
    elif where == "inaccessible":
        query["message"] = {"chat": private_chat(uid), "message_id": draw(st.integers(1, 10**6)), "date": 0}
    elif where == "group":
        gid, kind = draw(st.sampled_from(GROUPS))
        query["message"] = {"message_id": draw(st.integers(1, 10**6)), "date": DATE, "chat": group_chat(gid, kind), "text": "a step"}
    elif where == "made-up":
        query["message"] = {"message_id": draw(st.integers(1, 10**6)), "date": DATE, "chat": private_chat(uid), "text": draw(odd_text)[:300]}
    return "press", {"callback_query": query}, "ok" if isinstance(data, (str, type(None))) else "bad"


@st.composite
def group_message(draw) -> tuple[str, dict, str]:
    uid = draw(st.sampled_from(USERS))
    gid, kind = draw(st.sampled_from(GROUPS))
    chat = group_chat(gid, kind)
    if draw(st.booleans()):
        text = draw(st.sampled_from(COMMANDS)) + draw(st.sampled_from(["", " madman-core", " \ud800"]))
        return "group", {"message": command_message(uid, chat, draw(name), text, draw(st.integers(1, 10**6)))}, "ok"
    return "group", {"message": {"message_id": 7, "from": user_dict(uid, "G"), "chat": chat, "date": DATE, "text": draw(odd_text)}}, "ok"


@st.composite
def other_kind(draw) -> tuple[str, dict, str]:
    """Update kinds the bot does not act on (edits, business, channel, members, polls, unknown)."""
    uid = draw(st.sampled_from(USERS))
    text = draw(odd_text)
    chat = draw(st.sampled_from([private_chat(uid), group_chat(*GROUPS[0]), group_chat(*GROUPS[1])]))
    message = {"message_id": 5, "from": user_dict(uid, "E"), "chat": chat, "date": DATE, "text": text}
    member = lambda status: {"status": status, "user": {"id": 123456789, "is_bot": True, "first_name": "Tutor"}}  # noqa: E731
    choices: list[tuple[dict, str]] = [
        ({"edited_message": {**message, "edit_date": DATE + 5}}, "ok"),
        ({"edited_message": {**message, "text": "/start", "edit_date": DATE + 5,
                             "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}, "ok"),
        ({"business_message": {**message, "business_connection_id": "bc1", "chat": private_chat(uid)}}, "ok"),
        ({"channel_post": {"message_id": 9, "date": DATE, "chat": {"id": -1009999, "type": "channel", "title": "News"}, "text": text}}, "ok"),
        ({"my_chat_member": {"chat": private_chat(uid), "from": user_dict(uid, "M"), "date": DATE,
                             "old_chat_member": member("member"), "new_chat_member": {**member("kicked"), "until_date": 0}}}, "ok"),
        ({"poll_answer": {"poll_id": "p1", "user": user_dict(uid, "P"), "option_ids": [0], "option_persistent_ids": ["a"]}}, "ok"),
        ({"poll_answer": {"poll_id": "p1", "user": user_dict(uid, "P"), "option_ids": [0]}}, "bad"),  # before Bot API 9.6
        ({draw(st.sampled_from(["frobnicate", "future_kind", "\ud800"])): {"from": user_dict(uid, "U"), "x": text}}, "ok"),
        ({}, "ok"),  # nothing but the update_id
    ]
    raw, shape = draw(st.sampled_from(choices))
    return "other", raw, shape


@st.composite
def malformed(draw) -> tuple[str, dict, str]:
    """Updates Telegram never sends: missing required fields, wrong types."""
    uid = draw(st.sampled_from(USERS))
    chat = private_chat(uid)
    base = {"message_id": 3, "from": user_dict(uid, "W"), "chat": chat, "date": DATE, "text": "hello"}
    no_name = {"id": uid, "is_bot": False}
    choices = [
        {"message": {**base, "from": no_name}},
        {"message": {k: v for k, v in base.items() if k != "chat"}},
        {"message": {k: v for k, v in base.items() if k != "from"}},
        {"message": {**base, "text": draw(st.sampled_from([5, 5.5, True, ["a"], {"a": 1}]))}},
        {"message": {**base, "chat": draw(st.sampled_from(["x", 5, [], None]))}},
        {"message": {**base, "chat": {**chat, "id": draw(st.sampled_from(["abc", 1.5, True, 2**70, -(2**70)]))}}},
        {"message": {**base, "from": {**base["from"], "id": draw(st.sampled_from(["abc", 2.5, 2**64]))}}},
        {"message": {**base, "date": draw(st.sampled_from(["yesterday", 10**20, -(10**20), None]))}},
        {"message": draw(st.sampled_from([None, [], "text", 5]))},
        {"message": {**base, "entities": draw(st.sampled_from(["x", [{"type": "bot_command"}], [5]]))}},
        {"message": {**base, "message_id": draw(st.sampled_from(["7", 2**70, None]))}},
        {"callback_query": {"id": "q", "from": no_name, "chat_instance": "c", "data": "forget:yes"}},
        {"callback_query": {"id": "q", "from": user_dict(uid, "C"), "chat_instance": "c", "data": "forget:no",
                            "message": {**base, "chat": {**chat, "id": "abc"}}}},
        {"callback_query": {"id": "q", "from": user_dict(uid, "C"), "chat_instance": "c", "data": "forget:no",
                            "message": {k: v for k, v in base.items() if k != "chat"}}},
        {"callback_query": "yes"},
    ]
    return "bad", draw(st.sampled_from(choices)), "bad"


hostile_update = st.one_of(private_message(), press(), press(), group_message(), other_kind(), malformed())
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example, HealthCheck.filter_too_much]


# --- running a batch and checking what the bot did ---------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _settle(h: Harness, ids: list[int]) -> float:
    """Wait until every update is handled and every reply sent; the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    db = h.store.db
    while loop.time() - start < SETTLE:
        assert not h.task.done(), f"the bot stopped: {h.task.exception() if not h.task.cancelled() else 'cancelled'}"
        stored, waiting = db.execute(
            f"SELECT COUNT(*), COUNT(*) - COUNT(handled_at) FROM inbox WHERE update_id >= {min(ids)}"
        ).fetchone()
        pending = db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL").fetchone()[0]
        if stored == len(ids) and not waiting and not pending and not h.dispatcher.workers:
            return loop.time() - start
        await asyncio.sleep(0.02)
    rows = db.execute(f"SELECT update_id, handled_at FROM inbox WHERE update_id >= {min(ids)} AND handled_at IS NULL").fetchall()
    waiting = db.execute("SELECT id, chat_id, kind, attempts, error FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL").fetchall()
    raise AssertionError(
        f"not settled in {SETTLE} s: {stored} of {len(ids)} stored, unhandled {rows[:5]}, "
        f"replies waiting {waiting[:5]}, workers {list(h.dispatcher.workers)[:5]}"
    )


def _fits(value: Any, before: State) -> bool:
    """Whether `value` is a valid input at `before`, judged without the engine."""
    if isinstance(value, Start):
        return True
    if isinstance(value, Revisit):  # a part looked at again: only from the end
        return before.finished and value.section in SECTIONS
    if before.node not in LESSON.nodes or before.finished:
        return False
    current = view(LESSON, before)
    if isinstance(value, Continue):
        return current.kind == "message" and value.node == before.node
    if isinstance(value, Choose):
        return current.kind == "choice" and value.node == before.node and 0 <= value.option < len(current.options)
    if isinstance(value, Check):
        points = value.points
        return current.kind == "check" and value.node == before.node and all(0 <= p < len(current.options) for p in points)
    return isinstance(value, Answer) and current.kind == "text"


def _same(recorded: Input, expected: Input | None) -> bool:
    """Whether the recorded input is the expected one (a start's seed is the bot's to draw)."""
    if isinstance(recorded, Start) and isinstance(expected, Start):
        return True
    return recorded == expected


def _explain_event(raw: dict, event: dict, before: State, previous_event: int | None) -> str | None:
    """Why the update `raw` validly caused `event` (None), or what is wrong with it."""
    if not _fits(input_from_dict(event["input"]), before):
        return f"{event['input']} does not fit the step the learner was at ({before.node})"
    learner_id = int(event["learner"][3:])
    chat_id = int(event["chat"][3:])
    recorded = input_from_dict(event["input"])
    if "callback_query" in raw:
        query = raw["callback_query"]
        if query["from"]["id"] != learner_id or (query.get("message") or {}).get("chat", {}).get("id") != chat_id:
            return "a press moved a learner it did not come from, or in another chat"
        try:
            pressed = parse_button(query.get("data"))
        except BadButton:
            return "garbage button data moved a learner"
        if isinstance(pressed, ChoiceButton):
            expected = Choose(pressed.node, pressed.option)
        elif isinstance(pressed, ContinueButton):
            expected = Continue(pressed.node)
        elif isinstance(pressed, CheckButton):  # Done submits the marked points; a toggle records nothing
            expected = Check(pressed.node, tuple(i for i in range(8) if pressed.marked >> i & 1)) if pressed.done else None
        elif isinstance(pressed, RevisitButton):
            expected = Revisit(pressed.section)
        elif isinstance(pressed, LessonButton):
            expected = Start() if before == State() else None
        elif isinstance(pressed, ConfirmButton) and pressed.action == "restart" and pressed.yes:
            expected = Start() if pressed.event is not None and pressed.event == previous_event else None
        else:
            expected = None
        if expected is None or pressed.lesson not in (None, event["lesson"]):
            return f"button {query.get('data')!r} cannot mean {event['input']}"
        return None if _same(recorded, expected) else f"button {query.get('data')!r} recorded as {event['input']}"
    message = raw.get("message") or {}
    if message.get("from", {}).get("id") != learner_id or message.get("chat", {}).get("id") != chat_id:
        return "a message moved a learner it did not come from, or in another chat"
    text = message.get("text")
    entities = message.get("entities") or []
    if entities and entities[0].get("type") == "bot_command" and entities[0].get("offset") == 0:
        # Only /start naming the lesson records, and only for a learner who never started it.
        ok = isinstance(recorded, Start) and before == State() and previous_event is None and "madman-core" in text
        return None if ok else f"command {text[:40]!r} recorded {event['input']}"
    if before.node is None or before.finished:
        return f"text recorded {event['input']} for a learner with no current step"
    expected = typed_input(view(LESSON, before), text)
    return None if input_to_dict(expected) == input_to_dict(recorded) else f"text {text[:40]!r} recorded {event['input']}"


async def run_batch(batch: list[tuple[str, dict, str]]) -> Counter:
    """Push `batch` into a fresh bot on the mid-lesson world; check everything; count."""
    w = world()
    stats: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix="tutorbot-batch-") as folder, no_rate_limiter():
        for file in w.folder.glob("bot.db*"):  # the database (and its WAL, if one is left)
            shutil.copy(file, Path(folder) / file.name)
        h = Harness(Path(folder))
        h.telegram.chats = copy.deepcopy(w.chats)
        h.telegram.next_message_id, h.telegram.next_update_id = w.next_message_id, w.next_update_id
        services = h.app.bot_data["services"]
        decisions: dict[int, list[tuple[str, bool, float]]] = defaultdict(list)  # chat -> quiet()'s answers
        quiet = services.quiet

        def recording_quiet(chat_id: int, kind: str) -> bool:
            rationed = quiet(chat_id, kind)
            decisions[chat_id].append((kind, rationed, time.monotonic()))
            return rationed

        services.quiet = recording_quiet
        store = h.store
        before = {u: store.progress(f"tg:{u}", "madman-core", f"tg:{u}") for u in MIDS}
        events_before = {row["id"] for row in store.events()}
        records = Records()
        logging.getLogger().addHandler(records)
        try:
            async with h:
                sent: dict[int, tuple[str, dict, str]] = {}
                for label, raw, shape in batch:
                    update = copy.deepcopy(raw)
                    sent[h.telegram._push(update)] = (label, raw, shape)
                elapsed = await _settle(h, list(sent))
                assert not h.task.done()
                _check(h, sent, before, events_before, records.records, decisions, elapsed, stats)
        finally:
            logging.getLogger().removeHandler(records)
    return stats


def _check(h, sent, before, events_before, records, decisions, elapsed, stats) -> None:
    db = h.store.db
    ids = sorted(sent)

    # Every row handled; set aside only what is malformed, each with its error.
    aside = {}
    for update_id, handled, failed, error, learner, payload in db.execute(
        f"SELECT update_id, handled_at, failed_at, error, learner, payload FROM inbox WHERE update_id >= {ids[0]}"
    ):
        assert handled is not None, f"update {update_id} was not handled"
        if failed is not None:
            scrubbed = learner is None and payload == "{}"  # its learner said /forget since
            assert error or scrubbed, f"update {update_id} was set aside without an error"
            aside[update_id] = error or "(forgotten)"
    for update_id, error in aside.items():
        label, raw, shape = sent[update_id]
        assert shape == "bad", f"a well-formed update was set aside ({error}): {raw!r:.300}"

    # The log: no traceback, and no ERROR but one "set aside" line per set-aside update.
    lines = Counter()
    for record in records:
        message = record.getMessage()
        assert record.exc_info is None, f"a traceback in the log: {record.name}: {message[:300]}"
        if record.levelno >= logging.ERROR:
            assert record.name == "bot.telegram_bot.inbox" and " set aside: " in message, f"{record.name}: {message[:300]}"
            lines[int(message.split()[1])] += 1
        else:
            assert any(
                f"refused by Telegram: {reason}" in message for reason in ("Message to edit not found", "Message can't be edited")
            ), f"{record.name}: {message[:300]}"
    assert lines == Counter(aside.keys()), f"each set-aside update gets exactly one ERROR line: {lines} {aside}"

    # Groups only ever get the answers for those who lead nothing.
    for chat_id, messages in h.telegram.chats.items():
        if chat_id < 0:
            for message in messages:
                if message["from_bot"]:
                    assert message["text"].startswith(GROUP_REPLIES), message["text"][:200]
                    stats["group notes"] += 1

    # The outbox: nothing left unsent; a failure is a superseded reply or an edit of a
    # message that never existed.
    for kind, error in db.execute("SELECT kind, error FROM outbox WHERE failed_at IS NOT NULL"):
        # An edit of a message that is gone, or is not the bot's (a forged press names any message).
        edit_refused = kind == "edit" and any(r in error.lower() for r in ("message to edit not found", "message can't be edited"))
        assert error == "superseded" or edit_refused, (kind, error)
    assert db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL").fetchone()[0] == 0

    # Progress is the replay of the events; every new event was validly caused by its update.
    events = h.store.events()
    by_key: dict[tuple, list[dict]] = defaultdict(list)
    for event in events:
        by_key[(event["learner"], event["lesson"], event["chat"])].append(event)
    moved: dict[str, set[int]] = defaultdict(set)
    for (learner, lesson, chat), chain in by_key.items():
        state, previous = State(), None
        for event in chain:
            if event["id"] not in events_before:
                assert event["update_id"] in sent, f"an event without an update of the batch: {event}"
                problem = _explain_event(sent[event["update_id"]][1], event, state, previous)
                assert problem is None, f"{problem}: {sent[event['update_id']][1]!r:.400}"
                moved[learner].add(event["update_id"])
                stats["moves"] += 1
                stats[f"moves: {event['input']['kind']}"] += 1
            state = step(LESSON, state, input_from_dict(event["input"])).state
            previous = event["id"]
        progress = h.store.progress(learner, lesson, chat)
        assert progress is not None and progress.state == state, (learner, lesson, chat)
    for user in MIDS:
        now = h.store.progress(f"tg:{user}", "madman-core", f"tg:{user}")
        if not moved[f"tg:{user}"]:
            assert now == before[user], f"learner {user} changed without a valid update of theirs"
        else:
            stats["mid-lesson learners validly moved"] += 1
    assert len({e["update_id"] for e in events if e["id"] not in events_before}) == sum(len(v) for v in moved.values())

    # A private text, command, sticker or photo from a real user gets a reply or is rationed.
    forgotten = {  # their replies are deleted from the outbox once sent: nothing to count
        raw["callback_query"]["from"]["id"] for uid, (label, raw, shape) in sent.items()
        if label == "press" and raw["callback_query"].get("data") == "forget:yes" and uid not in aside
    }
    replied = {uid for (uid,) in db.execute(f"SELECT DISTINCT update_id FROM outbox WHERE update_id >= {ids[0]}")}
    unanswered: Counter = Counter()
    for update_id, (label, raw, shape) in sent.items():
        if label != "private":
            continue
        chat_id, words = raw["message"]["chat"]["id"], raw["message"].get("text")
        kind = "other" if words is None else "command" if words.startswith("/") else "text"  # as `services.source`
        stats["private messages"] += 1
        if update_id in replied:
            stats["private messages answered"] += 1
        elif chat_id not in forgotten:
            unanswered[(chat_id, kind)] += 1
    for (chat_id, kind), count in unanswered.items():
        rationed = sum(1 for k, r, _ in decisions[chat_id] if r and k == kind)
        assert count <= rationed, f"chat {chat_id}: {count} {kind} message(s) without a reply, {rationed} rationed"
        stats["private messages rationed"] += count
    for chat_id, answers in decisions.items():  # at most a burst, then one per interval, per kind
        for kind, (burst, interval) in QUIET.items():
            times = [t for k, r, t in answers if k == kind and not r]
            if times:
                allowed = burst + (times[-1] - times[0]) / interval + 1
                assert len(times) <= allowed, f"chat {chat_id}: {len(times)} {kind} replies in {times[-1] - times[0]:.2f} s"

    stats["updates"] += len(sent)
    stats["set aside"] += len(aside)
    stats["replies sent"] += db.execute(
        f"SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL AND update_id >= {ids[0]}"
    ).fetchone()[0]
    stats["seconds handling"] += round(elapsed, 3)
    for error in aside.values():
        stats[f"set aside: {error.removeprefix('cannot be read: ').split(':')[0]}"] += 1


# --- the properties ---------------------------------------------------------------------


# 85 + 30 examples of at least 88 updates each: at least 10,120 updates in all.
@settings(max_examples=85, deadline=None, database=None, suppress_health_check=HEALTH)
@given(batch=st.lists(hostile_update, min_size=88, max_size=120))
def test_a_hostile_batch_changes_nothing_it_should_not(batch: list) -> None:
    world()  # built outside the batch's event loop
    TOTALS.update(asyncio.run(run_batch(batch)))
    TOTALS["batches"] += 1


flood = st.one_of(private_message(), private_message(), press())


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=HEALTH)
@given(batch=st.lists(flood, min_size=88, max_size=120))
def test_a_flood_of_odd_text_and_taps_is_answered_or_rationed(batch: list) -> None:
    world()
    TOTALS.update(asyncio.run(run_batch(batch)))
    TOTALS["batches"] += 1


def test_totals() -> None:
    """The counts over all examples of this module (run with -rP to see them)."""
    if not TOTALS["batches"]:
        pytest.skip("the property tests did not run in this session")
    print("\nhostile updates:", json.dumps(dict(sorted(TOTALS.items())), ensure_ascii=False, indent=1))
    assert TOTALS["updates"] >= 10_000

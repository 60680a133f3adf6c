"""The lesson the way python-telegram-bot's own tools do it: a `ConversationHandler` whose
states are the lesson's nodes, and `PicklePersistence` at its default settings.

    python -m benchmarks.conversation_bot                      # the bot (settings below)
    python -m benchmarks.conversation_bot --prefill PATH --users N
    python -m benchmarks.conversation_bot --measure-save PATH --changed K --cap SECONDS

Settings from the environment, as tutorbot's: TELEGRAM_BOT_TOKEN, TUTORBOT_BOT_API_BASE_URL,
TUTORBOT_DATABASE (here the pickle file), TUTORBOT_RATE_LIMIT ("telegram", the default, or
"off"). The lesson is dialogues/madman.yaml, stepped by the project's pure engine
(`bot.engine.step`); the learner's engine state lives in `user_data`, the conversation
state is the node they are at (a written question's self-check is "<node>:check"). Each
input gets one reply: a tap is answered, then one message shows the feedback and the next
step, with buttons as tutorbot's ("Continue ▸" `c:…`, options `a:…`, "Done ▸" `k:…`; a
written question says "Type your answer"; the end starts with 🏁). Updates are handled one
at a time (python-telegram-bot's default).

PicklePersistence at its defaults (`single_file=True`, `on_flush=False`,
`update_interval=60`): progress lives in memory and is written every 60 seconds, when
python-telegram-bot hands each user whose data was used, and each conversation that
moved, to the persistence, and each of those rewrites the whole pickle file. A crash
loses up to a minute of everybody's answers.

`--prefill` writes a pickle of N users spread over the lesson (half finished), through
PicklePersistence itself. `--measure-save` loads it into an Application (the network is
the in-process fake of tests.fake_telegram), has K new learners start the lesson, then
times one `update_persistence()`, and prints the figures as JSON. One whole-file write is
timed first, and K is lowered if the save would take longer than the cap.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    ExtBot,
    MessageHandler,
    PicklePersistence,
    filters,
)
from telegram.request import BaseRequest
from telegram.warnings import PTBUserWarning

from bot.engine import (
    Answer,
    Check,
    Choose,
    Continue,
    Feedback,
    Input,
    InputError,
    Notice,
    Start,
    State,
    Step,
    Summary,
    step,
    view,
)
from bot.lesson import ChoiceNode, Lesson, MessageNode, WriteNode
from bot.loader import load_file

ROOT = Path(__file__).resolve().parent.parent
LESSON_PATH = ROOT / "dialogues" / "madman.yaml"
CONVERSATION = "lesson"
SHORT_OPTION = 30
TYPE_HINT = "✍️ Type your answer and send it as a message."
PREFILL_BASE = 600_000_000  # user ids of the users a prefilled pickle holds
ANSWER_TEXT = (
    "The madman theory backfires because a threat only works when the promise that goes with it is "
    "believed too, and an adversary who cannot trust any deal gains nothing by giving in."
)

LESSON: Lesson = load_file(LESSON_PATH).lesson


def state_name(state: State) -> str | int:
    """The conversation state for an engine state: the node (a self-check: "<node>:check")."""
    if state.finished or state.node is None:
        return ConversationHandler.END
    return f"{state.node}:check" if state.checking else state.node


def state_names(lesson: Lesson) -> list[str]:
    names = []
    for node in lesson.nodes.values():
        names.append(node.id)
        if isinstance(node, WriteNode):
            names.append(f"{node.id}:check")
    return names


# --- the messages -----------------------------------------------------------------------------


def step_message(lesson: Lesson, shown: Step) -> tuple[str, list[list[InlineKeyboardButton]]]:
    body = html.escape(shown.text.strip())
    if shown.quote:
        body = f"<blockquote>{html.escape(shown.quote.text)}</blockquote>\n\n{body}"
    top = f"Part {shown.part} of {shown.parts}: {html.escape(shown.section)}"
    lid = lesson.id
    if shown.kind == "message":
        return f"{top}\n\n{body}", [[InlineKeyboardButton("Continue ▸", callback_data=f"c:{lid}:{shown.node}")]]
    if shown.kind == "text":
        return f"{top}\n\n{body}\n\n<i>{TYPE_HINT}</i>", []
    if shown.kind == "end":
        return f"🏁 {body}", []
    if shown.kind == "check":
        points = "\n".join(f"<b>{i}.</b> {html.escape(p)}" for i, p in enumerate(shown.options, 1))
        text = f"{top}\n\n{body}\n\n{points}\n\n<i>Tap Done ▸ when you have compared.</i>"
        return text, [[InlineKeyboardButton("Done ▸", callback_data=f"k:{lid}:{shown.node}:00")]]
    data = [f"a:{lid}:{shown.node}:{shown.option_id(i)}" for i in range(len(shown.options))]
    if all(len(option) <= SHORT_OPTION for option in shown.options):
        return f"{top}\n\n{body}", [[InlineKeyboardButton(o, callback_data=d)] for o, d in zip(shown.options, data)]
    listed = "\n".join(f"<b>{i}.</b> {html.escape(o)}" for i, o in enumerate(shown.options, 1))
    return f"{top}\n\n{body}\n\n{listed}", [[InlineKeyboardButton(str(i), callback_data=d) for i, d in enumerate(data, 1)]]


def reply_for(lesson: Lesson, outputs: tuple[Any, ...]) -> tuple[str, InlineKeyboardMarkup | None]:
    """One message: the feedback and notices, then the step with its buttons."""
    paragraphs: list[str] = []
    buttons: list[list[InlineKeyboardButton]] = []
    for output in outputs:
        if isinstance(output, Notice):
            paragraphs.append(f"<i>{html.escape(output.text)}</i>")
        elif isinstance(output, Feedback):
            paragraphs.append(html.escape(output.text.strip()))
        elif isinstance(output, Summary):
            paragraphs.append(f"<b>Your result:</b> {output.score} of {output.questions} questions right at the first try.")
        elif isinstance(output, Step):
            text, buttons = step_message(lesson, output)
            paragraphs.append(text)
    text = "\n\n".join(paragraphs)[:4096] or "…"
    return text, InlineKeyboardMarkup(buttons) if buttons else None


# --- the handlers ---------------------------------------------------------------------------


def parse(data: str) -> Input | None:
    parts = data.split(":")
    if len(parts) == 3 and parts[0] == "c":
        return Continue(parts[2])
    if len(parts) == 4 and parts[0] == "a" and parts[3].isdigit():
        return Choose(parts[2], int(parts[3]))
    if len(parts) == 4 and parts[0] == "k":
        marked = int(parts[3], 16)
        return Check(parts[2], tuple(i for i in range(8) if marked >> i & 1))
    return None


async def _reply(update: Update, outputs: tuple[Any, ...]) -> None:
    text, markup = reply_for(LESSON, outputs)
    chat = update.effective_chat
    assert chat is not None
    await chat.send_message(text, parse_mode=ParseMode.HTML, reply_markup=markup)


async def _apply(update: Update, context: ContextTypes.DEFAULT_TYPE, value: Input | None) -> str | int:
    assert context.user_data is not None
    current = State.from_dict(context.user_data.get("lesson") or {})
    try:
        if value is None:
            raise InputError("not a button of this lesson")
        result = step(LESSON, current, value)
    except InputError:
        if current.node is None or current.finished:
            await _reply(update, (Notice("Send /start to begin the lesson."),))
            return ConversationHandler.END
        await _reply(update, (Notice("That is not an answer to this step."), view(LESSON, current)))
        return state_name(current)
    context.user_data["lesson"] = result.state.to_dict()
    await _reply(update, result.outputs)
    return state_name(result.state)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str | int:
    assert context.user_data is not None
    result = step(LESSON, State(), Start(random.randrange(1, 2**31)))
    context.user_data["lesson"] = result.state.to_dict()
    await _reply(update, result.outputs)
    return state_name(result.state)


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str | int:
    query = update.callback_query
    assert query is not None
    await query.answer()
    return await _apply(update, context, parse(query.data or ""))


async def text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str | int:
    message = update.effective_message
    assert message is not None
    return await _apply(update, context, Answer(message.text or ""))


def conversation() -> ConversationHandler:
    handlers = [CallbackQueryHandler(button), MessageHandler(filters.TEXT & ~filters.COMMAND, text)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBUserWarning)  # per_message=False with a CallbackQueryHandler: as intended
        return ConversationHandler(
            entry_points=[CommandHandler("start", start)],
            states={name: handlers for name in state_names(LESSON)},
            fallbacks=[CommandHandler("start", start)],
            name=CONVERSATION,
            persistent=True,
            allow_reentry=True,
        )


class CountedPicklePersistence(PicklePersistence):
    """PicklePersistence that counts its whole-file writes (for `measure_save`)."""

    __slots__ = ("writes",)

    def _dump_singlefile(self) -> None:
        self.writes = getattr(self, "writes", 0) + 1
        super()._dump_singlefile()


def build(token: str, base_url: str, persistence: PicklePersistence, limiter: bool, request: BaseRequest | None = None) -> Application:
    builder = Application.builder().token(token).base_url(base_url).persistence(persistence)
    if limiter:
        builder = builder.rate_limiter(AIORateLimiter())
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    app = builder.build()
    app.add_handler(conversation())
    return app


# --- a pickle of many users ---------------------------------------------------------------


def walk(lesson: Lesson, seed: int, right_share: float = 0.8) -> list[State]:
    """The engine states of one way through the lesson: right about four times in five."""
    rng = random.Random(seed)
    result = step(lesson, State(), Start(seed))
    states = [result.state]
    while not result.state.finished:
        state = result.state
        node = lesson.nodes[state.node]  # type: ignore[index]
        value: Input
        if isinstance(node, MessageNode):
            value = Continue(node.id)
        elif isinstance(node, ChoiceNode):
            right = [i for i, o in enumerate(node.options) if o.correct or not node.graded]
            value = Choose(node.id, rng.choice(right if right and rng.random() < right_share else range(len(node.options))))
        elif isinstance(node, WriteNode) and state.checking:
            value = Check(node.id, (0,))
        elif isinstance(node, WriteNode):
            value = Answer(ANSWER_TEXT)
        else:
            raise AssertionError(f"no way on from {node.id}")
        result = step(lesson, state, value)
        states.append(result.state)
    return states


async def prefill(path: Path, users: int, token: str, ways: int = 6) -> dict[str, Any]:
    """Write a pickle of `users` users through PicklePersistence: each at a point of one of
    `ways` ways through the lesson (half of them at its end)."""
    walks = [walk(LESSON, seed) for seed in range(1, ways + 1)]
    persistence = PicklePersistence(path)
    persistence.set_bot(ExtBot(token))
    user_data: dict[int, dict[str, Any]] = {}
    conversations: dict[tuple[int, ...], object] = {}
    for number in range(users):
        states = walks[number % ways]
        state = states[-1] if number % 2 == 0 else states[(number * 7919 // 2) % len(states)]
        uid = PREFILL_BASE + number
        user_data[uid] = {"lesson": state.to_dict()}
        name = state_name(state)
        if name != ConversationHandler.END:
            conversations[(uid, uid)] = name
    persistence.user_data = user_data
    persistence.chat_data = {}
    persistence.bot_data = {}
    persistence.callback_data = None
    persistence.conversations = {CONVERSATION: conversations}
    began = time.perf_counter()
    await persistence.flush()
    return {"users": users, "write_seconds": time.perf_counter() - began, "bytes": path.stat().st_size}


async def measure_save(path: Path, changed: int, cap: float) -> dict[str, Any]:
    """Load the pickle into an Application, have `changed` new learners start the lesson,
    and time one `update_persistence()` (each changed user and conversation rewrites the file)."""
    from tests.fake_telegram import TOKEN, FakeRequest, FakeTelegram

    telegram = FakeTelegram()
    persistence = CountedPicklePersistence(path)
    app = build(TOKEN, "https://api.telegram.org/bot", persistence, limiter=False, request=FakeRequest(telegram, poll_wait=0.0))
    began = time.perf_counter()
    await app.initialize()  # reads the pickle
    load = time.perf_counter() - began
    began = time.perf_counter()
    persistence._dump_singlefile()
    one = time.perf_counter() - began
    measured = max(1, min(changed, int(cap / max(3 * one, 1e-6))))  # a user's data, chat data, conversation
    for number in range(measured):
        telegram.send_text(PREFILL_BASE - 1 - number, "/start")
    with telegram.lock:
        raws, telegram.queue = list(telegram.queue), []
    for raw in raws:
        await app.process_update(Update.de_json(raw, app.bot))
    before = persistence.writes
    began = time.perf_counter()
    await app.update_persistence()
    save = time.perf_counter() - began
    writes = persistence.writes - before
    return {
        "load_seconds": load, "one_write_seconds": one, "changed": measured, "asked": changed, "writes": writes,
        "save_seconds": save, "bytes": path.stat().st_size, "users": len(persistence.user_data or {}),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conversation_bot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefill", type=Path, help="write a pickle of --users users to this path, and exit")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--measure-save", type=Path, help="time one periodic save of this pickle, print JSON, and exit")
    parser.add_argument("--changed", type=int, default=50, help="learners who answered since the last save")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds the measured save may take")
    args = parser.parse_args(argv)
    if args.prefill:
        from tests.fake_telegram import TOKEN

        print(json.dumps(asyncio.run(prefill(args.prefill, args.users, TOKEN))))
        return
    if args.measure_save:
        print(json.dumps(asyncio.run(measure_save(args.measure_save, args.changed, args.cap))))
        return
    app = build(
        os.environ["TELEGRAM_BOT_TOKEN"],
        os.environ.get("TUTORBOT_BOT_API_BASE_URL", "https://api.telegram.org/bot"),
        PicklePersistence(Path(os.environ.get("TUTORBOT_DATABASE", "conversation.pickle"))),
        os.environ.get("TUTORBOT_RATE_LIMIT", "telegram").lower() != "off",
    )
    app.run_polling(allowed_updates=["message", "callback_query"])


if __name__ == "__main__":
    sys.exit(main())

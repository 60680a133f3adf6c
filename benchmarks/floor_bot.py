"""The floor: the leanest correct python-telegram-bot bot doing tutorbot's job per update.

    python -m benchmarks.floor_bot

Settings from the environment, as tutorbot's: TELEGRAM_BOT_TOKEN, TUTORBOT_BOT_API_BASE_URL,
TUTORBOT_DATABASE (an SQLite file), TUTORBOT_RATE_LIMIT ("telegram", the default:
python-telegram-bot's `AIORateLimiter` with Telegram's limits; "off": none).

An `Application` polling with its `Updater`, one handler for every message and button
tap: one durable SQLite insert of the learner's input (WAL, synchronous=FULL, one commit)
and one reply, a message with a "Continue ▸" button whose data changes each time (a tap
is answered first, so the button stops spinning). Everything else is python-telegram-bot's
default: updates handled one at a time, in order (measured: handling them concurrently,
with its default pool of 256 connections, cost more CPU per answer and gave no more
answers a second here). No outbox, no engine, no lesson: the least a bot can do per
answer and still have it on disk before it replies.
"""

from __future__ import annotations

import os
import sqlite3
import time

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import AIORateLimiter, Application, ContextTypes, TypeHandler

REPLY = (
    "Step {n}. Kluth's point is that a threat works only together with a promise: yield, and you will "
    "be spared. Tap Continue when you are ready for the next step."
)


def open_database(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)  # autocommit: each INSERT is its own transaction
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS answers (update_id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, "
        "input TEXT NOT NULL, at REAL NOT NULL)"
    )
    return db


def build(token: str, base_url: str, db: sqlite3.Connection, limiter: bool) -> Application:
    builder = Application.builder().token(token).base_url(base_url)
    if limiter:
        builder = builder.rate_limiter(AIORateLimiter())
    app = builder.build()

    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None:
            return
        value = query.data if query is not None else (update.effective_message.text if update.effective_message else None)
        db.execute(
            "INSERT OR IGNORE INTO answers (update_id, user_id, input, at) VALUES (?, ?, ?, ?)",
            [update.update_id, user.id, value or "", time.time()],
        )
        if query is not None:
            await query.answer()
        button = InlineKeyboardButton("Continue ▸", callback_data=f"c:floor:{update.update_id}")
        await context.bot.send_message(chat.id, REPLY.format(n=update.update_id), reply_markup=InlineKeyboardMarkup([[button]]))

    app.add_handler(TypeHandler(Update, handle))
    return app


def main() -> None:
    db = open_database(os.environ.get("TUTORBOT_DATABASE", "floor.db"))
    app = build(
        os.environ["TELEGRAM_BOT_TOKEN"],
        os.environ.get("TUTORBOT_BOT_API_BASE_URL", "https://api.telegram.org/bot"),
        db,
        os.environ.get("TUTORBOT_RATE_LIMIT", "telegram").lower() != "off",
    )
    try:
        app.run_polling(allowed_updates=["message", "callback_query"])
    finally:
        db.close()


if __name__ == "__main__":
    main()

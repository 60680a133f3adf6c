"""Outgoing Telegram calls that survive Telegram's limits and a shaky network.

python-telegram-bot's `AIORateLimiter` spaces the calls out (30 a second overall, 20 a
minute per group); here each call is retried after `RetryAfter` for as long as Telegram
asks, and after network errors with exponential backoff. A learner who blocked the bot
(403) is recorded as blocked instead of failing the update.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram import Bot, LinkPreviewOptions, Message
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.store import Store
from bot.telegram_bot.render import OutMessage, split

log = logging.getLogger(__name__)
T = TypeVar("T")
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


class Blocked(Exception):
    """The user has blocked the bot or left the chat; nothing can be sent to it."""


class Sender:
    """Sends messages to chats, with retries."""

    def __init__(self, bot: Bot, store: Store, attempts: int = 5, first_delay: float = 0.5):
        self.bot = bot
        self.store = store
        self.attempts = attempts
        self.first_delay = first_delay

    async def call(self, make: Callable[[], Awaitable[T]], chat_id: int | None = None) -> T:
        """Run one Bot API call, retrying after RetryAfter and network errors."""
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                return await make()
            except RetryAfter as exc:
                wait = exc.retry_after.total_seconds() if hasattr(exc.retry_after, "total_seconds") else exc.retry_after
                log.warning("Telegram asks to wait %.1f s", wait)
                await asyncio.sleep(float(wait))
            except Forbidden as exc:
                if chat_id is not None:
                    self.store.mark_blocked(f"tg:{chat_id}")
                raise Blocked(str(exc)) from exc
            except (TimedOut, NetworkError) as exc:
                if isinstance(exc, BadRequest) or attempt == self.attempts:
                    raise
                log.warning("network error (%s); retrying in %.1f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay *= 2
        return await make()

    async def send(self, chat_id: int, message: OutMessage) -> Message:
        """Send one message, split at Telegram's length limit; buttons go on the last piece."""
        pieces = split(message.text)
        sent: Message | None = None
        for index, piece in enumerate(pieces):
            markup = message.markup() if index == len(pieces) - 1 else None
            sent = await self.call(
                lambda piece=piece, markup=markup: self.bot.send_message(
                    chat_id, piece, parse_mode="HTML", reply_markup=markup, link_preview_options=NO_PREVIEW
                ),
                chat_id,
            )
        assert sent is not None
        return sent

    async def send_all(self, chat_id: int, messages: list[OutMessage]) -> None:
        for message in messages:
            await self.send(chat_id, message)

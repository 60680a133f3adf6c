"""One outgoing Telegram call that survives Telegram's limits and a shaky network.

python-telegram-bot's `AIORateLimiter` spaces the calls out (30 a second overall, 20 a
minute per group); here each call is retried after `RetryAfter` for as long as Telegram
asks, and after network errors with exponential backoff, a few times; after that the
error goes to the caller (the outbox keeps the message and tries again later). A 403
(the user blocked the bot, or the bot is not in the chat) raises `Blocked`.

`GatedRequest` is the HTTP layer under every call but getUpdates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.request import HTTPXRequest

log = logging.getLogger(__name__)
T = TypeVar("T")


class Blocked(Exception):
    """The user has blocked the bot or left the chat; nothing can be sent to it."""


def seconds(value: object) -> float:
    """`RetryAfter.retry_after` as seconds (python-telegram-bot gives an int or a timedelta)."""
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)  # type: ignore[union-attr,arg-type]


class GatedRequest(HTTPXRequest):
    """python-telegram-bot's HTTP layer, letting at most `connection_pool_size` calls reach
    httpx at a time; the rest wait their turn here, first come first served.

    httpcore rescans its whole queue of waiting requests each time a connection frees up.
    With hundreds of learners answering at once that queue holds hundreds of calls and the
    rescans took a third of the bot's CPU; an asyncio semaphore hands a turn on in O(1).
    Waiting here does not count against httpx's pool timeout."""

    def __init__(self, connection_pool_size: int, **kwargs: object):
        super().__init__(connection_pool_size=connection_pool_size, **kwargs)  # type: ignore[arg-type]
        self._turns = asyncio.Semaphore(connection_pool_size)

    async def do_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        async with self._turns:
            return await super().do_request(*args, **kwargs)


class Sender:
    """Makes Bot API calls, with retries."""

    def __init__(self, bot: Bot, attempts: int = 4, first_delay: float = 0.5):
        self.bot = bot
        self.attempts = attempts
        self.first_delay = first_delay

    async def call(self, make: Callable[[], Awaitable[T]], attempts: int | None = None) -> T:
        """Run one Bot API call, retrying after RetryAfter and network errors; the last error is raised."""
        delay = self.first_delay
        attempts = attempts or self.attempts
        for attempt in range(1, attempts + 1):
            try:
                return await make()
            except RetryAfter as exc:
                if attempt == attempts:
                    raise
                wait = seconds(exc.retry_after)
                log.warning("Telegram asks to wait %.1f s", wait)
                await asyncio.sleep(wait)
            except Forbidden as exc:
                raise Blocked(str(exc)) from exc
            except NetworkError as exc:  # TimedOut, 5xx and dropped connections among them
                if isinstance(exc, BadRequest) or attempt == attempts:
                    raise
                log.warning("network error (%s: %s); retrying in %.1f s", type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

"""Wiring and running the Telegram bot.

`build_application` makes the python-telegram-bot `Application` (handlers, rate limiter,
Bot API address) without its `Updater`: this bot fetches updates itself, so that each one
is stored in the inbox before Telegram is told it arrived (see `bot.telegram_bot.inbox`).
`serve` handles what the inbox still holds from before, then polls (or serves a webhook)
until it is stopped.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.error import (
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.settings import Settings
from bot.telegram_bot import buttons, handlers
from bot.telegram_bot.inbox import Dispatcher, Inbox
from bot.telegram_bot.sending import Sender
from bot.telegram_bot.services import Services
from bot.tutor import Tutor

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]
POLL_TIMEOUT = 30  # seconds Telegram holds a getUpdates call open


def build_application(
    settings: Settings,
    tutor: Tutor,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
) -> Application:
    """The Application with every handler; `request` replaces the network (tests)."""
    assert settings.telegram_bot_token is not None
    builder = (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.bot_api_base_url)
        .base_file_url(settings.bot_api_file_url)
        .updater(None)
        .rate_limiter(AIORateLimiter())
        .post_init(_post_init)
    )
    builder = builder.request(request or HTTPXRequest(connection_pool_size=16))
    builder = builder.get_updates_request(
        get_updates_request or request or HTTPXRequest(read_timeout=POLL_TIMEOUT + 10)
    )
    app = builder.build()
    inbox = Inbox(tutor.store)
    app.bot_data["services"] = Services(tutor, inbox, Sender(app.bot, tutor.store), settings)

    private = filters.ChatType.PRIVATE
    for name, callback in [
        ("start", handlers.start),
        ("lessons", handlers.lessons),
        ("progress", handlers.progress),
        ("restart", handlers.restart),
        ("help", handlers.help_command),
        ("forget", handlers.forget),
    ]:
        app.add_handler(CommandHandler(name, callback, filters=private))
    app.add_handler(MessageHandler(private & filters.COMMAND, handlers.unknown_command))
    app.add_handler(MessageHandler(private & filters.TEXT, handlers.text_message))
    app.add_handler(MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL, handlers.other_message))
    app.add_handler(CallbackQueryHandler(buttons.button))
    app.add_handler(MessageHandler(filters.ChatType.GROUPS & filters.COMMAND, handlers.group_message))
    app.add_error_handler(handlers.on_error)
    return app


async def _post_init(app: Application) -> None:
    await app.bot.set_my_commands(handlers.COMMANDS)


def services(app: Application) -> Services:
    return app.bot_data["services"]


def update_handler(app: Application) -> Callable[[Update], Awaitable[None]]:
    """Handle one update, then mark it handled (handlers that record mark it themselves)."""
    inbox = services(app).inbox

    async def handle(update: Update) -> None:
        await app.process_update(update)
        if not inbox.is_handled(update.update_id):
            with inbox.store.atomic():
                inbox.mark_handled(update.update_id)

    return handle


async def poll(app: Application, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
    """Fetch updates until `stop`; store each batch before the next call confirms it."""
    inbox = services(app).inbox
    offset = inbox.next_offset()
    delay = 1.0
    while not stop.is_set():
        try:
            updates = await app.bot.get_updates(offset=offset, timeout=POLL_TIMEOUT, allowed_updates=ALLOWED_UPDATES)
        except RetryAfter as exc:
            await asyncio.sleep(_seconds(exc.retry_after))
            continue
        except InvalidToken:
            raise
        except TelegramError as exc:  # network trouble, or e.g. another instance polling
            log.warning("getUpdates failed (%s: %s); retrying in %.0f s", type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60)
            continue
        delay = 1.0
        if not updates:
            continue
        for update in inbox.add(updates):
            dispatcher.submit(update)
        offset = updates[-1].update_id + 1


def _seconds(value: object) -> float:
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)  # type: ignore[union-attr]


async def serve_webhook(app: Application, dispatcher: Dispatcher, settings: Settings, stop: asyncio.Event) -> None:
    """Receive updates over HTTPS (behind a proxy); store each one before answering 200."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    inbox = services(app).inbox
    secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else b""

    async def receive(request: Request) -> Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "").encode()
        if not hmac.compare_digest(given, secret):
            return Response(status_code=403)
        try:
            update = Update.de_json(json.loads(await request.body()), app.bot)
        except (ValueError, TypeError, KeyError):
            return Response(status_code=400)
        for fresh in inbox.add([update]):
            dispatcher.submit(fresh)
        return Response(status_code=200)

    path = "/telegram"
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route(path, receive, methods=["POST"])]),
            host=settings.webhook_listen,
            port=settings.webhook_port,
            log_level="warning",
            lifespan="off",
        )
    )
    assert settings.webhook_url
    await app.bot.set_webhook(
        settings.webhook_url, secret_token=secret.decode(), allowed_updates=ALLOWED_UPDATES
    )
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


async def serve(
    app: Application, settings: Settings, stop: asyncio.Event | None = None, dispatcher: Dispatcher | None = None
) -> None:
    """Run the bot until `stop` is set (or SIGINT/SIGTERM)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            signals.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        await _serve(app, settings, stop, dispatcher)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _serve(app: Application, settings: Settings, stop: asyncio.Event, dispatcher: Dispatcher | None) -> None:
    dispatcher = dispatcher or Dispatcher(update_handler(app))
    inbox = services(app).inbox
    if not await _connect(app, stop):
        return
    try:
        await app.post_init(app)  # type: ignore[misc]
        log.info("bot @%s started in %s mode", app.bot.username, settings.mode)
        pending = inbox.pending(app.bot)
        if pending:
            log.info("handling %d update(s) stored before the last stop", len(pending))
        for update in pending:
            dispatcher.submit(update)
        await dispatcher.drain()
        if settings.mode == "webhook":
            await serve_webhook(app, dispatcher, settings, stop)
        else:
            await app.bot.delete_webhook(drop_pending_updates=False)
            poller = asyncio.create_task(poll(app, dispatcher, stop))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({poller, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (poller, stopped):
                task.cancel()  # an unconfirmed batch is fetched again next time
            await asyncio.gather(poller, stopped, return_exceptions=True)
            if not poller.cancelled() and poller.exception():
                raise poller.exception()  # e.g. the token was revoked while running
        await dispatcher.drain()
    finally:
        await app.shutdown()
    log.info("bot stopped")


async def _connect(app: Application, stop: asyncio.Event) -> bool:
    """Initialize (which asks Telegram who the bot is), retrying while the network is down.

    A rejected token raises `InvalidToken` at once; False if stopped before connecting."""
    delay = 1.0
    while not stop.is_set():
        try:
            await app.initialize()
            return True
        except InvalidToken:
            raise
        except (TimedOut, NetworkError) as exc:
            log.warning("cannot reach the Bot API (%s); retrying in %.0f s", type(exc).__name__, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, 60)
    return False


def run(settings: Settings, tutor: Tutor) -> None:
    """Run the bot in the foreground; raise `InvalidToken` if Telegram rejects the token."""
    app = build_application(settings, tutor)
    try:
        asyncio.run(serve(app, settings))
    except InvalidToken:
        raise
    except TelegramError as exc:
        raise RuntimeError(f"Telegram error: {exc}") from None

"""Wiring and running the Telegram bot.

`build_application` makes the python-telegram-bot `Application` (handlers, rate limiter,
Bot API address) without its `Updater`: this bot fetches updates itself, as raw JSON, so
that each one is stored in the inbox before Telegram is told it arrived, and so that one
update python-telegram-bot cannot read is set aside instead of failing its whole batch
(see `bot.telegram_bot.inbox`).

`serve` sends what the outbox still holds, handles what the inbox still holds from
before, then polls (or serves a webhook) until it is stopped. Nothing Telegram or the
database can do stops it: a failing call or a locked, full or missing database is waited
out and said in the log; only a rejected token ends it. On SIGTERM it stops fetching,
finishes what is in hand for a few seconds, and leaves the rest to the inbox and the
outbox for the next start.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
import signal
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from telegram import BotCommandScopeAllGroupChats, Update
from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    PollAnswerHandler,
    filters,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.settings import Settings
from bot.telegram_bot import buttons, groups, handlers, study
from bot.store import Store, transient, wait_out
from bot.telegram_bot.inbox import Dispatcher, Inbox, valid_update_id
from bot.telegram_bot.outbox import Outbox, trim_sent
from bot.telegram_bot.sending import GatedRequest, Sender, seconds
from bot.telegram_bot.services import Services
from bot.tutor import Tutor

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query", "poll_answer"]
POLL_TIMEOUT = 30  # seconds Telegram holds a getUpdates call open
SEND_TIMEOUT = 20  # seconds to wait for Telegram's answer to a send: a slow answer is not a lost message
SHUTDOWN_GRACE = 5.0  # seconds to finish the updates in hand after SIGTERM
FLUSH_EVERY = 1.0  # a chat that floods the bot gets its replies sent at least this often
PRUNE_EVERY = 3600.0  # seconds between two prunings of the inbox and the outbox
PRUNE_BATCH = 2000  # rows pruned per transaction
CONNECTIONS = 16  # Bot API calls in flight at once (Telegram takes ~0.1 s a call: room for 160 a second)
TICK_EVERY = 1.0  # how often group study sessions are checked for a move that is due


def instructor(command: str) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]:
    """The handler of the review command `command` (bot.telegram_bot.review), its module
    (and the reports under it) loaded when an instructor first asks: learners never need it."""

    async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        from bot.telegram_bot import review

        await getattr(review, command)(update, context)

    return handler


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
    )
    if settings.rate_limit == "telegram":
        builder = builder.rate_limiter(
            AIORateLimiter(overall_max_rate=settings.rate_overall, group_max_rate=settings.rate_group, group_time_period=60)
        )
    if request is None:
        # One TLS context for both clients: each would load the CA bundle again (~45 ms of start-up).
        tls = {"verify": httpx.create_ssl_context()}
        request = GatedRequest(connection_pool_size=CONNECTIONS, read_timeout=SEND_TIMEOUT, httpx_kwargs=tls)
        get_updates_request = get_updates_request or HTTPXRequest(read_timeout=POLL_TIMEOUT + 10, httpx_kwargs=tls)
    builder = builder.request(request).get_updates_request(get_updates_request or request)
    app = builder.build()
    sender = Sender(app.bot)
    limited = settings.rate_limit == "telegram"
    outbox = Outbox(tutor.store, sender, settings.rate_group if limited else None, settings.rate_private if limited else None)
    app.bot_data["services"] = Services(tutor, Inbox(tutor.store), outbox, sender, settings)

    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE  # new messages only, not edits
    for name, callback in [
        ("start", handlers.start),
        ("lessons", handlers.lessons),
        ("progress", handlers.progress),
        ("restart", handlers.restart),
        ("help", handlers.help_command),
        ("forget", handlers.forget),
        ("report", instructor("report")),
        ("review", instructor("review")),
        ("transcript", instructor("transcript")),
        ("cancel", instructor("cancel")),
    ]:
        app.add_handler(CommandHandler(name, callback, filters=private))
    app.add_handler(MessageHandler(private & filters.COMMAND, handlers.unknown_command))
    app.add_handler(MessageHandler(private & filters.TEXT, handlers.text_message))
    app.add_handler(MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL, handlers.other_message))
    app.add_handler(CallbackQueryHandler(buttons.button))
    in_group = filters.ChatType.GROUPS & filters.UpdateType.MESSAGE
    for name, callback in [
        ("study", study.study),
        ("next", study.next_command),
        ("pause", study.pause),
        ("resume", study.resume),
        ("stop", study.stop),
        ("assign", groups.assign),
        ("standings", groups.standings),
        ("help", groups.help_command),
    ]:
        app.add_handler(CommandHandler(name, callback, filters=in_group))
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, groups.migrated))
    app.add_handler(MessageHandler(in_group & filters.COMMAND, handlers.group_message))
    app.add_handler(MessageHandler(in_group & filters.REPLY & (filters.TEXT | filters.CAPTION), study.reflection))
    app.add_handler(PollAnswerHandler(study.poll_answer))
    app.add_error_handler(handlers.on_error)
    return app


def services(app: Application) -> Services:
    return app.bot_data["services"]


def database_in_place(store: Store) -> bool:
    """Whether the database file is where it belongs; if it was deleted, write it back.

    False (said in the log) if it is gone and cannot be written back: then no update is
    confirmed to Telegram until it can."""
    try:
        if store.restore_if_deleted():
            log.error("the database file %s was deleted while the bot ran; written back from the open database", store.path)
        return True
    except Exception as exc:  # noqa: BLE001 - e.g. its folder is gone too, or the disk is full
        log.error("the database file %s is gone and cannot be written back (%s); not taking updates until it can", store.path, exc)
        return False


async def watch_database(
    store: Store, stop: asyncio.Event, every: float = 5.0, retention_hours: float = 48.0, sent_text_hours: float = 48.0
) -> None:
    """Until `stop`: notice (and undo) the database file being deleted under the bot, and
    once an hour forget the handled updates older than `retention_hours` and the text of
    replies sent more than `sent_text_hours` ago."""
    pruned_at = None
    while not stop.is_set():
        database_in_place(store)
        now = asyncio.get_running_loop().time()
        if pruned_at is None or now - pruned_at >= PRUNE_EVERY:
            pruned_at = now
            try:
                before = _hours_ago(store, retention_hours)
                removed = await _in_batches(store, lambda: Inbox(store).prune(before, PRUNE_BATCH), stop)
                if removed:
                    log.info("forgot %d handled update(s) older than %g hours", removed, retention_hours)
                sent_before = _hours_ago(store, sent_text_hours)
                trimmed = await _in_batches(store, lambda: trim_sent(store, sent_before, PRUNE_BATCH), stop)
                if trimmed:
                    log.info("dropped the text of %d message(s) sent or given up on over %g hours ago", trimmed, sent_text_hours)
            except Exception as exc:  # noqa: BLE001 - housekeeping waits for the next round
                log.warning("pruning the database failed (%s); trying again later", exc)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass


def _hours_ago(store: Store, hours: float) -> str:
    return (store.clock() - timedelta(hours=hours)).isoformat(timespec="milliseconds")


async def _in_batches(store: Store, batch: Callable[[], int], stop: asyncio.Event) -> int:
    """Run `batch` (it returns how many rows it changed, at most `PRUNE_BATCH`) until it
    changes fewer, each time in its own short transaction (some 20 ms), with a pause for the
    learners between two: a backlog (a big database's first pruning) takes about a tenth
    of the bot's time while it lasts."""
    done = 0
    while not stop.is_set():
        with store.atomic():
            count = batch()
        done += count
        if count < PRUNE_BATCH:
            break
        await asyncio.sleep(0.2)
    return done


async def study_clock(app: Application, stop: asyncio.Event, every: float = TICK_EVERY) -> None:
    """Until `stop`: make the moves of group study sessions that are due (see `study.tick`)."""
    while not stop.is_set():
        try:
            await study.tick(services(app))
        except Exception as exc:  # noqa: BLE001 - the clock must outlive any one failure
            if transient(exc):
                log.warning("database unavailable for the study clock (%s); trying again", exc)
            else:
                log.exception("study clock failed")
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass


def update_handler(app: Application) -> Callable[[Update], Awaitable[None]]:
    """Handle one update, then mark it handled (handlers that record mark it themselves).

    A handler that failed for a reason that may pass (the database is locked or full) is
    run again until it succeeds, keeping the update unhandled meanwhile; one that failed
    otherwise (a bug, an update no handler can make sense of) sets the update aside."""
    s = services(app)

    async def handle(update: Update) -> None:
        update_id = update.update_id
        delay = 0.5
        while True:
            s.failures.pop(update_id, None)
            await app.process_update(update)
            error = s.failures.pop(update_id, None)
            if error is None:
                break
            if not transient(error):
                log.error("update %s could not be handled", update_id, exc_info=error)
                await wait_out(
                    lambda: _set_aside(s.inbox, update_id, f"{type(error).__name__}: {error}"), "setting an update aside"
                )
                return
            log.warning("database unavailable (%s): update %s waits; trying again in %.1f s", error, update_id, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        if not s.inbox.is_handled(update_id):
            await wait_out(lambda: _mark_handled(s.inbox, update_id), "marking an update handled")

    return handle


def _mark_handled(inbox: Inbox, update_id: int) -> None:
    with inbox.store.atomic():
        inbox.mark_handled(update_id)


def _set_aside(inbox: Inbox, update_id: int, error: str) -> None:
    with inbox.store.atomic():
        inbox.set_aside(update_id, error)


def dispatcher_for(app: Application) -> Dispatcher:
    """A dispatcher that handles updates and has each chat's replies sent from the outbox."""
    outbox = services(app).outbox

    async def flush(key: str) -> None:
        if key.startswith("tg:"):
            outbox.request(int(key[3:]))  # the chat's worker is done: the outbox's senders send

    return Dispatcher(update_handler(app), flush, FLUSH_EVERY)


async def fetch(app: Application, offset: int | None) -> list[Any]:
    """One getUpdates call, its result as Telegram sent it (a list of JSON objects).

    python-telegram-bot's `get_updates` parses the whole batch at once: one update it
    cannot read fails the batch, and its log line dumps every learner's update in it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # do_api_request suggests get_updates, which we avoid on purpose
        result = await app.bot.do_api_request(
            "getUpdates",
            api_kwargs={"offset": offset, "timeout": POLL_TIMEOUT, "allowed_updates": ALLOWED_UPDATES},
            read_timeout=POLL_TIMEOUT + 10,
        )
    return result if isinstance(result, list) else []


async def poll(app: Application, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
    """Fetch updates until `stop`; store each batch before the next call confirms it."""
    inbox = services(app).inbox
    # The first call confirms nothing: Telegram sends every update not yet confirmed, and
    # those stored before the last stop are recognised (`Inbox.receive`).
    offset = None
    delay = 1.0
    while not stop.is_set():
        # This call tells Telegram the last batch arrived: it must be committed first.
        await inbox.confirmable(stop)
        if stop.is_set():
            break
        try:
            batch = await fetch(app, offset)
        except RetryAfter as exc:
            await asyncio.sleep(seconds(exc.retry_after))
            continue
        except InvalidToken:
            raise
        except Conflict as exc:  # Telegram serves one poller per token
            log.error("another process is fetching updates with this bot's token (%s); retrying in %.0f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60)
            continue
        except TelegramError as exc:  # network trouble, 5xx, a malformed answer
            log.warning("getUpdates failed (%s: %s); retrying in %.0f s", type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60)
            continue
        delay = 1.0
        usable = [raw for raw in batch if isinstance(raw, dict) and valid_update_id(raw.get("update_id"))]
        if len(usable) < len(batch):
            log.error("getUpdates returned %d item(s) that are not updates; skipped", len(batch) - len(usable))
        if not usable:
            continue
        # Not confirmed until stored (`Inbox.confirmable`): if that fails, the batch comes again.
        if not database_in_place(inbox.store):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60)
            continue
        fresh = await wait_out(lambda: inbox.receive(usable, app.bot), "reading the inbox", stop)
        for update in fresh:
            dispatcher.submit(update)
        offset = max(raw["update_id"] for raw in usable) + 1


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
    dispatcher = dispatcher or dispatcher_for(app)
    s = services(app)
    if not await _connect(app, stop):
        log.info("bot stopped before the Bot API could be reached")
        return
    background = [
        asyncio.create_task(s.outbox.run(stop), name="outbox"),
        asyncio.create_task(_register_commands(app, stop), name="commands"),
        asyncio.create_task(
            watch_database(s.store, stop, retention_hours=settings.inbox_retention_hours,
                           sent_text_hours=settings.sent_text_retention_hours),
            name="database",
        ),
        asyncio.create_task(study_clock(app, stop), name="study clock"),
    ]
    try:
        log.info("bot @%s started in %s mode", app.bot.username, settings.mode)
        pending = await wait_out(lambda: s.inbox.pending(app.bot), "reading the inbox", stop)
        if pending:
            log.info("handling %d update(s) stored before the last stop", len(pending))
        for update in pending:
            dispatcher.submit(update)
        if settings.mode == "webhook":
            from bot.telegram_bot.webhook import serve_webhook

            receiving = asyncio.create_task(serve_webhook(app, dispatcher, settings, stop))
        else:
            receiving = asyncio.create_task(_poll_after_deleting_webhook(app, dispatcher, stop))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({receiving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        for task in (receiving, stopped):
            task.cancel()  # an unconfirmed batch is fetched again next time
        await asyncio.gather(receiving, stopped, return_exceptions=True)
        grace_ends = asyncio.get_running_loop().time() + SHUTDOWN_GRACE
        await dispatcher.stop(SHUTDOWN_GRACE)
        await s.outbox.stop_sending(grace_ends - asyncio.get_running_loop().time())
        if not receiving.cancelled() and receiving.exception():
            raise receiving.exception()  # e.g. the token was revoked while running
    finally:
        stop.set()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await app.shutdown()
    log.info("bot stopped")


async def _poll_after_deleting_webhook(app: Application, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
    await _retrying(lambda: app.bot.delete_webhook(drop_pending_updates=False), "deleteWebhook", stop)
    await poll(app, dispatcher, stop)


async def _register_commands(app: Application, stop: asyncio.Event) -> None:
    """Set the command menus (one-to-one, and in groups); a failure is retried in the
    background, it never stops the bot."""
    await _retrying(lambda: app.bot.set_my_commands(handlers.COMMANDS), "setMyCommands", stop)
    in_groups = BotCommandScopeAllGroupChats()
    await _retrying(lambda: app.bot.set_my_commands(groups.COMMANDS, scope=in_groups), "setMyCommands (groups)", stop)


async def _retrying(call: Callable[[], Awaitable[Any]], what: str, stop: asyncio.Event) -> bool:
    """Make a Bot API call until it succeeds (True) or `stop` (False); a rejected token raises."""
    delay = 1.0
    while not stop.is_set():
        try:
            await call()
            return True
        except InvalidToken:
            raise
        except RetryAfter as exc:
            wait = seconds(exc.retry_after)
        except TelegramError as exc:
            log.warning("%s failed (%s: %s); retrying in %.0f s", what, type(exc).__name__, exc, delay)
            wait, delay = delay, min(delay * 2, 60)
        try:
            await asyncio.wait_for(stop.wait(), wait)
        except asyncio.TimeoutError:
            pass
    return False


async def _connect(app: Application, stop: asyncio.Event) -> bool:
    """Initialize (which asks Telegram who the bot is), retrying while Telegram fails.

    A rejected token raises `InvalidToken` at once; False if stopped before connecting."""
    return await _retrying(app.initialize, "connecting to the Bot API", stop)


def run(settings: Settings, tutor: Tutor) -> None:
    """Run the bot in the foreground; raise `InvalidToken` if Telegram rejects the token."""
    app = build_application(settings, tutor)
    asyncio.run(serve(app, settings))


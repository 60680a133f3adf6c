"""Webhook mode: Telegram posts each update to us over HTTPS (behind a reverse proxy).

This module owns the HTTP endpoint (`POST /telegram`), the web server that runs it inside
the bot's event loop, and the `setWebhook` call. An update is stored in the inbox before
Telegram gets its 200, exactly as with polling. What a post gets:

- 403: no `X-Telegram-Bot-Api-Secret-Token` header, or a wrong one (the body is not read);
- 413: a body over `MAX_BODY` (refused before it is read whole);
- 400: a body that is not an update (see `parse_update`);
- 503: the database is locked or full for now (Telegram delivers the update again later);
- 200: stored (or stored before: a redelivery is not handled twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Bot
from telegram.ext import Application

from bot.settings import Settings
from bot.store import transient
from bot.telegram_bot.app import ALLOWED_UPDATES, _retrying, services
from bot.telegram_bot.inbox import Dispatcher, Inbox, valid_update_id

log = logging.getLogger(__name__)

PATH = "/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024  # bytes; Telegram's updates are a few KB
MAX_DEPTH = 64  # nesting of objects and arrays; Telegram's updates nest about 10 deep
SHUTDOWN_GRACE = 5  # seconds for the requests in hand when stopping


def parse_update(body: bytes) -> dict[str, Any] | None:
    """The update a request body holds, or None if it is not one.

    An update is UTF-8 JSON: an object with a valid `update_id` and exactly one other
    field, its kind, whose value is an object; nested at most MAX_DEPTH deep, without NaN
    or Infinity. A kind this bot does not know is accepted (Telegram adds new ones): it is
    stored, then ignored. Whether python-telegram-bot can read it is the inbox's business."""
    try:
        raw = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # RecursionError: nested too deep for json
        return None
    if not isinstance(raw, dict) or not valid_update_id(raw.get("update_id")):
        return None
    kinds = [value for key, value in raw.items() if key != "update_id"]
    if len(kinds) != 1 or not isinstance(kinds[0], dict) or not _shallow(raw):
        return None
    try:
        json.dumps(raw, allow_nan=False)  # NaN and Infinity (or 1e999) are not JSON: not from Telegram
    except ValueError:
        return None
    return raw


def _shallow(value: Any) -> bool:
    """Nested at most MAX_DEPTH deep, so that storing or parsing it cannot recurse too deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


async def _read_body(request: Request) -> bytes | None:
    """The body, or None as soon as it is known to be longer than MAX_BODY."""
    with contextlib.suppress(ValueError):  # absent or unreadable: the count below still holds
        if int(request.headers.get("content-length", "")) > MAX_BODY:
            return None
    chunks, size = [], 0
    async for chunk in request.stream():  # without Content-Length (chunked), count as it comes
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_app(inbox: Inbox, bot: Bot, dispatcher: Dispatcher, secret: str) -> Starlette:
    """The web application: one route, POST /telegram."""

    async def receive(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, secret.encode()):
            return Response(status_code=403)
        try:
            body = await _read_body(request)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        if body is None:
            return Response(status_code=413)
        raw = parse_update(body)
        if raw is None:
            return Response(status_code=400)
        try:
            fresh = inbox.add([raw], bot)  # one transaction: stored whole or not at all
        except Exception as exc:
            if not transient(exc):
                raise
            log.warning("database unavailable (%s): update %s refused; Telegram sends it again", exc, raw["update_id"])
            return Response(status_code=503)
        for update in fresh:
            dispatcher.submit(update)
        return Response(status_code=200)

    return Starlette(routes=[Route(PATH, receive, methods=["POST"])])


class _Server(uvicorn.Server):
    """uvicorn's server, run as one task of the bot's event loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # not uvicorn's business: `serve` in app.py turns SIGINT and SIGTERM into `stop`

    async def listen(self, sock: socket.socket) -> None:
        try:
            await self.serve(sockets=[sock])
        except SystemExit:  # how uvicorn says it cannot serve (it logs why)
            pass


class ListenError(RuntimeError):
    """The webhook's address cannot be listened on; the message says why, in one line."""


async def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on `host`:`port`, or `ListenError`: bound here, not by uvicorn,
    which would only log why it cannot (and exit)."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, address = (
            await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        )[0]
        sock = socket.socket(family, kind, proto)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {where}: no such address ({exc.strerror}): check TUTORBOT_WEBHOOK_LISTEN") from None
    except (OSError, OverflowError) as exc:
        raise ListenError(f"cannot listen on {where} ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait for TIME_WAIT
        sock.bind(address)
        sock.listen(2048)
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or exc
        raise ListenError(
            f"cannot listen on {where} ({reason}): check TUTORBOT_WEBHOOK_LISTEN and TUTORBOT_WEBHOOK_PORT"
        ) from None
    return sock


async def serve_webhook(app: Application, dispatcher: Dispatcher, settings: Settings, stop: asyncio.Event) -> None:
    """Receive updates until `stop`; store each one before answering 200."""
    if not (settings.webhook_url and settings.webhook_secret):
        raise ValueError("webhook mode needs a webhook URL and secret")
    url, secret = settings.webhook_url, settings.webhook_secret.get_secret_value()
    sock = await listening_socket(settings.webhook_listen, settings.webhook_port)
    server = _Server(
        uvicorn.Config(
            webhook_app(services(app).inbox, app.bot, dispatcher, secret),
            host=settings.webhook_listen,
            port=settings.webhook_port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        )
    )
    serving = asyncio.create_task(server.listen(sock), name="webhook server")
    try:
        while not (server.started or serving.done() or stop.is_set()):
            await asyncio.sleep(0.01)
        if serving.done():
            raise ListenError(f"cannot serve on {settings.webhook_listen}:{settings.webhook_port}")
        # Listening first, so that Telegram finds us as soon as it knows where to post.
        register = lambda: app.bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)  # noqa: E731
        if await _retrying(register, "setWebhook", stop):
            log.info("webhook registered; listening on %s:%s", settings.webhook_listen, settings.webhook_port)
        await stop.wait()
    finally:
        server.should_exit = True
        await _finish(serving)
        sock.close()  # uvicorn closes it too; this is for when it never started


async def _finish(task: asyncio.Task[None]) -> None:
    """Wait until `task` is done, even if cancelled meanwhile (and then raise that).

    `serve` cancels this task as it stops: the server must still finish the requests in
    hand (up to SHUTDOWN_GRACE seconds) and close its socket before the bot stops."""
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        raise cancelled

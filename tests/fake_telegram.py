"""A fake Telegram Bot API for tests: the server side and the learners' side.

`FakeTelegram` keeps what Telegram would: queued updates (confirmed by getUpdates'
offset, redelivered until then), the messages in each chat, the answered button presses.
Tests act as learners through it (`send_text`, `press`, `send_sticker`) and reach the bot
through either `FakeRequest` (python-telegram-bot's `BaseRequest` seam, in process) or
`FakeBotAPIServer` (real HTTP on 127.0.0.1, for the bot running as its own process).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from telegram.request import BaseRequest, RequestData

TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijklmnop"
BOT_ID = 123456789
BOT_USERNAME = "argument_tutor_bot"
RAW_STRING_FIELDS = {"text", "data", "callback_query_id", "parse_mode", "secret_token", "url", "action", "description"}


def plain(text_html: str) -> str:
    """What a learner reads of an HTML message: tags gone, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", text_html))


class FakeTelegram:
    """Telegram's state, for one bot."""

    def __init__(self, token: str = TOKEN):
        self.token = token
        self.lock = threading.Condition()
        self.queue: list[dict[str, Any]] = []  # updates not yet confirmed
        self.next_update_id = 1000
        self.next_message_id = 1
        self.chats: dict[int, list[dict[str, Any]]] = {}  # every message, both sides, in order
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answered_queries: set[str] = set()
        self.blocked: set[int] = set()
        self.failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # method -> canned errors
        self.commands: list[dict[str, Any]] = []
        self.delivered: dict[int, int] = {}  # update_id -> times handed out by getUpdates

    # --- the learners' side ---------------------------------------------------------------

    def _user(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": f"Learner{user_id}"}

    def _chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": "Study group"}
        return {"id": chat_id, "type": "private", "first_name": f"Learner{chat_id}"}

    def _push(self, update: dict[str, Any]) -> int:
        with self.lock:
            update["update_id"] = self.next_update_id
            self.next_update_id += 1
            self.queue.append(update)
            self.lock.notify_all()
            return update["update_id"]

    def _incoming(self, user_id: int, group: int | None = None, **content: Any) -> dict[str, Any]:
        chat = self._chat(user_id if group is None else group)
        with self.lock:
            message = {
                "message_id": self.next_message_id,
                "from": self._user(user_id),
                "chat": chat,
                "date": int(time.time()),
                **content,
            }
            self.next_message_id += 1
            self.chats.setdefault(chat["id"], []).append({"from_bot": False, **message})
        return message

    def send_text(self, user_id: int, text: str, group: int | None = None) -> int:
        """The learner types `text`, in private or in `group` (a /command gets its entity)."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            length = len(text.split()[0])
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return self._push({"message": self._incoming(user_id, group, **content)})

    def send_sticker(self, user_id: int) -> int:
        sticker = {
            "file_id": "sticker1",
            "file_unique_id": "s1",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
        return self._push({"message": self._incoming(user_id, sticker=sticker)})

    def press(self, user_id: int, message_id: int, data: str) -> int:
        """The learner taps a button with `data` under the bot's message `message_id`."""
        message = self.message(user_id, message_id)
        query = {
            "id": f"q{self.next_update_id}",
            "from": self._user(user_id),
            "message": {k: v for k, v in message.items() if k != "from_bot"},
            "chat_instance": f"ci{user_id}",
            "data": data,
        }
        return self._push({"callback_query": query})

    # --- what the learner sees ----------------------------------------------------------

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        with self.lock:
            return next(m for m in self.chats.get(chat_id, []) if m["message_id"] == message_id)

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.chats.get(chat_id, []) if m["from_bot"]]

    def last_bot_message(self, chat_id: int) -> dict[str, Any]:
        return self.bot_messages(chat_id)[-1]

    @staticmethod
    def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
        rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
        return [(b["text"], b["callback_data"]) for row in rows for b in row]

    def pending(self) -> int:
        with self.lock:
            return len(self.queue)

    # --- the Bot API ------------------------------------------------------------------

    def fail_next(self, method: str, status: int, body: dict[str, Any]) -> None:
        """Make the next call of `method` fail with this status and body."""
        with self.lock:
            self.failures.setdefault(method, []).append((status, body))

    def api(self, token: str, method: str, params: dict[str, Any], wait: float = 0.0) -> tuple[int, dict[str, Any]]:
        """Answer one Bot API call; getUpdates waits up to `wait` seconds for an update."""
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        with self.lock:
            self.calls.append((method, params))
            if self.failures.get(method):
                status, body = self.failures[method].pop(0)
                return status, body
            if method == "getUpdates":
                offset = int(params.get("offset") or 0)
                self.queue = [u for u in self.queue if u["update_id"] >= offset]  # confirm
                deadline = time.monotonic() + min(float(params.get("timeout") or 0), wait)
                while not self.queue and time.monotonic() < deadline:
                    self.lock.wait(deadline - time.monotonic())
                self.queue = [u for u in self.queue if u["update_id"] >= offset]
                batch = self.queue[: int(params.get("limit") or 100)]
                for update in batch:
                    self.delivered[update["update_id"]] = self.delivered.get(update["update_id"], 0) + 1
                return 200, {"ok": True, "result": json.loads(json.dumps(batch))}
            return self._method(method, params)

    def _method(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ok = lambda result: (200, {"ok": True, "result": result})  # noqa: E731
        if method == "getMe":
            return ok({"id": BOT_ID, "is_bot": True, "first_name": "Tutor", "username": BOT_USERNAME,
                       "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False})
        if method in ("setMyCommands", "deleteWebhook", "setWebhook", "sendChatAction"):
            if method == "setMyCommands":
                self.commands = params["commands"] if isinstance(params["commands"], list) else json.loads(params["commands"])
            return ok(True)
        if method == "answerCallbackQuery":
            self.answered_queries.add(params["callback_query_id"])
            return ok(True)
        chat_id = int(params.get("chat_id", 0))
        if chat_id in self.blocked:
            return 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
        if method == "sendMessage":
            message = {
                "message_id": self.next_message_id,
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Tutor", "username": BOT_USERNAME},
                "chat": self._chat(chat_id),
                "date": int(time.time()),
                "text": plain(params["text"]),
            }
            self.next_message_id += 1
            stored = {"from_bot": True, "html": params["text"], **message}
            markup = params.get("reply_markup")
            if markup:
                markup = markup if isinstance(markup, dict) else json.loads(markup)
                message["reply_markup"] = stored["reply_markup"] = markup
            self.chats.setdefault(chat_id, []).append(stored)
            return ok(message)
        if method in ("editMessageText", "editMessageReplyMarkup"):
            stored = next((m for m in self.chats.get(chat_id, []) if m["message_id"] == int(params["message_id"])), None)
            if stored is None:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message to edit not found"}
            if method == "editMessageText":
                stored["html"], stored["text"] = params["text"], plain(params["text"])
            markup = params.get("reply_markup")
            if markup:
                stored["reply_markup"] = markup if isinstance(markup, dict) else json.loads(markup)
            else:
                stored.pop("reply_markup", None)
            result = {k: v for k, v in stored.items() if k not in ("from_bot", "html")}
            return ok(result)
        return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: method {method} not faked"}


def _split_url(url: str) -> tuple[str, str]:
    match = re.search(r"/bot([^/]+)/(\w+)$", url)
    assert match, url
    return match[1], match[2]


class FakeRequest(BaseRequest):
    """python-telegram-bot's network seam, answered by a `FakeTelegram` in process."""

    def __init__(self, telegram: FakeTelegram, poll_wait: float = 0.05):
        self.telegram = telegram
        self.poll_wait = poll_wait

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None, **_: Any) -> tuple[int, bytes]:
        token, api_method = _split_url(url)
        params = request_data.parameters if request_data else {}
        if api_method == "getUpdates":
            # Long polling without blocking the event loop: look, then wait a little.
            status, body = self.telegram.api(token, api_method, params)
            if status == 200 and not body["result"]:
                await asyncio.sleep(self.poll_wait)
                status, body = self.telegram.api(token, api_method, params)
        else:
            status, body = self.telegram.api(token, api_method, params)
        return status, json.dumps(body).encode()


class FakeBotAPIServer:
    """The fake over real HTTP on 127.0.0.1, as `https://api.telegram.org` would be."""

    def __init__(self, telegram: FakeTelegram, long_poll_cap: float = 1.0):
        self.telegram = telegram
        fake = telegram

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    params = json.loads(body or "{}")
                else:
                    params = {}
                    for key, values in parse_qs(body).items():
                        value = values[0]
                        if key not in RAW_STRING_FIELDS:
                            try:
                                value = json.loads(value)
                            except ValueError:
                                pass
                        params[key] = value
                token, method = _split_url(self.path)
                status, answer = fake.api(token, method, params, wait=long_poll_cap)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the bot was killed mid-request, as the crash test intends

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/bot"

    def __enter__(self) -> FakeBotAPIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.telegram.lock:
            self.telegram.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()

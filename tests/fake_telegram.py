"""A fake Telegram Bot API for tests: the server side and the learners' side.

`FakeTelegram` keeps what Telegram would: queued updates (confirmed by getUpdates'
offset, redelivered until then), the messages in each chat, the answered button presses.
Tests act as learners through it (`send_text`, `press`, `send_sticker`) and reach the bot
through either `FakeRequest` (python-telegram-bot's `BaseRequest` seam, in process) or
`FakeBotAPIServer` (real HTTP on 127.0.0.1, for the bot running as its own process).

Faults: `fail_next` scripts the next answers of one method; `inject` makes a share (or a
number) of the calls to some methods fail the way Telegram and the network do: 429 with
`retry_after`, 500, 502, 403, a malformed body, a dropped connection, or a slow answer
(the call is carried out, but the client times out before the answer arrives). `delay`
slows a method down, to keep a queue from draining.
"""

from __future__ import annotations

import asyncio
import html
import json
import random
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijklmnop"
BOT_ID = 123456789
BOT_USERNAME = "argument_tutor_bot"
RAW_STRING_FIELDS = {"text", "data", "callback_query_id", "parse_mode", "secret_token", "url", "action", "description"}


FAULT_KINDS = ("429", "500", "502", "403", "malformed", "drop", "slow")
MALFORMED = b"{not json"


@dataclass
class Fault:
    """Calls to `methods` (all if None) in `chats` (all if None) fail as `kind`: each with
    probability `share`, at most `count` times in all (no limit if None).

    429/500/502/403: Telegram refuses the call (nothing is done). "malformed": Telegram
    does it, but the answer is `{not json` with status 200. "drop": the connection drops
    before the call reaches Telegram. "slow": Telegram does it, but answers after the
    client gave up (in process: `TimedOut` is raised once the call is recorded)."""

    kind: str
    methods: frozenset[str] | None = None
    share: float = 1.0
    count: int | None = None
    chats: frozenset[int] | None = None
    retry_after: int = 1
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    hits: list[str] = field(default_factory=list)  # the methods it hit, in order
    active: bool = True

    def matches(self, method: str, params: dict[str, Any]) -> bool:
        if not self.active or (self.count is not None and len(self.hits) >= self.count):
            return False
        if self.methods is not None and method not in self.methods:
            return False
        if self.chats is not None:
            try:
                if int(params.get("chat_id", 0)) not in self.chats:
                    return False
            except (TypeError, ValueError):
                return False
        return self.rng.random() < self.share

    def error(self) -> tuple[int, dict[str, Any]]:
        if self.kind == "429":
            return 429, {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {self.retry_after}",
                         "parameters": {"retry_after": self.retry_after}}
        if self.kind == "403":
            return 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
        phrase = {"500": "Internal Server Error", "502": "Bad Gateway"}[self.kind]
        return int(self.kind), {"ok": False, "error_code": int(self.kind), "description": phrase}


@dataclass
class Answer:
    """What the fake answers one call with: status, body (None if malformed) and its bytes,
    and what the transport must do on top ("drop", "slow" or None)."""

    status: int
    body: dict[str, Any] | None
    data: bytes
    effect: str | None = None


TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
                 "blockquote", "tg-emoji", "tg-time"}


class _Tags(HTMLParser):
    """Checks HTML as Telegram's parser does: only its tags, each closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in TELEGRAM_TAGS:
            self.problem = self.problem or f"unsupported start tag \"{tag}\""
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problem = self.problem or f"unmatched end tag \"{tag}\""
        else:
            self.open.pop()


def text_refused(text: str, parse_mode: str | None) -> str | None:
    """Why Telegram would refuse this message text (None if it would take it): empty, over
    4096 characters once parsed, or HTML it cannot parse."""
    if parse_mode == "HTML":
        tags = _Tags()
        tags.feed(text)
        tags.close()
        problem = tags.problem or (f"can't find end tag corresponding to start tag \"{tags.open[-1]}\"" if tags.open else None)
        if problem:
            return f"can't parse entities: {problem}"
        text = plain(text)
    if not text.strip():
        return "message text is empty"
    if len(text.encode("utf-16-le")) // 2 > 4096:
        return "message is too long"
    return None


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
        self.admins: dict[int, set[int]] = {}  # group id -> its admins' user ids
        self.failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # method -> canned errors
        self.commands: list[dict[str, Any]] = []  # the default menu
        self.scoped_commands: dict[str, list[dict[str, Any]]] = {}  # scope type -> its menu
        self.delivered: dict[int, int] = {}  # update_id -> times handed out by getUpdates
        self.faults: list[Fault] = []
        self.delays: dict[str, float] = {}  # method -> seconds the transport waits before answering
        self.slow_seconds = 25.0  # over HTTP, how long a "slow" answer takes (beyond the bot's timeout)
        self.arrived: dict[tuple[int, int], float] = {}  # (chat, message id) -> time.monotonic() it was sent or edited
        self.pushed: dict[int, float] = {}  # update_id -> time.monotonic() the learner sent it
        self.queries: list[str] = []  # the id of every button tap, in order
        self.reactions: list[tuple[int, int, Any]] = []  # (chat, message id, reaction) the bot set
        self.next_poll_id = 1
        self.documents: dict[tuple[int, int], bytes] = {}  # (chat, message id) -> a sent file's content
        self.migrated: dict[int, int] = {}  # a group that became a supergroup -> its new id
        self.deleted_topics: set[tuple[int, int]] = set()  # (chat, message_thread_id) of forum topics deleted

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
            self.pushed[update["update_id"]] = time.monotonic()
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

    def send_text(
        self, user_id: int, text: str, group: int | None = None, reply_to: int | None = None, topic: int | None = None
    ) -> int:
        """The learner types `text`, in private or in `group` (a /command gets its entity),
        as a reply to the message `reply_to` if given, in the forum topic `topic` if given."""
        content: dict[str, Any] = {"text": text}
        if topic is not None:
            content.update(message_thread_id=topic, is_topic_message=True)
        if reply_to is not None:
            replied = self.message(user_id if group is None else group, reply_to)
            content["reply_to_message"] = {k: v for k, v in replied.items() if k not in ("from_bot", "html")}
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

    def press(self, user_id: int, message_id: int, data: str, group: int | None = None) -> int:
        """The learner taps a button with `data` under the bot's message `message_id` (in `group` if given)."""
        message = self.message(user_id if group is None else group, message_id)
        query = {
            "id": f"q{self.next_update_id}",
            "from": self._user(user_id),
            "message": {k: v for k, v in message.items() if k not in ("from_bot", "html")},
            "chat_instance": f"ci{user_id}",
            "data": data,
        }
        with self.lock:
            self.queries.append(query["id"])
        return self._push({"callback_query": query})

    def vote(self, user_id: int, poll_id: str, option_ids: list[int], as_chat: dict | None = None) -> int:
        """A member answers the bot's poll `poll_id` (a non-anonymous poll tells the bot); with
        `as_chat`, an anonymous admin votes as the group, which Telegram tells as the chat and,
        in `user`, its placeholder bot."""
        user = self._user(user_id) if as_chat is None else {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
        answer = {"poll_id": poll_id, "user": user, "option_ids": option_ids,
                  "option_persistent_ids": [f"o{i}" for i in option_ids]}
        if as_chat is not None:
            answer["voter_chat"] = as_chat
        return self._push({"poll_answer": answer})

    def migrate(self, old: int, new: int, by: int, tell: bool = True) -> None:
        """The group `old` becomes the supergroup `new` (upgraded by its admin `by`): calls
        to `old` fail with Telegram's "migrated" error, and (if `tell`) each chat gets the
        service message that says so, as Telegram sends them."""
        with self.lock:
            self.migrated[old] = new
            self.admins[new] = set(self.admins.get(old, set()))
            self.chats[new] = list(self.chats.get(old, []))  # the history is seen in the supergroup
        if tell:
            self._push({"message": self._incoming(by, old, migrate_to_chat_id=new)})
            self._push({"message": self._incoming(by, new, migrate_from_chat_id=old)})

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
        return [(b["text"], b.get("callback_data") or b.get("url")) for row in rows for b in row]

    def pending(self) -> int:
        with self.lock:
            return len(self.queue)

    # --- the Bot API ------------------------------------------------------------------

    def fail_next(self, method: str, status: int, body: dict[str, Any]) -> None:
        """Make the next call of `method` fail with this status and body."""
        with self.lock:
            self.failures.setdefault(method, []).append((status, body))

    def inject(
        self,
        kind: str,
        methods: Iterable[str] | str | None = None,
        share: float = 1.0,
        count: int | None = None,
        chats: Iterable[int] | None = None,
        retry_after: int = 1,
        seed: int = 0,
    ) -> Fault:
        """Make a share of the calls to `methods` fail as `kind` (see `Fault`); returns the
        fault, whose `hits` count it and whose `active = False` ends it."""
        assert kind in FAULT_KINDS, kind
        fault = Fault(
            kind,
            frozenset([methods] if isinstance(methods, str) else methods) if methods is not None else None,
            share,
            count,
            frozenset(chats) if chats is not None else None,
            retry_after,
            random.Random(seed),
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            for fault in self.faults:
                fault.active = False
            self.faults.clear()

    def respond(self, token: str, method: str, params: dict[str, Any], wait: float = 0.0, faults: bool = True) -> Answer:
        """Answer one call, with the injected faults (see `inject`)."""
        fault = None
        if faults and token == self.token:
            with self.lock:
                fault = next((f for f in self.faults if f.matches(method, params)), None)
                if fault is not None:
                    fault.hits.append(method)
        if fault is None:
            status, body = self.api(token, method, params, wait)
            return Answer(status, body, json.dumps(body).encode())
        if fault.kind == "drop":
            with self.lock:
                self.calls.append((method, params))
            return Answer(0, None, b"", "drop")
        if fault.kind in ("429", "500", "502", "403"):
            with self.lock:
                self.calls.append((method, params))
            status, body = fault.error()
            return Answer(status, body, json.dumps(body).encode())
        status, body = self.api(token, method, params, 0.0)  # carried out; the answer is what fails
        if fault.kind == "malformed":
            return Answer(200, None, MALFORMED)
        return Answer(status, body, json.dumps(body).encode(), "slow")

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

    @staticmethod
    def _topic(params: dict[str, Any]) -> dict[str, Any]:
        """A sent message's forum topic: Telegram puts one sent without `message_thread_id` in
        the General topic (whose messages carry no thread id)."""
        thread = params.get("message_thread_id")
        return {"message_thread_id": int(thread), "is_topic_message": True} if thread else {}

    def _method(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ok = lambda result: (200, {"ok": True, "result": result})  # noqa: E731
        if method == "getMe":
            return ok({"id": BOT_ID, "is_bot": True, "first_name": "Tutor", "username": BOT_USERNAME,
                       "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False})
        if method in ("setMyCommands", "deleteWebhook", "setWebhook", "sendChatAction"):
            if method == "setMyCommands":
                commands = params["commands"] if isinstance(params["commands"], list) else json.loads(params["commands"])
                scope = params.get("scope")
                if scope:
                    scope = scope if isinstance(scope, dict) else json.loads(scope)
                    self.scoped_commands[scope["type"]] = commands
                else:
                    self.commands = commands
            return ok(True)
        if method == "setMessageReaction":
            self.reactions.append((int(params["chat_id"]), int(params["message_id"]), params.get("reaction")))
            return ok(True)
        if method == "answerCallbackQuery":
            self.answered_queries.add(params["callback_query_id"])
            return ok(True)
        chat_id = int(params.get("chat_id", 0))
        if method == "getChatMember":
            user = self._user(int(params["user_id"]))
            if int(params["user_id"]) in self.admins.get(chat_id, set()):
                return ok({"status": "creator", "user": user, "is_anonymous": False})
            return ok({"status": "member", "user": user})
        if chat_id in self.migrated:
            return 400, {"ok": False, "error_code": 400,
                         "description": "Bad Request: group chat was upgraded to a supergroup chat",
                         "parameters": {"migrate_to_chat_id": self.migrated[chat_id]}}
        if chat_id in self.blocked:
            return 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
        if params.get("message_thread_id") and (chat_id, int(params["message_thread_id"])) in self.deleted_topics:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message thread not found"}
        if method in ("sendMessage", "editMessageText"):
            refused = text_refused(params.get("text", ""), params.get("parse_mode"))
            if refused:
                return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {refused}"}
        if method == "sendMessage":
            message = {
                "message_id": self.next_message_id,
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Tutor", "username": BOT_USERNAME},
                "chat": self._chat(chat_id),
                "date": int(time.time()),
                "text": plain(params["text"]),
                **self._topic(params),
            }
            self.next_message_id += 1
            self.arrived[(chat_id, message["message_id"])] = time.monotonic()
            stored = {"from_bot": True, "html": params["text"], **message}
            markup = params.get("reply_markup")
            if markup:
                markup = markup if isinstance(markup, dict) else json.loads(markup)
                message["reply_markup"] = stored["reply_markup"] = markup
            self.chats.setdefault(chat_id, []).append(stored)
            return ok(message)
        if method == "sendPoll":
            options = params["options"] if isinstance(params["options"], list) else json.loads(params["options"])
            options = [o if isinstance(o, str) else o["text"] for o in options]
            poll = {
                "id": f"poll{self.next_poll_id}", "question": params["question"], "type": params.get("type", "regular"),
                "options": [{"text": o, "voter_count": 0, "persistent_id": f"o{i}"} for i, o in enumerate(options)], "total_voter_count": 0,
                "is_closed": False, "is_anonymous": params.get("is_anonymous", True) in (True, "true", "True"),
                "allows_multiple_answers": False, "allows_revoting": params.get("allows_revoting") in (True, "true"),
                "members_only": False,
            }
            correct = params.get("correct_option_ids")
            if correct is not None:
                poll["correct_option_ids"] = correct if isinstance(correct, list) else json.loads(correct)
            if params.get("explanation"):
                poll["explanation"] = params["explanation"]
            self.next_poll_id += 1
            message = {
                "message_id": self.next_message_id,
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Tutor", "username": BOT_USERNAME},
                "chat": self._chat(chat_id), "date": int(time.time()), "poll": poll, **self._topic(params),
            }
            self.next_message_id += 1
            self.arrived[(chat_id, message["message_id"])] = time.monotonic()
            stored = {"from_bot": True, "html": "", "text": params["question"], **message}
            markup = params.get("reply_markup")
            if markup:
                message["reply_markup"] = stored["reply_markup"] = markup if isinstance(markup, dict) else json.loads(markup)
            self.chats.setdefault(chat_id, []).append(stored)
            return ok(message)
        if method == "sendDocument":
            name, content, mime = params["_files"]["document"]
            message = {
                "message_id": self.next_message_id,
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Tutor", "username": BOT_USERNAME},
                "chat": self._chat(chat_id), "date": int(time.time()),
                "document": {"file_id": f"doc{self.next_message_id}", "file_unique_id": f"d{self.next_message_id}",
                             "file_name": name, "mime_type": mime, "file_size": len(content)},
            }
            self.next_message_id += 1
            self.documents[(chat_id, message["message_id"])] = content
            self.chats.setdefault(chat_id, []).append({"from_bot": True, "html": "", "text": "", **message})
            return ok(message)
        if method == "stopPoll":
            stored = next((m for m in self.chats.get(chat_id, []) if m["message_id"] == int(params["message_id"])), None)
            if stored is None or "poll" not in stored:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message with poll to stop not found"}
            if stored["poll"]["is_closed"]:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: poll has already been closed"}
            stored["poll"]["is_closed"] = True
            markup = params.get("reply_markup")
            if markup:
                stored["reply_markup"] = markup if isinstance(markup, dict) else json.loads(markup)
            else:
                stored.pop("reply_markup", None)
            return ok(stored["poll"])
        if method in ("editMessageText", "editMessageReplyMarkup"):
            stored = next((m for m in self.chats.get(chat_id, []) if m["message_id"] == int(params["message_id"])), None)
            if stored is None:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message to edit not found"}
            if not stored.get("from_bot"):
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message can't be edited"}
            markup = params.get("reply_markup")
            markup = (markup if isinstance(markup, dict) else json.loads(markup)) if markup else None
            if (method != "editMessageText" or stored["html"] == params["text"]) and stored.get("reply_markup") == markup:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is not modified: "
                             "specified new message content and reply markup are exactly the same as a current "
                             "content and reply markup of the message"}
            self.arrived[(chat_id, stored["message_id"])] = time.monotonic()
            if method == "editMessageText":
                stored["html"], stored["text"] = params["text"], plain(params["text"])
            if markup:
                stored["reply_markup"] = markup
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
        if request_data is not None and request_data.contains_files:
            params = {**params, "_files": request_data.multipart_data}  # uploads: (file name, bytes, MIME type)
        answer = self.telegram.respond(token, api_method, params)
        if api_method == "getUpdates" and answer.effect is None and answer.status == 200 and answer.body and not answer.body["result"]:
            # Long polling without blocking the event loop: look, then wait a little.
            await asyncio.sleep(self.poll_wait)
            answer = self.telegram.respond(token, api_method, params, faults=False)
        delay = self.telegram.delays.get(api_method)
        if delay:
            await asyncio.sleep(delay)
        if answer.effect == "drop":
            raise NetworkError("httpx.RemoteProtocolError: Server disconnected without sending a response (fake)")
        if answer.effect == "slow":
            raise TimedOut("Timed out (fake: Telegram did it, but answered after the client gave up)")
        return answer.status, answer.data


class FakeBotAPIServer:
    """The fake over real HTTP on 127.0.0.1, as `https://api.telegram.org` would be."""

    def __init__(self, telegram: FakeTelegram, long_poll_cap: float = 1.0):
        self.telegram = telegram
        fake = telegram

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them
            protocol_version = "HTTP/1.1"  # keep-alive, as Telegram: no new connection (and thread) per call

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
                answer = fake.respond(token, method, params, wait=long_poll_cap)
                delay = fake.delays.get(method)
                if delay:
                    time.sleep(delay)
                if answer.effect == "drop":
                    self.close_connection = True  # no answer at all: the client sees the connection go
                    return
                if answer.effect == "slow":
                    time.sleep(fake.slow_seconds)
                status, data = answer.status, answer.data
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

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # listen() backlog: the default 5 drops a burst of connections (1 s SYN retries)

        self.server = Server(("127.0.0.1", 0), Handler)
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

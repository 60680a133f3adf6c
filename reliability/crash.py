"""The crash proof: the bot is killed with SIGKILL at random moments while learners work
through a lesson, restarted each time, and afterwards nothing may be lost.

    .venv/bin/python -m reliability.crash --kills 200 --learners 8 [--seed N]

What runs:

- the fake Bot API (`tests.fake_telegram`) over real HTTP on 127.0.0.1;
- the bot as its own process, `tutorbot run` with the environment of
  `tests.test_bot_process.BotProcess`, on a lesson (the full one by default). Each start
  forks a process from an interpreter that has imported the bot already, so a restart
  takes a fraction of a second; `--exec` runs the `tutorbot` command itself each time
  (the same code path, plus about a second of interpreter start-up);
- scripted learners, a thread each. They pick options at random, by their text (seeded: no
  table of right answers; the options are shuffled per learner, so a learner reads the
  message to find an option's button or number; a wrong answer leads to a remedy and back,
  or a second wrong try shows the answer and goes on, so they always get through), type a
  sentence at written questions, mark some points of a self-check (a tap each, waiting for
  the message to show the mark) and tap Done, and tap Continue at messages; some type "ok"
  at messages, option numbers or texts, and the points of a self-check ("1 3", "none")
  instead of tapping. Like people, they wait for the next step after acting and send
  /start if nothing comes for a few seconds. At the end some tap "Look again: part N"
  (once a time through) and go through that part again to the end; a learner who reaches
  the end while kills remain starts the lesson over (/restart, Yes);
- the killer: a random 0-300 ms after a learner acts it kills the bot (SIGKILL), so the
  kills land in every phase (receiving, storing, handling, sending, starting up), and
  starts it again, until the kills are used up; then the learners finish without kills.

Afterwards it checks the database against what the fake Telegram saw (`Analysis`): every
answer Telegram delivered is recorded exactly once (by update_id) or was rightly refused
with the step shown again (made on a copy of a step that was over, or text typed at a
step not known to be delivered), and every event is the answer its update carried (a tap
on a self-check point is no answer and is never recorded); every question was shown with
its options in the order the learner's seed gives (the seed of their start, kept in its
event), so that a typed number, the buttons and a replay agree; every
reply is sent and is a message Telegram has; a reply went out twice only after a kill
between Telegram's confirmation and the outbox's mark (these duplicates are counted); each
learner's progress is the replay of their events through the engine, and the end; the
database passes `PRAGMA integrity_check`; no update is left unhandled; the bot logged no
error and stops cleanly. It prints each check and a summary row for RELIABILITY.md, and
exits 1 if a check failed.
Timing between threads is not reproducible, but every random choice is: the seed is
printed first, and the summary row ends with the command that repeats the run.
"""

from __future__ import annotations

import argparse
import bisect
import io
import json
import os
import random
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from bot.engine import Check as SelfCheck
from bot.engine import (
    Choose,
    Continue,
    Input,
    InputError,
    Revisit,
    Start,
    State,
    input_from_dict,
    step,
    view,
)
from bot.lesson import ChoiceNode, Lesson
from bot.loader import load_file
from bot.store import Store
from bot.telegram_bot.render import (
    DONE,
    TYPE_HINT,
    CheckButton,
    ChoiceButton,
    ConfirmButton,
    ContinueButton,
    RevisitButton,
    parse_button,
)
from bot.tutor import typed_input
from tests.fake_telegram import FakeBotAPIServer, FakeTelegram, plain
from tests.test_bot_process import BotProcess

ROOT = Path(__file__).resolve().parent.parent
LESSONS = {"madman": ROOT / "dialogues" / "madman.yaml", "madman-core": ROOT / "dialogues" / "madman-core.yaml"}
FIRST_USER = 9001
POLL = 0.02  # how often a learner looks at the chat
DEFAULT_PATIENCE = 3.0  # seconds a learner waits for the bot before sending /start
DEFAULT_MAX_DELAY = 0.3  # longest wait after a learner acts before a kill
OKS = ["ok", "OK", "next", "got it"]
SENTENCES = [  # each long enough for every written question of the lessons (20 words)
    "No one yields to a leader who may not keep the deal, because a promise from a madman is worth nothing at all to them.",
    "The column shows that threats and promises both lose their force when the signals contradict each other, so the evidence is about trust.",
    "I think the pressure brought Iran to the table, but without a credible promise of relief there is little reason for them to give in.",
    "Kluth mostly shows inconsistency rather than the mechanism itself; sunset clauses and verification would matter more to my verdict on this argument.",
]


# --- the bot as its own process ---------------------------------------------------------


def zygote() -> None:
    """The fork server: import the bot once, then fork a `tutorbot run` for each "start".

    It reads commands on stdin and answers each with one line: "start <log>" forks a child
    and answers its pid; "wait <pid> <seconds>" waits that long for the child to end (then
    kills it) and answers its exit code (negative: the signal that ended it)."""
    import bot.cli  # noqa: F401 - the imports every start would repeat
    import bot.telegram_bot.app  # noqa: F401

    print("ready", flush=True)
    while line := sys.stdin.readline():
        command, _, arg = line.strip().partition(" ")
        if command == "start":
            pid = os.fork()
            if pid == 0:
                _run_child(arg)
            print(pid, flush=True)
        elif command == "wait":
            pid, seconds = arg.split()
            deadline = time.monotonic() + float(seconds)
            while (status := os.waitpid(int(pid), os.WNOHANG))[0] == 0:
                if time.monotonic() > deadline:
                    os.kill(int(pid), signal.SIGKILL)
                    status = os.waitpid(int(pid), 0)
                    break
                time.sleep(0.005)
            print(os.waitstatus_to_exitcode(status[1]), flush=True)


def _run_child(log: str) -> NoReturn:
    """In the forked child: `tutorbot run`, as the console script runs it, its output to `log`."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(null)
        os.close(out)
        from bot.cli import main

        main(args=["run"], prog_name="tutorbot")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


class ForkedBot:
    """`tutorbot run` in a child forked from a server that has imported the bot already.

    The child runs the console script's code (`bot.cli.main` with `run`) in a process of
    its own: settings, lessons, the database, its lock and the connection to Telegram are
    all made anew at each start; only the interpreter's start-up and the imports are not
    repeated. The same interface as `tests.test_bot_process.BotProcess`."""

    def __init__(self, env: dict[str, str], log: Path):
        self.log = log
        self.server = subprocess.Popen(
            [sys.executable, "-c", "from reliability.crash import zygote; zygote()"],
            env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        assert self._read() == "ready"
        self.pid: int | None = None

    def _read(self) -> str:
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError("the fork server ended")
        return line.strip()

    def _ask(self, line: str) -> str:
        self.server.stdin.write(line + "\n")
        self.server.stdin.flush()
        return self._read()

    def start(self) -> None:
        self.pid = int(self._ask(f"start {self.log}"))

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self._ask(f"wait {self.pid} 10")

    def stop(self) -> int:
        os.kill(self.pid, signal.SIGTERM)
        return int(self._ask(f"wait {self.pid} 20"))

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(10)


class Server(FakeBotAPIServer):
    """The fake over HTTP, acting only on whole requests, as Telegram does.

    A bot killed while sending a request leaves it cut short; the plain fake would act on
    the part that arrived (a message to chat 0, or with half its text)."""

    def __init__(self, telegram: FakeTelegram):
        super().__init__(telegram)
        handler = self.server.RequestHandlerClass
        self.cut_short = 0  # requests dropped
        self.busy = 0  # calls being answered, long polls aside
        self.lock = threading.Lock()
        server = self

        class Whole(handler):  # type: ignore[misc, valid-type]
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    with server.lock:
                        server.cut_short += 1
                    self.close_connection = True
                    return
                self.rfile = io.BytesIO(body)
                counted = not self.path.endswith("/getUpdates")
                if counted:
                    with server.lock:
                        server.busy += 1
                try:
                    super().do_POST()
                finally:
                    if counted:
                        with server.lock:
                            server.busy -= 1

            do_GET = do_POST

        self.server.RequestHandlerClass = Whole


def make_bot(server: FakeBotAPIServer, db: Path, log: Path, lesson: str, exec_each_start: bool) -> BotProcess | ForkedBot:
    bot = BotProcess(server, db, log)
    bot.env.update({"TUTORBOT_DIALOGUES": str(LESSONS[lesson]), "TUTORBOT_DEFAULT_LESSON": lesson})
    return bot if exec_each_start else ForkedBot(bot.env, log)


class Telegram(FakeTelegram):
    """The fake Telegram, noting when the bot polls (to see when a started bot is up), the
    learners' message ids, and each message the bot sent as it was sent (edits change them)."""

    def __init__(self) -> None:
        super().__init__()
        self.polls: list[float] = []
        self.message_ids: dict[int, int] = {}  # update id -> the id of the learner's message it carries
        self.sent: dict[int, dict[int, str]] = {}  # chat id -> message id -> the HTML text sent

    def _push(self, update: dict[str, Any]) -> int:
        update_id = super()._push(update)
        if "message" in update:
            self.message_ids[update_id] = update["message"]["message_id"]
        return update_id

    def api(self, token: str, method: str, params: dict[str, Any], wait: float = 0.0) -> tuple[int, dict[str, Any]]:
        if method == "getUpdates":
            self.polls.append(time.monotonic())
        status, body = super().api(token, method, params, wait)
        if method == "sendMessage" and status == 200:
            with self.lock:
                self.sent.setdefault(int(params["chat_id"]), {})[body["result"]["message_id"]] = params["text"]
        return status, body

    def up_since(self, started: float) -> float | None:
        """When the bot first polled after `started`, or None if it has not."""
        index = bisect.bisect_left(self.polls, started)
        return self.polls[index] if index < len(self.polls) else None


# --- learners -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One update a learner sent: a tap (button data), typed text, or a command; a
    "toggle" is a tap on a self-check point, which marks it and records nothing."""

    update_id: int
    kind: str  # "tap", "toggle", "text" or "command"
    value: str


def kind_of(message: dict[str, Any]) -> str | None:
    """What a bot message asks of the learner, if anything."""
    data = [d for _, d in FakeTelegram.buttons(message)]
    if any(d.startswith("restart:") and d.endswith(":yes") for d in data):
        return "confirm"
    if any(d.startswith("c:") for d in data):
        return "message"
    if any(d.startswith("a:") for d in data):
        return "choice"
    if any(d.startswith("k:") for d in data):
        return "check"
    if TYPE_HINT in message["text"]:
        return "write"
    if "🏁" in message["text"]:  # the end, perhaps with "Look again" buttons (v:)
        return "end"
    return None


def options_shown(message: dict[str, Any]) -> list[tuple[str, str]]:
    """A question's options as the learner sees them, in order: (text, button data). Short
    options are on their buttons; long ones are listed in the text ("1. ...") with a
    numbered button each."""
    buttons = [(label, data) for label, data in FakeTelegram.buttons(message) if data.startswith("a:")]
    if not all(label.isdigit() for label, _ in buttons):
        return buttons
    listed = {}
    for line in message["text"].splitlines():
        number, _, text = line.partition(". ")
        if number.isdigit() and text:
            listed[number] = text
    return [(listed[label], data) for label, data in buttons]


def marked(message: dict[str, Any]) -> int:
    """The points marked at a self-check, as its Done button carries them (a bit a point)."""
    done = next(d for label, d in FakeTelegram.buttons(message) if label == DONE)
    return int(done.rsplit(":", 1)[1], 16)


class Learner(threading.Thread):
    """A scripted learner in a private chat with the bot."""

    def __init__(self, crash: Crash, user: int, rng: random.Random, types_ok: bool, types_numbers: bool):
        super().__init__(name=f"learner {user}", daemon=True)
        self.crash = crash
        self.telegram = crash.telegram
        self.user = user
        self.rng = rng
        self.types_ok = types_ok
        self.types_numbers = types_numbers
        self.sent: list[Sent] = []
        self.cursor = 0  # bot messages before this index are read
        self.started = False  # has seen a step of the lesson
        self.want_restart = False
        self.tried: dict[str, set[str]] = {}  # options (their text) picked at each question, this time through
        self.revisited = False  # has looked at a part again, this time through
        # Just tapped "Look again" at the end: the end arriving once more before the part
        # does is a copy sent again after a kill (it went out, and its mark did not), not news.
        self.copy_of_end_due = False
        self.rounds = 0  # times through the lesson to its end
        self.resumes = 0  # times they sent /start because nothing came
        self.done = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.command(f"/start {self.crash.lesson_id}")
            while not self.done and not self.crash.aborted.is_set():
                seen = self.next_message()
                if seen is not None:
                    self.act(*seen)
        except BaseException as exc:  # noqa: BLE001 - reported as a failed check
            self.error = exc

    # --- looking

    def next_message(self) -> tuple[dict[str, Any], str] | None:
        """The newest message that asks something of the learner; /start if none comes soon."""
        deadline = time.monotonic() + self.crash.patience
        while not self.crash.aborted.is_set():
            messages = self.telegram.bot_messages(self.user)
            for index in range(len(messages) - 1, self.cursor - 1, -1):
                kind = kind_of(messages[index])
                if kind is not None:
                    self.cursor = index + 1
                    return messages[index], kind
            if time.monotonic() > deadline:
                self.resume()
                deadline = time.monotonic() + self.crash.patience
            time.sleep(POLL)
        return None

    def resume(self) -> None:
        """What a person does when the bot went quiet."""
        self.resumes += 1
        if not self.started:
            self.command(f"/start {self.crash.lesson_id}")
        elif self.want_restart:
            self.command("/restart")
        else:
            self.command("/start")  # shows where they are

    # --- acting

    def act(self, message: dict[str, Any], kind: str) -> None:
        data = [d for _, d in FakeTelegram.buttons(message)]
        copy_of_end, self.copy_of_end_due = kind == "end" and self.copy_of_end_due, False
        if copy_of_end:
            return  # (once only: if the tap was refused, the end shown again is acted on)
        if kind == "end":
            parts = [d for d in data if d.startswith("v:")]
            if parts and not self.revisited and self.crash.keep_going() and self.rng.random() < 0.5:
                self.revisited = True  # "Look again: part N", then through that part to the end again
                self.copy_of_end_due = True
                self.tap(message, self.rng.choice(parts))
                return
            self.rounds += 1
            self.tried.clear()
            self.revisited = False
            if self.crash.keep_going():
                self.want_restart = True
                self.command("/restart")
            else:
                self.done = True
            return
        if kind == "confirm":
            self.tap(message, next(d for d in data if d.endswith(":yes")))
            return
        self.started, self.want_restart = True, False
        if kind == "message":
            if self.types_ok and self.rng.random() < 0.5:
                self.text(self.rng.choice(OKS))
            else:
                self.tap(message, next(d for d in data if d.startswith("c:")))
        elif kind == "choice":
            shown = options_shown(message)
            node = shown[0][1].split(":")[2]
            tried = self.tried.setdefault(node, set())
            texts = [text for text, _ in shown]
            pick = self.rng.choice([t for t in texts if t not in tried] or texts)  # a person avoids a wrong answer seen
            tried.add(pick)
            position = texts.index(pick)
            way = self.rng.random() if self.types_numbers else 1.0
            if way < 0.4:
                self.text(str(position + 1))  # the number it is shown with
            elif way < 0.5:
                self.text(pick)  # its text
            else:
                self.tap(message, shown[position][1])
        elif kind == "check":
            self.check(message)
        else:  # a written question
            self.text(self.rng.choice(SENTENCES))

    def check(self, message: dict[str, Any]) -> None:
        """At a self-check: mark some points, a tap each (waiting a while for the mark to
        show), then Done; or type their numbers."""
        points = len([label for label, _ in FakeTelegram.buttons(message) if label != DONE])
        chosen = sorted(self.rng.sample(range(points), self.rng.randint(0, points)))
        if self.types_numbers and self.rng.random() < 0.5:
            self.text(" ".join(str(p + 1) for p in chosen) or self.rng.choice(["none", "0", "-"]))
            return
        for point in chosen:
            message = self.telegram.message(self.user, message["message_id"])  # as it shows now
            if not FakeTelegram.buttons(message) or marked(message) >> point & 1:
                continue  # answered already (a copy of it), or marked already
            wanted = marked(message) | 1 << point
            toggle = FakeTelegram.buttons(message)[point][1]
            self._sent(self.telegram.press(self.user, message["message_id"], toggle), "toggle", toggle)
            deadline = time.monotonic() + self.crash.patience
            while time.monotonic() < deadline and not self.crash.aborted.is_set():
                now = self.telegram.message(self.user, message["message_id"])
                if not FakeTelegram.buttons(now) or marked(now) == wanted:
                    break
                time.sleep(POLL)
        message = self.telegram.message(self.user, message["message_id"])
        if FakeTelegram.buttons(message):
            self.tap(message, next(d for label, d in FakeTelegram.buttons(message) if label == DONE))

    def tap(self, message: dict[str, Any], data: str) -> None:
        self._sent(self.telegram.press(self.user, message["message_id"], data), "tap", data)

    def text(self, text: str) -> None:
        self._sent(self.telegram.send_text(self.user, text), "text", text)

    def command(self, text: str) -> None:
        self._sent(self.telegram.send_text(self.user, text), "command", text)

    def _sent(self, update_id: int, kind: str, value: str) -> None:
        self.sent.append(Sent(update_id, kind, value))
        self.crash.acted()


# --- the run ------------------------------------------------------------------------------

PHASES = {
    "starting": "starting up (before its first getUpdates)",
    "received": "an update handed out by getUpdates, not yet stored",
    "stored": "an update stored, not yet handled",
    "handled": "a reply decided and stored, not yet sent",
    "unmarked": "a reply Telegram has, not yet marked sent",
    "idle": "nothing in flight",
    "no database": "before the database was made",
}


class Crash:
    """One run: the fake Telegram, the bot, the learners and the killer."""

    def __init__(self, kills: int, learners: int, seed: int, lesson_id: str, workdir: Path,
                 patience: float, max_delay: float, exec_each_start: bool, timeout: float, out: Callable[[str], None]):
        self.kills_wanted = kills
        self.seed = seed
        self.lesson_id = lesson_id
        self.workdir = workdir
        self.patience = patience
        self.max_delay = max_delay
        self.exec_each_start = exec_each_start
        self.timeout = timeout
        self.out = out
        self.db = workdir / "bot.db"
        self.log = workdir / "bot.log"
        self.telegram = Telegram()
        self.aborted = threading.Event()
        self.kills = 0
        self.actions = 0
        self.changed = threading.Condition()
        self.learners = [
            Learner(self, FIRST_USER + i, random.Random(f"{seed}:learner:{i}"), types_ok=i % 4 in (1, 3), types_numbers=i % 4 in (2, 3))
            for i in range(learners)
        ]
        self.phases: Counter[str] = Counter()
        self.unmarked: set[tuple[int, int]] = set()  # messages Telegram has that no outbox row is marked with
        self.start_times: list[float] = []
        self.exit_code: int | None = None
        self.seconds = 0.0
        self.cut_short = 0  # requests a kill cut short (the fake drops them, as Telegram would)

    # --- for the learners

    def acted(self) -> None:
        with self.changed:
            self.actions += 1
            self.changed.notify_all()

    def keep_going(self) -> bool:
        return self.kills < self.kills_wanted and not self.aborted.is_set()

    # --- running

    def run(self) -> None:
        began = time.monotonic()
        deadline = began + self.timeout
        with Server(self.telegram) as server:
            bot = make_bot(server, self.db, self.log, self.lesson_id, self.exec_each_start)
            self._start(bot)
            for learner in self.learners:
                learner.start()
            rng = random.Random(f"{self.seed}:kills")
            try:
                while self.kills < self.kills_wanted and not self._finished() and time.monotonic() < deadline:
                    if not self._await_action(deadline):
                        continue
                    time.sleep(rng.uniform(0, self.max_delay))
                    bot.kill()
                    self.kills += 1
                    self._note_phases(server)
                    self._start(bot)
                    if self.kills % 25 == 0 or self.kills == self.kills_wanted:
                        rounds = sum(learner.rounds for learner in self.learners)
                        self.out(f"  {self.kills} kills, {rounds} times through the lesson, {time.monotonic() - began:.0f} s")
                while not self._finished() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not self._finished():
                    self.out(f"  time is up ({self.timeout:.0f} s): stopping the learners")
                self.aborted.set()
                for learner in self.learners:
                    learner.join(10)
                self._settle(time.monotonic() + 30)
            finally:
                self.aborted.set()
                self.exit_code = bot.stop()
                if isinstance(bot, ForkedBot):
                    bot.close()
                self.cut_short = server.cut_short
        self.seconds = time.monotonic() - began

    def _finished(self) -> bool:
        return all(learner.done or not learner.is_alive() for learner in self.learners)

    def _start(self, bot: BotProcess | ForkedBot) -> None:
        self.start_times.append(time.monotonic())
        with self.changed:
            self.actions_at_start = self.actions
        bot.start()

    @property
    def startup(self) -> list[float]:
        """Seconds from each start to the bot's first getUpdates, for the starts it got that far."""
        ends = self.start_times[1:] + [float("inf")]
        times = []
        for started, next_start in zip(self.start_times, ends):
            up = self.telegram.up_since(started)
            if up is not None and up < next_start:
                times.append(up - started)
        return times

    def _await_action(self, deadline: float) -> bool:
        """Wait until a learner acts after the bot's last start; False if none did."""
        with self.changed:
            while self.actions == self.actions_at_start and not self._finished() and time.monotonic() < deadline:
                self.changed.wait(0.1)
            return self.actions > self.actions_at_start

    def _note_phases(self, server: Server) -> None:
        """What the killed bot had in flight (it is dead: the database holds still)."""
        found: set[str] = set()
        settle = time.monotonic() + 1.0
        time.sleep(0.01)
        while server.busy and time.monotonic() < settle:  # calls it made that the fake is still carrying out
            time.sleep(0.005)
        if self.telegram.up_since(self.start_times[-1]) is None:
            found.add("starting")
        with self.telegram.lock:
            handed_out = set(self.telegram.delivered)
            sent = {(chat, m["message_id"]) for chat, messages in self.telegram.chats.items() for m in messages if m["from_bot"]}
        try:
            stored, waiting, pending, marked = _read_db(self.db)
        except sqlite3.Error:  # no database yet (killed before it was made)
            self.phases.update(found or {"no database"})
            return
        if handed_out - stored:
            found.add("received")
        if waiting:
            found.add("stored")
        if pending:
            found.add("handled")
        unmarked = sent - marked
        if unmarked - self.unmarked:
            found.add("unmarked")
        self.unmarked |= unmarked
        self.phases.update(found or {"idle"})

    def _settle(self, deadline: float) -> None:
        """Wait until Telegram has confirmed every update and the bot has handled and sent all."""
        while time.monotonic() < deadline:
            try:
                _, waiting, pending, _ = _read_db(self.db)
            except sqlite3.Error:
                waiting = pending = 1
            if not self.telegram.pending() and not waiting and not pending:
                time.sleep(0.3)  # the bot's last marks are in; let any stray reply arrive
                return
            time.sleep(0.1)


def _read_db(db: Path) -> tuple[set[int], int, int, set[tuple[int, int]]]:
    """Stored update ids, updates not handled, replies not sent, messages marked sent.

    Read-only, so that nothing (not even a checkpoint) changes the file between a kill
    and the next start."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        stored = {row[0] for row in conn.execute("SELECT update_id FROM inbox")}
        (waiting,) = conn.execute("SELECT COUNT(*) FROM inbox WHERE handled_at IS NULL").fetchone()
        (pending,) = conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL").fetchone()
        marked = set(conn.execute("SELECT chat_id, message_id FROM outbox WHERE message_id IS NOT NULL").fetchall())
    finally:
        conn.close()
    return stored, waiting, pending, marked


# --- the checks -----------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class CrashResult:
    """What a run did and what the checks found."""

    seed: int
    kills: int
    learners: int
    lesson: str
    exec_each_start: bool
    patience: float
    max_delay: float
    seconds: float
    startup: list[float]
    phases: Counter[str]
    rounds: int
    answers: int
    recorded: int
    refused: Counter[str]  # reason -> answers refused
    shown_again: int  # refusals answered with the step shown again (the rest were rationed)
    lost: int
    recorded_twice: int
    never_sent: int
    duplicates: int
    checks: list[Check] = field(default_factory=list)
    workdir: Path | None = None

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def command(self) -> str:
        args = [".venv/bin/python", "-m", "reliability.crash", "--kills", str(self.kills), "--learners", str(self.learners)]
        if self.lesson != "madman":
            args += ["--lesson", self.lesson]
        if self.exec_each_start:
            args.append("--exec")
        if self.patience != DEFAULT_PATIENCE:
            args += ["--patience", str(self.patience)]
        if self.max_delay != DEFAULT_MAX_DELAY:
            args += ["--max-delay", str(self.max_delay)]
        return shlex.join(args + ["--seed", str(self.seed)])

    def summary_row(self) -> str:
        lesson = "full lesson" if self.lesson == "madman" else f"lesson {self.lesson}"
        tried = (
            f"SIGKILL at a random moment 0-{self.max_delay * 1000:.0f} ms after a learner acted, then restart; {self.learners} learners, "
            f"{lesson}, {self.answers} answers"
        )
        return (
            f"| {tried} | {self.kills} kills | {self.lost} | {self.recorded_twice} | {self.never_sent} | "
            f"{self.duplicates} | `{self.command}` |"
        )


SUMMARY_HEADER = (
    "| What was tried | How many times | Lost | Recorded twice | Replies never sent | Duplicates sent | Rerun |\n"
    "|---|---|---|---|---|---|---|"
)


class Analysis:
    """The checks, from the database and what the fake Telegram saw."""

    def __init__(self, crash: Crash, lesson: Lesson):
        self.crash = crash
        self.lesson = lesson
        self.telegram = crash.telegram
        self.checks: list[Check] = []
        self.store = Store(crash.db)
        db = self.store.db
        self.handled_at = dict(db.execute("SELECT update_id, handled_at FROM inbox").fetchall())
        self.received_at = dict(db.execute("SELECT update_id, received_at FROM inbox").fetchall())
        columns = ["id", "chat_id", "kind", "body", "step", "droppable", "update_id", "sent_at", "message_id", "failed_at", "error"]
        self.rows = [dict(zip(columns, row)) for row in db.execute(f"SELECT {', '.join(columns)} FROM outbox ORDER BY id")]
        self.by_chat: dict[int, list[dict]] = {}
        self.by_update: dict[int, list[dict]] = {}
        # Per chat: the update ids whose handling queued a message (any one supersedes older droppable rows).
        self.senders: dict[int, list[int]] = {}
        for row in self.rows:
            self.by_chat.setdefault(row["chat_id"], []).append(row)
            self.by_update.setdefault(row["update_id"], []).append(row)
            if row["kind"] == "send" and row["update_id"] is not None:
                self.senders.setdefault(row["chat_id"], []).append(row["update_id"])
        for ids in self.senders.values():
            ids.sort()

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def run(self) -> CrashResult:
        try:
            return self._run()
        finally:
            self.store.close()

    def _run(self) -> CrashResult:
        crash = self.crash
        learners = crash.learners
        delivered = set(self.telegram.delivered)
        sent = [s for learner in learners for s in learner.sent]
        errors = [f"{learner.name}: {learner.error!r}" for learner in learners if learner.error is not None]
        unfinished = [learner.name for learner in learners if not learner.done]
        self.check(
            "the run: the kills were made and every learner finished",
            crash.kills == crash.kills_wanted and not unfinished and not errors,
            f"{crash.kills} of {crash.kills_wanted} kills; {sum(l.rounds for l in learners)} times through the lesson "
            f"by {len(learners)} learners ({len(sent)} updates sent, {sum(l.resumes for l in learners)} /start after a silence)"
            + (f"; unfinished: {', '.join(unfinished)}" if unfinished else "")
            + (f"; errors: {'; '.join(errors)}" if errors else ""),
        )
        undelivered = [s.update_id for s in sent if s.update_id not in delivered]
        self.check(
            "every update the learners sent reached the bot and was confirmed",
            not undelivered and not self.telegram.pending(),
            f"{len(sent)} sent, {sum(self.telegram.delivered.values())} handed out by getUpdates "
            f"(redelivered after a kill: {sum(n - 1 for n in self.telegram.delivered.values())}); "
            f"never handed out: {len(undelivered)}; unconfirmed: {self.telegram.pending()}; "
            f"calls a kill cut short (dropped by the fake, as by Telegram): {crash.cut_short}",
        )

        outcome = Counter()
        refused: Counter[str] = Counter()
        lost: list[str] = []
        wrong: list[str] = []
        shown_again = 0  # refusals answered with the step again
        told = 0  # refusals answered without a step (after the end: the lesson is finished)
        typed_on = 0  # typed text that moved a learner on from a message
        events_all = self.store.events()
        update_ids = [e["update_id"] for e in events_all]
        twice = len(update_ids) - len(set(update_ids))
        learner_ids = {f"tg:{learner.user}" for learner in learners}
        by_learner: dict[str, list[dict]] = {}
        for event in events_all:
            by_learner.setdefault(event["learner"], []).append(event)
        strays = [e["id"] for e in events_all if e["learner"] not in learner_ids or e["update_id"] is None]
        progress_problems: list[str] = []
        for learner in learners:
            who = f"tg:{learner.user}"
            events = by_learner.get(who, [])
            ids = [e["update_id"] for e in events if e["update_id"] is not None]
            if ids != sorted(ids):
                wrong.append(f"{learner.name}: events not in the order of their updates")
            # The state before each event, replayed through the engine.
            states = [State()]
            for event in events:
                states.append(step(self.lesson, states[-1], input_from_dict(event["input"])).state)
                if states[-1].to_dict() != event["state"]:
                    wrong.append(f"event {event['id']}: stored state differs from the replay")
            recorded = {e["update_id"]: e for e in events}
            answers = {
                s.update_id for s in learner.sent
                if s.kind in ("tap", "text") or (s.kind == "command" and s.value.startswith("/start "))
            }  # a tap on a self-check point ("toggle") is no answer: it marks the point, and records nothing
            for s in learner.sent:
                if s.update_id not in recorded and s.update_id not in answers:
                    continue
                if s.update_id not in delivered:
                    continue  # counted above
                index = bisect.bisect_left(ids, s.update_id)
                state = states[index]
                last_event = events[index - 1]["id"] if index else None
                if s.update_id in recorded:
                    if s.update_id not in answers:
                        wrong.append(f"update {s.update_id} ({s.value!r}) recorded, but it is not an answer")
                        continue
                    meant = self.meaning(s, state)
                    got = input_from_dict(recorded[s.update_id]["input"])
                    if isinstance(meant, Start) and isinstance(got, Start):
                        meant = Start(got.seed)  # the seed is the bot's to draw (and a replay reads it from the event)
                    if meant != got:
                        wrong.append(f"update {s.update_id} ({s.value!r}) recorded as {got}, meant {meant}")
                    elif s.kind == "text" and isinstance(got, Continue):
                        typed_on += 1
                        since = events[index - 1]["update_id"] if index else 0
                        if not self.shown_before(learner.user, f"{self.lesson.id}:{got.node}", since, s.update_id):
                            wrong.append(f"update {s.update_id} ({s.value!r}) moved {learner.name} on from {got.node}, "
                                         "whose message they had not been sent when they typed it")
                    outcome["recorded"] += 1
                    continue
                reason = self.refusal(s, state, last_event, learner.user)
                if reason is None:
                    lost.append(f"{learner.name}: update {s.update_id} ({s.kind} {s.value!r}) at step {state.node}")
                    continue
                refused[reason] += 1
                if reason != "resumed":
                    replies = [r for r in self.by_update.get(s.update_id, []) if r["kind"] == "send"]
                    if any(r["step"] for r in replies):
                        shown_again += 1
                    elif replies:
                        told += 1
            extra = set(recorded) - {s.update_id for s in learner.sent}
            if extra:
                wrong.append(f"{learner.name}: events for updates they never sent: {sorted(extra)[:5]}")
            progress = self.store.progress(who, self.lesson.id, who)
            if progress is None or progress.state != states[-1] or not states[-1].finished:
                progress_problems.append(
                    f"{learner.name}: stored {progress.state.node if progress else None}, replay {states[-1].node} "
                    f"(finished: {states[-1].finished})"
                )

        answers = outcome["recorded"] + sum(refused.values()) + len(lost)
        not_delivered = refused.pop("not delivered", 0)
        starts = refused.pop("resumed", 0)
        self.check(
            "every answer delivered is recorded exactly once, or refused with the step shown again",
            not lost,
            f"{answers} answers: {outcome['recorded']} recorded once; refused: {sum(refused.values())} made on a copy of "
            f"a step that was over, {not_delivered} typed at a step not yet delivered "
            f"({shown_again} of them answered with the step again, {told} with a notice only (after the end), "
            f"{sum(refused.values()) + not_delivered - shown_again - told} with nothing: rationed in a burst, or a second "
            f"tap on a button just accepted; the learner's /start showed the step); "
            f"{starts} '/start {self.lesson.id}' after the start resumed; lost: {len(lost)}"
            + (f": {'; '.join(lost[:5])}" if lost else ""),
        )
        refused["not delivered"] = not_delivered
        refused["resumed"] = starts
        self.check(
            "no answer recorded twice, and every event is the answer its update carried",
            twice == 0 and not wrong and not strays,
            f"{len(events_all)} events ({', '.join(f'{n} {k}' for k, n in Counter(e['input']['kind'] for e in events_all).most_common())}), "
            f"{twice} update ids recorded twice, {len(strays)} without a learner's update; "
            f"{typed_on} typed texts moved a learner on from a message, each sent to them before they typed; "
            f"{sum(s.kind == 'toggle' for s in sent)} taps on a self-check's points, none recorded"
            + (f"; {'; '.join(wrong[:5])}" if wrong else ""),
        )

        self._orders(by_learner)
        never_sent, duplicates = self._replies()
        self.check(
            "each learner's stored progress is the replay of their events, and the end",
            not progress_problems,
            f"{len(learners)} learners replayed" + (f"; {'; '.join(progress_problems)}" if progress_problems else ""),
        )
        db = self.store.db
        (integrity,) = db.execute("PRAGMA integrity_check").fetchone()
        self.check("PRAGMA integrity_check", integrity == "ok", integrity)
        waiting, aside = db.execute("SELECT COUNT(*) - COUNT(handled_at), COUNT(failed_at) FROM inbox").fetchone()
        self.check(
            "no update left unhandled or set aside",
            waiting == 0 and aside == 0,
            f"{len(self.handled_at)} updates stored; unhandled: {waiting}; set aside: {aside}",
        )
        log = crash.log.read_text(errors="replace") if crash.log.exists() else ""
        errors_logged = [line for line in log.splitlines() if " ERROR " in line or line.startswith("Traceback")]
        self.check(
            "the bot logged no error and stopped cleanly on SIGTERM",
            not errors_logged and crash.exit_code == 0,
            f"exit code {crash.exit_code}; {len(errors_logged)} error lines"
            + (f": {errors_logged[0][:300]}" if errors_logged else ""),
        )
        return CrashResult(
            seed=crash.seed,
            kills=crash.kills,
            learners=len(learners),
            lesson=crash.lesson_id,
            exec_each_start=crash.exec_each_start,
            patience=crash.patience,
            max_delay=crash.max_delay,
            seconds=crash.seconds,
            startup=crash.startup,
            phases=crash.phases,
            rounds=sum(learner.rounds for learner in learners),
            answers=answers,
            recorded=outcome["recorded"],
            refused=refused,
            shown_again=shown_again,
            lost=len(lost) + len(undelivered),
            recorded_twice=twice,
            never_sent=never_sent,
            duplicates=duplicates,
            checks=self.checks,
            workdir=crash.workdir,
        )

    # --- what an answer meant, and why one was refused

    def meaning(self, sent: Sent, state: State) -> Input | None:
        """The input an update carries for a learner in `state` (as the bot reads it)."""
        if sent.kind == "command":
            return Start()
        if sent.kind == "tap":
            pressed = parse_button(sent.value)
            if isinstance(pressed, ChoiceButton):
                return Choose(pressed.node, pressed.option)
            if isinstance(pressed, ContinueButton):
                return Continue(pressed.node)
            if isinstance(pressed, CheckButton):  # Done, with the points marked
                return SelfCheck(pressed.node, tuple(i for i in range(8) if pressed.marked >> i & 1))
            if isinstance(pressed, RevisitButton):  # "Look again: part N" at the end
                return Revisit(pressed.section)
            return Start()  # "Yes, start over"
        if state.node is None or state.finished:
            return None
        return typed_input(view(self.lesson, state), sent.value)

    def refusal(self, sent: Sent, state: State, last_event: int | None, chat_id: int) -> str | None:
        """Why the bot rightly recorded nothing for this answer; None if it should have."""
        if sent.kind == "command":  # "/start <lesson>": records only the very first start
            return "resumed" if state.node is not None else None
        if sent.kind == "tap" and isinstance(pressed := parse_button(sent.value), ConfirmButton):
            return "stale" if pressed.event != last_event else None  # a "start over?" from before
        value = self.meaning(sent, state)
        if value is None:
            return "stale"  # typed after the end
        try:
            step(self.lesson, state, value)
        except InputError:
            return "stale"  # made on a copy of a step that is over (or text that fits no step)
        if sent.kind == "text" and view(self.lesson, state).kind == "message":
            if not self.known_delivered(chat_id, f"{self.lesson.id}:{state.node}", sent.update_id):
                return "not delivered"
        return None

    def known_delivered(self, chat_id: int, step_id: str, update_id: int) -> bool:
        """Whether the bot knew, when it handled the text `update_id`, that the step had
        reached the learner before they typed it.

        As the outbox saw it then: the chat's last step row queued before (by an earlier
        update: a chat's updates are handled in order), unless superseded before, shows
        this step, its message is older than the learner's, and it was marked sent before
        the update was stored."""
        senders = self.senders.get(chat_id, [])
        last = None
        for row in self.by_chat.get(chat_id, []):
            if row["kind"] != "send" or not row["step"] or row["update_id"] >= update_id:
                continue
            if row["error"] == "superseded":
                later = bisect.bisect_right(senders, row["update_id"])
                if later < len(senders) and senders[later] < update_id:
                    continue  # superseded by an update handled before this one
            last = row
        return last is not None and (
            last["step"] == step_id
            and last["message_id"] is not None
            and last["message_id"] < self.telegram.message_ids[update_id]
            and last["sent_at"] is not None
            and last["sent_at"] <= self.received_at[update_id]
        )

    def shown_before(self, chat_id: int, step_id: str, since_update: int, update_id: int) -> bool:
        """Whether a message showing the step, queued since `since_update` (the update that
        led to it), reached Telegram before the learner's message in `update_id`."""
        mine = self.telegram.message_ids[update_id]
        return any(
            row["kind"] == "send" and row["step"] == step_id and row["update_id"] >= since_update
            and row["message_id"] is not None and row["message_id"] < mine
            for row in self.by_chat.get(chat_id, [])
        )

    # --- the order of the options

    def _orders(self, by_learner: dict[str, list[dict]]) -> None:
        """Check that each question was shown with its options in the order its learner's
        seed gives: the seed of their latest start when the update that showed it was handled."""
        starts: dict[int, list[tuple[int, int]]] = {}  # chat -> (update id, seed) of each start, in order
        for who, events in by_learner.items():
            starts[int(who.removeprefix("tg:"))] = [
                (e["update_id"], e["input"]["seed"]) for e in events if e["input"]["kind"] == "start" and e["update_id"] is not None
            ]
        shown, wrong, shuffled = 0, [], 0
        for row in self.rows:
            if row["kind"] != "send" or not row["step"] or row["update_id"] is None:
                continue
            node = self.lesson.nodes.get(row["step"].split(":", 1)[1])
            if not isinstance(node, ChoiceNode):
                continue
            buttons = json.loads(row["body"]).get("buttons", [])
            order = tuple(int(d.rsplit(":", 1)[1]) for button_row in buttons for _, d in button_row if d.startswith("a:"))
            seeds = starts.get(row["chat_id"], [])
            index = bisect.bisect_right([u for u, _ in seeds], row["update_id"]) - 1
            expected = self.lesson.option_order(node, seeds[index][1]) if index >= 0 else None
            shown += 1
            shuffled += order != tuple(range(len(node.options)))
            if order != expected:
                wrong.append(f"row {row['id']} ({row['step']}): options {order}, the seed gives {expected}")
        self.check(
            "every question was shown with its options in the order the learner's seed gives",
            not wrong,
            f"{shown} questions shown, {shuffled} of them in an order other than the file's; "
            f"{len(wrong)} in another order" + (f": {'; '.join(wrong[:3])}" if wrong else ""),
        )

    # --- replies

    def _replies(self) -> tuple[int, int]:
        """Check the outbox against the messages Telegram has; (replies never sent, duplicates)."""
        original = {(chat, message_id): text for chat, sent in self.telegram.sent.items() for message_id, text in sent.items()}
        messages = {chat: [m for m in chat_messages if m["from_bot"]] for chat, chat_messages in self.telegram.chats.items()}
        pending = [r for r in self.rows if r["sent_at"] is None and r["failed_at"] is None]
        failed = Counter(r["error"] for r in self.rows if r["failed_at"] is not None)
        superseded = failed.pop("superseded", 0)
        missing, wrong_text, buttons_left = [], [], []
        marked: set[tuple[int, int]] = set()
        for row in self.rows:
            if row["sent_at"] is None:
                continue
            body = json.loads(row["body"])
            if row["kind"] == "send":
                key = (row["chat_id"], row["message_id"])
                marked.add(key)
                if key not in original:
                    missing.append(row["id"])
                elif original[key] != body["text"]:
                    wrong_text.append(row["id"])
            else:
                target = next((m for m in messages.get(row["chat_id"], []) if m["message_id"] == body["message_id"]), None)
                # An edit takes the buttons off (an answered step), or marks a self-check's points
                # (new buttons, which a later edit takes off once Done is tapped).
                if target is None or (target.get("reply_markup") and "buttons" not in body):
                    buttons_left.append(row["id"])
        never_sent = len(pending) + sum(failed.values()) + len(missing) + len(buttons_left)
        self.check(
            "every reply was sent: none waiting, each marked one is a message Telegram has",
            never_sent == 0 and not wrong_text,
            f"{len(self.rows)} outbox rows ({sum(r['kind'] == 'send' for r in self.rows)} messages, "
            f"{sum(r['kind'] == 'edit' for r in self.rows)} edits); waiting: {len(pending)}; "
            f"given up: {sum(failed.values())} {dict(failed) or ''}; marked sent but not at Telegram: {len(missing)}; "
            f"with other text: {len(wrong_text)}; edits not made: {len(buttons_left)}; "
            f"dropped as superseded (a refusal overtaken by a newer reply, as designed): {superseded}",
        )
        resent, same, unmarked, unexplained = 0, [], 0, []
        for chat, sent in self.telegram.sent.items():
            ids = sorted(sent)  # Telegram numbers a chat's messages in order
            for index, message_id in enumerate(ids):
                if (chat, message_id) not in marked:
                    unmarked += 1
                    if (chat, message_id) not in self.crash.unmarked:
                        unexplained.append((chat, message_id))
                if index and sent[message_id] == sent[ids[index - 1]]:
                    if (chat, ids[index - 1]) in marked:
                        same.append(f"{chat}/{message_id} {plain(sent[message_id])[:40]!r}")
                    else:
                        resent += 1
        self.check(
            "a reply went out twice only after a kill between Telegram's confirmation and the mark",
            not unexplained,
            f"{resent + len(same)} duplicates (the same text twice in a row in a chat): {resent} a reply sent again "
            f"after such a kill, {len(same)} two replies with the same text"
            + (f" (e.g. {same[0]})" if same else "")
            + f"; {unmarked} messages Telegram has that no row is marked with, "
            f"{unmarked - len(unexplained)} of them found so at a kill; made otherwise: {len(unexplained)}",
        )
        return never_sent, resent + len(same)


# --- entry points ---------------------------------------------------------------------------


def run(
    kills: int = 200,
    learners: int = 8,
    seed: int | None = None,
    lesson: str = "madman",
    patience: float = DEFAULT_PATIENCE,
    max_delay: float = DEFAULT_MAX_DELAY,
    exec_each_start: bool = False,
    workdir: Path | None = None,
    timeout: float | None = None,
    out: Callable[[str], None] = print,
) -> CrashResult:
    """Run the crash proof and its checks; print as it goes; return the result."""
    if seed is None:
        seed = random.SystemRandom().randrange(1, 10**6)
    out(f"crash proof: seed {seed} (repeat with --seed {seed}); {kills} kills, {learners} learners, lesson {lesson}")
    temporary = None
    if workdir is None:
        temporary = tempfile.TemporaryDirectory(prefix="tutorbot-crash-")
        workdir = Path(temporary.name)
    workdir.mkdir(parents=True, exist_ok=True)
    crash = Crash(kills, learners, seed, lesson, workdir, patience, max_delay, exec_each_start,
                  timeout if timeout is not None else 120 + 5 * kills, out)
    crash.run()
    result = Analysis(crash, load_file(LESSONS[lesson]).lesson).run()
    report(result, out)
    if temporary is not None:
        if result.ok:
            temporary.cleanup()
        else:
            result.workdir = Path(tempfile.mkdtemp(prefix="tutorbot-crash-failed-"))
            for name in ("bot.db", "bot.db-wal", "bot.log"):
                if (workdir / name).exists():
                    (workdir / name).rename(result.workdir / name)
            temporary.cleanup()
            out(f"the database and the bot's log are kept in {result.workdir}")
    return result


def report(result: CrashResult, out: Callable[[str], None]) -> None:
    startup = sorted(result.startup)
    if startup:
        median, worst = startup[len(startup) // 2], startup[-1]
        out(f"{result.kills} kills in {result.seconds:.0f} s; {result.kills + 1} starts, {len(startup)} of them up "
            f"(polling) before the next kill, in {median:.2f} s median, {worst:.2f} s at most"
            + (" (the tutorbot command run anew each time)" if result.exec_each_start else " (forked from a preloaded interpreter)"))
    out("where the kills landed (a kill can find several things in flight):")
    for key, text in PHASES.items():
        if key != "no database" or result.phases.get(key):
            out(f"  {result.phases.get(key, 0):4d}  {text}")
    for check in result.checks:
        out(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    out(SUMMARY_HEADER)
    out(result.summary_row())
    out("all checks passed" if result.ok else "SOME CHECKS FAILED")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.crash", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200, help="how many times to SIGKILL the bot [200]")
    parser.add_argument("--learners", type=int, default=8, help="how many learners work at once [8]")
    parser.add_argument("--seed", type=int, help="repeat a run's random choices [random, printed]")
    parser.add_argument("--lesson", choices=sorted(LESSONS), default="madman", help="the lesson [madman, the full one]")
    parser.add_argument("--patience", type=float, default=DEFAULT_PATIENCE, help="seconds a learner waits before sending /start [3]")
    parser.add_argument("--max-delay", type=float, default=DEFAULT_MAX_DELAY, help="longest wait after a learner acts before a kill [0.3]")
    parser.add_argument("--exec", dest="exec_each_start", action="store_true",
                        help="run the tutorbot command anew at each start instead of forking a preloaded interpreter")
    parser.add_argument("--workdir", type=Path, help="keep the database and the bot's log here")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds [120 + 5 per kill]")
    args = parser.parse_args(argv)
    out = lambda line: print(line, flush=True)  # noqa: E731
    result = run(args.kills, args.learners, args.seed, args.lesson, args.patience, args.max_delay,
                 args.exec_each_start, args.workdir, args.timeout, out)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Throughput, latency and cost per answer of a bot running as its own process.

The bot under test (`tutorbot run`, the floor in `benchmarks.floor_bot`, or the
ConversationHandler bot in `benchmarks.conversation_bot`) runs as a child process against
the fake Bot API of `tests.fake_telegram`, served over HTTP on 127.0.0.1. Scripted
learners press as fast as replies come (a closed loop): the moment the bot's reply to a
learner's input reaches the fake, the learner's next input is queued. Learners follow the
full lesson (`dialogues/madman.yaml`): Continue on a message, any option of a question (a
wrong one leads to its remedy), a 25-word text at a written question, Done at its
self-check; one who reaches the end starts again as a new learner. The floor's learners
tap the one button each reply carries.

One load run: launch the bot; when it first calls getUpdates, every learner sends /start;
warm up for one round (until the bot has sent as many replies as there are learners: a
closed loop at its steady state, where latency ≈ learners ÷ throughput); then measure a
fixed window:
answers (learner inputs replied to in the window), reply latency (from the input being
queued at the fake to the reply that shows the next step arriving there), the bot
process's CPU time (user + sys, from /proc/<pid>/stat), its Bot API calls by method,
and its peak resident size (VmHWM from /proc/<pid>/status). The process is then killed
(SIGKILL: every bot here must survive that, and a graceful stop would only cost time), or,
with `stop="term"`, sent SIGTERM and timed until it exits (killed after `TERM_CAP` s);
for tutorbot, the replies still waiting in its outbox are counted then and at the exit.

With `think`, learners are paced instead: each pauses before every input (/start
included) for a time drawn from an exponential distribution of that mean, so that the
load offered (≈ learners ÷ think inputs a second) can sit below Telegram's limits and the
latency is the bot's own rather than a queue's. Latency still counts from the input.

`scale_database(n)` makes a database holding `n` learners' history that looks like the
bot's own: a template made by the real bot (a few learners through the whole lesson,
over the fake) is copied with new ids, times and learner ids by plain SQL inside SQLite.
With `sql_stats`, the bot process gets a `sitecustomize` that times every SQLite call
(statements, fetches, commits) through a `sqlite3.Connection` subclass and writes the
totals to a file every 50 ms; the product is not changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tests.fake_telegram import TOKEN, FakeBotAPIServer, FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
LESSON_PATH = ROOT / "dialogues" / "madman.yaml"
LESSON_ID = "madman"
CACHE = Path(tempfile.gettempdir()) / "tutorbot-bench"
LESSON_CACHE = CACHE / "lessons"  # the bot's TUTORBOT_CACHE_DIR (bot.lesson_cache)
VERSION = 3  # of the generated scale databases: a change of the generator makes new ones
LIVE_BASE = 10_000_000  # user ids of live learners
PREFILL_BASE = 500_000_000  # user ids of the learners a scale database is filled with
TEMPLATE_LEARNERS = 6  # learners the real bot takes through the lesson for a scale template
ANSWER_TEXT = (
    "The madman theory backfires because a threat only works when the promise that goes with it is "
    "believed too, and an adversary who cannot trust any deal gains nothing by giving in to a leader "
    "who may not keep it."
)
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
TERM_CAP = 30.0  # seconds a bot is given to exit after SIGTERM (with stop="term") before it is killed

Log = Callable[[str], None]


class BenchError(RuntimeError):
    """A run that could not be measured (the bot did not start, died, or never answered)."""


# --- the bot process ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime (fields 14, 15)


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident size (VmHWM) in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for process {pid}")


def tutorbot_command() -> list[str]:
    script = Path(sys.executable).parent / "tutorbot"
    return [str(script), "run"] if script.exists() else [sys.executable, "-m", "bot", "run"]


def command(kind: str) -> list[str]:
    if kind == "tutorbot":
        return tutorbot_command()
    if kind in ("floor", "conversation"):
        return [sys.executable, "-m", f"benchmarks.{kind}_bot"]
    raise ValueError(kind)


SITECUSTOMIZE = '''\
"""Written by benchmarks.throughput: times every SQLite call of this process."""
import os

_PATH = os.environ.get("TUTORBOT_BENCH_SQL_STATS")
if _PATH:
    import json
    import sqlite3
    import threading
    import time

    _perf = time.perf_counter
    _totals = {"statements": 0, "control": 0, "commits": 0, "seconds": 0.0, "commit_seconds": 0.0, "fetch_seconds": 0.0}
    _CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "COMMIT", "END", "ROLLBACK")

    def _count(sql, seconds, many=False):
        _totals["statements"] += 1
        _totals["seconds"] += seconds
        words = sql.split(None, 1)
        if not many and words and words[0].upper() in _CONTROL:
            _totals["control"] += 1
        if not many and sql.lstrip()[:6].upper() in ("COMMIT", "END"):
            _totals["commits"] += 1
            _totals["commit_seconds"] += seconds

    def _fetched(seconds):
        _totals["seconds"] += seconds
        _totals["fetch_seconds"] += seconds

    class _Cursor(sqlite3.Cursor):
        def execute(self, sql, parameters=()):
            began = _perf()
            try:
                return super().execute(sql, parameters)
            finally:
                _count(sql, _perf() - began)

        def executemany(self, sql, parameters):
            began = _perf()
            try:
                return super().executemany(sql, parameters)
            finally:
                _count(sql, _perf() - began, True)

        def fetchone(self):
            began = _perf()
            try:
                return super().fetchone()
            finally:
                _fetched(_perf() - began)

        def fetchmany(self, *args, **kwargs):
            began = _perf()
            try:
                return super().fetchmany(*args, **kwargs)
            finally:
                _fetched(_perf() - began)

        def fetchall(self):
            began = _perf()
            try:
                return super().fetchall()
            finally:
                _fetched(_perf() - began)

        def __next__(self):
            began = _perf()
            try:
                return super().__next__()
            finally:
                _fetched(_perf() - began)

    class _Connection(sqlite3.Connection):
        def cursor(self, factory=_Cursor):
            return super().cursor(factory)

        def execute(self, sql, parameters=()):
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql, parameters):
            return self.cursor().executemany(sql, parameters)

        def commit(self):
            began = _perf()
            try:
                return super().commit()
            finally:
                seconds = _perf() - began
                _totals["commits"] += 1
                _totals["seconds"] += seconds
                _totals["commit_seconds"] += seconds

    _connect = sqlite3.connect

    def _timed_connect(*args, **kwargs):
        kwargs.setdefault("factory", _Connection)
        return _connect(*args, **kwargs)

    sqlite3.connect = _timed_connect

    def _write():
        partial = _PATH + ".partial"
        while True:
            with open(partial, "w") as out:
                json.dump(dict(_totals, at=time.monotonic()), out)
            os.replace(partial, _PATH)
            time.sleep(0.05)

    threading.Thread(target=_write, name="sql-stats", daemon=True).start()
'''


class BotProcess:
    """One bot (`kind`) as a child process, pointed at the fake server."""

    def __init__(self, kind: str, server: FakeBotAPIServer, workdir: Path, database: Path, limiter: bool,
                 sql_stats: bool = False, extra_env: dict[str, str] | None = None):
        self.kind = kind
        self.workdir = workdir
        self.log_path = workdir / f"{kind}.log"
        self.stats_path = workdir / "sql-stats.json" if sql_stats else None
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORBOT_") and k != "TELEGRAM_BOT_TOKEN"}
        path = [str(ROOT)]
        if sql_stats:
            (workdir / "sitecustomize.py").write_text(SITECUSTOMIZE)
            path.insert(0, str(workdir))
            env["TUTORBOT_BENCH_SQL_STATS"] = str(self.stats_path)
        env.update(
            PYTHONPATH=os.pathsep.join(path + [p for p in [os.environ.get("PYTHONPATH")] if p]),
            TELEGRAM_BOT_TOKEN=TOKEN,
            TUTORBOT_BOT_API_BASE_URL=server.base_url,
            TUTORBOT_DATABASE=str(database),
            TUTORBOT_DIALOGUES=str(LESSON_PATH),
            TUTORBOT_DEFAULT_LESSON=LESSON_ID,
            TUTORBOT_RATE_LIMIT="telegram" if limiter else "off",
            TUTORBOT_CACHE_DIR=str(LESSON_CACHE),
        )
        env.update(extra_env or {})  # may replace the settings above (another lesson folder, say)
        self.env = env
        self.process: subprocess.Popen | None = None
        self.launched = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.launched = time.monotonic()
            self.process = subprocess.Popen(command(self.kind), env=self.env, cwd=self.workdir, stdout=out, stderr=out,
                                            stdin=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise BenchError(f"{self.kind} exited with {self.process.returncode if self.process else None}: {self.log_tail()}")

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def sql_stats(self) -> dict[str, float] | None:
        if self.stats_path is None:
            return None
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL (the bots here must survive it; a graceful stop would only cost time)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(30)

    def terminate(self, timeout: float = 20) -> float | None:
        """SIGTERM, then SIGKILL if it has not stopped within `timeout` seconds. Returns the
        seconds from the SIGTERM to the process's exit (`timeout` and a little more if it
        had to be killed: its return code is then -SIGKILL), None if it was not running."""
        if self.process is None or self.process.poll() is not None:
            return None
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return time.monotonic() - sent


# --- the fake Telegram and the learners ---------------------------------------------------


@dataclass
class Learner:
    user: int
    rng: random.Random
    pushed_at: float | None = None  # when the input awaiting a reply was queued
    replies: int = 0
    lessons_done: int = 0


class Driver:
    """Scripted learners in a closed loop. `script` "lesson" follows the lesson's steps,
    "tap" taps the button of each reply. Called by the fake (under its lock) for every
    message the bot sends.

    `think`: the mean pause (seconds) a learner takes before each input, /start included,
    drawn per input from an exponential distribution with the learner's own `rng`; 0 (the
    default) is the plain closed loop, the next input queued the moment the reply arrives.
    A pause runs on a daemon `threading.Timer`; `stop()` cancels the pending ones, and one
    that fires anyway does nothing once the driver is stopped."""

    def __init__(self, telegram: BenchTelegram, script: str, learners: int, seed: int = 1, first_user: int = LIVE_BASE,
                 right: set[str] | None = None, right_share: float = 0.0, once: bool = False, think: float = 0.0):
        if think < 0:
            raise ValueError(f"think must be >= 0, not {think}")
        self.telegram = telegram
        self.think = think
        self.timers: set[threading.Timer] = set()  # pauses under way (with `think`)
        self.once = once  # a learner at the end stops (else a new learner takes their place)
        self.right = right or set()  # the button data of right options, if the learners are to know them
        self.right_share = right_share  # how often they pick a right one
        self.script = script
        self.next_user = first_user
        self.by_chat: dict[int, Learner] = {}
        self.learners: list[Learner] = []
        for number in range(learners):
            learner = Learner(self._new_user(), random.Random(seed * 1_000_003 + number))
            self.learners.append(learner)
            self.by_chat[learner.user] = learner
        self.arrivals: list[tuple[float, float]] = []  # (when, latency) of each reply that showed a step
        self.started = 0  # learners who have had a reply
        self.other = 0  # messages that showed no step (feedback sent apart, notices)
        self.running = True

    def _new_user(self) -> int:
        self.next_user += 1
        return self.next_user

    def begin(self) -> None:
        with self.telegram.lock:
            for learner in self.learners:
                self._act(learner, lambda learner=learner: self._send_text(learner, f"/start {LESSON_ID}"))

    def stop(self) -> None:
        with self.telegram.lock:
            self.running = False
            timers, self.timers = self.timers, set()
        for timer in timers:
            timer.cancel()

    def _act(self, learner: Learner, act: Callable[[], None]) -> None:
        """Do `act` now (closed loop) or after the learner's pause (with `think`). Under the lock."""
        if not self.think:
            act()
            return

        def after_the_pause() -> None:
            with self.telegram.lock:
                self.timers.discard(timer)
                if self.running:
                    act()  # sets `pushed_at`: latency counts from the input, not from the reply before it

        timer = threading.Timer(learner.rng.expovariate(1 / self.think), after_the_pause)
        timer.daemon = True
        self.timers.add(timer)
        timer.start()

    def _send_text(self, learner: Learner, text: str) -> None:
        learner.pushed_at = time.monotonic()
        self.telegram.send_text(learner.user, text)

    def _press(self, learner: Learner, message: dict[str, Any], data: str) -> None:
        learner.pushed_at = time.monotonic()
        self.telegram.press(learner.user, message["message_id"], data)

    def arrived(self, chat_id: int, message: dict[str, Any]) -> None:
        learner = self.by_chat.get(chat_id)
        if learner is None or learner.pushed_at is None:
            return
        act = self._action(learner, message)
        if act is None:
            self.other += 1
            return
        now = time.monotonic()
        self.arrivals.append((now, now - learner.pushed_at))
        learner.pushed_at = None
        if learner.replies == 0:
            self.started += 1
        learner.replies += 1
        if self.running:
            self._act(learner, act)

    def _action(self, learner: Learner, message: dict[str, Any]) -> Callable[[], None] | None:
        """What the learner does next on seeing `message`; None if it shows no step."""
        data = [d for _, d in FakeTelegram.buttons(message) if d]
        text = message.get("text") or ""
        if self.script == "tap":
            taps = [d for d in data if d.startswith("c:")]
            return (lambda: self._press(learner, message, taps[0])) if taps else None
        if "🏁" in text:
            return lambda: self._restart(learner)
        done = [d for d in data if d.startswith("k:")]
        if done:
            return lambda: self._press(learner, message, done[0])
        options = [d for d in data if d.startswith("a:")]
        if options:
            known = [d for d in options if d in self.right]
            pick = learner.rng.choice(known if known and learner.rng.random() < self.right_share else options)
            return lambda: self._press(learner, message, pick)
        going_on = [d for d in data if d.startswith("c:")]
        if going_on:
            return lambda: self._press(learner, message, going_on[0])
        if "Type your answer" in text:
            return lambda: self._send_text(learner, ANSWER_TEXT)
        return None

    def _restart(self, learner: Learner) -> None:
        """At the end: the learner leaves, and a new one starts the lesson."""
        learner.lessons_done += 1
        if self.once:
            return
        del self.by_chat[learner.user]
        learner.user = self._new_user()
        self.by_chat[learner.user] = learner
        self._send_text(learner, f"/start {LESSON_ID}")

    def snapshot(self) -> tuple[int, int]:
        with self.telegram.lock:
            return len(self.arrivals), self.started

    def longest_wait(self, now: float) -> float:
        """How long the oldest input still waiting for its reply has waited (0 if none waits)."""
        with self.telegram.lock:
            waiting = [now - learner.pushed_at for learner in self.learners if learner.pushed_at is not None]
        return max(waiting, default=0.0)


class BenchTelegram(FakeTelegram):
    """The fake Telegram, counting the Bot API calls by method and handing every message
    the bot sends to the learners' driver."""

    def __init__(self) -> None:
        super().__init__()
        self.driver: Driver | None = None
        self.tally: Counter[str] = Counter()
        self.first_poll: float | None = None
        self.polled = threading.Event()

    def api(self, token: str, method: str, params: dict[str, Any], wait: float = 0.0) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.tally[method] += 1
            if method == "getUpdates" and self.first_poll is None:
                self.first_poll = time.monotonic()
                self.polled.set()
            if len(self.calls) > 10_000:
                del self.calls[:5_000]  # the base keeps every call; nothing here reads them
        return super().api(token, method, params, wait)

    def _method(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            status, body = super()._method(method, params)
        except (KeyError, ValueError, TypeError):  # a request cut short: the bot was killed mid-call
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: malformed request"}
        if status == 200 and method == "sendMessage" and self.driver is not None:
            chat_id = int(params["chat_id"])
            self.driver.arrived(chat_id, self.chats[chat_id][-1])
        return status, body

    def calls_now(self) -> Counter[str]:
        with self.lock:
            return Counter(self.tally)


# --- one load run ----------------------------------------------------------------------------


@dataclass
class LoadResult:
    kind: str
    learners: int
    limiter: bool
    answers: int
    seconds: float
    latencies: list[float]
    cpu: float  # the bot's CPU seconds in the window
    calls: Counter[str]  # Bot API calls in the window, by method
    peak_rss: float  # MiB
    startup: float  # launch to first getUpdates, seconds
    warmup: float
    warmed: bool  # the warm-up saw one reply per learner before the window
    longest_wait: float  # at the window's end, how long the oldest unanswered input had waited (s)
    harness_cpu: float  # this process's CPU seconds in the window (the fake and the learners)
    lessons_done: int
    other_messages: int
    sql: dict[str, float] | None = None  # SQLite totals in the window (with `sql_stats`)
    think: float = 0.0  # the learners' mean pause before each input (0: a closed loop)
    stop_seconds: float | None = None  # with stop="term": SIGTERM to exit (TERM_CAP if it had to be killed)
    exit_code: int | None = None  # with stop="term": the process's return code (-9: killed at TERM_CAP)
    waiting_at_stop: int | None = None  # with stop="term", tutorbot: replies waiting in its outbox at the SIGTERM
    left_waiting: int | None = None  # with stop="term", tutorbot: replies still waiting in its outbox at exit

    @property
    def answers_per_second(self) -> float:
        return self.answers / self.seconds

    def latency(self, q: float) -> float:
        """The q-quantile of the reply latency, in ms (nearest rank)."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000

    @property
    def cpu_ms_per_answer(self) -> float:
        return self.cpu * 1000 / self.answers if self.answers else math.nan

    @property
    def calls_per_answer(self) -> float:
        made = sum(n for m, n in self.calls.items() if m not in ("getUpdates", "answerCallbackQuery"))
        return made / self.answers if self.answers else math.nan

    @property
    def acq_per_answer(self) -> float:
        return self.calls.get("answerCallbackQuery", 0) / self.answers if self.answers else math.nan

    def sql_per_answer(self, key: str) -> float:
        if not self.sql or not self.answers:
            return math.nan
        return self.sql.get(key, 0) / self.answers


def outbox_waiting(database: Path) -> int:
    """Replies tutorbot's outbox still has to send (neither sent nor given up on)."""
    db = sqlite3.connect(database, timeout=10)
    try:
        (waiting,) = db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL").fetchone()
    finally:
        db.close()
    return int(waiting)


def _harness_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_load(
    kind: str,
    learners: int,
    limiter: bool,
    window: float,
    warmup_cap: float = 60.0,
    database: Path | None = None,
    sql_stats: bool = False,
    first_update_id: int | None = None,
    extra_env: dict[str, str] | None = None,
    seed: int = 1,
    start_timeout: float = 90.0,
    think: float = 0.0,
    stop: str = "kill",
) -> LoadResult:
    """Run `kind` under `learners` learners and measure one window. `think`: the learners'
    mean pause before each input (0: a closed loop, see `Driver`). `stop`: how the bot is
    stopped at the window's end, "kill" (SIGKILL) or "term" (SIGTERM, timed to the exit,
    SIGKILL after TERM_CAP seconds; for tutorbot, its outbox is counted then and after)."""
    if stop not in ("kill", "term"):
        raise ValueError(f"stop must be 'kill' or 'term', not {stop!r}")
    workdir = Path(tempfile.mkdtemp(prefix=f"tutorbot-bench-{kind}-"))
    telegram = BenchTelegram()
    if first_update_id is not None:
        telegram.next_update_id = first_update_id
    driver = Driver(telegram, "tap" if kind == "floor" else "lesson", learners, seed, think=think)
    telegram.driver = driver
    path = database or workdir / f"{kind}.db"
    stop_seconds = exit_code = waiting_at_stop = left_waiting = None
    try:
        with FakeBotAPIServer(telegram) as server:
            bot = BotProcess(kind, server, workdir, path, limiter, sql_stats, extra_env)
            bot.start()
            try:
                while not telegram.polled.wait(0.1):
                    bot.check()
                    if time.monotonic() - bot.launched > start_timeout:
                        raise BenchError(f"{kind} made no getUpdates call within {start_timeout:.0f} s: {bot.log_tail()}")
                assert telegram.first_poll is not None
                startup = telegram.first_poll - bot.launched
                began = time.monotonic()
                driver.begin()
                # One round: as many replies as there are learners (with fair turns, each has had one).
                while time.monotonic() - began < warmup_cap and driver.snapshot()[0] < learners:
                    time.sleep(0.05)
                    bot.check()
                warmup = time.monotonic() - began
                warmed = driver.snapshot()[0] >= learners
                if not warmed and driver.snapshot()[0] == 0:
                    raise BenchError(f"{kind} answered nobody within {warmup_cap:.0f} s: {bot.log_tail()}")
                if sql_stats:
                    time.sleep(0.06)  # a fresh write of the totals
                start_calls, start_cpu, start_harness = telegram.calls_now(), cpu_seconds(bot.pid), _harness_cpu()
                start_sql = bot.sql_stats()
                window_start = time.monotonic()
                deadline = window_start + window
                while (left := deadline - time.monotonic()) > 0:
                    time.sleep(min(left, 0.1))
                    bot.check()
                window_end = time.monotonic()
                end_calls, end_cpu, end_harness = telegram.calls_now(), cpu_seconds(bot.pid), _harness_cpu()
                longest_wait = driver.longest_wait(window_end)
                if sql_stats:
                    time.sleep(0.06)
                end_sql = bot.sql_stats()
                rss = peak_rss_mib(bot.pid)
                driver.stop()
                if stop == "term":
                    # The learners stop; the bot still has its queue, and the fake stays up meanwhile.
                    if kind == "tutorbot":
                        waiting_at_stop = _count_or_none(path)
                    stop_seconds = bot.terminate(TERM_CAP)
                    assert bot.process is not None
                    exit_code = bot.process.returncode
                    if kind == "tutorbot":
                        left_waiting = _count_or_none(path)
            finally:
                driver.stop()
                bot.kill()
        with telegram.lock:
            arrivals = [(at, latency) for at, latency in driver.arrivals if window_start <= at <= window_end]
            lessons_done = sum(learner.lessons_done for learner in driver.learners)
        sql = None
        if start_sql and end_sql:
            sql = {key: end_sql[key] - start_sql[key] for key in end_sql if key != "at"}
            sql["seconds_window"] = end_sql["at"] - start_sql["at"]
        return LoadResult(
            kind=kind, learners=learners, limiter=limiter, answers=len(arrivals), seconds=window_end - window_start,
            latencies=[latency for _, latency in arrivals], cpu=end_cpu - start_cpu, calls=end_calls - start_calls,
            peak_rss=rss, startup=startup, warmup=warmup, warmed=warmed, longest_wait=longest_wait,
            harness_cpu=end_harness - start_harness,
            lessons_done=lessons_done, other_messages=driver.other, sql=sql, think=think,
            stop_seconds=stop_seconds, exit_code=exit_code, waiting_at_stop=waiting_at_stop, left_waiting=left_waiting,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _count_or_none(database: Path) -> int | None:
    try:
        return outbox_waiting(database)
    except sqlite3.Error:
        return None


def product_reads_rate_limit() -> bool:
    """Whether the product's code reads the `rate_limit` setting beyond declaring it
    (otherwise TUTORBOT_RATE_LIMIT=off changes nothing and the "off" rows equal "on")."""
    for path in (ROOT / "bot").rglob("*.py"):
        if path.name != "settings.py" and "rate_limit" in path.read_text(errors="replace"):
            return True
    return False


# --- scale: databases holding many learners' history ----------------------------------------


def _schema_key() -> str:
    """A digest of the product's schema (what its migrations make), the lesson file and the
    generator's version: the cached databases are made again when one changes."""
    from bot.store import Store

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "schema.db")
        try:
            schema = sorted(sql for (sql,) in store.db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"))
        finally:
            store.close()
    digest = hashlib.sha256("\n".join(schema).encode() + LESSON_PATH.read_bytes() + str(VERSION).encode())
    return digest.hexdigest()[:12]


def template_database(log: Log, learners: int = TEMPLATE_LEARNERS, seed: int = 7) -> Path:
    """A database made by the real bot: `learners` learners through the whole lesson
    once each (over the fake, as fast as it goes), right at the first try about four times
    in five; cached per schema and lesson."""
    from bot.lesson import ChoiceNode
    from bot.loader import load_file

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"scale-template-{_schema_key()}-{learners}.db"
    if path.exists():
        return path
    log(f"making a template database with the real bot ({learners} learners through the lesson) ...")
    lesson = load_file(LESSON_PATH).lesson
    right = {
        f"a:{LESSON_ID}:{node.id}:{index}"
        for node in lesson.nodes.values() if isinstance(node, ChoiceNode)
        for index, option in enumerate(node.options) if option.correct or not node.graded
    }
    workdir = Path(tempfile.mkdtemp(prefix="tutorbot-bench-template-"))
    database = workdir / "template.db"
    telegram = BenchTelegram()
    driver = Driver(telegram, "lesson", learners, seed, first_user=PREFILL_BASE, right=right, right_share=0.8,
                    once=True)
    telegram.driver = driver
    try:
        with FakeBotAPIServer(telegram) as server:
            bot = BotProcess("tutorbot", server, workdir, database, limiter=False)
            bot.start()
            try:
                while not telegram.polled.wait(0.1):
                    bot.check()
                driver.begin()
                deadline = time.monotonic() + 600
                while sum(learner.lessons_done for learner in driver.learners) < learners:
                    if time.monotonic() > deadline:
                        raise BenchError(f"the template learners did not finish the lesson: {bot.log_tail()}")
                    time.sleep(0.1)
                    bot.check()
                time.sleep(1.0)  # the last replies go out
            finally:
                bot.terminate()
        partial = path.with_name(path.name + ".partial")
        db = sqlite3.connect(database)
        try:
            db.execute("VACUUM INTO ?", [str(partial)])
        finally:
            db.close()
        partial.rename(path)
        return path
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _columns(db: sqlite3.Connection, table: str, schema: str = "main") -> list[str]:
    return [row[1] for row in db.execute(f'PRAGMA {schema}.table_info("{table}")')]


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def generate_scale(path: Path, learners: int, template: Path, log: Log) -> dict[str, int]:
    """Fill a new database at `path` with `learners` learners' history, each a copy of one
    of the template's learners: half of them finished the lesson, the others stopped at a
    step spread evenly over it. A copy gets a new user id, ids (events, updates, outbox)
    interleaved with the other copies' as if they had studied side by side, and times
    moved 400 days into the past; its progress row is the product's `fold` over the events it
    keeps. Learners, events, progress and outbox rows are copied, sent messages without their
    text; inbox rows are not (the product forgets handled updates, and drops the text of
    replies sent, after 48 hours). Plain SQL inside SQLite, in id order,
    with the indexes built after the rows are in."""
    from bot.store import Store, fold

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    Store(path).close()  # the schema, through the product's migrations
    db = sqlite3.connect(path, isolation_level=None)
    counts: dict[str, int] = {}
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA temp_store = MEMORY")
        db.execute("PRAGMA cache_size = -262144")
        db.execute("ATTACH DATABASE ? AS t", [str(template)])
        uids = [int(r[0][3:]) for r in db.execute("SELECT id FROM t.learners WHERE id LIKE 'tg:%' ORDER BY id")]
        if not uids:
            raise BenchError("the template database has no learners")
        k_of = {uid: k for k, uid in enumerate(uids)}
        # Each template learner's events in order, and their updates ranked in order.
        events: dict[int, list[dict[str, Any]]] = {k: [] for k in range(len(uids))}
        event_columns = _columns(db, "events", "t")
        for row in db.execute(f"SELECT {_quoted(event_columns)} FROM t.events WHERE learner LIKE 'tg:%' ORDER BY id"):
            event = dict(zip(event_columns, row))
            events[k_of[int(event["learner"][3:])]].append(event)
        update_rank: dict[int, int] = {}
        for k, uid in enumerate(uids):
            owned = sorted(u for (u,) in db.execute(
                "SELECT update_id FROM t.inbox WHERE learner = ? UNION SELECT update_id FROM t.events WHERE learner = ? "
                "AND update_id IS NOT NULL UNION SELECT update_id FROM t.outbox WHERE chat = ? AND update_id IS NOT NULL",
                [f"tg:{uid}"] * 3,
            ))
            update_rank.update({u: r for r, u in enumerate(owned)})
        # The copies: half finished, half stopped part-way; `cut` events kept, and the
        # updates up to the one that made the last of them (`ucut`).
        db.execute("CREATE TEMP TABLE copies (c INTEGER PRIMARY KEY, k INTEGER, uid INTEGER, cut INTEGER, ucut INTEGER)")
        rows = []
        for c in range(learners):
            k = c % len(uids)
            size = len(events[k])
            cut = size if c % 2 == 0 else 1 + (c * 7919 // 2) % size
            last = events[k][cut - 1]
            ucut = update_rank.get(last["update_id"], 10**9) if last["update_id"] is not None else 10**9
            rows.append((c, k, PREFILL_BASE + 1_000_000 + c, cut, ucut))
        db.executemany("INSERT INTO temp.copies VALUES (?, ?, ?, ?, ?)", rows)
        db.execute("CREATE TEMP TABLE ranks (old INTEGER PRIMARY KEY, rank INTEGER)")
        db.executemany("INSERT INTO temp.ranks VALUES (?, ?)", update_rank.items())
        shift = "'-400 days', '+' || (c.c * 37 % 86400) || ' seconds'"
        n = learners

        def expression(column: str, ranked_id: bool) -> str:
            quoted = f'x."{column}"'
            if ranked_id and column == "id":
                return f"x._rank * {n} + c.c + 1"
            if column == "last_event":  # progress: the copy's last kept event
                return f"(c.cut - 1) * {n} + c.c + 1"
            if column == "update_id":
                return f"CASE WHEN x._urank IS NULL THEN {quoted} ELSE x._urank * {n} + c.c + 1 END"
            if column == "chat_id":
                return f"CASE WHEN {quoted} = x._uid THEN c.uid ELSE {quoted} END"
            if column == "body":  # the outbox's: a sent message's text is dropped after 48 hours
                return f"CASE WHEN x.kind IN ('send', 'poll') AND x.sent_at IS NOT NULL THEN '{{}}' ELSE {quoted} END"
            if column in ("id", "learner", "chat", "created_by", "reviewer", "leader"):
                return f"CASE WHEN {quoted} = 'tg:' || x._uid THEN 'tg:' || c.uid ELSE {quoted} END"
            if column == "at" or column.endswith("_at"):
                return f"CASE WHEN {quoted} IS NULL THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%f+00:00', {quoted}, {shift}) END"
            return quoted

        def copy(table: str, owner: str, ranked_id: bool, keep: str, source: str | None = None) -> None:
            """Copy `table`'s rows (from `source`, default the template's) for every copy."""
            columns = _columns(db, table)
            source_columns = _columns(db, table, "t")
            columns = [c for c in columns if c in source_columns]
            rank_by = "update_id" if "update_id" in source_columns and not ranked_id else "rowid"
            db.execute(f"DROP TABLE IF EXISTS temp.x_{table}")
            db.execute(
                f"CREATE TEMP TABLE x_{table} AS SELECT s.*, w.k AS _k, w.uid AS _uid, "
                f"ROW_NUMBER() OVER (PARTITION BY s.{owner} ORDER BY s.{rank_by}) - 1 AS _rank, "
                + ("r.rank AS _urank " if "update_id" in source_columns else "NULL AS _urank ")
                + f"FROM {source or 't.' + table} s JOIN (SELECT column1 AS uid, column2 AS k FROM (VALUES "
                + ", ".join(f"({uid}, {k})" for k, uid in enumerate(uids))
                + f")) w ON s.{owner} = 'tg:' || w.uid "
                + ("LEFT JOIN temp.ranks r ON r.old = s.update_id" if "update_id" in source_columns else "")
            )
            db.execute(f"CREATE INDEX temp.x_{table}_rank ON x_{table} (_rank, _k)")
            indexes = db.execute(
                "SELECT name, sql FROM main.sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", [table]
            ).fetchall()
            for name, _ in indexes:  # built again once the rows are in: faster than kept up row by row
                db.execute(f'DROP INDEX main."{name}"')
            began = time.perf_counter()
            insert = (
                f'INSERT INTO main."{table}" ({_quoted(columns)}) SELECT {", ".join(expression(c, ranked_id) for c in columns)} '
                f"FROM temp.copies c CROSS JOIN temp.x_{table} x ON x._k = c.k AND x._rank = ? WHERE {keep}"
            )
            (most,) = db.execute(f"SELECT COALESCE(MAX(_rank), -1) FROM temp.x_{table}").fetchone()
            total = 0
            db.execute("BEGIN")
            for rank in range(most + 1):  # rank by rank, copies in order: the new ids ascend
                total += db.execute(insert, [rank]).rowcount
            db.execute("COMMIT")
            for _, sql in indexes:
                db.execute(sql)
            counts[table] = total
            log(f"    {table}: {total:,} rows in {time.perf_counter() - began:.1f} s")

        copy("learners", "id", False, "1")
        copy("events", "learner", True, "x._rank < c.cut")
        # No inbox rows: the product forgets handled updates after 48 hours, and this history is older.
        copy("outbox", "chat", True, "x._urank IS NULL OR x._urank <= c.ucut")
        # Progress: the product's fold over the events a copy keeps, one row per (learner, cut).
        progress_columns = _columns(db, "progress")
        db.execute(f"CREATE TEMP TABLE folded AS SELECT {_quoted(progress_columns)}, 0 AS _cut FROM t.progress WHERE 0")
        folded = []
        for k, history in events.items():
            row = None
            for number, event in enumerate(history, 1):
                row = fold(row, event)
                folded.append([row.get(c) for c in progress_columns] + [number])
        db.executemany(f"INSERT INTO temp.folded VALUES ({', '.join('?' * (len(progress_columns) + 1))})", folded)
        copy("progress", "learner", False, "x._cut = c.cut", source="temp.folded")
        db.execute("PRAGMA journal_mode = WAL")  # as the store keeps it
        return counts
    finally:
        db.close()


def scale_database(learners: int, log: Log, template_learners: int = TEMPLATE_LEARNERS) -> tuple[Path, int]:
    """The cached scale database for `learners` (made if missing, from a template of
    `template_learners`) and its highest update id."""
    template = template_database(log, template_learners)
    path = CACHE / f"scale-v{VERSION}-{_schema_key()}-t{template_learners}-{learners}.db"
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        began = time.perf_counter()
        log(f"  generating a database of {learners:,} learners in {path} ...")
        generate_scale(partial, learners, template, log)
        for suffix in ("-wal", "-shm"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
        partial.rename(path)
        log(f"  done in {time.perf_counter() - began:.0f} s ({path.stat().st_size / 2**20:,.0f} MiB)")
    db = sqlite3.connect(path)
    try:
        highest = max(db.execute(f"SELECT COALESCE(MAX(update_id), 0) FROM {table}").fetchone()[0] for table in ("inbox", "events", "outbox"))
    finally:
        db.close()
    return path, int(highest)


def remove_live_rows(path: Path, highest_update: int) -> None:
    """Take out what a measurement's live learners added, so the database is reused as made."""
    db = sqlite3.connect(path, timeout=30)
    try:
        live = f"'tg:{LIVE_BASE}' AND 'tg:{LIVE_BASE + 9_999_999}'"
        with db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for table in ("events", "progress"):
                db.execute(f"DELETE FROM {table} WHERE learner BETWEEN {live}")
            db.execute(f"DELETE FROM learners WHERE id BETWEEN {live}")
            db.execute(f"DELETE FROM outbox WHERE chat BETWEEN {live}")
            db.execute("DELETE FROM inbox WHERE update_id > ?", [highest_update])
            for table in ("reviews", "group_answers", "assignment_members"):
                if table in tables and "learner" in _columns(db, table):
                    db.execute(f"DELETE FROM {table} WHERE learner BETWEEN {live}")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    Path(f"{path}.lock").unlink(missing_ok=True)  # the killed bot's single-instance lock file


def database_size_mib(path: Path) -> float:
    return sum(Path(f"{path}{suffix}").stat().st_size for suffix in ("", "-wal") if Path(f"{path}{suffix}").exists()) / 2**20

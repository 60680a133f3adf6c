"""The bot as its own process (`tutorbot run`) against a fake Bot API server on 127.0.0.1.

Learners are scripted the way a Telegram client drives a bot: they type messages and tap
buttons, and the bot long-polls for them with offsets. The crash test kills the process
with SIGKILL while learners are mid-answer, restarts it, and checks that every answer was
recorded exactly once and everybody resumes at the right step.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.engine import State, input_from_dict, step
from bot.loader import load_file
from bot.store import Store
from tests.core_lesson import CORE as CORE_LESSON
from tests.core_lesson import QUESTIONS, SCORED, answer, option_data, question_key
from tests.fake_telegram import TOKEN, FakeBotAPIServer, FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "dialogues" / "madman-core.yaml"


def tutorbot() -> list[str]:
    script = Path(sys.executable).parent / "tutorbot"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


class BotProcess:
    """`tutorbot run` in a child process, pointed at the fake server."""

    def __init__(self, server: FakeBotAPIServer, db: Path, log: Path):
        self.env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TUTORBOT_BOT_API_BASE_URL": server.base_url,
            "TUTORBOT_DATABASE": str(db),
            "TUTORBOT_DIALOGUES": str(CORE),
            "TUTORBOT_DEFAULT_LESSON": "madman-core",
            "TUTORBOT_LOG_LEVEL": "INFO",
            "TUTORBOT_RATE_PRIVATE": "1000",  # scripted learners tap faster than people
        }
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(tutorbot() + ["run"], env=self.env, stdout=out, stderr=out, cwd=ROOT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)


def is_step(message: dict) -> bool:
    """A step of the lesson: one with buttons (not a confirmation), a written question, or
    the end (whose first line, like every step's, is the progress line)."""
    text = message["text"]
    return bool(FakeTelegram.buttons(message)) and not text.startswith(("Start “", "Delete everything")) or (
        "Type your answer" in text or "🏁" in text
    )


def wait_for_step(telegram: FakeTelegram, user: int, after: int, timeout: float = 15, old: dict | None = None) -> dict | None:
    """The first step message the bot sends `user` after message number `after`, other
    than a copy of `old` (the step acted on): after a crash, a message Telegram had but
    the bot had not yet marked sent comes again, and a person reads on to the new one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in telegram.bot_messages(user)[after:]:
            if is_step(message) and (old is None or message["text"] != old["text"]):
                return message
        time.sleep(0.02)
    return None


class Learner:
    """A scripted learner: answers the step in front of them, wrong first where `wrong_first`."""

    def __init__(self, telegram: FakeTelegram, user: int, wrong_first: bool):
        self.telegram = telegram
        self.user = user
        self.wrong_first = wrong_first
        self.tried: set[str] = set()
        self.answers: list[int] = []  # update ids of every answer sent
        self.seen = 0
        self.step: dict | None = None

    def act(self) -> None:
        """Send the next action for the step on screen (or /start at the beginning)."""
        self.seen = len(self.telegram.bot_messages(self.user))
        if self.step is None:
            self.telegram.send_text(self.user, "/start madman-core")
            return
        message, labels = self.step, [label for label, _ in FakeTelegram.buttons(self.step)]
        if labels == ["Continue ▸"]:
            update_id = self.telegram.press(self.user, message["message_id"], FakeTelegram.buttons(message)[0][1])
        elif "Type your answer" in message["text"]:
            update_id = self.telegram.send_text(self.user, f"Learner {self.user}: no one yields to a leader who may not keep the deal.")
        elif "Done ▸" in labels:
            update_id = self.telegram.press(self.user, message["message_id"], dict(FakeTelegram.buttons(message))["Done ▸"])
        else:
            key = question_key(message)
            pick = answer(key, wrong=self.wrong_first and key not in self.tried)
            self.tried.add(key)
            update_id = self.telegram.press(self.user, message["message_id"], option_data(message, pick))
        self.answers.append(update_id)

    def await_reply(self, timeout: float) -> bool:
        step = wait_for_step(self.telegram, self.user, self.seen, timeout, old=self.step)
        if step is not None:
            self.step = step
        return step is not None

    def resume(self) -> None:
        """What a person does when the bot went quiet: /start shows where they are."""
        self.seen = len(self.telegram.bot_messages(self.user))
        self.telegram.send_text(self.user, "/start")

    @property
    def done(self) -> bool:
        return self.step is not None and "🏁" in self.step["text"]


@pytest.fixture
def fake_server():
    telegram = FakeTelegram()
    with FakeBotAPIServer(telegram) as server:
        yield telegram, server


def test_a_scripted_learner_completes_the_lesson_over_http(fake_server, tmp_path: Path) -> None:
    telegram, server = fake_server
    bot = BotProcess(server, tmp_path / "bot.db", tmp_path / "bot.log")
    bot.start()
    try:
        learner = Learner(telegram, 7001, wrong_first=True)
        for _ in range(40):
            learner.act()
            assert learner.await_reply(15), (tmp_path / "bot.log").read_text()
            if learner.done:
                break
        assert learner.done
        assert f"Your result: 0 of {SCORED} questions right at the first try." in learner.step["text"]
        # Every question was missed at the first try: each part with a question is worth another look.
        parts = sorted({CORE_LESSON.part_of(q)[0] for q in QUESTIONS if q not in CORE_LESSON.variant_of})
        assert [label for label, _ in FakeTelegram.buttons(learner.step)] == [f"Look again: part {n}" for n in parts]
    finally:
        assert bot.stop() == 0
    # Long polling with offsets: every update was handed out, and confirmed before the stop.
    assert set(telegram.delivered) >= set(learner.answers)
    offsets = [int(p["offset"]) for m, p in telegram.calls if m == "getUpdates" and p.get("offset")]
    assert offsets == sorted(offsets)
    assert TOKEN not in (tmp_path / "bot.log").read_text()


def test_without_a_token_run_explains_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    result = subprocess.run(tutorbot() + ["run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "@BotFather" in result.stderr and "tutorbot play" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_rejected_token_is_a_clear_error(fake_server, tmp_path: Path) -> None:
    telegram, server = fake_server
    bot = BotProcess(server, tmp_path / "bot.db", tmp_path / "bot.log")
    wrong = "987654321:AAWrongTokenForTestsOnly_abcdefghijklmno"
    bot.env["TELEGRAM_BOT_TOKEN"] = wrong
    result = subprocess.run(tutorbot() + ["run"], env=bot.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Telegram rejected the token" in result.stderr
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_sigkill_mid_answer_loses_nothing_and_records_nothing_twice(fake_server, tmp_path: Path) -> None:
    telegram, server = fake_server
    db = tmp_path / "bot.db"
    bot = BotProcess(server, db, tmp_path / "bot.log")
    learners = [Learner(telegram, 8000 + i, wrong_first=i % 2 == 0) for i in range(4)]
    rng = random.Random(7)
    kill_after_round = {2: 0.0, 5: 0.01, 8: 0.05, 11: 0.002}
    bot.start()
    kills = 0
    for round_number in range(1, 40):
        active = [learner for learner in learners if not learner.done]
        if not active:
            break
        for learner in active:
            learner.act()
        if round_number in kill_after_round:
            time.sleep(kill_after_round[round_number] + rng.random() * 0.01)
            bot.kill()
            kills += 1
            bot.start()
        for learner in active:
            if not learner.await_reply(8):
                # The crash came after the answer was stored but before the reply went out.
                learner.resume()
                assert learner.await_reply(15), (tmp_path / "bot.log").read_text()
    assert bot.stop() == 0
    assert kills == len(kill_after_round)
    assert all(learner.done for learner in learners)

    lesson = load_file(CORE)
    store = Store(db)
    try:
        for learner in learners:
            events = store.events(learner=f"tg:{learner.user}", lesson="madman-core")
            recorded = [e["update_id"] for e in events if e["input"]["kind"] in ("continue", "choose", "answer", "check")]
            # Every answer is recorded at most once, and each one that is not was made on a
            # copy of a step that a crash sent twice (killed between Telegram's confirmation
            # and the outbox's mark): the bot refused it and showed the step again.
            assert len(recorded) == len(set(recorded)) and set(recorded) <= set(learner.answers)
            assert len(set(learner.answers) - set(recorded)) <= kills
            # The stored progress is what replaying the inputs gives, and it is the end.
            state = State()
            for event in events:
                state = step(lesson.lesson, state, input_from_dict(event["input"])).state
            progress = store.progress(f"tg:{learner.user}", "madman-core", f"tg:{learner.user}")
            assert progress is not None and progress.state == state and state.finished
        assert store.db.execute("SELECT COUNT(*) FROM inbox WHERE handled_at IS NULL").fetchone()[0] == 0
    finally:
        store.close()

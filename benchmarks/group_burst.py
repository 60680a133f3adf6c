"""A burst in a group: a study group's members all answer a live question's poll at once.

    python -m benchmarks.group_burst                       # 300 members, 90 of them known to the bot
    python -m benchmarks.group_burst --members 50 --talked 10

The real `tutorbot run` process, with Telegram's limits (30 messages a second overall, 20 a
minute to a group, about 1 a second to a person), against the fake Bot API over HTTP on
127.0.0.1, on a new database:

1. `talked` of the members message the bot in private first (/help), so that it may write
   to them later.
2. An admin starts `/study madman-core` in the group and moves on with /next until a graded
   question's quiz poll is open.
3. Every member votes at once; one in 50 votes again, changing their mind to the right
   answer; the `talked` members (and every third of the others) choose a wrong option.
4. The admin closes the question (/next), then moves on (/next).

Measured: how long the votes take to be handled (each update stored as handled, its answer
recorded for its member), the Bot API calls to the group meanwhile (a vote should cost the
group nothing), the bot's CPU time per vote, from the close to the tally in the group, from
the admin's next /next to the next step, from the close to the last of the remedies that the
`talked` members who chose wrong get in private (paced by the 30-a-second limit), and the
bot's peak RSS.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.throughput import BenchError, BotProcess, peak_rss_mib, cpu_seconds
from bot.lesson import ChoiceNode
from bot.loader import load_all
from bot.telegram_bot.study import NEXT
from tests.fake_telegram import FakeBotAPIServer, FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
DIALOGUES = ROOT / "dialogues"
LESSON_ID = "madman-core"
GROUP = -100_555_000
TEACHER = 7_000_001
FIRST_MEMBER = 7_100_000
REVOTE_EVERY = 50  # one member in this many votes twice
STEPS_MAX = 15  # /next presses to reach a graded question's poll
REMEDY_START = "From the group study"


@dataclass
class BurstResult:
    members: int
    votes: int  # poll answers sent: one per member, and the second votes
    votes_seconds: float  # from the first vote sent to the last one handled
    group_calls_while_voting: int  # Bot API calls to the group meanwhile
    cpu_ms_per_vote: float
    tally_seconds: float  # from the closing /next to the tally in the group
    next_step_seconds: float  # from the following /next to the next step in the group
    remedies: int
    remedies_seconds: float  # from the closing /next to the last remedy in private
    busiest_second: int  # remedies sent in the busiest second
    peak_rss: float  # MiB

    @property
    def votes_per_second(self) -> float:
        return self.votes / self.votes_seconds if self.votes_seconds else float("nan")


def wait_until(condition: Callable[[], Any], timeout: float, what: str, bot: BotProcess, every: float = 0.01) -> Any:
    """`condition()`'s first true value; BenchError after `timeout` seconds or if the bot exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        bot.check()
        time.sleep(every)
    raise BenchError(f"{what}: not within {timeout:.0f} s: {bot.log_tail()}")


def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows from the bot's database, opened read-only for this one query."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as connection:
        return connection.execute(sql, args).fetchall()


def group_calls(telegram: FakeTelegram) -> int:
    with telegram.lock:
        return sum(1 for method, params in telegram.calls
                   if str(params.get("chat_id")) == str(GROUP) and method != "getChatMember")


def latest_step(telegram: FakeTelegram, after: int) -> dict | None:
    """The group's newest bot message with the Next button, among those after number `after`."""
    return next((m for m in reversed(telegram.bot_messages(GROUP)[after:])
                 if NEXT in [label for label, _ in FakeTelegram.buttons(m)]), None)


def in_group(telegram: FakeTelegram, text: str) -> tuple[int, float]:
    """The admin says `text` in the group: how many bot messages the group had, and when."""
    seen = len(telegram.bot_messages(GROUP))
    sent = time.monotonic()
    telegram.send_text(TEACHER, text, group=GROUP)
    return seen, sent


def run_burst(members: int = 300, talked: int = 90, timeout: float = 120.0) -> BurstResult:
    """One burst, as the module's docstring says, on a new database and a new bot process."""
    if not 0 < talked <= members:
        raise ValueError("talked must be between 1 and members")
    lesson = load_all([DIALOGUES / f"{LESSON_ID}.yaml"])[LESSON_ID].lesson
    workdir = Path(tempfile.mkdtemp(prefix="tutorbot-bench-group-"))
    database = workdir / "bot.db"
    telegram = FakeTelegram()
    telegram.admins[GROUP] = {TEACHER}
    people = list(range(FIRST_MEMBER, FIRST_MEMBER + members))
    known = people[:talked]
    try:
        with FakeBotAPIServer(telegram) as server:
            bot = BotProcess("tutorbot", server, workdir, database, True,
                             extra_env={"TUTORBOT_DIALOGUES": str(DIALOGUES), "TUTORBOT_DEFAULT_LESSON": LESSON_ID})
            bot.start()
            try:
                wait_until(lambda: any(method == "getUpdates" for method, _ in list(telegram.calls)), 60, "the first getUpdates", bot)
                for person in known:
                    telegram.send_text(person, "/help")
                wait_until(lambda: all(telegram.bot_messages(p) for p in known), timeout, "the answers to /help", bot, 0.05)

                # The admin moves on until a graded question's poll is open.
                seen, _ = in_group(telegram, f"/study {LESSON_ID}")
                for _ in range(STEPS_MAX):
                    step = wait_until(lambda after=seen: latest_step(telegram, after), 30, "the group's next step", bot)
                    (node_id,) = query(database, "SELECT node FROM study_sessions WHERE chat = ?", (f"tg:{GROUP}",))[0]
                    node = lesson.nodes[node_id]
                    if "poll" in step and not step["poll"]["is_closed"] and isinstance(node, ChoiceNode) and node.graded:
                        break
                    seen, _ = in_group(telegram, "/next")
                else:
                    raise BenchError(f"no graded question's poll within {STEPS_MAX} steps")
                poll = step["poll"]
                positions = [option["text"] for option in poll["options"]]
                wrong = positions.index(next(o.text for o in node.options if not o.correct))
                right = positions.index(next(o.text for o in node.options if o.correct))

                # Every member votes at once.
                calls_before, cpu_before = group_calls(telegram), cpu_seconds(bot.pid)
                began = time.monotonic()
                ids = []
                for n, person in enumerate(people):
                    ids.append(telegram.vote(person, poll["id"], [wrong if n < talked or n % 3 == 0 else right]))
                    if n % REVOTE_EVERY == 0:
                        ids.append(telegram.vote(person, poll["id"], [right]))
                handled = lambda: query(  # noqa: E731
                    database, "SELECT COUNT(*) FROM inbox WHERE update_id BETWEEN ? AND ? AND handled_at IS NOT NULL",
                    (min(ids), max(ids)),
                )[0][0] == len(ids)
                wait_until(handled, timeout, "the votes handled", bot)
                votes_seconds = time.monotonic() - began
                cpu = cpu_seconds(bot.pid) - cpu_before
                calls_while_voting = group_calls(telegram) - calls_before
                recorded = query(database, "SELECT COUNT(DISTINCT learner) FROM group_answers WHERE node = ?", (node_id,))[0][0]
                if recorded != members:
                    raise BenchError(f"{recorded} members' answers recorded, not {members}")

                # The admin closes the question, then moves on.
                seen, closed = in_group(telegram, "/next")
                tally = wait_until(lambda: next((m for m in telegram.bot_messages(GROUP)[seen:] if m["text"].startswith("📊")), None),
                                   30, "the tally", bot)
                tally_seconds = telegram.arrived[(GROUP, tally["message_id"])] - closed
                seen, moved = in_group(telegram, "/next")
                step = wait_until(lambda: latest_step(telegram, seen), 30, "the step after the tally", bot)
                next_step_seconds = telegram.arrived[(GROUP, step["message_id"])] - moved

                def remedies() -> list[float] | None:
                    last = [telegram.bot_messages(p)[-1] for p in known]
                    if not all(m["text"].startswith(REMEDY_START) for m in last):
                        return None
                    return sorted(telegram.arrived[(p, m["message_id"])] for p, m in zip(known, last))

                sent = wait_until(remedies, timeout, "the remedies in private", bot, 0.05)
                busiest = max(sum(1 for t in sent if first <= t < first + 1) for first in sent)
                rss = peak_rss_mib(bot.pid)
            finally:
                bot.kill()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return BurstResult(
        members=members, votes=len(ids), votes_seconds=votes_seconds, group_calls_while_voting=calls_while_voting,
        cpu_ms_per_vote=cpu * 1000 / len(ids), tally_seconds=tally_seconds, next_step_seconds=next_step_seconds,
        remedies=len(sent), remedies_seconds=sent[-1] - closed, busiest_second=busiest, peak_rss=rss,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="A burst of poll answers in a study group, against the real bot process.")
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--talked", type=int, default=90, help="members who messaged the bot in private first")
    args = parser.parse_args()
    result = run_burst(args.members, args.talked)
    for key, value in asdict(result).items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"votes_per_second: {result.votes_per_second:.1f}")


if __name__ == "__main__":
    main()

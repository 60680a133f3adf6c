"""How long the HTML report takes, and how much memory it needs, as learners grow.

    python -m benchmarks.report_html                   # 1,000 and 10,000 learners: a few minutes
    python -m benchmarks.report_html --sizes 1000,10000,100000 --trace-max 10000

Each size gets a database of synthetic learners who all finished the full lesson
(`dialogues/madman.yaml`) quickly, a few seconds a step. Their events come from the pure
engine (`bot.engine.step`): a few dozen ways through the lesson are played once (all right,
or one wrong answer with its remedy, with different seeds), then stamped with each learner's
id, times and written answer and inserted with plain SQL, a few thousand learners a
transaction. The databases are kept under the temporary folder, one per size, and reused.

The main benchmark (`python -m benchmarks`) also times, through `child(path, False, what)`,
what else an instructor can ask for: the summary (/report, `tutorbot report`), the CSV,
JSON Lines and xAPI exports and one learner's transcript (`OUTPUTS`).

For each size, a fresh process times `write_html` (its output thrown away) and reads its
peak resident size (`resource.getrusage`: the interpreter, SQLite's cache and all); for the
sizes up to `--trace-max`, another process measures tracemalloc's peak (Python's own
allocations during the call), which slows the call about fivefold. Flat figures as the
learners grow mean the report streams.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bot import engine
from bot.engine import Answer, Check, Choose, Continue, Start, State, input_to_dict
from bot.lesson import ChoiceNode, Lesson, MessageNode, WriteNode
from bot.loader import LoadedLesson, load_all
from bot.store import Store

ROOT = Path(__file__).resolve().parent.parent
LESSON_PATH = ROOT / "dialogues" / "madman.yaml"
LESSON_ID = "madman"
CACHE = Path(tempfile.gettempdir()) / "tutorbot-bench"
VERSION = 1  # of the generated data: a change of the generator makes new databases
WAYS = 24  # distinct ways through the lesson, played once each
BATCH = 2000  # learners per transaction
TOKEN = "LEARNER-NUMBER"  # stands for the learner's number in a written answer
START = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
DEFAULT_SIZES = (1_000, 10_000)  # a few minutes on 2 cores; 100,000 takes about half an hour
DEFAULT_TRACE_MAX = 1_000
GOAL_SECONDS = 2.0  # for 1,000 learners

Event = tuple[str | None, str, str, str]  # node before, input, outcome, state (JSON)


def lessons() -> dict[str, LoadedLesson]:
    return load_all([LESSON_PATH])


def play(lesson: Lesson, seed: int, wrong_at: str | None) -> list[Event]:
    """One way through the whole lesson: every graded question right at the first try,
    except `wrong_at` (its wrong answer naming a misconception, if it has one, then the
    remedy and the right answer); a written answer with the learner's number in it."""
    state = State()
    moves: list[Event] = []
    value: engine.Input = Start(seed)
    wrong_done = False
    while True:
        result = engine.step(lesson, state, value)
        moves.append((state.node, json.dumps(input_to_dict(value)), json.dumps(result.outcome), json.dumps(result.state.to_dict())))
        state = result.state
        if state.finished:
            return moves
        node = lesson.nodes[state.node]  # type: ignore[index]
        if isinstance(node, MessageNode):
            value = Continue(node.id)
        elif isinstance(node, ChoiceNode):
            options = list(enumerate(node.options))
            if not node.graded:
                value = Choose(node.id, seed % len(node.options))
            elif node.id == wrong_at and not wrong_done:
                wrong_done = True
                wrong = [i for i, o in options if o.misconception] or [i for i, o in options if not o.correct]
                value = Choose(node.id, wrong[0])
            else:
                value = Choose(node.id, next(i for i, o in options if o.correct))
        elif isinstance(node, WriteNode) and state.checking:
            value = Check(node.id, tuple(range(0, len(node.checklist), 2)))
        elif isinstance(node, WriteNode):
            words = " ".join(["because"] * node.min_words)
            value = Answer(f"Learner {TOKEN} writes: the promise matters as much as the threat, {words}.")
        else:
            raise AssertionError(f"no way on from {node.id}")


def ways(lesson: Lesson, count: int = WAYS) -> list[list[Event]]:
    """`count` ways through the lesson: the first all right, each other one wrong once, at
    each graded question in turn."""
    questions = [n.id for n in lesson.nodes.values() if isinstance(n, ChoiceNode) and n.graded and n.id not in lesson.variant_of]
    return [play(lesson, seed, None if seed == 0 else questions[(seed - 1) % len(questions)]) for seed in range(count)]


def generate(path: Path, learners: int, loaded: dict[str, LoadedLesson] | None = None) -> None:
    """A database at `path` (made anew) of `learners` synthetic learners who each finished
    the full lesson."""
    loaded = loaded or lessons()
    lesson = loaded[LESSON_ID].lesson
    digest = loaded[LESSON_ID].content_hash
    templates = ways(lesson)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    Store(path).close()  # the schema, as a new database gets it
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("PRAGMA synchronous = OFF")
        indexes = [sql for (sql,) in db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL")]
        names = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL")]
        for name in names:  # built again once the rows are in: faster than kept up row by row
            db.execute(f'DROP INDEX "{name}"')
        event_id = 0
        for first in range(0, learners, BATCH):
            events, people, progress = [], [], []
            for number in range(first, min(first + BATCH, learners)):
                learner = f"bench:{number:06d}"
                moves = templates[number % len(templates)]
                began = START + timedelta(seconds=3 * number)
                at = began
                number_text = str(number)
                first_id = event_id + 1
                for index, (node, raw_input, outcome, state) in enumerate(moves):
                    if index:
                        at += timedelta(seconds=3 + (index * 7 + number) % 6)
                    event_id += 1
                    if TOKEN in raw_input:
                        raw_input = raw_input.replace(TOKEN, number_text)
                    if TOKEN in outcome:
                        outcome = outcome.replace(TOKEN, number_text)
                    if TOKEN in state:
                        state = state.replace(TOKEN, number_text)
                    events.append((event_id, learner, LESSON_ID, learner, digest, node, raw_input, outcome, state, at.isoformat(timespec="milliseconds")))
                people.append((learner, f"Learner {number}", began.isoformat(timespec="milliseconds")))
                last = json.loads(state)
                progress.append((
                    learner, LESSON_ID, learner, digest, last["node"], last["section"], last["score"], 1,
                    began.isoformat(timespec="milliseconds"), at.isoformat(timespec="milliseconds"),
                    at.isoformat(timespec="milliseconds"), event_id, state,
                ))
                assert first_id <= event_id
            db.execute("BEGIN")
            db.executemany("INSERT INTO learners (id, name, created_at) VALUES (?, ?, ?)", people)
            db.executemany(
                "INSERT INTO events (id, learner, lesson, chat, lesson_hash, node, input, outcome, state, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                events,
            )
            db.executemany(
                "INSERT INTO progress (learner, lesson, chat, lesson_hash, node, section, score, finished, "
                "started_at, updated_at, finished_at, last_event, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                progress,
            )
            db.execute("COMMIT")
        for sql in indexes:
            db.execute(sql)
        db.execute("PRAGMA journal_mode = WAL")  # as the store keeps it
    finally:
        db.close()


def database(learners: int, loaded: dict[str, LoadedLesson]) -> Path:
    """The cached database for `learners`, generated if missing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"report-v{VERSION}-{learners}.db"
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        began = time.perf_counter()
        print(f"generating {learners:,} learners in {path} ...", file=sys.stderr, flush=True)
        generate(partial, learners, loaded)
        for suffix in ("-wal", "-shm"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
        partial.rename(path)
        print(f"  done in {time.perf_counter() - began:.0f} s ({path.stat().st_size / 2**20:,.0f} MiB)", file=sys.stderr, flush=True)
    return path


class Sink:
    """A text output that counts what it is given and keeps none of it."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def learner_id(number: int) -> str:
    return f"bench:{number:06d}"


def outputs() -> dict[str, Callable[[Store, dict[str, LoadedLesson], Sink], object]]:
    """What an instructor can ask for, by name (`OUTPUTS`), each over the whole database but
    the transcript (one learner's, from the middle of the crowd)."""
    from bot import exports, reports
    from bot.html_report import write_html

    return {
        "html": write_html,
        "summary": lambda store, loaded, sink: reports.summarize(store, loaded),
        "csv": exports.write_csv,
        "jsonl": exports.write_jsonl,
        "xapi": exports.write_xapi,
        "transcript": lambda store, loaded, sink: reports.transcript(store, loaded, learner_id(store_size(store) // 2)),
    }


OUTPUTS = ("summary", "csv", "jsonl", "xapi", "html", "transcript")


def store_size(store: Store) -> int:
    return store.db.execute("SELECT COUNT(*) FROM learners").fetchone()[0]


def measure(path: Path, trace: bool, what: str = "html") -> dict:
    """Make the output `what` (see `outputs`) once from the database at `path` in this process:
    its time, or (`trace`) its tracemalloc peak; the process's peak resident size in both."""
    make = outputs()[what]
    loaded = lessons()
    store = Store(path)
    sink = Sink()
    before = max_rss_mib()
    if trace:
        tracemalloc.start()
    began = time.perf_counter()
    make(store, loaded, sink)
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    if trace:
        tracemalloc.stop()
    store.close()
    return {"seconds": seconds, "chars": sink.chars, "trace_peak": peak, "rss_before": before, "rss": max_rss_mib()}


def child(path: Path, trace: bool, what: str = "html") -> dict:
    """`measure` in a fresh process, so that its peak memory is its own."""
    command = [sys.executable, "-m", "benchmarks.report_html", "--measure", str(path), "--what", what] + (["--trace"] if trace else [])
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report_html", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="numbers of learners, comma-separated (default: %(default)s; try 1000,100000)")
    parser.add_argument("--trace-max", type=int, default=DEFAULT_TRACE_MAX,
                        help="run tracemalloc for sizes up to this many learners (it makes the run ~5x slower; "
                        "default: %(default)s; 0: none)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--what", default="html", choices=OUTPUTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.trace, args.what)))
        return
    sizes = [int(size.strip().replace("_", "")) for size in args.sizes.split(",") if size.strip()]
    loaded = lessons()
    events = len(ways(loaded[LESSON_ID].lesson, 1)[0])
    rows = []
    for size in sizes:
        path = database(size, loaded)
        timed = child(path, trace=False)
        print(f"  {size:,} learners: {timed['seconds']:.2f} s, max RSS {timed['rss']:.1f} MiB", file=sys.stderr, flush=True)
        traced = child(path, trace=True) if size <= args.trace_max else None
        if traced is not None:
            print(f"  {size:,} learners: tracemalloc peak {traced['trace_peak'] / 2**20:.1f} MiB", file=sys.stderr, flush=True)
        rows.append((size, timed, traced))
    print()
    print(f"write_html on the full lesson ({LESSON_ID}, ~{events} events a learner), every learner finished; output thrown away")
    print(f"{'learners':>9} {'time s':>8} {'ms/learner':>10} {'output MiB':>10} {'tracemalloc peak MiB':>20} "
          f"{'max RSS MiB':>11} {'RSS at start MiB':>16}")
    for size, timed, traced in rows:
        peak = "—" if traced is None else f"{traced['trace_peak'] / 2**20:.1f}"
        print(
            f"{size:>9,} {timed['seconds']:>8.2f} {timed['seconds'] * 1000 / size:>10.2f} {timed['chars'] / 2**20:>10.1f} "
            f"{peak:>20} {timed['rss']:>11.1f} {timed['rss_before']:>16.1f}"
        )
    for size, timed, _ in rows:
        if size == 1000:
            verdict = "met" if timed["seconds"] < GOAL_SECONDS else "NOT met"
            print(f"goal, 1,000 learners in under {GOAL_SECONDS:.0f} s: {verdict}")
    print(f"(time and RSS from an untraced run, tracemalloc from another; databases cached in {CACHE})")


if __name__ == "__main__":
    main()

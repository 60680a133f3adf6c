"""Is tutorbot fast under a full class? It, the floor and python-telegram-bot's own way, side by side.

    python -m benchmarks                       # the full run (about 12 minutes on 2 cores)
    python -m benchmarks --quick --repeats 1 --out /tmp/B.md

Runs every measurement `--repeats` times, interleaved (one round of everything, then the
next), prints one table (min / median / max over the repeats; a ratio is taken within each
repeat, between runs made side by side, then summarised), and writes it to BENCHMARKS.md
with the command and the machine. Nothing here asserts a timing.

1. Throughput and latency: `tutorbot run` and the floor (`benchmarks.floor_bot`), each with
   and without a rate limiter, under 50 and 500 learners pressing as fast as replies come,
   against a fake Bot API over HTTP on 127.0.0.1 (see `benchmarks.throughput`).
   Reply latency below the limits: both again, limiter on, under 50 learners who pause
   2.5 s on average before each input (about 20 answers a second offered).
   Stopping under a full queue: tutorbot's 500-learner, limiter-on run ends with SIGTERM,
   timed to the exit, and its outbox is counted then.
2. Scale: tutorbot's cost per answer (CPU, SQLite time) with 50 learners on top of
   databases holding 100 / 10,000 / 100,000 learners' history (made once, cached).
3. python-telegram-bot's ConversationHandler + PicklePersistence (`benchmarks.conversation_bot`)
   with 10,000 users: throughput, and its periodic save.
4. Start-up: launch to the first getUpdates call.
5. Memory: peak resident size under the 500-learner load.
6. Instructor review on 1,000 learners' history: the summary, the CSV, JSON Lines and xAPI
   exports, the HTML report and a transcript (`benchmarks.report_html`, once).
7. A burst in a group: 300 members of a study group answer a live question's poll at once
   (`benchmarks.group_burst`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from benchmarks import group_burst, throughput
from benchmarks.group_burst import BurstResult
from benchmarks.throughput import BenchError, LoadResult
from bot.lesson_cache import LessonCache
from bot.loader import load_all

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Plan:
    loads: tuple[int, ...] = (50, 500)  # learners pressing at once
    window: float = 8.0  # seconds measured after the warm-up
    paced_learners: int = 50  # learners pausing before each input (limiter on): below Telegram's limits
    paced_think: float = 2.5  # their mean pause, seconds: ≈ 20 answers/s offered, each learner under 1 message/s
    paced_window: float = 10.0
    warmup_cap: float = 60.0
    scale_sizes: tuple[int, ...] = (100, 10_000, 100_000)
    scale_learners: int = 50
    scale_window: float = 6.0
    template_learners: int = 6  # learners the real bot takes through the lesson to make the scale databases' template
    conversation_users: int = 10_000
    conversation_learners: int = 50
    conversation_window: float = 6.0
    save_changed: int = 50  # learners who answered since the last periodic save
    save_cap: float = 20.0  # seconds the measured save may take
    report_learners: int = 1_000
    burst_members: int = 300  # members of a study group answering a poll at once
    burst_talked: int = 90  # of them, those who had messaged the bot in private: they get remedies there


FULL = Plan()
QUICK = Plan(
    loads=(5, 10), window=0.7, paced_learners=5, paced_think=0.3, paced_window=0.7, warmup_cap=15.0, scale_sizes=(100, 1_000), scale_learners=5, scale_window=0.7,
    template_learners=2, conversation_users=200, conversation_learners=5, conversation_window=0.7, save_changed=5, save_cap=3.0,
    report_learners=100, burst_members=12, burst_talked=4,
)
KINDS = ("tutorbot", "floor")


def limiter_name(on: bool) -> str:
    return "limiter on" if on else "limiter off"


# --- the table -----------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""
    section: bool = False  # a heading row

    def add(self, value: float | None) -> None:
        if value is not None and not math.isnan(value):
            self.values.append(value)


class Table:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.index: dict[str, Row] = {}
        self.failures: dict[str, str] = {}  # row label -> why it has no figure

    def section(self, title: str) -> None:
        self.rows.append(Row(title, "", section=True))

    def row(self, label: str, unit: str, note: str = "") -> Row:
        if label not in self.index:
            self.index[label] = Row(label, unit, note=note)
            self.rows.append(self.index[label])
        elif note and not self.index[label].note:
            self.index[label].note = note
        return self.index[label]

    def add(self, label: str, unit: str, value: float | None, note: str = "") -> None:
        self.row(label, unit, note).add(value)

    def fail(self, label: str, unit: str, why: str) -> None:
        self.row(label, unit)
        self.failures.setdefault(label, why)

    def markdown(self) -> str:
        lines = ["| Measurement | Unit | min | median | max | n | Note |", "|---|---|--:|--:|--:|--:|---|"]
        for row in self.rows:
            if row.section:
                lines.append(f"| **{row.label}** | | | | | | |")
                continue
            if row.values:
                low, mid, high = min(row.values), statistics.median(row.values), max(row.values)
                show = count if row.unit in COUNTS else number
                cells = [show(low), show(mid), show(high), str(len(row.values))]
            else:
                cells = ["—", "failed" if row.label in self.failures else "—", "—", "0"]
            note = row.note
            if row.label in self.failures:
                note = (note + "; " if note else "") + "FAILED: " + self.failures[row.label][:160]
            lines.append(f"| {row.label} | {row.unit} | " + " | ".join(cells) + f" | {note.replace('|', '/')} |")
        return "\n".join(lines)


COUNTS = ("replies",)  # units of rows that count things: whole numbers shown as such


def count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else number(value)


def number(value: float) -> str:
    size = abs(value)
    if size == 0:
        return "0"
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


# --- the runs ------------------------------------------------------------------------------


class Bench:
    def __init__(self, plan: Plan, repeats: int, out: Callable[[str], None]):
        self.plan = plan
        self.repeats = repeats
        self.say = out
        self.table = Table()
        self.loads: dict[tuple[str, int, bool], list[LoadResult | None]] = {}
        self.paced: dict[str, list[LoadResult | None]] = {}  # kind -> the paced runs (limiter on)
        self.scale: dict[int, list[LoadResult | None]] = {}
        self.conversation: list[LoadResult | None] = []
        self.save: dict[str, Any] | None = None
        self.save_error: str | None = None
        self.reports: dict[str, dict[str, Any]] = {}  # output (`report_html.OUTPUTS`) -> its measure
        self.bursts: list[BurstResult | None] = []
        self.report_error: str | None = None
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.scale_dbs: dict[int, tuple[Path, int]] = {}
        self.scale_error: str | None = None
        self.pickle: Path | None = None
        self.pickle_info: dict[str, Any] = {}
        self.conversation_error: str | None = None
        self.generation_seconds = 0.0

    def failed(self, name: str, exc: Exception) -> None:
        """A measurement that did not complete: said now, and listed under the table."""
        self.errors.append(f"{name}: {exc}")
        self.say(f"  {name}: FAILED: {str(exc)[:300]}")

    def load(self, kind: str, learners: int, limiter: bool, window: float, **kwargs: Any) -> LoadResult | None:
        name = f"{kind}, {limiter_name(limiter)}, {learners} learners"
        if kwargs.get("think"):
            name += f" pausing {kwargs['think']:g} s"
        began = time.monotonic()
        try:
            result = throughput.run_load(kind, learners, limiter, window, self.plan.warmup_cap, **kwargs)
        except BenchError as exc:
            return self.failed(name, exc)
        self.say(
            f"  {name}: {result.answers_per_second:.1f} answers/s, p50 {result.latency(0.5):.0f} ms, "
            f"p99 {result.latency(0.99):.0f} ms, {result.cpu_ms_per_answer:.2f} CPU ms/answer, "
            f"{result.calls_per_answer:.2f} calls/answer, {result.peak_rss:.0f} MiB; start {result.startup:.2f} s, "
            f"warm-up {result.warmup:.1f} s{'' if result.warmed else ' (cut short)'}; harness "
            f"{result.harness_cpu / result.seconds:.0%} of a core; {time.monotonic() - began:.0f} s in all"
        )
        if result.stop_seconds is not None:
            self.say(f"    SIGTERM: exited in {result.stop_seconds:.2f} s with code {result.exit_code}; replies waiting in the "
                     f"outbox: {result.waiting_at_stop} at the SIGTERM, {result.left_waiting} at exit")
        return result

    def run(self) -> None:
        try:
            self._run()
        finally:
            if self.pickle is not None:
                shutil.rmtree(self.pickle.parent, ignore_errors=True)

    def _run(self) -> None:
        plan = self.plan
        self.prepare()
        for repeat in range(1, self.repeats + 1):
            self.say(f"round {repeat} of {self.repeats}")
            big = max(plan.loads)
            for learners in plan.loads:
                for limiter in (True, False):
                    for kind in KINDS:
                        key = (kind, learners, limiter)
                        # The longest queue (tutorbot, limiter on, the largest load) ends with SIGTERM, timed.
                        stop = "term" if (kind, learners, limiter) == ("tutorbot", big, True) else "kill"
                        self.loads.setdefault(key, []).append(self.load(kind, learners, limiter, plan.window, stop=stop))
            for kind in KINDS:  # below the limits: learners who pause before each input, limiter on
                self.paced.setdefault(kind, []).append(
                    self.load(kind, plan.paced_learners, True, plan.paced_window, think=plan.paced_think))
            for size, (path, highest) in self.scale_dbs.items():
                result = self.load("tutorbot", plan.scale_learners, False, plan.scale_window, database=path, sql_stats=True,
                                   first_update_id=highest + 1_000)
                try:
                    throughput.remove_live_rows(path, highest)
                except sqlite3.Error as exc:
                    self.errors.append(f"cleaning the {size:,}-learner database: {exc}")
                self.say(f"    (on a database of {size:,} learners)")
                self.scale.setdefault(size, []).append(result)
            if self.pickle is not None:
                self.conversation.append(self.load("conversation", plan.conversation_learners, False, plan.conversation_window,
                                                   database=self.pickle))
                self.say(f"    (ConversationHandler + PicklePersistence, {plan.conversation_users:,} users in the pickle)")
            self.bursts.append(self.burst())
            if repeat == 1:
                self.report_html()  # once: benchmarks.report_html is the reports' own benchmark
        self.measure_save()

    def prepare(self) -> None:
        """The scale databases and the pickle (made once, cached or in a temporary folder)."""
        plan = self.plan
        # Compiled once, as an installed package is (pip compiles what it installs, the floor's
        # python-telegram-bot included); else a setting such as PYTHONDONTWRITEBYTECODE has
        # every launch compile tutorbot from source.
        subprocess.run([sys.executable, "-m", "compileall", "-q", "bot", "benchmarks"], cwd=ROOT, capture_output=True)
        # The lesson validated once, as a bot that has started before has it (bot.lesson_cache).
        load_all([throughput.LESSON_PATH], LessonCache(throughput.LESSON_CACHE))
        began = time.monotonic()
        try:
            for size in plan.scale_sizes:
                self.scale_dbs[size] = throughput.scale_database(size, self.say, plan.template_learners)
        except (BenchError, sqlite3.Error, OSError) as exc:
            self.scale_error = f"{type(exc).__name__}: {exc}"
            self.errors.append(f"making the scale databases: {self.scale_error}")
            self.say(f"  making the scale databases FAILED: {exc}")
        self.generation_seconds = time.monotonic() - began
        folder = Path(tempfile.mkdtemp(prefix="tutorbot-bench-pickle-"))
        self.pickle = folder / "conversation.pickle"
        command = [sys.executable, "-m", "benchmarks.conversation_bot", "--prefill", str(self.pickle), "--users", str(plan.conversation_users)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            self.conversation_error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
            self.errors.append(f"prefilling the pickle: {self.conversation_error}")
            shutil.rmtree(folder, ignore_errors=True)
            self.pickle = None
        else:
            self.pickle_info = json.loads(done.stdout.strip().splitlines()[-1])

    def measure_save(self) -> None:
        if self.pickle is None:
            return
        plan = self.plan
        self.say(f"timing one periodic save of PicklePersistence ({plan.conversation_users:,} users, "
                 f"{plan.save_changed} learners changed, capped at {plan.save_cap:.0f} s) ...")
        command = [sys.executable, "-m", "benchmarks.conversation_bot", "--measure-save", str(self.pickle),
                   "--changed", str(plan.save_changed), "--cap", str(plan.save_cap)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=plan.save_cap * 4 + 120)
        if done.returncode != 0:
            self.save_error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
            self.errors.append(f"timing the periodic save: {self.save_error}")
            return
        self.save = json.loads(done.stdout.strip().splitlines()[-1])
        self.say(f"  {self.save}")

    def burst(self) -> BurstResult | None:
        plan = self.plan
        try:
            result = group_burst.run_burst(plan.burst_members, plan.burst_talked)
        except BenchError as exc:
            return self.failed("group burst", exc)
        self.say(
            f"  group burst: {result.votes} votes handled in {result.votes_seconds:.2f} s, {result.cpu_ms_per_vote:.2f} CPU ms/vote, "
            f"{result.group_calls_while_voting} calls to the group meanwhile; tally {result.tally_seconds:.2f} s after the close, "
            f"next step {result.next_step_seconds:.2f} s after /next; {result.remedies} remedies, the last "
            f"{result.remedies_seconds:.2f} s after the close (at most {result.busiest_second} in a second); {result.peak_rss:.0f} MiB"
        )
        return result

    def report_html(self) -> None:
        """benchmarks.report_html's timing of each instructor output, if that module offers it."""
        report_html = report_timer()
        if report_html is None:
            return
        try:
            path = report_html.database(self.plan.report_learners, report_html.lessons())
            for what in report_html.OUTPUTS:
                self.reports[what] = measured = report_html.child(path, False, what)
                self.say(f"  {what}, {self.plan.report_learners:,} learners: {measured['seconds']:.2f} s")
        except Exception as exc:  # noqa: BLE001
            self.report_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.errors.append(f"instructor review: {self.report_error}")

    # --- the table

    def build_table(self) -> Table:
        plan, table = self.plan, self.table
        for learners in plan.loads:
            table.section(f"Throughput and latency: {learners} learners pressing as fast as replies come "
                          f"({plan.window:g} s measured after a warm-up)")
            for limiter in (True, False):
                for kind in KINDS:
                    prefix = f"{kind}, {limiter_name(limiter)}, {learners} learners"
                    runs = self.loads.get((kind, learners, limiter), [])
                    note = self.warm_note(runs)
                    metrics = [
                        ("answers/s", "1/s", lambda r: r.answers_per_second),
                        ("reply latency p50", "ms", lambda r: r.latency(0.5)),
                        ("reply latency p99", "ms", lambda r: r.latency(0.99)),
                        ("CPU per answer", "ms", lambda r: r.cpu_ms_per_answer),
                        ("Telegram calls per answer", "calls", lambda r: r.calls_per_answer),
                        ("answerCallbackQuery per answer", "calls", lambda r: r.acq_per_answer),
                        ("peak RSS", "MiB", lambda r: r.peak_rss),
                        ("longest wait of an unanswered input at the window's end", "s", lambda r: r.longest_wait),
                    ]
                    notes = {"answers/s": note, "Telegram calls per answer": self.calls_note(runs)}
                    for name, unit, get in metrics:
                        self.fill(f"{prefix}: {name}", unit, runs, get, notes.get(name, ""))
                for name, get in (("answers/s", lambda r: r.answers_per_second), ("CPU per answer", lambda r: r.cpu_ms_per_answer)):
                    label = f"tutorbot ÷ floor, {limiter_name(limiter)}, {learners} learners: {name}"
                    self.ratio_rows(label, self.loads.get(("tutorbot", learners, limiter), []),
                                    self.loads.get(("floor", learners, limiter), []), get)
        self.paced_table()
        big = max(plan.loads)
        self.stop_table()
        table.section(f"Memory: peak resident size under the {big}-learner load")
        for limiter in (True, False):
            self.ratio_rows(f"tutorbot ÷ floor peak RSS, {limiter_name(limiter)}, {big} learners",
                            self.loads.get(("tutorbot", big, limiter), []), self.loads.get(("floor", big, limiter), []),
                            lambda r: r.peak_rss)
        table.section("Start-up: launch to the first getUpdates call (every launch of the throughput runs, a new database each; tutorbot compiled to bytecode first, as an installed package is, and its lesson validated at an earlier start, as a restarted bot's is)")
        starts = {kind: [r.startup for key, runs in self.loads.items() if key[0] == kind for r in runs if r] for kind in KINDS}
        for kind in KINDS:
            label = f"{kind}: start-up"
            for value in starts[kind]:
                table.add(label, "s", value)
            if not starts[kind]:
                table.fail(label, "s", "no launch reached getUpdates")
        if starts["tutorbot"] and starts["floor"]:
            table.add("tutorbot ÷ floor start-up (medians)", "×",
                      statistics.median(starts["tutorbot"]) / statistics.median(starts["floor"]))
        else:
            table.fail("tutorbot ÷ floor start-up (medians)", "×", "a start-up is missing")
        self.scale_table()
        self.conversation_table()
        self.burst_table()
        report_html = report_timer()
        if report_html is not None:  # else skipped: nothing to time the reports with
            table.section(f"Instructor review on {plan.report_learners:,} learners' history, every one through the full lesson "
                          "(benchmarks.report_html, once; each in a fresh process)")
            for what in report_html.OUTPUTS:
                label = f"{REVIEW_OUTPUTS.get(what, what)}, {plan.report_learners:,} learners"
                measured = self.reports.get(what)
                if measured is None:
                    table.fail(label, "s", self.report_error or "not measured")
                    continue
                size = f"{measured['chars'] / 2**20:.1f} MiB of text" if measured["chars"] else ""
                table.add(label, "s", measured["seconds"], size)
        return table

    def paced_table(self) -> None:
        plan, table = self.plan, self.table
        n, think = plan.paced_learners, plan.paced_think
        table.section(f"Reply latency below the limits: {n} learners, each pausing {think:g} s on average before each "
                      f"input (about {n / think:.0f} answers/s offered; limiter on; {plan.paced_window:g} s measured)")
        for kind in KINDS:
            runs = self.paced.get(kind, [])
            prefix = f"{kind}, {limiter_name(True)}, {n} learners pausing {think:g} s"
            metrics = [
                ("answers/s", "1/s", lambda r: r.answers_per_second, self.warm_note(runs)),
                ("reply latency p50", "ms", lambda r: r.latency(0.5), ""),
                ("reply latency p99", "ms", lambda r: r.latency(0.99), "goal < 1 s" if kind == "tutorbot" else ""),
                ("reply latency max", "ms", lambda r: r.latency(1.0), ""),
                ("CPU per answer", "ms", lambda r: r.cpu_ms_per_answer, ""),
            ]
            for name, unit, get, note in metrics:
                self.fill(f"{prefix}: {name}", unit, runs, get, note)

    def stop_table(self) -> None:
        plan, table = self.plan, self.table
        big = max(plan.loads)
        table.section(f"Stopping under a full queue: SIGTERM at the end of the {big}-learner, limiter-on window")
        runs = self.loads.get(("tutorbot", big, True), [])
        done = [r for r in runs if r is not None and r.stop_seconds is not None]
        note = "goal ≤ 15 s; what is not sent stays in the outbox for the next start"
        codes = [r.exit_code for r in done if r.exit_code != 0]
        if codes:
            killed = sum(r.exit_code == -signal.SIGKILL for r in done)
            note += f"; exit code {', '.join(str(code) for code in codes)} in {len(codes)} of {len(done)} runs"
            if killed:
                note += f" (killed after {throughput.TERM_CAP:.0f} s: it had not exited)"
        waiting = [r.waiting_at_stop for r in done if r.waiting_at_stop is not None]
        if done and all(r.left_waiting is None for r in done):
            table.failures["tutorbot: replies waiting in the outbox at exit"] = "its outbox could not be read after the exit"
        self.fill("tutorbot: exit after SIGTERM", "s", runs, lambda r: r.stop_seconds, note)
        self.fill("tutorbot: replies waiting in the outbox at exit", "replies", runs, lambda r: r.left_waiting,
                  f"{statistics.median(waiting):,.0f} waiting at the SIGTERM (median)" if waiting else "")

    def burst_table(self) -> None:
        plan, runs = self.plan, self.bursts
        self.table.section(
            f"A burst in a group: {plan.burst_members} members answer a live question's poll at once, 1 in "
            f"{group_burst.REVOTE_EVERY} twice (benchmarks.group_burst; limiter on; a new database each time)"
        )
        done = [r for r in runs if r is not None]
        busiest = f"; at most {max(r.busiest_second for r in done)} sent in any second" if done else ""
        metrics = [
            ("all votes handled", "s", lambda r: r.votes_seconds, f"{done[0].votes} votes" if done else ""),
            ("votes handled a second", "1/s", lambda r: r.votes_per_second, ""),
            ("CPU per vote", "ms", lambda r: r.cpu_ms_per_vote, ""),
            ("Bot API calls to the group while the votes came", "calls", lambda r: r.group_calls_while_voting,
             "a vote costs the group nothing"),
            ("from the close (/next) to the tally in the group", "s", lambda r: r.tally_seconds, ""),
            ("from the next /next to the next step", "s", lambda r: r.next_step_seconds, ""),
            ("from the close to the last remedy in private", "s", lambda r: r.remedies_seconds,
             f"{plan.burst_talked} members who had messaged the bot chose wrong: each gets a remedy{busiest}"),
            ("peak RSS", "MiB", lambda r: r.peak_rss, ""),
        ]
        for name, unit, get, note in metrics:
            self.fill(f"group burst, {plan.burst_members} members: {name}", unit, runs, get, note)

    def warm_note(self, runs: list[LoadResult | None]) -> str:
        done = [r for r in runs if r]
        if not done:
            return ""
        cut = sum(not r.warmed for r in done)
        steps = statistics.median(1 + r.answers / r.learners for r in done)  # the warm-up round, then the window
        note = (f"warm-up {statistics.median(r.warmup for r in done):.1f} s; covers each learner's first ≈{steps:.1f} steps; "
                f"the fake and the learners used {statistics.median(r.harness_cpu / r.seconds for r in done):.0%} of a core")
        if cut:
            note += f"; {cut} warm-up(s) cut short at {self.plan.warmup_cap:.0f} s"
        return note

    @staticmethod
    def calls_note(runs: list[LoadResult | None]) -> str:
        """The calls per answer by method, over all the runs (getUpdates left out)."""
        done = [r for r in runs if r]
        answers = sum(r.answers for r in done)
        if not answers:
            return ""
        total: dict[str, int] = {}
        for result in done:
            for method, count in result.calls.items():
                total[method] = total.get(method, 0) + count
        shown = sorted(((m, n) for m, n in total.items() if m != "getUpdates"), key=lambda item: -item[1])
        return ", ".join(f"{method} {count / answers:.2f}" for method, count in shown) + f"; getUpdates {total.get('getUpdates', 0) / answers:.2f}"

    def fill(self, label: str, unit: str, runs: list[Any], get: Callable[[Any], float | None], note: str = "") -> None:
        """A row of `get(run)` for each run that succeeded (runs: LoadResult or BurstResult, None if failed)."""
        row = self.table.row(label, unit, note)
        for result in runs:
            if result is not None:
                row.add(get(result))
        if not row.values:
            self.table.fail(label, unit, ("no value" if any(runs) else "no run succeeded") if runs else "not run")

    def ratio_rows(self, label: str, a: list[LoadResult | None], b: list[LoadResult | None], get: Callable[[LoadResult], float]) -> None:
        row = self.table.row(label, "×")
        for x, y in zip(a, b):
            if x is not None and y is not None:
                row.add(ratio(get(x), get(y)))
        if not row.values:
            self.table.fail(label, "×", "a run of the pair failed")

    def scale_table(self) -> None:
        plan, table = self.plan, self.table
        table.section(f"Scale: tutorbot with {plan.scale_learners} learners on top of a database holding many learners' "
                      f"history (half finished the lesson; {plan.scale_window:g} s measured; SQLite calls timed)")
        limiter = "limiter off" if throughput.product_reads_rate_limit() else "limiter on (the product ignores TUTORBOT_RATE_LIMIT)"
        for size in plan.scale_sizes:
            runs = self.scale.get(size, [])
            prefix = f"tutorbot on {size:,} learners' history"
            path = self.scale_dbs.get(size, (None, 0))[0]
            size_note = f"database {throughput.database_size_mib(path):,.0f} MiB" if path is not None and path.exists() else ""
            self.fill(f"{prefix}: CPU per answer", "ms", runs, lambda r: r.cpu_ms_per_answer, f"{limiter}; {size_note}")
            self.fill(f"{prefix}: SQLite time per answer", "ms", runs, lambda r: r.sql_per_answer("seconds") * 1000)
            self.fill(f"{prefix}: of which commits", "ms", runs, lambda r: r.sql_per_answer("commit_seconds") * 1000)
            self.fill(f"{prefix}: SQL statements per answer", "stmts", runs, lambda r: r.sql_per_answer("statements"))
            self.fill(f"{prefix}: of which not transaction control", "stmts", runs,
                      lambda r: r.sql_per_answer("statements") - r.sql_per_answer("control"),
                      "goal ≤ 6; BEGIN, SAVEPOINT, RELEASE, COMMIT and ROLLBACK left out (the floor's BEGIN is implicit)")
            self.fill(f"{prefix}: commits per answer", "commits", runs, lambda r: r.sql_per_answer("commits"), "goal ≤ 1")
            self.fill(f"{prefix}: answers/s", "1/s", runs, lambda r: r.answers_per_second)
            self.fill(f"{prefix}: start-up", "s", runs, lambda r: r.startup)
            if self.scale_error and not runs:
                for suffix in ("CPU per answer", "SQLite time per answer"):
                    table.failures[f"{prefix}: {suffix}"] = self.scale_error
        small, large = min(plan.scale_sizes), max(plan.scale_sizes)
        for name, get in (("CPU per answer", lambda r: r.cpu_ms_per_answer), ("SQLite time per answer", lambda r: r.sql_per_answer("seconds"))):
            self.ratio_rows(f"{name}, {large:,} ÷ {small:,} learners", self.scale.get(large, []), self.scale.get(small, []), get)
            table.row(f"{name}, {large:,} ÷ {small:,} learners", "×").note = "goal ≤ 1.1×"

    def conversation_table(self) -> None:
        plan, table = self.plan, self.table
        users = plan.conversation_users
        table.section(f"python-telegram-bot ConversationHandler + PicklePersistence (defaults: one file, saved every 60 s), "
                      f"{users:,} users in the pickle, {plan.conversation_learners} learners, no limiter")
        runs = self.conversation
        prefix = f"ConversationHandler, {users:,} users"
        note = "between periodic saves (none falls in the window)"
        self.fill(f"{prefix}: answers/s", "1/s", runs, lambda r: r.answers_per_second, note)
        self.fill(f"{prefix}: reply latency p50", "ms", runs, lambda r: r.latency(0.5))
        self.fill(f"{prefix}: reply latency p99", "ms", runs, lambda r: r.latency(0.99))
        self.fill(f"{prefix}: CPU per answer", "ms", runs, lambda r: r.cpu_ms_per_answer)
        self.fill(f"{prefix}: Telegram calls per answer", "calls", runs, lambda r: r.calls_per_answer)
        self.fill(f"{prefix}: peak RSS", "MiB", runs, lambda r: r.peak_rss)
        self.fill(f"{prefix}: start-up (reads the pickle)", "s", runs, lambda r: r.startup)
        nearest = min(plan.scale_sizes, key=lambda size: abs(math.log(size) - math.log(users)))
        self.ratio_rows(f"tutorbot on {nearest:,} learners' history ÷ ConversationHandler: CPU per answer",
                        self.scale.get(nearest, []), runs, lambda r: r.cpu_ms_per_answer)
        save = self.save
        labels = [
            ("pickle file", "MiB"),
            ("one whole-file write", "ms"),
            ("one periodic save after learners answered", "s"),
            ("whole-file writes in that save", "writes"),
            ("that save, per learner who answered", "ms"),
        ]
        if save is None:
            for name, unit in labels:
                table.fail(f"{prefix}: {name}", unit, self.save_error or self.conversation_error or "not measured")
            return
        changed = save["changed"]
        capped = f" (capped: {changed} of {save['asked']} learners measured)" if changed < save["asked"] else ""
        table.add(f"{prefix}: pickle file", "MiB", save["bytes"] / 2**20)
        table.add(f"{prefix}: one whole-file write", "ms", save["one_write_seconds"] * 1000, "the event loop is blocked meanwhile")
        table.add(f"{prefix}: one periodic save after learners answered", "s", save["save_seconds"],
                  f"{changed} learners answered since the last save{capped}; due every 60 s")
        table.add(f"{prefix}: whole-file writes in that save", "writes", save["writes"],
                  "each changed user's data, chat data and conversation rewrites the file")
        table.add(f"{prefix}: that save, per learner who answered", "ms", save["save_seconds"] * 1000 / max(changed, 1),
                  "× learners active in a minute = the save; over 60 s the bot does nothing else")


REVIEW_OUTPUTS = {
    "summary": "summary (/report, tutorbot report)",
    "csv": "CSV gradebook (export)",
    "jsonl": "JSON Lines event log (export)",
    "xapi": "xAPI statements (export)",
    "html": "HTML report (export)",
    "transcript": "one learner's transcript (/transcript)",
}


def report_timer() -> Any:
    """`benchmarks.report_html` if it offers what times the instructor's outputs for N learners
    (`database(n, lessons())`, `child(path, trace, what)` and `OUTPUTS`), else None (the rows are skipped)."""
    try:
        from benchmarks import report_html
    except Exception:  # noqa: BLE001 - another module, possibly mid-change: no row then
        return None
    if all(callable(getattr(report_html, name, None)) for name in ("database", "child", "lessons")) and hasattr(report_html, "OUTPUTS"):
        return report_html
    return None


# --- the report -----------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import telegram

    return {
        "CPU": f"{model}, {os.cpu_count()} cores",
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "python-telegram-bot": telegram.__version__,
        "SQLite": sqlite3.sqlite_version,
        "OS": f"{platform.system()} {platform.release()}",
    }


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def write_report(path: Path, bench: Bench, table: Table, argv: list[str], began: datetime, seconds: float,
                 load_before: str, load_after: str) -> str:
    plan = bench.plan
    command = "python -m benchmarks" + ("" if not argv else " " + shlex.join(argv))
    info = machine()
    lines = [
        "# Benchmarks",
        "",
        "Is tutorbot fast under a full class? The real `tutorbot run` process against the floor (the leanest",
        "correct python-telegram-bot bot doing the same job per update) and python-telegram-bot's own",
        "ConversationHandler + PicklePersistence, side by side in one run. Made by `benchmarks/__main__.py`;",
        "nothing here is asserted by the tests.",
        "",
        f"- Command: `{command}` ({bench.repeats} repeat{'s' if bench.repeats != 1 else ''}, interleaved; took {seconds / 60:.1f} min"
        + (f", of which {bench.generation_seconds / 60:.1f} min making the scale databases" if bench.generation_seconds > 30 else "")
        + ")",
        f"- Date: {began.strftime('%Y-%m-%d %H:%M UTC')}",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- Load average (1, 5, 15 min) before: {load_before}; after: {load_after} (other work on the machine slows every row alike)",
        "- The limiter switch: " + (
            "the product reads TUTORBOT_RATE_LIMIT" if throughput.product_reads_rate_limit()
            else "the product does not read TUTORBOT_RATE_LIMIT yet, so tutorbot's \"limiter off\" rows ran with its limiter on"
        ),
        "",
        table.markdown(),
        "",
        "## How it is measured",
        "",
        "- Each bot runs as its own process against a fake Bot API served over HTTP on 127.0.0.1 (tests/fake_telegram.py).",
        "  Learners are scripted in a closed loop: the moment the reply to a learner's input reaches the fake, the",
        "  learner's next input is queued (tutorbot's learners follow dialogues/madman.yaml, any option of a question,",
        "  a 25-word written answer; one who reaches the end is replaced by a new learner; the floor's learners tap its",
        "  one button).",
        "- A run: launch; at the first getUpdates every learner sends /start; warm up for one round (until the bot has",
        f"  sent as many replies as there are learners, at most {plan.warmup_cap:.0f} s: a closed loop at its steady state, where",
        "  latency ≈ learners ÷ answers a second); then measure a fixed window. An answer is a learner input whose reply",
        "  (the message showing the next step) arrived in the window. Latency: from the input being queued at the fake",
        "  to that reply arriving there (replies arriving in the window). The longest wait: the oldest input still without",
        "  a reply at the window's end (a sign of some learners waiting much longer than others). CPU: the bot process's",
        "  user + system time (/proc/<pid>/stat) in the window ÷ answers. Telegram calls: the bot's Bot API calls in the",
        "  window other than getUpdates and answerCallbackQuery ÷ answers. Peak RSS: VmHWM at the window's end. The bot",
        "  is killed (SIGKILL) after each run, but for one (see stopping, below). A run covers each learner's first few",
        "  steps (the answers/s note says how many): with 500 learners that is /start and the lesson's first steps, with",
        "  50 about the first ten; the per-answer figures are for those steps.",
        "- Limiter on: python-telegram-bot's AIORateLimiter with Telegram's limits (30 messages a second overall); it",
        "  caps a bot at 30 ÷ (calls per answer) answers a second whatever its speed.",
        f"- Reply latency below the limits: the same kind of run, limiter on, but each of {plan.paced_learners} learners pauses",
        f"  before every input (/start included) for a random time, {plan.paced_think:g} s on average (exponentially distributed,",
        f"  drawn anew each time), so about {plan.paced_learners / plan.paced_think:.0f} answers a second are offered (Telegram allows 30 messages a",
        f"  second overall) and each learner sends about {1 / plan.paced_think:.1f} a second (Telegram allows about 1 a second in one",
        "  chat). The throughput rows above offer more than the limits allow, so their latency is mostly time in a queue;",
        "  here it is the bot's own. Latency counts from the input being sent (after the pause) to its reply; max is the",
        f"  slowest reply in the {plan.paced_window:g} s window.",
        f"- Stopping under a full queue: tutorbot's {max(plan.loads)}-learner, limiter-on run (the longest queue) ends with SIGTERM",
        "  instead of SIGKILL, the learners stopped and the fake still answering. Exit after SIGTERM: from the signal to",
        f"  the process's exit (it is killed after {throughput.TERM_CAP:.0f} s if still running, and the note says so). Replies waiting:",
        "  rows of its outbox neither sent nor given up on, counted in its database after the exit (and, in the note,",
        "  at the SIGTERM); they are sent at the next start.",
        f"- Scale: the databases are made from a template the real bot wrote ({plan.template_learners} learners through the whole",
        "  lesson, right at the first try about four times in five), copied with new ids by plain SQL (learners, events,",
        "  progress, outbox; no inbox rows and no text of sent replies: the product forgets handled updates and drops that",
        "  text after 48 hours, and this history is 400 days old); half the learners finished, the others stopped part-way. They are made once and cached in the temporary",
        "  folder; what the live learners add is deleted after each run. SQLite time: every sqlite3 call of the bot process",
        "  timed through a `sitecustomize` (a Connection subclass), so these CPU rows include that overhead at every size.",
        "- ConversationHandler: states are the lesson's nodes, progress in user_data, PicklePersistence at its defaults;",
        "  its periodic save is timed in a separate process (one `Application.update_persistence()`).",
        f"- A burst in a group: `tutorbot run` (limiter on) on a new database; {plan.burst_talked} of the {plan.burst_members} members",
        "  message the bot in private first (/help); an admin starts `/study madman-core` in the group and moves on to",
        "  the first graded question's quiz poll; every member votes at once (the ones who messaged the bot, and every",
        f"  third of the others, choose a wrong option; 1 in {group_burst.REVOTE_EVERY} changes their mind with a second vote); the admin",
        "  closes the question (/next) and moves on (/next). Votes handled: from the first vote sent to the last one stored",
        "  as handled (the bot's database read every 10 ms). Times at the group: when the fake received the message.",
        f"- Instructor review: a database of {plan.report_learners:,} synthetic learners who each went through the full lesson",
        "  (benchmarks.report_html: events played by the pure engine, a few dozen ways through, stamped per learner);",
        "  each output made once in a fresh process, over everything (the transcript: one learner's), its text thrown away.",
        "- Ratios are taken within each repeat (runs made side by side), then summarised.",
    ]
    if bench.errors:
        lines += ["", "## Failures in this run", ""] + [f"- {error[:400]}" for error in bench.errors]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds each (the smoke test)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every measurement (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="where to write the table (default: BENCHMARKS.md)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    began, clock = datetime.now(timezone.utc), time.monotonic()
    load_before = load_average()
    bench = Bench(QUICK if args.quick else FULL, args.repeats, say)
    try:
        bench.run()
    except KeyboardInterrupt:
        say("interrupted: writing what was measured")
        bench.errors.append("interrupted")
    except Exception:  # noqa: BLE001 - write what was measured, and say what broke
        bench.errors.append(traceback.format_exc().strip().splitlines()[-1])
        say(traceback.format_exc())
    table = bench.build_table()
    text = write_report(args.out, bench, table, argv, began, time.monotonic() - clock, load_before, load_average())
    print(text)
    say(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

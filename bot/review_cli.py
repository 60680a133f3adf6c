"""The instructor's commands of `tutorbot`: `report`, `transcript` and `export`, over the
event log (`bot.reports`), with the same figures the bot shows in Telegram.

The operator of the database sees everything; who may see what in Telegram is
`bot.access`. A file export is written to a temporary file beside the target and moved
into place when complete, so a failed export never leaves half a file.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TextIO

import click

from bot import reports
from bot.reports import Filters
from bot.store import Store

FORMATS = ("csv", "jsonl", "xapi", "html")


def filter_options(command: Callable) -> Callable:
    """--lesson, --chat, --since and --db, shared by the commands here."""
    for option in reversed([
        click.option("--lesson", help="Only this lesson (its id)."),
        click.option("--chat", help='Only this chat, e.g. "tg:-100123" for a group.'),
        click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]), help="Only events on or after this date (UTC)."),
        click.option("--db", "database", type=click.Path(readable=False, path_type=Path), help="Database file [default: tutorbot.db]."),
        click.option("--dialogues", type=click.Path(exists=True, readable=False, path_type=Path), help="Folder or file of lessons."),
    ]):
        command = option(command)
    return command


@contextmanager
def opened(database: Path | None, dialogues: Path | None) -> Iterator[tuple[Store, dict]]:
    """The store and the lessons, or one clear error."""
    from bot.cli import load_lessons, load_settings, store_for_reading

    settings = load_settings(database=database, dialogues=dialogues)
    store = store_for_reading(settings.database)  # (a missing database is the first thing said)
    try:
        lessons = load_lessons([settings.dialogues])
        yield store, lessons
    finally:
        store.close()


def filters_of(lesson: str | None, chat: str | None, since: datetime | None, lessons: dict, learner: str | None = None) -> Filters:
    if lesson is not None and lesson not in lessons:
        raise click.ClickException(f"no lesson '{lesson}'; lessons: {', '.join(sorted(lessons))}")
    return Filters(lesson, chat, since.strftime("%Y-%m-%dT%H:%M:%S") if since else None, learner)


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


@click.command()
@filter_options
def report(lesson: str | None, chat: str | None, since: datetime | None, database: Path | None, dialogues: Path | None) -> None:
    """Each lesson's summary: who started and finished, time, score, the questions and
    misconceptions learners miss, reflections waiting for review."""
    with opened(database, dialogues) as (store, lessons):
        summaries = reports.summarize(store, lessons, filters_of(lesson, chat, since, lessons))
        if not summaries:
            click.echo("No learner has started a lesson (with these filters).")
            return
        for summary in summaries:
            loaded = lessons[summary.lesson].lesson
            median = f"{summary.median_minutes:.1f} min" if summary.median_minutes is not None else "–"
            mean = f"{summary.mean_score:.2f} of {summary.questions_total}" if summary.mean_score is not None else "–"
            click.echo(f"\n{summary.title} ({summary.lesson})")
            click.echo(f"  learners: {summary.who()}; median time to finish {median}; "
                       f"mean first-try score {mean}; reflections waiting for review {summary.reflections_waiting}")
            click.echo(f"\n  {'question':<60} {'answered':>8} {'facility':>8} {'discr.':>6}")
            for question in summary.questions.values():
                d = summary.discrimination(question.node)
                ask = reports.shorten(question.ask.strip(), 58)
                click.echo(f"  {ask:<60} {question.answered:>8} {percent(question.facility):>8} {'–' if d is None else f'{d:.2f}':>6}")
            click.echo("  (facility: share right at the first try; discr.: point-biserial correlation with the "
                       "first-try score, over learners who finished)")
            if summary.misconceptions:
                click.echo("\n  misconceptions chosen (learners):")
                for idea, count in summary.misconceptions.most_common():
                    click.echo(f"  {count:>5}  {idea}: {loaded.lesson.argument_map.get(idea, '')}")


@click.command()
@click.argument("learner")
@filter_options
def transcript(learner: str, lesson: str | None, chat: str | None, since: datetime | None, database: Path | None, dialogues: Path | None) -> None:
    """One learner's whole history in order (LEARNER: their id, e.g. tg:123456 or local:me):
    every step shown, every answer with the time it took, every piece of feedback."""
    with opened(database, dialogues) as (store, lessons):
        filters = filters_of(lesson, chat, since, lessons)
        lines = reports.transcript(store, lessons, learner, filters)
        if not lines:
            hint = ""
            if not learner.startswith(("tg:", "local:")):  # a bare name: perhaps its prefix was left out
                meant = [f"{prefix}:{learner}" for prefix in ("local", "tg")]
                found = [name for name in meant if reports.transcript(store, lessons, name, filters)]
                hint = f"; did you mean {found[0]}?" if found else "; learners are named tg:<telegram id> or local:<name>"
            raise click.ClickException(f"no history for {learner!r} (with these filters){hint}")
        for line in lines:
            click.echo(reports.plain(line))


@click.command()
@click.option("--format", "form", type=click.Choice(FORMATS), required=True, help="csv: a gradebook; jsonl: every event; xapi: xAPI 1.0.3 statements; html: a report that opens offline.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, readable=False, allow_dash=True), required=True, help="The file to write; - for standard output.")
@filter_options
def export(form: str, output: str, lesson: str | None, chat: str | None, since: datetime | None, database: Path | None, dialogues: Path | None) -> None:
    """Write the progress logs to a file, for spreadsheets, LMSs and people."""
    from bot import exports, html_report

    writers = {"csv": exports.write_csv, "jsonl": exports.write_jsonl, "xapi": exports.write_xapi, "html": html_report.write_html}
    to_stdout = output == "-"  # the usual convention; a file named - is ./-
    path = Path(output)
    with opened(database, dialogues) as (store, lessons):
        filters = filters_of(lesson, chat, since, lessons)
        if not to_stdout and not path.parent.is_dir():
            raise click.ClickException(f"no folder {path.parent} to write {path.name} in")
        show = sys.stderr.isatty()
        done = {"n": 0}

        def progress(n: int) -> None:
            done["n"] = n
            if show:
                click.echo(f"\r  {n:,} written…", err=True, nl=False)

        def write(out: TextIO) -> object:
            return writers[form](store, lessons, out, filters=filters, progress=progress)

        # A CSV file starts with a byte-order mark: Excel reads UTF-8 (names in Hebrew, emoji) only after one.
        count = write_stdout(write) if to_stdout else write_file(path, write, "utf-8-sig" if form == "csv" else "utf-8")
        if show:
            click.echo("", err=True)
        unit = {"csv": "rows", "jsonl": "events", "xapi": "statements"}.get(form)
        what = f"{count:,} {unit}" if unit and isinstance(count, int) else "the report"
        # With the export on standard output, the summary goes to stderr, out of its way.
        click.echo(f"wrote {what} to {'standard output' if to_stdout else output}", err=to_stdout)


def write_file(output: Path, write: Callable[[TextIO], object], encoding: str = "utf-8") -> object:
    """`write` into a temporary file beside `output`, moved into place when complete."""
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent or ".")
    try:
        with os.fdopen(handle, "w", encoding=encoding, newline="") as out:
            count = write(out)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as an ordinary new file (mkstemp makes it private)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count


def write_stdout(write: Callable[[TextIO], object]) -> object:
    """`write` to standard output, as UTF-8 whatever the locale; a reader that stops early
    (`| head`) ends the command quietly, as it would any other."""
    stdout = sys.stdout.buffer
    out = io.TextIOWrapper(stdout, encoding="utf-8", newline="", write_through=False)
    try:
        count = write(out)
        out.flush()
    except BrokenPipeError:
        # Nothing more can be written; point stdout at /dev/null so that closing it at exit is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        sys.exit(1)
    finally:
        out.detach()  # leave the real stdout open
    return count

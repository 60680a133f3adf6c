"""The `tutorbot` command: play, check, lessons, graph, inbox and run (and the instructor's
report, transcript and export, from `bot.review_cli`).

A thin shell over the library: library errors become click errors here, at the edge,
so a user sees one clear line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from bot.database_file import DatabaseError, open_database, single_instance, writable
from bot.engine import graded_questions
from bot.lesson import ChoiceNode, EndNode, WriteNode
from bot.lesson_cache import LessonCache
from bot.loader import LessonError, LoadedLesson, load_all
from bot.settings import Settings, SettingsError
from bot.startup import settled
from bot.store import MIGRATION_SET, MIGRATIONS, Store
from bot.tutor import Tutor
from bot.validate import estimated_minutes


def load_settings(**overrides: object) -> Settings:
    try:
        settings = Settings.from_environment()
    except SettingsError as exc:
        raise click.ClickException(f"bad setting: {exc}") from None
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def report_problems(exc: LessonError) -> NoReturn:
    """Broken dialogue files as `tutorbot check` shows them: every problem on stdout, one a
    line, the count on stderr, and exit 1."""
    for problem in exc.problems:
        click.echo(str(problem))
    click.echo(f"{len(exc.problems)} problem(s) found.", err=True)
    sys.exit(1)


def load_lessons(paths: list[Path], cache_dir: Path | None = None) -> dict[str, LoadedLesson]:
    """All lessons, or every problem printed and exit 1. With `cache_dir`, a lesson
    validated before comes from the cache there (`bot.lesson_cache`)."""
    try:
        return load_all(paths, None if cache_dir is None else LessonCache(cache_dir))
    except LessonError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(f"{len(exc.problems)} problem(s) in the dialogue files; nothing was started")


def check_default_lesson(settings: Settings, lessons: dict[str, LoadedLesson]) -> None:
    """A TUTORBOT_DEFAULT_LESSON that names no lesson (a typo, or a lesson removed) stops
    `run` and `play` at start, rather than being passed over or told to a group on /assign.
    Left unset, the default `madman` may be missing from a folder of one's own lessons."""
    if "default_lesson" in settings.model_fields_set and settings.default_lesson not in lessons:
        raise click.ClickException(
            f"bad setting: TUTORBOT_DEFAULT_LESSON: no lesson '{settings.default_lesson}'; there are: {', '.join(sorted(lessons))}"
        )


class ReadOnlyStore(Store):
    """A store that reads a database it may not write: opened read-only, never migrated."""

    def _open(self) -> None:
        assert self.path is not None
        self.db = open_database(self.path, MIGRATION_SET, [step.__name__ for step in MIGRATIONS], read_only=True)


def store_for_reading(path: Path) -> Store:
    """The store for a command that only reads (report, inbox…): as any other when the file
    may be written (an older one is brought up to date), else read-only; or one clear error."""
    with database_errors():
        if not path.exists():
            raise click.ClickException(f"no database at {path}: give its path with --db")
        return Store(path) if path.is_dir() or writable(path) else ReadOnlyStore(path)


@contextmanager
def database_errors() -> Iterator[None]:
    """A database path that cannot be used becomes one clear line and exit 1."""
    try:
        yield
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None


def describe(loaded: LoadedLesson) -> str:
    lesson = loaded.lesson
    nodes = lesson.nodes.values()
    questions = graded_questions(lesson)  # the count a learner's score is out of
    own = sum(isinstance(n, WriteNode) or (isinstance(n, ChoiceNode) and not n.graded) for n in nodes)
    endings = sum(isinstance(n, EndNode) for n in nodes)
    minutes = estimated_minutes(lesson)
    count = len(lesson.nodes)
    yours = f" (+ {own} for your own view)" if own else ""
    return (
        f"{count} node{'s' * (count != 1)}, {questions} question{'s' * (questions != 1)}{yours}, "
        f"{endings} ending{'s' * (endings != 1)}, about {minutes} minute{'s' * (minutes != 1)}"
    )


def learner_name(name: str) -> str:
    """A --learner name: some visible text, not blank."""
    if not name.strip():
        raise click.BadParameter("give a name, e.g. --learner ann (it keeps learners apart in one database)")
    if not name.isprintable():
        raise click.BadParameter("a name cannot hold control characters such as a newline or a tab")
    return name


def pick_lesson(lessons: dict[str, LoadedLesson], wanted: str | None, fallback: str) -> str:
    if wanted is not None:
        if wanted not in lessons:
            raise click.ClickException(f"no lesson '{wanted}'; there are: {', '.join(sorted(lessons))}")
        return wanted
    return fallback if fallback in lessons else sorted(lessons)[0]


class LazyGroup(click.Group):
    """A command group whose `lazy` commands ("name": "module:attribute") are imported only
    when run or listed, so that `tutorbot run` does not load the instructor's reports."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attribute = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    lazy={name: f"bot.review_cli:{name}" for name in ("report", "transcript", "export")},
)
@click.pass_context
def main(ctx: click.Context) -> None:
    """A tutoring bot that teaches people to follow and judge an argument.

    With no command: run the Telegram bot if TELEGRAM_BOT_TOKEN is set, else play the
    lesson here in the terminal.
    """
    if ctx.invoked_subcommand not in (None, "run", "play"):
        settled()  # bot.startup; the long-running commands call it once they have set up
    if ctx.invoked_subcommand is None:
        settings = load_settings()
        if settings.telegram_bot_token is None:
            click.echo("No TELEGRAM_BOT_TOKEN is set, so the lesson plays here in the terminal.")
            ctx.invoke(play)
        else:
            run = main.get_command(ctx, "run")
            if run is None:
                raise click.ClickException("this build has no Telegram front end")
            ctx.invoke(run)


@main.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, readable=False, path_type=Path))
@click.option("--lesson", "lesson_id", help="Lesson id (see `tutorbot lessons`); default: where you were last.")
@click.option("--learner", default="me", show_default=True, callback=lambda _c, _p, v: learner_name(v),
              help="Whose progress this is; keeps learners apart in one database.")
@click.option("--db", "database", type=click.Path(readable=False, path_type=Path), help="Database file [default: tutorbot.db].")
@click.option("--restart", is_flag=True, help="Start the lesson over.")
@click.option("--dialogues", type=click.Path(exists=True, readable=False, path_type=Path), help="Folder or file of lessons.")
def play(
    path: Path | None, lesson_id: str | None, learner: str, database: Path | None, restart: bool, dialogues: Path | None
) -> None:
    """Play a lesson in the terminal. Quit any time (/quit, Ctrl-D, Ctrl-C); run again to resume.

    PATH is a dialogue file to play, wherever it is (`tutorbot play draft.yaml`): it is
    checked first, and a broken one is reported as `tutorbot check` reports it. Without
    PATH the lesson comes from the dialogues folder: --lesson, else where you were last.
    """
    if path is not None and dialogues is not None:
        raise click.UsageError("give a dialogue file or --dialogues, not both")
    settings = load_settings(database=database, dialogues=dialogues)
    if path is not None:
        try:
            lessons = load_all([path])
        except LessonError as exc:
            report_problems(exc)
        lesson_id = pick_lesson(lessons, lesson_id, next(iter(lessons)))
    else:
        lessons = load_lessons([settings.dialogues], settings.cache_dir)
        check_default_lesson(settings, lessons)
        if lesson_id is not None:
            pick_lesson(lessons, lesson_id, settings.default_lesson)
    from bot.console import Console

    with database_errors():
        store = Store(settings.database)
    try:
        again = f"tutorbot play {shlex.quote(str(path))} --restart" if path is not None else None
        console = Console(Tutor(store, lessons), learner, write=click.echo, again=again)
        if lesson_id is None:
            latest = store.latest_progress(console.learner, "console")
            fallback = latest.lesson if latest and latest.lesson in lessons else settings.default_lesson
            lesson_id = pick_lesson(lessons, None, fallback)
        settled()
        console.play(lesson_id, restart=restart)
    finally:
        store.close()


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(readable=False, path_type=Path))
def check(paths: tuple[Path, ...]) -> None:
    """Validate dialogue files (default: the dialogues folder).

    Prints every problem as `file:line: node-id: what is wrong` and exits 1, or one
    summary line per lesson and exits 0.
    """
    targets = list(paths) or [load_settings().dialogues]
    try:
        lessons = load_all(targets)
    except LessonError as exc:
        report_problems(exc)
    for loaded in lessons.values():
        click.echo(f"{loaded.path}: {loaded.lesson.id}: ok: {describe(loaded)}")


@main.command()
@click.option("--dialogues", type=click.Path(exists=True, readable=False, path_type=Path), help="Folder or file of lessons.")
def lessons(dialogues: Path | None) -> None:
    """List the lessons found, with title and size."""
    settings = load_settings(dialogues=dialogues)
    for loaded in load_lessons([settings.dialogues], settings.cache_dir).values():
        click.echo(f"{loaded.lesson.id}: {loaded.lesson.title}")
        click.echo(f"    {describe(loaded)}")


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=False, path_type=Path))
@click.option(
    "--format", "form", type=click.Choice(["dot", "mermaid"]), default="dot", show_default=True,
    help="dot needs Graphviz to draw (`| dot -Tsvg > lesson.svg`); mermaid needs nothing installed "
    "(paste it into a Markdown file that GitHub or GitLab shows, or into mermaid.live).",
)
def graph(path: Path, form: str) -> None:
    """Print a lesson's graph: sections as boxes, right answers solid, wrong ones dashed."""
    from bot.graph import graph_dot, graph_mermaid

    try:
        lesson = next(iter(load_all([path]).values())).lesson
    except LessonError as exc:  # on stderr: stdout is the graph, often piped to dot
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(f"{len(exc.problems)} problem(s) in {path}; no graph drawn") from None
    click.echo(graph_dot(lesson) if form == "dot" else graph_mermaid(lesson))


@main.command()
@click.option("--db", "database", type=click.Path(readable=False, path_type=Path), help="Database file [default: tutorbot.db].")
@click.option("--limit", default=20, show_default=True, help="How many set-aside updates to show.")
def inbox(database: Path | None, limit: int) -> None:
    """What the bot has received and sent: updates waiting or set aside, replies waiting.

    An update that could not be read or handled is set aside (kept with its error) so that
    it never stops the bot; this lists the newest ones with their content."""
    from bot.telegram_bot.inbox import Inbox
    from bot.telegram_bot.outbox import counts as outbox_counts

    settings = load_settings(database=database)
    store = store_for_reading(settings.database)
    try:
        updates = Inbox(store).counts()
        replies = outbox_counts(store)
        click.echo(
            f"{settings.database}: {updates['stored']} update(s) stored, {updates['waiting']} waiting, "
            f"{updates['set aside']} set aside; replies: {replies['waiting']} waiting to be sent, "
            f"{replies['given up']} given up on"
        )
        for row in Inbox(store).set_aside_rows(limit):
            click.echo(f"\nupdate {row['update_id']}, set aside {row['failed_at']}: {row['error']}")
            click.echo(f"  {row['payload'][:500]}")
    finally:
        store.close()


NO_TOKEN = """No Telegram bot token is set.

To run the bot in Telegram:
  1. Open a chat with @BotFather in Telegram, send /newbot and follow its steps.
  2. Put the token it gives you in a file named .env here:
       TELEGRAM_BOT_TOKEN=123456:ABC...
     (see .env.example for every setting), or set it in the environment.
  3. Run `tutorbot run` again.

To try the lesson without Telegram, run `tutorbot play`."""


@main.command()
def run() -> None:
    """Run the Telegram bot (needs TELEGRAM_BOT_TOKEN; see .env.example)."""
    settings = load_settings()
    if settings.telegram_bot_token is None or not settings.telegram_bot_token.get_secret_value().strip():
        click.echo(NO_TOKEN, err=True)
        sys.exit(2)
    if settings.mode == "webhook" and not (settings.webhook_url and settings.webhook_secret):
        raise click.ClickException("webhook mode needs TUTORBOT_WEBHOOK_URL and TUTORBOT_WEBHOOK_SECRET")
    from telegram.error import InvalidToken

    from bot import logs
    from bot.telegram_bot.app import run as run_bot

    secrets = [settings.telegram_bot_token.get_secret_value()]
    if settings.webhook_secret:
        secrets.append(settings.webhook_secret.get_secret_value())
    logs.setup(settings.log_level, secrets)
    lessons = load_lessons([settings.dialogues], settings.cache_dir)
    check_default_lesson(settings, lessons)
    # One bot per database, checked before anything goes over the network.
    with database_errors(), single_instance(settings.database):
        # The bot waits out another process's lock without blocking its event loop (see
        # bot.store.wait_out), so a statement gives up quickly and other chats go on.
        store = Store(settings.database, busy_timeout=0.2)
        settled()
        try:
            run_bot(settings, Tutor(store, lessons))
        except InvalidToken:
            raise click.ClickException("Telegram rejected the token: check TELEGRAM_BOT_TOKEN (from @BotFather)") from None
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            store.close()


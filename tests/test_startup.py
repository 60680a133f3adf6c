"""The `tutorbot` command pauses Python's garbage collector while it starts, and only then.

A bot that kept it paused would never free a cycle again, and grow for as long as it runs;
so each command must have it on by the time it does its work: the bot before it serves,
the terminal lesson before the first step, every other command before it begins.
"""

from __future__ import annotations

import gc
import sys

import pytest

from bot import cli, startup
from bot.console import Console
from bot.telegram_bot import app


@pytest.fixture
def command(monkeypatch, clean_environment, tmp_path):
    """`command(*args)` runs `tutorbot ARGS` through its console entry point, in this process;
    its exit code, and the collector left as it was found."""
    def command(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["tutorbot", *args])
        try:
            startup.main()
        except SystemExit as exc:
            return exc.code or 0
        return 0

    yield command
    gc.enable()
    gc.unfreeze()  # what the command froze was this test process's objects


def test_the_bot_serves_with_the_collector_on(command, monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(app, "run", lambda settings, tutor: seen.append((gc.isenabled(), gc.get_freeze_count())))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("TUTORBOT_DATABASE", str(tmp_path / "bot.db"))
    assert command("run") == 0
    assert len(seen) == 1
    enabled, frozen = seen[0]
    assert enabled, "the bot would serve with the garbage collector off"
    assert frozen > 10_000, "what start-up made is not moved out of the collector's way"
    assert gc.isenabled()


def test_the_bot_without_a_command_serves_with_the_collector_on(command, monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(app, "run", lambda settings, tutor: seen.append(gc.isenabled()))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    assert command() == 0
    assert seen == [True]


@pytest.mark.parametrize("args", [["play", "--lesson", "madman-core"], []])
def test_the_terminal_lesson_plays_with_the_collector_on(command, monkeypatch, args):
    seen = []
    monkeypatch.setattr(Console, "play", lambda self, lesson, restart=False: seen.append(gc.isenabled()))
    assert command(*args) == 0
    assert seen == [True]


def test_a_short_command_works_with_the_collector_on(command, monkeypatch):
    seen = []
    describe = cli.describe
    monkeypatch.setattr(cli, "describe", lambda loaded: seen.append(gc.isenabled()) or describe(loaded))
    assert command("lessons") == 0
    assert seen and all(seen)


@pytest.mark.parametrize("args", [["check"], ["report"], ["--help"], ["no-such-command"], ["play", "--lesson", "nope"]])
def test_every_command_leaves_the_collector_on(command, args):
    command(*args)
    assert gc.isenabled()


def test_a_failing_start_leaves_the_collector_on(command, monkeypatch):
    monkeypatch.setenv("TUTORBOT_RATE_OVERALL", "0")  # refused at start
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    assert command("run") == 1
    assert gc.isenabled()


def test_the_library_alone_never_touches_the_collector():
    frozen = gc.get_freeze_count()
    startup.settled()  # as a command calls it; here nothing paused the collector
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen

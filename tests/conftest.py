"""Shared fixtures: a tiny lesson to tweak, an in-memory store with a fixed clock, the core lesson."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.loader import LoadedLesson, load_text
from bot.store import Store

# No test writes to this machine's cache folder (bot.lesson_cache): the run has its own.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="tutorbot-tests-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)

ROOT = Path(__file__).resolve().parent.parent
CORE_LESSON = ROOT / "dialogues" / "madman-core.yaml"

# Three sections; a graded question with a misconception and a returning remedy, a wrong
# option that asks again, an ungraded poll, a free-text question with a model answer, and an
# end that recalls the learner's own answers.
TINY = """\
lesson:
  id: tiny
  title: A tiny lesson
  description: One question about the madman theory.
  source:
    title: "Why should Iran believe anything the US threatens or promises?"
    author: Andreas Kluth
    publication: Bloomberg Opinion
    date: April 2025
  covers: [C5, M1]
  argument_map:
    C5: "No one yields to someone who won't keep a deal."
    M1: "Misreading: the threats stop being believed."
sections:
  - id: intro
    title: Getting started
    nodes:
      - id: hello
        say: Hello.
  - id: main
    title: Why it backfires
    nodes:
      - id: claim
        covers: [C5]
        say: Acting unpredictable can backfire.
      - id: q1
        covers: [C5]
        ask: Why does it backfire?
        next: poll
        options:
          - text: The threats stop being believed.
            misconception: M1
            feedback: A common reading, but not the column's.
            next: fix-m1
          - text: No one trusts the madman to keep a deal.
            correct: true
            feedback: Right.
          - text: Nobody cares.
            feedback: Not quite.
      - id: fix-m1
        say: The column is about promises.
        returns: true
      - id: poll
        ask: Do you find this convincing?
        graded: false
        options:
          - text: "Yes"
            feedback: Noted.
          - text: "No"
            feedback: Fair enough.
  - id: wrap
    title: In your own words
    nodes:
      - id: reflect
        write: Why does trust matter here?
        min_words: 3
        model_answer: Yielding only pays if the deal is kept.
      - id: done
        end: That's it!
        recall: [poll, reflect]
"""


def tiny_text(*edits: tuple[str, str]) -> str:
    """The tiny lesson's YAML, with each (old, new) replacement applied (old must occur)."""
    text = TINY
    for old, new in edits:
        assert old in text, f"tweak does not apply: {old!r}"
        text = text.replace(old, new)
    return text


def tiny_lesson(*edits: tuple[str, str]) -> LoadedLesson:
    return load_text(tiny_text(*edits), "tiny.yaml")


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self) -> None:
        self.now = datetime(2025, 4, 12, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def store(clock: FixedClock):
    store = Store(":memory:", clock=clock)
    yield store
    store.close()


@pytest.fixture
def tiny() -> LoadedLesson:
    return tiny_lesson()


@pytest.fixture
def lesson_text():
    """`lesson_text(("old", "new"), ...)`: the tiny lesson's YAML, tweaked."""
    return tiny_text


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    """No token or TUTORBOT_* setting leaks in, and no .env or database of the checkout is
    used: for tests that run the `tutorbot` command as a user would."""
    for name in list(os.environ):
        if name.startswith("TUTORBOT_") or name == "TELEGRAM_BOT_TOKEN":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def core_path() -> Path:
    return CORE_LESSON

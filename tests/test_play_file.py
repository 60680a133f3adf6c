"""`tutorbot play PATH`: a dialogue file played from wherever it is, as an author trying a draft would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main

pytestmark = pytest.mark.usefixtures("clean_environment")

# A message, an ungraded poll (every answer goes on, whatever order the options are shown
# in) and an end: Enter, then 1, plays it through.
DRAFT = """\
lesson:
  id: draft
  title: A draft
  description: A lesson still being written.
  source: {title: T, author: A, publication: P, date: "2025-04-01"}
  covers: [C1]
sections:
  - id: main
    title: Main
    nodes:
      - id: hello
        covers: [C1]
        say: Hello from the draft.
      - id: poll
        ask: Do you agree?
        graded: false
        options:
          - text: "Yes"
            feedback: Noted.
          - text: "No"
            feedback: Fair.
      - id: bye
        end: The draft is over.
"""
THROUGH = "\n1\n"
SAVED = "Your place is saved."
FILE = "some/other/dir/draft.yaml"


@pytest.fixture
def draft(tmp_path) -> Path:
    """The draft in a folder of its own, and a broken dialogues/ folder in the working
    directory, which `play FILE` must not even read."""
    path = tmp_path / FILE
    path.parent.mkdir(parents=True)
    path.write_text(DRAFT)
    (tmp_path / "dialogues").mkdir()
    (tmp_path / "dialogues" / "broken.yaml").write_text("lesson: [\n")
    return path


def play(*args: str, input: str = ""):
    return CliRunner().invoke(main, ["play", *args], input=input)


def test_play_a_file_through_to_the_end(draft, tmp_path):
    result = play(FILE, "--db", "t.db", input=THROUGH)
    assert result.exit_code == 0, result.output
    assert result.exception is None
    out = result.stdout
    assert "Hello from the draft." in out and "Do you agree?" in out
    assert out.index("Hello from the draft.") < out.index("Do you agree?") < out.index("The draft is over.")
    assert SAVED not in out
    assert result.stderr == ""
    with sqlite3.connect(tmp_path / "t.db") as db:
        assert db.execute("SELECT learner, lesson, finished FROM progress").fetchall() == [("local:me", "draft", 1)]


def test_play_a_file_by_absolute_path_with_the_default_database(draft, tmp_path):
    result = play(str(draft), input=THROUGH)
    assert result.exit_code == 0, result.output
    assert "The draft is over." in result.stdout
    assert (tmp_path / "tutorbot.db").is_file()


def test_quit_and_resume_a_file(draft):
    first = play(FILE, "--db", "t.db", input="\n/quit\n")
    assert first.exit_code == 0, first.output
    assert first.stdout.rstrip().endswith("Run the same command again to continue where you left off.")
    second = play(FILE, "--db", "t.db", input="1\n")
    assert second.exit_code == 0, second.output
    assert "Welcome back" in second.stdout
    assert "Hello from the draft." not in second.stdout
    assert "The draft is over." in second.stdout


def test_restart_a_file(draft):
    play(FILE, "--db", "t.db", input=THROUGH)
    again = play(FILE, "--db", "t.db", "--restart", input="")
    assert again.exit_code == 0, again.output
    assert "Welcome back" not in again.stdout
    assert "Hello from the draft." in again.stdout


def test_learners_of_a_file_are_kept_apart(draft, tmp_path):
    play(FILE, "--db", "t.db", "--learner", "alice", input=THROUGH)
    play(FILE, "--db", "t.db", "--learner", "bob", input="")
    with sqlite3.connect(tmp_path / "t.db") as db:
        rows = db.execute("SELECT learner, finished FROM progress ORDER BY learner").fetchall()
    assert rows == [("local:alice", 1), ("local:bob", 0)]


def test_lesson_option_may_name_the_files_lesson(draft):
    assert play(FILE, "--lesson", "draft", "--db", "t.db", input=THROUGH).exit_code == 0
    other = play(FILE, "--lesson", "madman", "--db", "t.db")
    assert other.exit_code == 1
    assert "Error: no lesson 'madman'; there are: draft" in other.stderr


def test_the_advice_at_the_end_names_the_file(draft):
    result = play(FILE, "--db", "t.db", input=THROUGH)
    assert f"To go through it again: tutorbot play {FILE} --restart." in result.stdout


# --- a broken or missing file: as `tutorbot check` reports it -----------------------------


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ('date: "2025-04-01"', "date: 2025-04-01", "{f}:5: lesson: 'date' must be text, not the date 2025-04-01; put it in quotes"),
        ('- text: "Yes"', "- text: True", "{f}:18: poll: 'text' must be text, but YAML reads an unquoted True as true or false; put it in quotes"),
        ("        say: Hello from the draft.\n", "        say: Hello from the draft.\n        next: by\n", "{f}:14: hello: no node 'by' for next"),
    ],
)
def test_a_broken_file_is_reported_as_check_reports_it(draft, tmp_path, old, new, line):
    draft.write_text(DRAFT.replace(old, new))
    checked = CliRunner().invoke(main, ["check", FILE])
    played = play(FILE, "--db", "t.db", input=THROUGH)
    assert played.exit_code == checked.exit_code == 1
    assert played.stdout == checked.stdout == line.format(f=FILE) + "\n"
    assert played.stderr == checked.stderr == "1 problem(s) found.\n"
    assert played.exception is None or isinstance(played.exception, SystemExit)
    assert "Traceback" not in played.output and "Input should" not in played.output
    assert not (tmp_path / "t.db").exists()  # nothing was started


def test_a_missing_file_is_reported_as_check_reports_it(tmp_path):
    result = play("nope/draft.yaml", "--db", "t.db")
    assert result.exit_code == 1
    assert result.stdout == "nope/draft.yaml:1: lesson: cannot read file: No such file or directory\n"
    assert result.stderr == "1 problem(s) found.\n"
    assert not (tmp_path / "t.db").exists()


def test_a_file_that_is_not_a_dialogue_file(tmp_path):
    (tmp_path / "notes.txt").write_text(DRAFT)
    result = play("notes.txt", "--db", "t.db")
    assert result.exit_code == 1
    assert result.stdout == "notes.txt:1: lesson: not a dialogue file: a dialogue file's name ends in .yaml or .yml\n"


def test_a_folder_is_not_a_file(draft):
    result = play("some/other/dir")
    assert result.exit_code == 2
    assert "is a directory" in result.stderr


def test_a_file_and_dialogues_together_are_refused(draft, tmp_path):
    result = play(FILE, "--dialogues", "dialogues", "--db", "t.db")
    assert result.exit_code == 2
    assert "give a dialogue file or --dialogues, not both" in result.stderr
    assert not (tmp_path / "t.db").exists()


def test_without_a_file_play_still_uses_the_dialogues_folder(draft, tmp_path):
    # The broken dialogues/ folder of the working directory is the default: it is refused.
    broken = play("--db", "t.db")
    assert broken.exit_code == 1
    assert broken.stderr.startswith("dialogues/broken.yaml:2: lesson: YAML syntax error")
    (tmp_path / "dialogues" / "broken.yaml").unlink()
    result = play("--lesson", "draft", "--dialogues", FILE, "--db", "t.db", input=THROUGH)
    assert result.exit_code == 0, result.output
    assert "The draft is over." in result.stdout


@pytest.mark.parametrize("learner", ["", "   ", "\t", "ann\nbob", "a\x1bb"])
def test_a_blank_or_unprintable_learner_name_is_refused(tmp_path, learner):
    result = CliRunner().invoke(main, ["play", "--lesson", "madman-core", "--learner", learner], input="/quit\n")
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--learner'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "tutorbot.db").exists()  # refused before anything was stored

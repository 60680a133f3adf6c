"""The `tutorbot` command through click's test runner, as a user at a terminal sees it."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3

import click
import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.engine import State, view
from bot.settings import BUNDLED_DIALOGUES

# The core lesson answered right at every first try, one line per step.
RIGHT = "\n\n\n1\n\n2\n2\nAn erratic leader cannot promise to keep a deal, so nobody trusts him.\n"
END_TEXT = "Well done: you have followed the core step of Kluth's argument."
SCORE = "You answered 3 of 3 questions right at the first try."
SAVED = "Your place is saved. Run the same command again to continue where you left off."
WELCOME_BACK = "(Welcome back to “Madman theory: why threats need promises”. You are in part {}.)"
SUMMARY = re.compile(r"^(?P<file>\S+): (?P<id>[a-z0-9][a-z0-9_-]*): ok: \d+ nodes?, \d+ questions?, \d+ endings?, about \d+ minutes?$")


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def play(runner, core_path, tmp_path):
    """`tutorbot play --lesson madman-core --db <tmp>` plus extra arguments, with typed input."""

    def play(*args, input="", db=tmp_path / "t.db"):
        argv = ["play", "--lesson", "madman-core", "--db", str(db), "--dialogues", str(core_path), *args]
        return runner.invoke(main, argv, input=input, catch_exceptions=False)

    return play


# --- check ----------------------------------------------------------------------------


def test_check_clean_file(runner, core_path):
    result = runner.invoke(main, ["check", str(core_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{core_path}: madman-core: ok: 10 nodes, 4 questions, 1 ending, about 5 minutes\n"
    assert result.stderr == ""


def test_check_defaults_to_the_dialogues_folder(runner, core_path, tmp_path):
    folder = tmp_path / "dialogues"
    folder.mkdir()
    shutil.copy(core_path, folder / "madman-core.yaml")
    shutil.copy(core_path, folder / "second.yaml")
    (folder / "second.yaml").write_text((folder / "second.yaml").read_text().replace("id: madman-core", "id: second"))
    result = runner.invoke(main, ["check"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [SUMMARY.match(line)["id"] for line in lines] == ["madman-core", "second"]
    assert lines[0].startswith("dialogues/madman-core.yaml: madman-core: ok: ")


def test_check_every_bundled_lesson_summary_line(runner):
    result = runner.invoke(main, ["check", str(BUNDLED_DIALOGUES)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines and all(SUMMARY.match(line) for line in lines), lines
    assert any(SUMMARY.match(line)["id"] == "madman-core" for line in lines)


SHORT = """\
lesson:
  id: short
  title: Short
  description: One question, two ends.
  source: {title: T, author: A, publication: P, date: D}
  covers: [C1]
sections:
  - id: main
    title: Main
    nodes:
      - id: ready
        covers: [C1]
        ask: Ready?
        options:
          - text: Yes please
            correct: true
            feedback: Good.
            next: bye
          - text: Not yet
            feedback: Fine.
            next: later
      - id: later
        end: See you.
      - id: bye
        end: Bye.
"""


def test_check_summary_counts_and_pluralises(runner, tmp_path, lesson_text):
    (tmp_path / "tiny.yaml").write_text(lesson_text())
    (tmp_path / "short.yaml").write_text(SHORT)
    result = runner.invoke(main, ["check", "tiny.yaml", "short.yaml"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "tiny.yaml: tiny: ok: 7 nodes, 3 questions, 1 ending, about 2 minutes",
        "short.yaml: short: ok: 3 nodes, 1 question, 2 endings, about 1 minute",
    ]


def test_check_broken_files_lists_every_problem(runner, tmp_path, lesson_text):
    (tmp_path / "a.yaml").write_text(
        lesson_text(("        next: q1\n", "        next: q9\n"), ("            correct: true\n", ""))
    )
    (tmp_path / "b.yaml").write_text("lesson: [\n")
    result = runner.invoke(main, ["check", "a.yaml", "b.yaml"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "a.yaml:30: q1: graded question has no correct option",
        "a.yaml:41: fix-m1: no node 'q9' for next",
        "b.yaml:2: lesson: YAML syntax error: expected the node content, but found '<stream end>'",
    ]
    assert result.stderr == "3 problem(s) found.\n"


def test_check_missing_path(runner):
    result = runner.invoke(main, ["check", "nope.yaml"])
    assert result.exit_code == 1
    assert result.stdout == "nope.yaml:1: lesson: cannot read file: No such file or directory\n"


def test_check_folder_without_lessons(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(main, ["check", "empty"])
    assert result.exit_code == 1
    assert result.stdout == "empty:1: lesson: no dialogue files (*.yaml or *.yml) found\n"


# --- lessons --------------------------------------------------------------------------


def test_lessons_lists_title_and_size(runner, core_path):
    result = runner.invoke(main, ["lessons", "--dialogues", str(core_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "madman-core: Madman theory: why threats need promises\n"
        "    10 nodes, 4 questions, 1 ending, about 5 minutes\n"
    )


# --- play -----------------------------------------------------------------------------


def test_play_through_to_the_end(play, tmp_path):
    result = play(input=RIGHT)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("\n=== Part 1 of 4: The question the column asks ===\n")
    assert "Your choice (1-3) > " in out and "Your answer > " in out
    assert END_TEXT in out
    assert SCORE in out
    assert out.rstrip().endswith("To go through it again: tutorbot play --lesson madman-core --restart. Other lessons: tutorbot lessons.")
    assert SAVED not in out
    with sqlite3.connect(tmp_path / "t.db") as db:
        assert db.execute("SELECT finished, score FROM progress").fetchall() == [(1, 3)]


def test_quit_and_resume_across_runs(play):
    first = play(input="\n\n\n/quit\n")
    assert first.exit_code == 0, first.output
    assert first.stdout.rstrip().endswith(SAVED)
    assert "According to the theory, what is unpredictability supposed to achieve?" in first.stdout

    second = play(input="")  # Ctrl-D at once
    assert second.exit_code == 0
    assert second.stdout.startswith("\n" + WELCOME_BACK.format("2 of 4: The madman theory"))
    assert "According to the theory, what is unpredictability supposed to achieve?" in second.stdout
    assert second.stdout.rstrip().endswith(SAVED)

    third = play(input="1\n\n2\n2\nThey cannot trust him to keep a deal, so giving in gains nothing.\n")
    assert third.exit_code == 0
    assert END_TEXT in third.stdout and SCORE in third.stdout


def test_play_with_no_arguments_plays_the_bundled_lesson(runner, tmp_path):
    from bot.loader import load_all

    bundled = load_all([BUNDLED_DIALOGUES])
    expected = bundled["madman"] if "madman" in bundled else bundled["madman-core"]
    lesson = expected.lesson
    result = runner.invoke(main, ["play"], input="")  # in an empty folder: no dialogues/ here
    assert result.exit_code == 0, result.output
    first = view(lesson, State(node=lesson.start_id))
    assert result.stdout.startswith(f"\n=== Part 1 of {first.parts}: {first.section} ===\n")
    assert " ".join(first.text.split()) in " ".join(result.stdout.split())  # folded to the terminal's width
    with sqlite3.connect(tmp_path / "tutorbot.db") as db:
        assert db.execute("SELECT learner, lesson, node FROM progress").fetchall() == [
            ("local:me", lesson.id, lesson.start_id)
        ]


def test_play_without_lesson_resumes_the_last_one(runner, play, tmp_path):
    play(input="\n\n")
    result = runner.invoke(main, ["play", "--db", str(tmp_path / "t.db"), "--dialogues", str(BUNDLED_DIALOGUES)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("\n" + WELCOME_BACK.format("2 of 4: The madman theory"))


def test_restart_starts_over(play):
    play(input="\n\n\n1\n")
    result = play("--restart", input="")
    assert result.stdout.startswith("\n=== Part 1 of 4: The question the column asks ===\n\n\nWelcome! In this short lesson")
    assert "Welcome back" not in result.stdout
    resumed = play(input="")
    assert resumed.stdout.startswith("\n" + WELCOME_BACK.format("1 of 4: The question the column asks"))


def test_learners_are_kept_apart_in_one_database(play, tmp_path):
    play("--learner", "alice", input="\n\n\n")
    bob = play("--learner", "bob", input="")
    assert bob.stdout.startswith("\n=== Part 1 of 4")
    alice = play("--learner", "alice", input="")
    assert alice.stdout.startswith("\n" + WELCOME_BACK.format("2 of 4: The madman theory"))
    me = play(input="")  # the default learner
    assert me.stdout.startswith("\n=== Part 1 of 4")
    with sqlite3.connect(tmp_path / "t.db") as db:
        learners = db.execute("SELECT learner, node FROM progress ORDER BY learner").fetchall()
    assert learners == [("local:alice", "q-madman-aim"), ("local:bob", "welcome"), ("local:me", "welcome")]


def test_default_database_is_created_in_the_working_directory(runner, tmp_path):
    # The autouse fixture has made an empty tmp_path the working directory.
    assert os.getcwd() == str(tmp_path) and not (tmp_path / "tutorbot.db").exists()
    argv = ["play", "--lesson", "madman-core", "--dialogues", str(BUNDLED_DIALOGUES)]
    first = runner.invoke(main, argv, input="\n")
    assert first.exit_code == 0, first.output
    assert (tmp_path / "tutorbot.db").is_file()
    second = runner.invoke(main, argv, input="")
    assert second.stdout.startswith("\n" + WELCOME_BACK.format("1 of 4: The question the column asks"))


def test_play_refuses_a_broken_lesson(runner, tmp_path, lesson_text):
    (tmp_path / "bad.yaml").write_text(lesson_text(("next: poll", "next: pol")))
    result = runner.invoke(main, ["play", "--dialogues", "bad.yaml", "--db", "t.db"], input="\n")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "bad.yaml:29: q1: no node 'pol' for next\n"
        "Error: 1 problem(s) in the dialogue files; nothing was started\n"
    )
    assert not (tmp_path / "t.db").exists()


def test_play_unknown_lesson(play):
    result = play("--lesson", "nope")
    assert result.exit_code == 1
    assert "Error: no lesson 'nope'; there are: madman-core" in result.stderr


def test_bare_command_without_token_plays_in_the_terminal(runner, core_path, tmp_path):
    # In an empty working directory with its own dialogues/ folder (which is then the default).
    (tmp_path / "dialogues").mkdir()
    shutil.copy(core_path, tmp_path / "dialogues" / "madman-core.yaml")
    for env in ({}, {"TELEGRAM_BOT_TOKEN": ""}, {"TELEGRAM_BOT_TOKEN": "  "}, {"TUTORBOT_TELEGRAM_BOT_TOKEN": ""}):
        result = runner.invoke(main, [], input="", env=env, catch_exceptions=False)
        assert result.exit_code == 0, (env, result.output)
        lines = result.stdout.splitlines()
        assert lines[0] == "No TELEGRAM_BOT_TOKEN is set, so the lesson plays here in the terminal."
        assert lines[-1] == SAVED
    assert (tmp_path / "tutorbot.db").is_file()
    assert "Welcome back" in result.stdout  # the same learner, the same default database


# --- help -----------------------------------------------------------------------------


def test_every_command_and_option_has_help(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert main.help and "TELEGRAM_BOT_TOKEN" in main.help
    assert {"play", "check", "lessons"} <= set(main.commands)
    for name, command in main.commands.items():
        assert command.help, f"`tutorbot {name}` has no help text"
        assert name in result.stdout
        own = runner.invoke(main, [name, "--help"])
        assert own.exit_code == 0
        assert command.help.split("\n")[0].strip() in " ".join(own.stdout.split())
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"`tutorbot {name} {param.opts[0]}` has no help text"


def test_graph_prints_the_lesson_as_dot(runner):
    result = runner.invoke(main, ["graph", str(BUNDLED_DIALOGUES / "madman-core.yaml")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith('digraph "madman-core" {') and out.rstrip().endswith("}")
    assert 'subgraph "cluster_2" { label="3. Why it can backfire";' in out
    assert '"q-why-backfire" -> "remedy-m1" [style=dashed, label="1 M1"];' in out
    assert '"q-why-backfire" -> "q-both-halves" [style=solid, label="2"];' in out
    assert '"remedy-m1" -> "q-why-backfire";' in out
    assert '"finish" [shape=doublecircle];' in out


def test_graph_of_a_broken_file_lists_its_problems(runner, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("lesson: [\n")
    result = runner.invoke(main, ["graph", str(broken)])
    assert result.exit_code == 1
    assert f"{broken}:2: lesson: YAML syntax error" in result.output

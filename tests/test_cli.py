"""The `tutorbot` command through click's test runner, as a user at a terminal sees it."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sqlite3

import click
import pytest
from click.testing import CliRunner

from bot import cli
from bot.cli import main
from bot.engine import Answer, Check, Choose, Continue, Start, State, step, view
from bot.lesson import ChoiceNode, EndNode, Lesson, WriteNode
from bot.settings import BUNDLED_DIALOGUES
from bot.tutor import Tutor
from bot.validate import estimated_minutes
from tests.core_lesson import (
    CORE,
    FIRST,
    QUESTIONS,
    REMEDIED,
    RIGHT,
    SCORED,
    START,
)


def _shown_elsewhere(seed: int) -> bool:
    """Whether, for a learner with `seed`, some question shows its right option at another
    number than its place in the file."""
    for node in QUESTIONS.values():
        right = next(i for i, option in enumerate(node.options) if option.correct)
        if CORE.option_order(node, seed).index(right) != right:
            return True
    return False


# The seed every start draws here, so that a script of typed numbers fits the order of the
# options; one that moves some right answer, so that the script proves that a typed number
# picks the option shown with it, not the one at that place in the file.
SEED = next(seed for seed in range(1, 1000) if _shown_elsewhere(seed))
REFLECTION = (
    "An erratic leader cannot promise to keep a deal, so nobody trusts him, and an opponent who gives in "
    "gains nothing for it because the threat may still be carried out afterwards."
)
SCORE = f"You answered {SCORED} of {SCORED} questions right at the first try."
SAVED = "Your place is saved. Run the same command again to continue where you left off."
WELCOME_BACK = f"(Welcome back to “{CORE.title}”. You are in part {{}}.)"
SUMMARY = re.compile(
    r"^(?P<file>\S+): (?P<id>[a-z0-9][a-z0-9_-]*): ok: \d+ nodes?, \d+ questions?(?: \(\+ \d+ for your own view\))?, "
    r"\d+ endings?, about \d+ minutes?$"
)


def where(node_id: str) -> str:
    """ "n of m: Title": the part a step is in, as the welcome back names it."""
    part, parts = CORE.part_of(node_id)
    return f"{part} of {parts}: {CORE.section_of[node_id].title}"


def opens_with_part(out: str, part: str) -> bool:
    """Whether the terminal's output begins with the heading of a part (`part`: "n of m:
    Title"), with or without the progress marks in it ("=== ▰▱▱▱ Part 1 of 4: ... ===")."""
    return re.match(rf"\n=== (?:[▰▱]+ )?Part {re.escape(part)} ===\n", out) is not None


def folded(text: str) -> str:
    """Text with its whitespace folded: the terminal wraps long lines to its width."""
    return " ".join(text.split())


def walk(seed: int = SEED) -> list[tuple[str, str, str]]:
    """(node, kind, the line typed there) for each step of the core lesson, answered right at
    every first try by a learner whose options are ordered by `seed`: Enter at a message, the
    number the right option is shown with, a reflection, the first self-check point."""
    state = step(CORE, State(), Start(seed)).state
    steps = []
    while not state.finished:
        shown = view(CORE, state)
        if shown.kind == "message":
            line, value = "", Continue(shown.node)
        elif shown.kind == "choice":
            position = shown.options.index(RIGHT.get(shown.node, shown.options[0]))
            line, value = str(position + 1), Choose(shown.node, shown.option_id(position))
        elif shown.kind == "text":
            assert len(REFLECTION.split()) >= CORE.nodes[shown.node].min_words
            line, value = REFLECTION, Answer(REFLECTION)
        else:
            line, value = "1", Check(shown.node, (0,))
        steps.append((shown.node, shown.kind, line))
        state = step(CORE, state, value).state
        assert len(steps) < 200, "the walk does not reach the end"
    return steps


def typed(steps: list[tuple[str, str, str]]) -> str:
    return "".join(f"{line}\n" for _, _, line in steps)


WALK = walk()
UNTIL_FIRST = WALK[: next(i for i, (_, kind, _) in enumerate(WALK) if kind == "choice")]  # the steps before the first question
END = next(n for n in CORE.nodes.values() if isinstance(n, EndNode))


def describe(lesson: Lesson) -> str:
    """What `check` and `lessons` say of a lesson's size, counted here from the lesson."""
    nodes = list(lesson.nodes.values())
    graded = [n for n in nodes if isinstance(n, ChoiceNode) and n.graded and n.id not in lesson.variant_of]
    own = [n for n in nodes if isinstance(n, WriteNode) or (isinstance(n, ChoiceNode) and not n.graded)]
    endings = [n for n in nodes if isinstance(n, EndNode)]
    minutes = estimated_minutes(lesson)
    plural = lambda count, word: f"{count} {word}{'s' * (count != 1)}"  # noqa: E731
    yours = f" (+ {len(own)} for your own view)" if own else ""
    return (
        f"{plural(len(nodes), 'node')}, {plural(len(graded), 'question')}{yours}, "
        f"{plural(len(endings), 'ending')}, about {plural(minutes, 'minute')}"
    )


def line_of(text: str, needle: str, after: str = "") -> int:
    """The line number of the first line holding `needle` (below the first holding `after`)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture(autouse=True)
def fixed_seed(monkeypatch):
    """Every start draws `SEED` (instead of a random one), so a script of typed numbers fits."""
    monkeypatch.setattr(cli, "Tutor", functools.partial(Tutor, seeds=lambda: SEED))


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def play(runner, core_path, tmp_path):
    """`tutorbot play --lesson madman-core --db <tmp>` plus extra arguments, with typed input."""

    def play(*args, input="", db=tmp_path / "t.db"):
        argv = ["play", "--lesson", CORE.id, "--db", str(db), "--dialogues", str(core_path), *args]
        return runner.invoke(main, argv, input=input, catch_exceptions=False)

    return play


def test_the_seed_is_the_one_every_start_draws(play, tmp_path):
    play(input="")
    with sqlite3.connect(tmp_path / "t.db") as db:
        (event,) = db.execute("SELECT input FROM events").fetchall()
    assert json.loads(event[0]) == {"kind": "start", "seed": SEED}


# --- check ----------------------------------------------------------------------------


def test_check_clean_file(runner, core_path):
    result = runner.invoke(main, ["check", str(core_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{core_path}: {CORE.id}: ok: {describe(CORE)}\n"
    assert result.stderr == ""


def test_check_defaults_to_the_dialogues_folder(runner, core_path, tmp_path):
    folder = tmp_path / "dialogues"
    folder.mkdir()
    shutil.copy(core_path, folder / "madman-core.yaml")
    shutil.copy(core_path, folder / "second.yaml")
    (folder / "second.yaml").write_text((folder / "second.yaml").read_text().replace(f"id: {CORE.id}", "id: second"))
    result = runner.invoke(main, ["check"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [SUMMARY.match(line)["id"] for line in lines] == [CORE.id, "second"]
    assert lines[0] == f"dialogues/madman-core.yaml: {CORE.id}: ok: {describe(CORE)}"


def test_check_every_bundled_lesson_summary_line(runner):
    result = runner.invoke(main, ["check", str(BUNDLED_DIALOGUES)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines and all(SUMMARY.match(line) for line in lines), lines
    assert any(SUMMARY.match(line)["id"] == CORE.id for line in lines)


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
        # One graded question; the poll and the written answer are for the learner's own view.
        "tiny.yaml: tiny: ok: 7 nodes, 1 question (+ 2 for your own view), 1 ending, about 3 minutes",
        "short.yaml: short: ok: 3 nodes, 1 question, 2 endings, about 1 minute",
    ]


def test_check_broken_files_lists_every_problem(runner, tmp_path, lesson_text):
    broken = lesson_text(("        returns: true\n", "        next: q9\n"), ("            correct: true\n", ""))
    (tmp_path / "a.yaml").write_text(broken)
    (tmp_path / "b.yaml").write_text("lesson: [\n")
    result = runner.invoke(main, ["check", "a.yaml", "b.yaml"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"a.yaml:{line_of(broken, 'options:', after='id: q1')}: q1: graded question has no correct option",
        f"a.yaml:{line_of(broken, 'next: q9')}: fix-m1: no node 'q9' for next",
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
    assert result.stdout == f"{CORE.id}: {CORE.title}\n    {describe(CORE)}\n"


# --- play -----------------------------------------------------------------------------


def test_play_through_to_the_end(play, tmp_path):
    result = play(input=typed(WALK))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert opens_with_part(out, where(START)), out[:200]
    assert f"Your choice (1-{len(QUESTIONS[FIRST].options)}) > " in out
    kinds = {kind for _, kind, _ in WALK}
    assert ("text" not in kinds or "Your answer > " in out) and ("check" not in kinds or "Points your answer makes" in out)
    assert folded(END.end) in folded(out)
    assert SCORE in out
    assert out.rstrip().endswith(f"To go through it again: tutorbot play --lesson {CORE.id} --restart. Other lessons: tutorbot lessons.")
    assert SAVED not in out
    with sqlite3.connect(tmp_path / "t.db") as db:
        assert db.execute("SELECT finished, score FROM progress").fetchall() == [(1, SCORED)]


def test_a_typed_number_picks_the_option_shown_with_it(play, tmp_path):
    """The numbers are those the terminal printed: the right answer's number picks it, as
    the learner's screen shows it (not the option at that place in the file)."""
    result = play(input=typed(WALK))
    for node, kind, line in WALK:
        if kind == "choice":
            shown = view(CORE, State(node=node, seed=SEED))
            assert f"  {line}) {RIGHT.get(node, shown.options[0])}"[:60] in result.stdout, node
    with sqlite3.connect(tmp_path / "t.db") as db:
        chosen = [json.loads(o)["correct"] for (o,) in db.execute("SELECT outcome FROM events WHERE input LIKE '%choose%'")]
    assert False not in chosen and len(chosen) == sum(kind == "choice" for _, kind, _ in WALK)  # (None: ungraded)


def test_quit_and_resume_across_runs(play):
    first = play(input=typed(UNTIL_FIRST) + "/quit\n")
    assert first.exit_code == 0, first.output
    assert first.stdout.rstrip().endswith(SAVED)
    assert folded(QUESTIONS[FIRST].ask) in folded(first.stdout)

    second = play(input="")  # Ctrl-D at once
    assert second.exit_code == 0
    assert second.stdout.startswith("\n" + WELCOME_BACK.format(where(FIRST)))
    assert folded(QUESTIONS[FIRST].ask) in folded(second.stdout)
    assert second.stdout.rstrip().endswith(SAVED)

    third = play(input=typed(WALK[len(UNTIL_FIRST):]))
    assert third.exit_code == 0
    assert folded(END.end) in folded(third.stdout) and SCORE in third.stdout


def test_play_with_no_arguments_plays_the_bundled_lesson(runner, tmp_path):
    from bot.loader import load_all

    bundled = load_all([BUNDLED_DIALOGUES])
    expected = bundled["madman"] if "madman" in bundled else bundled[CORE.id]
    lesson = expected.lesson
    result = runner.invoke(main, ["play"], input="")  # in an empty folder: no dialogues/ here
    assert result.exit_code == 0, result.output
    first = view(lesson, State(node=lesson.start_id))
    assert opens_with_part(result.stdout, f"1 of {first.parts}: {first.section}"), result.stdout[:200]
    assert " ".join(first.text.split()) in " ".join(result.stdout.split())  # folded to the terminal's width
    with sqlite3.connect(tmp_path / "tutorbot.db") as db:
        assert db.execute("SELECT learner, lesson, node FROM progress").fetchall() == [
            ("local:me", lesson.id, lesson.start_id)
        ]


def test_play_without_lesson_resumes_the_last_one(runner, play, tmp_path):
    play(input=typed(WALK[:2]))
    result = runner.invoke(main, ["play", "--db", str(tmp_path / "t.db"), "--dialogues", str(BUNDLED_DIALOGUES)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("\n" + WELCOME_BACK.format(where(WALK[2][0])))


def test_restart_starts_over(play, tmp_path):
    answered = WALK[: len(UNTIL_FIRST) + 1]  # up to the first question, answered
    play(input=typed(answered))
    with sqlite3.connect(tmp_path / "t.db") as db:
        assert db.execute("SELECT node FROM progress").fetchall() == [(WALK[len(answered)][0],)]
    result = play("--restart", input="")
    assert opens_with_part(result.stdout, where(START)), result.stdout[:200]
    assert folded(CORE.nodes[START].text) in folded(result.stdout)
    assert "Welcome back" not in result.stdout
    with sqlite3.connect(tmp_path / "t.db") as db:
        assert db.execute("SELECT node, score FROM progress").fetchall() == [(START, 0)]
    resumed = play(input="")
    assert resumed.stdout.startswith("\n" + WELCOME_BACK.format(where(START)))


def test_learners_are_kept_apart_in_one_database(play, tmp_path):
    play("--learner", "alice", input=typed(UNTIL_FIRST))
    bob = play("--learner", "bob", input="")
    assert opens_with_part(bob.stdout, where(START))
    alice = play("--learner", "alice", input="")
    assert alice.stdout.startswith("\n" + WELCOME_BACK.format(where(FIRST)))
    me = play(input="")  # the default learner
    assert opens_with_part(me.stdout, where(START))
    with sqlite3.connect(tmp_path / "t.db") as db:
        learners = db.execute("SELECT learner, node FROM progress ORDER BY learner").fetchall()
    assert learners == [("local:alice", FIRST), ("local:bob", START), ("local:me", START)]


def test_default_database_is_created_in_the_working_directory(runner, tmp_path):
    # The autouse fixture has made an empty tmp_path the working directory.
    assert os.getcwd() == str(tmp_path) and not (tmp_path / "tutorbot.db").exists()
    argv = ["play", "--lesson", CORE.id, "--dialogues", str(BUNDLED_DIALOGUES)]
    first = runner.invoke(main, argv, input=typed(WALK[:1]))
    assert first.exit_code == 0, first.output
    assert (tmp_path / "tutorbot.db").is_file()
    second = runner.invoke(main, argv, input="")
    assert second.stdout.startswith("\n" + WELCOME_BACK.format(where(WALK[1][0])))


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
    assert f"Error: no lesson 'nope'; there are: {CORE.id}" in result.stderr


@pytest.mark.parametrize("command", [["play"], ["run"]])
def test_a_default_lesson_that_does_not_exist_stops_the_start(runner, core_path, tmp_path, command):
    env = {"TUTORBOT_DEFAULT_LESSON": "madman_core", "TUTORBOT_DIALOGUES": str(core_path), "TUTORBOT_DATABASE": str(tmp_path / "t.db"),
           "TELEGRAM_BOT_TOKEN": "123:abc", "TUTORBOT_BOT_API_BASE_URL": "http://127.0.0.1:9/bot"}
    result = runner.invoke(main, command, input="", env=env)
    assert result.exit_code == 1, result.output
    assert f"Error: bad setting: TUTORBOT_DEFAULT_LESSON: no lesson 'madman_core'; there are: {CORE.id}" in result.stderr
    assert not (tmp_path / "t.db").exists()


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
    assert out.startswith(f'digraph "{CORE.id}" {{') and out.rstrip().endswith("}")
    # A question with a wrong answer that leads to a remedy, which returns to it.
    question = QUESTIONS[REMEDIED]
    section = CORE.section_of[REMEDIED]
    index = CORE.sections.index(section)
    assert f'subgraph "cluster_{index}" {{ label="{index + 1}. {section.title}";' in out
    wrong = next(i for i, o in enumerate(question.options) if o.next and CORE.remedy_chain_end(o.next))
    remedy = question.options[wrong].next
    misconception = question.options[wrong].misconception
    label = f"{wrong + 1} {misconception}" if misconception else f"{wrong + 1}"
    assert f'"{REMEDIED}" -> "{remedy}" [style=dashed, label="{label}"];' in out
    right = next(i for i, o in enumerate(question.options) if o.correct)
    target = CORE.option_target(question, question.options[right])
    assert f'"{REMEDIED}" -> "{target}" [style=solid, label="{right + 1}"];' in out
    back = CORE.remedy_chain_end(remedy)
    assert f'"{back}" -> "{REMEDIED}" [style=dotted];' in out  # the remedy's way back
    assert f'"{END.id}" [shape=doublecircle];' in out


def test_graph_of_a_broken_file_lists_its_problems(runner, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("lesson: [\n")
    result = runner.invoke(main, ["graph", str(broken)])
    assert result.exit_code == 1
    assert f"{broken}:2: lesson: YAML syntax error" in result.output
    assert result.stdout == ""  # stdout is the graph, often piped to dot
    assert f"1 problem(s) in {broken}; no graph drawn" in result.stderr
    assert "nothing was started" not in result.output

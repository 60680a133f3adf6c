"""The checker follows a learner's paths as the engine does: a returning remedy that a right
answer (or any way but a wrong option's `next`) leads to, nodes that only a return to some
other question would reach, and variants met on the lesson's way are refused, each as one
`file:line: node: what is wrong` line.

Each broken lesson is also played through `bot.engine` (validated as a model only, without
the checker), to show that what the checker refuses is what a learner would meet."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bot.cli import main
from bot.engine import Choose, Continue, Start, State, step
from bot.lesson import Lesson
from bot.loader import load_text
from bot.settings import BUNDLED_DIALOGUES
from tests.conftest import tiny_text
from tests.test_validate import problems

CORE = (BUNDLED_DIALOGUES / "madman-core.yaml").read_text()
LOOPS = (
    "a remedy that returns to the question, so the learner would be asked it again and again"
)


def core_text(old: str, new: str) -> str:
    assert CORE.count(old) == 1, old
    return CORE.replace(old, new)


def model(text: str) -> Lesson:
    """The lesson as the engine would run it, without the checker's graph rules."""
    return Lesson.model_validate(yaml.safe_load(text))


def play(lesson: Lesson, state: State, *inputs) -> State:
    for value in inputs:
        state = step(lesson, state, value).state
    return state


def right(lesson: Lesson, node_id: str) -> Choose:
    return Choose(node_id, next(i for i, o in enumerate(lesson.nodes[node_id].options) if o.correct))


# --- 1. a returning remedy that a learner reaches without being sent ---------------------


def test_the_testers_loop_a_right_answer_falling_through_into_a_remedy():
    text = core_text("        next: q-both-halves\n        options:", "        options:")
    assert problems(text, "core.yaml") == [
        f"core.yaml:82: q-why-backfire: a right answer goes on to 'remedy-m1', the node below, {LOOPS}: "
        "give the question a next"
    ]
    lesson = model(text)  # the engine: right answer, remedy, the same question, right answer, ...
    state = play(lesson, State(), Start(), Continue("welcome"), Continue("how-it-works"), Continue("madman-intro"),
                 right(lesson, "q-madman-aim"), Continue("backfire-claim"))
    for _ in range(3):
        state = play(lesson, state, right(lesson, "q-why-backfire"))
        assert state.node == "remedy-m1"
        state = play(lesson, state, Continue("remedy-m1"))
        assert state.node == "q-why-backfire"


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        # The question's own next names the remedy.
        ([("        next: poll\n", "        next: fix-m1\n")],
         f"tiny.yaml:29: q1: a right answer leads to 'fix-m1', {LOOPS}; point only wrong options at it"),
        # The right option's next names the remedy (the engine even notes the question to return to).
        ([("            correct: true\n", "            correct: true\n            next: fix-m1\n")],
         f"tiny.yaml:37: q1: option 2, a right answer, leads to 'fix-m1', {LOOPS}; point only wrong options at a remedy"),
        # A right option leads to a message that reads on into the remedy.
        ([("            correct: true\n", "            correct: true\n            next: lead-in\n"),
          ("      - id: fix-m1\n", "      - id: lead-in\n        say: Think again.\n        next: fix-m1\n      - id: fix-m1\n")],
         f"tiny.yaml:37: q1: option 2, a right answer, leads to 'lead-in', {LOOPS}; point only wrong options at a remedy"),
        # Any answer to an ungraded question is a right one.
        ([('            feedback: Fair enough.\n', '            feedback: Fair enough.\n            next: fix-m1\n')],
         f"tiny.yaml:51: poll: option 2, an answer (the question is ungraded), leads to 'fix-m1', {LOOPS}; "
         "point only wrong options at a remedy"),
    ],
)
def test_a_right_answer_never_leads_into_a_returning_remedy(edits, expected):
    assert problems(tiny_text(*edits), "tiny.yaml") == [expected]


def test_the_right_answer_shown_after_a_second_miss_is_a_right_answer_too():
    """A second miss reveals the right answer and goes where it goes: into the remedy, then
    back to the question, for ever; it is the same mistake, reported once."""
    text = tiny_text(("        next: poll\n", "        next: fix-m1\n"))
    lesson = model(text)
    state = play(lesson, State(), Start(), Continue("hello"), Continue("claim"), Choose("q1", 2), Choose("q1", 2))
    assert state.node == "fix-m1"
    assert play(lesson, state, Continue("fix-m1")).node == "q1"
    assert len(problems(text, "tiny.yaml")) == 1


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        # A written question reads on into the remedy.
        ([("      - id: fix-m1\n", "      - id: think\n        write: Why?\n        model_answer: Because.\n"
           "      - id: fix-m1\n")],
         "tiny.yaml:40: think: leads to 'fix-m1', which returns to the question that sent the learner there, "
         "but no question sends them from here: give this node a next"),
        # A message's next names the middle of a remedy chain.
        ([("            next: fix-m1\n", "            next: lead-in\n"),
          ("      - id: fix-m1\n", "      - id: lead-in\n        say: Think again.\n      - id: fix-m1\n"),
          ("        say: Hello.\n", "        say: Hello.\n        next: lead-in\n")],
         "tiny.yaml:20: hello: leads to 'lead-in', which returns to the question that sent the learner there, "
         "but no question sends them from here: give this node a next"),
    ],
)
def test_reading_on_into_a_remedy_from_any_node_is_refused(edits, expected):
    assert problems(tiny_text(*edits), "tiny.yaml") == [expected]


def test_a_part_may_not_open_with_a_returning_remedy():
    """Looking at a part again (and a learner moved after an edit) starts at its first node,
    sent by no question."""
    text = tiny_text(
        ("      - id: fix-m1\n", "  - id: remedies\n    title: Remedies\n    nodes:\n      - id: fix-m1\n"),
    )
    assert problems(text, "tiny.yaml") == [
        "tiny.yaml:43: fix-m1: part 'remedies' opens with a remedy that returns to a question, but a learner who "
        "looks at the part again starts here, sent by no question: open the part with another node"
    ]


def test_the_check_command_refuses_the_loop_with_exit_1(tmp_path: Path):
    path = tmp_path / "loop.yaml"
    path.write_text(core_text("        next: q-both-halves\n        options:", "        options:"))
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:82: q-why-backfire: a right answer goes on to 'remedy-m1'" in result.output


# --- 2. reachability follows the engine's way back -----------------------------------------


def test_the_testers_lost_question_a_shared_remedy_returns_only_to_its_sender():
    text = core_text("        next: q-both-halves\n        options:", "        next: reflect-c5\n        options:")
    assert problems(text, "core.yaml") == ["core.yaml:112: q-both-halves: cannot be reached from the start ('welcome')"]
    lesson = model(text)  # the engine: the remedy returns to the question that sent the learner, never further
    state = play(lesson, State(), Start(), Continue("welcome"), Continue("how-it-works"), Continue("madman-intro"),
                 right(lesson, "q-madman-aim"), Continue("backfire-claim"), Choose("q-why-backfire", 0))
    assert play(lesson, state, Continue("remedy-m1")).node == "q-why-backfire"


SECOND = (
    "      - id: q2\n"
    "        covers: [C5]\n"
    "        ask: And again?\n"
    "        options:\n"
    "          - text: Threats.\n"
    "            misconception: M1\n"
    "            feedback: No.\n"
    "            next: fix-m1\n"
    "          - text: Promises.\n"
    "            correct: true\n"
    "            feedback: Yes.\n"
)


def test_a_node_reached_only_by_a_return_to_another_question_is_unreachable():
    # q2, placed after the remedy and skipped by q1's next, shares q1's remedy.
    text = tiny_text(("      - id: poll\n", SECOND + "      - id: poll\n"))
    assert problems(text, "tiny.yaml") == ["tiny.yaml:43: q2: cannot be reached from the start ('hello')"]
    # Once a learner can reach q2, the shared remedy serves both.
    text = tiny_text(("      - id: poll\n", SECOND + "      - id: poll\n"), ("        next: poll\n", "        next: q2\n"))
    assert load_text(text, "tiny.yaml").lesson.senders["fix-m1"] == ["q1", "q2"]


def test_a_question_reached_only_by_a_return_to_its_variant_is_unreachable():
    # q1's variant q2 links to the shared remedy; the remedy returns from q2 to q2, so
    # nothing reaches q3, which only a return of the remedy to q3 itself would reach.
    text = tiny_text(
        ("        next: poll\n        options:", "        next: poll\n        variant: q2\n        options:"),
        ("      - id: poll\n", SECOND.replace("ask: And again?\n", "ask: And again?\n        next: poll\n")
         + SECOND.replace("q2", "q3").replace("ask: And again?\n", "ask: Once more?\n        next: poll\n")
         + "      - id: poll\n"),
    )
    assert problems(text, "tiny.yaml") == ["tiny.yaml:56: q3: cannot be reached from the start ('hello')"]


def test_a_variants_wrong_answer_never_takes_its_next():
    """A variant is never a first try: a wrong answer shows the right one and moves on, so a
    node only a variant's wrong option leads to is never shown."""
    variant = (
        "      - id: q1-again\n        covers: [C5]\n        ask: Once more?\n        next: poll\n        options:\n"
        "          - text: Threats.\n            feedback: No.\n            next: aside\n"
        "          - text: Promises.\n            correct: true\n            feedback: Yes.\n"
        "      - id: aside\n        say: An aside.\n        next: poll\n"
    )
    text = tiny_text(
        ("        next: poll\n        options:", "        next: poll\n        variant: q1-again\n        options:"),
        ("      - id: poll\n", variant + "      - id: poll\n"),
    )
    assert problems(text, "tiny.yaml") == ["tiny.yaml:55: aside: cannot be reached from the start ('hello')"]
    lesson = model(text)
    state = play(lesson, State(), Start(), Continue("hello"), Continue("claim"), Choose("q1", 2))
    assert state.node == "q1-again"
    assert play(lesson, state, Choose("q1-again", 0)).node == "poll"


# --- 3. a variant is met only after a wrong answer to its question ------------------------

AGAIN = (
    "      - id: q1-again\n"
    "        covers: [C5]\n"
    "        ask: Once more?\n"
    "        next: poll\n"
    "        options:\n"
    "          - text: Threats.\n"
    "            feedback: No.\n"
    "          - text: Promises.\n"
    "            correct: true\n"
    "            feedback: Yes.\n"
)
WITH_VARIANT = ("        next: poll\n        options:", "        next: poll\n        variant: q1-again\n        options:")
OFF_THE_WAY = (
    "where, as a variant, it counts for nothing: make it a question of its own, or keep it off the way "
    "(only wrong answers here may lead to it)"
)


def test_the_testers_variant_that_is_also_the_next_question():
    text = core_text("        next: q-both-halves\n", "        next: q-both-halves\n        variant: q-both-halves\n")
    assert problems(text, "core.yaml") == [
        "core.yaml:86: q-why-backfire: variant 'q-both-halves' is met on the lesson's way too "
        f"(a right answer here leads to it), {OFF_THE_WAY}"
    ]
    lesson = model(text)  # the engine: all three right, but "2 of 2"
    state = play(lesson, State(), Start(), Continue("welcome"), Continue("how-it-works"), Continue("madman-intro"),
                 right(lesson, "q-madman-aim"), Continue("backfire-claim"), right(lesson, "q-why-backfire"),
                 right(lesson, "q-both-halves"))
    assert state.node == "reflect-c5" and state.score == 2


@pytest.mark.parametrize(
    ("edits", "how"),
    [
        # The question has no next, so its right answers go on to the variant below it.
        ([WITH_VARIANT, ("        next: poll\n        variant", "        variant"), ("      - id: fix-m1\n", AGAIN + "      - id: fix-m1\n")],
         "a right answer here leads to it"),
        # Another node's next names the variant.
        ([WITH_VARIANT, ("      - id: poll\n", AGAIN.replace("next: poll", "next: claim") + "      - id: poll\n"),
          ("        say: Hello.\n", "        say: Hello.\n        next: q1-again\n")],
         "after 'hello'"),
        # The variant is the node below another one.
        ([WITH_VARIANT, ("      - id: claim\n", AGAIN.replace("next: poll", "next: claim") + "      - id: claim\n")],
         "after 'hello'"),
        # The lesson starts with it.
        ([WITH_VARIANT, ("      - id: poll\n", AGAIN.replace("next: poll", "next: hello") + "      - id: poll\n"),
          ("sections:\n", "start: q1-again\nsections:\n")],
         "the lesson starts there"),
    ],
)
def test_a_variant_on_the_lessons_way_is_refused(edits, how):
    text = tiny_text(*edits)
    [line] = problems(text, "tiny.yaml")
    assert line.startswith("tiny.yaml:") and line.endswith(
        f": q1: variant 'q1-again' is met on the lesson's way too ({how}), {OFF_THE_WAY}"
    )


@pytest.mark.parametrize(
    "edits",
    [
        # After a wrong answer without a next.
        [WITH_VARIANT, ("      - id: poll\n", AGAIN + "      - id: poll\n")],
        # After the remedy a wrong answer leads to, shared with another question.
        [WITH_VARIANT, ("      - id: poll\n", AGAIN + SECOND.replace("fix-m1\n", "fix-m1\n").replace(
            "ask: And again?\n", "ask: And again?\n        next: poll\n") + "      - id: poll\n"),
         ("        next: poll\n        variant", "        next: q2\n        variant"),
         ("        ask: Once more?\n        next: poll\n", "        ask: Once more?\n        next: q2\n")],
        # After a message (not a returning remedy) that a wrong answer leads to.
        [WITH_VARIANT, ("      - id: poll\n", "      - id: aside\n        say: Think again.\n        next: q1-again\n"
                        + AGAIN + "      - id: poll\n"), ("            feedback: Not quite.\n", "            feedback: Not quite.\n            next: aside\n")],
    ],
)
def test_a_variant_met_only_after_a_wrong_answer_is_fine(edits):
    load_text(tiny_text(*edits), "tiny.yaml")


def test_a_variant_serves_one_question():
    text = tiny_text(
        WITH_VARIANT,
        ("      - id: poll\n", AGAIN + SECOND.replace("ask: And again?\n", "ask: And again?\n        variant: q1-again\n        next: poll\n")
         + "      - id: poll\n"),
        ("        next: poll\n        variant", "        next: q2\n        variant"),
    )
    assert problems(text, "tiny.yaml") == [
        "tiny.yaml:30: q1: variant 'q1-again' is also the variant of 'q2'; give each question a variant of its own"
    ]


# --- shipped lessons ----------------------------------------------------------------------


def test_the_shipped_lessons_pass(tmp_path: Path):
    result = CliRunner().invoke(main, ["check", str(BUNDLED_DIALOGUES)])
    assert result.exit_code == 0, result.output

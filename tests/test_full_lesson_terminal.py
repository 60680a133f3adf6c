"""The whole lesson in the terminal player, as a learner who answers every question wrong first.

Options are shuffled per learner, and the terminal takes the number an option is *shown*
with. So the learner's seed is fixed here, and the script is worked out from the engine with
the same seed: `view(...).order` maps each shown position to the option's index in the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import bot.cli
from bot.cli import main
from bot.engine import Answer, Check, Choose, Continue, Start, State, graded_questions, step, view
from bot.lesson import ChoiceNode, MessageNode, WriteNode
from bot.loader import load_file
from bot.tutor import Tutor

FULL = Path(__file__).resolve().parent.parent / "dialogues" / "madman.yaml"
SEED = 20250412
REFLECTION = (
    "I think the column is persuasive in parts, because a deal needs trust that promises will be kept, "
    "but the evidence mostly shows inconsistency."
)


def wrong_first(node: ChoiceNode) -> int:
    wrong = [i for i, o in enumerate(node.options) if not o.correct]
    return next((i for i in wrong if node.options[i].misconception), wrong[0])


def wrong_first_script() -> tuple[list[str], dict]:
    """The lines such a learner types, worked out from the lesson itself; and what they meet."""
    lesson = load_file(FULL).lesson
    state = step(lesson, State(), Start(seed=SEED)).state
    lines: list[str] = []
    met = {"revealed": [], "recalled": []}
    while not state.finished:
        node = lesson.nodes[state.node]
        if isinstance(node, MessageNode):
            lines.append("")
            value = Continue(node.id)
        elif isinstance(node, WriteNode) and state.checking:
            lines.append("1 2")
            value = Check(node.id, (0, 1))
        elif isinstance(node, WriteNode):
            lines.append(REFLECTION)
            value = Answer(REFLECTION)
        else:
            assert isinstance(node, ChoiceNode)
            pick = wrong_first(node) if node.graded else 0
            shown = view(lesson, state).order.index(pick)  # the number the learner sees, from 0
            lines.append(str(shown + 1))
            value = Choose(node.id, pick)
        result = step(lesson, state, value)
        met["revealed"] += [o.text for o in result.outputs if getattr(o, "verdict", None) == "reveal"]
        state = result.state
        assert len(lines) < 1000
    end = lesson.nodes[state.node]
    met["recalled"] = [lesson.nodes[r].text for r in end.recall]
    met["graded"] = graded_questions(lesson)
    met["misconceptions"] = set(state.misconceptions)
    lines.append("")  # at the end: Enter, no part to look at again
    return lines, met


@pytest.fixture
def seeded(monkeypatch):
    """The terminal player's learner gets the fixed seed."""
    monkeypatch.setattr(bot.cli, "Tutor", lambda store, lessons: Tutor(store, lessons, seeds=lambda: SEED))


def test_wrong_first_play_through_reaches_the_end(tmp_path: Path, seeded) -> None:
    lines, met = wrong_first_script()
    assert {f"M{i}" for i in range(1, 10)} <= met["misconceptions"]
    result = CliRunner().invoke(
        main,
        ["play", "--lesson", "madman", "--db", str(tmp_path / "t.db"), "--dialogues", str(FULL.parent)],
        input="\n".join(lines) + "\n",
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Your place is saved" not in out  # it ended, it did not run out of input
    assert "Please type" not in out  # every typed number was one the terminal accepted
    assert f"You answered 0 of {met['graded']} questions right at the first try." in out
    for heading in ("Part 1 of", "Kluth's assumptions, weighed", "Reading critically", "Afterwards"):
        assert heading in out
    assert out.count("✗ ") >= met["graded"]
    # Each question missed twice shows its right answer, and the end shows the learner's own
    # opinions and verdict again.
    flat = " ".join(out.split())
    assert len(met["revealed"]) >= met["graded"]
    for revealed in met["revealed"]:
        assert revealed.split("\n")[0].removeprefix("The answer is: ")[:40] in flat
    assert len(met["recalled"]) == 3
    assert REFLECTION in flat, "the verdict is shown back at the end"
    assert " ".join(met["recalled"][0].split())[:60] in flat, "so is the opinion given at the start"

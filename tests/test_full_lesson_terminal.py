"""The whole lesson in the terminal player, as a learner who answers every question wrong first."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bot.cli import main
from bot.engine import Answer, Choose, Continue, Start, State, step
from bot.lesson import ChoiceNode, MessageNode, WriteNode
from bot.loader import load_file

FULL = Path(__file__).resolve().parent.parent / "dialogues" / "madman.yaml"
REFLECTION = "I think the column is persuasive in parts, because a deal needs trust that promises will be kept, but the evidence mostly shows inconsistency."


def wrong_first_script() -> tuple[list[str], int, set[str]]:
    """The lines such a learner types, worked out from the lesson itself; and how many
    graded questions and which misconceptions they meet."""
    lesson = load_file(FULL).lesson
    state = step(lesson, State(), Start()).state
    lines: list[str] = []
    tried: set[str] = set()
    graded = 0
    while not state.finished:
        node = lesson.nodes[state.node]
        if isinstance(node, MessageNode):
            lines.append("")
            value = Continue(node.id)
        elif isinstance(node, WriteNode):
            lines.append(REFLECTION)
            value = Answer(REFLECTION)
        else:
            assert isinstance(node, ChoiceNode)
            wrong = [i for i, o in enumerate(node.options) if not o.correct]
            right = [i for i, o in enumerate(node.options) if o.correct] or [0]
            pick = wrong[0] if node.graded and node.id not in tried else right[0]
            graded += node.graded and node.id not in tried
            tried.add(node.id)
            lines.append(str(pick + 1))
            value = Choose(node.id, pick)
        state = step(lesson, state, value).state
        assert len(lines) < 1000
    return lines, graded, set(state.misconceptions)


def test_wrong_first_play_through_reaches_the_end(tmp_path: Path) -> None:
    lines, graded, misconceptions = wrong_first_script()
    assert {f"M{i}" for i in range(1, 10)} <= misconceptions
    result = CliRunner().invoke(
        main,
        ["play", "--lesson", "madman", "--db", str(tmp_path / "t.db"), "--dialogues", str(FULL.parent)],
        input="\n".join(lines) + "\n",
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Your place is saved" not in out  # it ended, it did not run out of input
    assert f"You answered 0 of {graded} questions right at the first try." in out
    assert "Ideas worth another look:" in out
    for heading in ("Part 1 of", "Reading critically", "Afterwards"):
        assert heading in out
    assert out.count("✗ ") >= graded

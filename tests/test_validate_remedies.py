"""The checker's rules for the lesson's second round: returning remedies, variants, recalls,
quotes and self-checks, each reported once as `file:line: node: what is wrong`."""

from __future__ import annotations

from tests.conftest import tiny_text
from tests.test_validate import problems


def test_a_returning_remedy_no_question_sends_to_cannot_know_where_to_return():
    text = tiny_text(("            next: fix-m1\n", ""))  # q1's wrong option no longer leads to the remedy
    found = problems(text, "tiny.yaml")
    assert found[0] == "tiny.yaml:41: fix-m1: returns: true, but no question's option leads here, so it cannot know where to return"


def test_a_returning_remedy_reached_by_reading_on_is_refused():
    text = tiny_text(("        say: Acting unpredictable can backfire.\n", "        say: Acting unpredictable can backfire.\n        next: fix-m1\n"))
    assert problems(text, "tiny.yaml") == [
        "tiny.yaml:26: claim: leads to 'fix-m1', which returns to the question that sent the learner there, "
        "but no question sends them from here: give this node a next",
    ]


def test_next_and_returns_together_are_refused():
    text = tiny_text(("        returns: true\n", "        returns: true\n        next: q1\n"))
    assert problems(text, "tiny.yaml") == ["tiny.yaml:40: fix-m1: give either next or returns: true, not both"]


def test_a_variant_must_be_another_graded_question():
    text = tiny_text(("        next: poll\n        options:", "        next: poll\n        variant: poll\n        options:"))
    assert problems(text, "tiny.yaml") == ["tiny.yaml:30: q1: variant 'poll' must be a graded question"]
    text = tiny_text(("        next: poll\n        options:", "        next: poll\n        variant: nowhere\n        options:"))
    assert problems(text, "tiny.yaml") == ["tiny.yaml:30: q1: no node 'nowhere' for variant"]


def test_an_end_recalls_only_the_learners_own_answers():
    text = tiny_text(("        recall: [poll, reflect]\n", "        recall: [poll, q1, gone]\n"))
    assert problems(text, "tiny.yaml") == [
        "tiny.yaml:60: done: 'q1' cannot be recalled: only written answers and ungraded questions are the learner's own",
        "tiny.yaml:60: done: no node 'gone' to recall",
    ]


def test_quotes_and_self_checks_are_kept_short():
    long_quote = "word " * 90
    text = tiny_text(("        say: Hello.\n", f"        quote: {{text: {long_quote.strip()}, paragraph: 1}}\n        say: Hello.\n"))
    [line] = problems(text, "tiny.yaml")
    assert line.startswith("tiny.yaml:19: hello: ") and "400" in line
    text = tiny_text(("        say: Hello.\n", "        quote: {text: Words., paragraph: 0}\n        say: Hello.\n"))
    [line] = problems(text, "tiny.yaml")
    assert line.startswith("tiny.yaml:19: hello: ") and "paragraph" in line
    points = ", ".join(f"Point {i}." for i in range(7))
    text = tiny_text(("        min_words: 3\n", f"        min_words: 3\n        checklist: [{points}]\n"))
    [line] = problems(text, "tiny.yaml")
    assert "checklist" in line and "6" in line

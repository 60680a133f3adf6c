"""Answers to the bundled core lesson (madman-core), read from the lesson file itself, for
tests that play it through Telegram or the terminal. Options are shuffled per learner, so
tests pick them by text, never by position."""

from __future__ import annotations

from bot.lesson import ChoiceNode, MessageNode
from bot.loader import load_file
from tests.conftest import CORE_LESSON
from tests.fake_telegram import FakeTelegram

CORE = load_file(CORE_LESSON).lesson
QUESTIONS = {n.id: n for n in CORE.nodes.values() if isinstance(n, ChoiceNode) and n.graded}
RIGHT = {q: next(o.text for o in n.options if o.correct) for q, n in QUESTIONS.items()}
# A wrong answer per question: the one naming a misconception, if any.
WRONG = {
    q: next((o for o in n.options if o.misconception), next(o for o in n.options if not o.correct)).text
    for q, n in QUESTIONS.items()
}
# The first question whose wrong answer leads to a remedy message.
REMEDIED = next(
    q for q, n in QUESTIONS.items()
    for o in n.options
    if o.text == WRONG[q] and isinstance(CORE.nodes.get(o.next or ""), MessageNode)
)
FIRST = next(iter(QUESTIONS))


# Every question with options, graded or not (an opinion poll has no right answer).
CHOICES = {n.id: n for n in CORE.nodes.values() if isinstance(n, ChoiceNode)}


def question_key(message: dict) -> str:
    """Which of the core lesson's questions a message asks (its node id); a graded one
    first, else an ungraded one (an opinion poll)."""
    for choices in (QUESTIONS, CHOICES):
        found = next((q for q, n in choices.items() if n.ask[:60] in message["text"]), None)
        if found is not None:
            return found
    raise AssertionError(f"no question of the core lesson in {message['text']!r}")


def answer(key: str, wrong: bool = False) -> str:
    """The option (its text) to pick at question `key`: its right answer, or `wrong` its
    WRONG one; at an ungraded question (an opinion poll), the first option."""
    if key not in QUESTIONS:
        return CHOICES[key].options[0].text
    return WRONG[key] if wrong else RIGHT[key]


def option_data(message: dict, option_text: str) -> str:
    """The button data for the option `option_text`: on its own button, or its number's."""
    buttons = FakeTelegram.buttons(message)
    for label, data in buttons:
        if label == option_text:
            return data
    for line in message["text"].splitlines():
        number, _, text = line.partition(". ")
        if text == option_text:
            return dict(buttons)[number]
    raise AssertionError(f"no option {option_text!r} in {message['text']!r}")


def option_number(text: str, option_text: str) -> str:
    """The number a terminal shows `option_text` with, in the printed `text` ("  2) ...")."""
    for line in text.splitlines():
        number, _, rest = line.strip().partition(") ")
        if number.isdigit() and rest and option_text.startswith(rest.strip()):
            return number
    raise AssertionError(f"no option {option_text!r} in {text!r}")


# --- where a learner goes, for tests that walk the lesson's first steps ------------------


def _opening() -> list[str]:
    """The steps from the start that a learner goes through by Continue alone, and the
    first step after them that asks for more (a question)."""
    ids = [CORE.start_id]
    while isinstance(CORE.nodes[ids[-1]], MessageNode) and len(ids) <= len(CORE.nodes):
        ids.append(CORE.targets(CORE.nodes[ids[-1]])[0])
    return ids


OPENING = _opening()  # e.g. [welcome, how-it-works, madman-intro, <the first question>]
START = CORE.start_id
# The score a learner's result is out of: every graded question (a variant stands in for its original).
SCORED = sum(1 for q in QUESTIONS if q not in CORE.variant_of)


def text_of(node_id: str, length: int = 40) -> str:
    """The beginning of a step's text, as a learner reads it (in a Telegram message's plain text)."""
    return CORE.nodes[node_id].text.strip()[:length]


def part_of(node_id: str) -> str:
    """ "part n of m" for the part a step is in, as the progress line and /progress say it."""
    part, parts = CORE.part_of(node_id)
    return f"part {part} of {parts}"

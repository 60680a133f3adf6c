"""The lesson engine: a pure function from (lesson, learner state, input) to (new state, outputs).

No I/O, no clock, no randomness: the terminal player, the Telegram bot and the tests all
drive this same function, and replaying a learner's stored inputs rebuilds their state.
An input that does not fit the current step raises an `InputError` and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from bot.lesson import ChoiceNode, EndNode, Lesson, MessageNode, Node, WriteNode

# --- learner state --------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """Where one learner is in one lesson, and how it has gone. JSON-able via `to_dict`."""

    node: str | None = None  # None: not started
    section: str | None = None
    finished: bool = False
    score: int = 0  # graded questions answered right at the first try
    attempts: dict[str, int] = field(default_factory=dict)  # answers given, per question
    solved: tuple[str, ...] = ()  # graded questions answered right, in order
    misconceptions: tuple[str, ...] = ()  # misconception ids the learner chose, first time each

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["solved"] = list(self.solved)
        data["misconceptions"] = list(self.misconceptions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        return cls(
            node=data.get("node"),
            section=data.get("section"),
            finished=bool(data.get("finished", False)),
            score=int(data.get("score", 0)),
            attempts=dict(data.get("attempts", {})),
            solved=tuple(data.get("solved", ())),
            misconceptions=tuple(data.get("misconceptions", ())),
        )


# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Begin the lesson from its start, forgetting any earlier state."""


@dataclass(frozen=True)
class Continue:
    """Go on from the message `node`."""

    node: str


@dataclass(frozen=True)
class Choose:
    """Pick option `option` (0-based) of the question `node`."""

    node: str
    option: int


@dataclass(frozen=True)
class Answer:
    """Free text typed in answer to the current step."""

    text: str


@dataclass(frozen=True)
class Resync:
    """The learner's node is gone from an edited lesson: move to the start of their section."""


Input = Start | Continue | Choose | Answer | Resync


def input_to_dict(value: Input) -> dict[str, Any]:
    return {"kind": type(value).__name__.lower(), **asdict(value)}


def input_from_dict(data: dict[str, Any]) -> Input:
    kinds = {cls.__name__.lower(): cls for cls in (Start, Continue, Choose, Answer, Resync)}
    data = dict(data)
    return kinds[data.pop("kind")](**data)


# --- outputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """Information about the lesson itself: a new part begins, the lesson changed."""

    text: str


@dataclass(frozen=True)
class Feedback:
    """The response to an answer."""

    text: str
    verdict: Literal["correct", "wrong", "neutral"]


@dataclass(frozen=True)
class Step:
    """The step the learner is on now, and what it waits for."""

    node: str
    kind: Literal["message", "choice", "text", "end"]
    text: str
    options: tuple[str, ...]
    part: int
    parts: int
    section: str  # the section's title


@dataclass(frozen=True)
class Summary:
    """How the lesson went, shown at its end."""

    score: int
    questions: int
    misconceptions: tuple[str, ...]


Output = Notice | Feedback | Step | Summary


@dataclass(frozen=True)
class Result:
    state: State
    outputs: tuple[Output, ...]
    outcome: dict[str, Any]  # what the event log records of this answer


# --- errors ---------------------------------------------------------------------------


class InputError(Exception):
    """An input that does not fit the learner's current step; nothing changed."""


class NotStarted(InputError):
    """The learner has not started this lesson."""


class LessonFinished(InputError):
    """The lesson is over; only a restart goes on."""


class StaleInput(InputError):
    """The input answers a step other than the current one (an old button)."""


class InvalidOption(InputError):
    """The chosen option does not exist (forged or garbled button data)."""


class UnexpectedInput(InputError):
    """The input is of the wrong kind for this step (e.g. text where a choice is asked)."""


class TooShort(InputError):
    """A free-text answer shorter than the question asks for."""


class NothingToResync(InputError):
    """Resync was asked for, but the learner's node still exists."""


# --- the step function ----------------------------------------------------------------


def step(lesson: Lesson, state: State, value: Input) -> Result:
    """Apply one input. Raise `InputError` (state untouched) if it does not fit."""
    if isinstance(value, Start):
        return _enter(lesson, State(), lesson.start_id, (), {})
    if isinstance(value, Resync):
        return _resync(lesson, state)
    if state.node is None:
        raise NotStarted("the lesson has not been started")
    if state.finished:
        raise LessonFinished("the lesson is finished")
    node = lesson.nodes.get(state.node)
    if node is None:
        raise StaleInput(f"step '{state.node}' is no longer in the lesson")
    if isinstance(value, Continue):
        if value.node != node.id:
            raise StaleInput(f"'{value.node}' is not the current step")
        if not isinstance(node, MessageNode):
            raise UnexpectedInput("this step is not a message to continue from")
        return _enter(lesson, state, lesson.targets(node)[0], (), {})
    if isinstance(value, Choose):
        if value.node != node.id:
            raise StaleInput(f"'{value.node}' is not the current step")
        if not isinstance(node, ChoiceNode):
            raise UnexpectedInput("this step is not a question with options")
        if not 0 <= value.option < len(node.options):
            raise InvalidOption(f"question '{node.id}' has no option {value.option + 1}")
        return _choose(lesson, state, node, value.option)
    if isinstance(value, Answer):
        if not isinstance(node, WriteNode):
            raise UnexpectedInput("this step does not ask for a written answer")
        return _write(lesson, state, node, value.text)
    raise UnexpectedInput(f"unknown input {value!r}")


def view(lesson: Lesson, state: State) -> Step:
    """The learner's current step, to show it (again)."""
    if state.node is None or state.node not in lesson.nodes:
        raise NotStarted("no current step")
    return _view(lesson, lesson.nodes[state.node])


def graded_questions(lesson: Lesson) -> int:
    return sum(1 for n in lesson.nodes.values() if isinstance(n, ChoiceNode) and n.graded)


def _view(lesson: Lesson, node: Node) -> Step:
    part, parts = lesson.part_of(node.id)
    section = lesson.section_of[node.id].title
    if isinstance(node, ChoiceNode):
        options = tuple(option.text for option in node.options)
        return Step(node.id, "choice", node.ask, options, part, parts, section)
    return Step(node.id, node.kind, node.text, (), part, parts, section)


def _enter(lesson: Lesson, state: State, target: str, said: tuple[Output, ...], outcome: dict) -> Result:
    """Move to `target`, announcing a new part and closing the lesson at an end node."""
    node = lesson.nodes[target]
    section = lesson.section_of[target]
    outputs = list(said)
    if section.id != state.section:
        part, parts = lesson.part_of(target)
        outputs.append(Notice(f"Part {part} of {parts}: {section.title}"))
    finished = isinstance(node, EndNode)
    new = replace(state, node=target, section=section.id, finished=finished)
    outputs.append(_view(lesson, node))
    if finished:
        outputs.append(Summary(new.score, graded_questions(lesson), new.misconceptions))
    return Result(new, tuple(outputs), outcome)


def _choose(lesson: Lesson, state: State, node: ChoiceNode, index: int) -> Result:
    option = node.options[index]
    tries = state.attempts.get(node.id, 0) + 1
    attempts = {**state.attempts, node.id: tries}
    first_try = tries == 1
    if node.graded:
        verdict = "correct" if option.correct else "wrong"
    else:
        verdict = "neutral"
    new = replace(state, attempts=attempts)
    if option.correct and node.id not in state.solved:
        new = replace(new, solved=state.solved + (node.id,), score=state.score + (1 if first_try else 0))
    if option.misconception and option.misconception not in state.misconceptions:
        new = replace(new, misconceptions=state.misconceptions + (option.misconception,))
    outcome = {
        "option": index,
        "correct": option.correct if node.graded else None,
        "attempt": tries,
        "misconception": option.misconception,
    }
    target = lesson.option_target(node, option)
    return _enter(lesson, new, target, (Feedback(option.feedback, verdict),), outcome)


def _write(lesson: Lesson, state: State, node: WriteNode, text: str) -> Result:
    text = text.strip()
    if len(text.split()) < node.min_words:
        words = "a word" if node.min_words == 1 else f"{node.min_words} words"
        raise TooShort(f"please write at least {words}")
    said: list[Output] = []
    matched = matching_phrases(node.key_phrases, text)
    if node.key_phrases:
        said.append(Feedback(node.matched if matched else node.unmatched, "neutral"))
    if node.feedback:
        said.append(Feedback(node.feedback, "neutral"))
    attempts = {**state.attempts, node.id: state.attempts.get(node.id, 0) + 1}
    outcome = {"text": text, "matched": matched}
    return _enter(lesson, replace(state, attempts=attempts), lesson.targets(node)[0], tuple(said), outcome)


def matching_phrases(phrases: list[str], text: str) -> list[str]:
    """The key phrases found in `text`: case-insensitive, at a word start ("promise" finds "promises")."""
    folded = " ".join(text.casefold().split())
    return [p for p in phrases if re.search(r"\b" + re.escape(" ".join(p.casefold().split())), folded)]


def _resync(lesson: Lesson, state: State) -> Result:
    if state.node is None or state.node in lesson.nodes:
        raise NothingToResync("the learner's step still exists")
    section = next((s for s in lesson.sections if s.id == state.section), None)
    target = section.nodes[0].id if section else lesson.start_id
    where = "the start of this part" if section else "the start of the lesson"
    notice = Notice(f"This lesson has been updated and your step is gone, so you continue from {where}.")
    # Forget the section so that entering it announces it again.
    return _enter(lesson, replace(state, section=None, finished=False), target, (notice,), {"from": state.node})

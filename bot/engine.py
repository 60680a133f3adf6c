"""The lesson engine: a pure function from (lesson, learner state, input) to (new state, outputs).

No I/O, no clock, no randomness of its own: the terminal player, the Telegram bot and the
tests all drive this same function, and replaying a learner's stored inputs rebuilds their
state. The order of a question's options comes from a seed that the `Start` input carries
(and the state keeps), so it is the same on every replay. An input that does not fit the
current step raises an `InputError` and changes nothing.
"""

from __future__ import annotations

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
    missed: tuple[str, ...] = ()  # graded questions answered wrong at the first try
    seed: int = 0  # orders each question's options for this learner
    back_to: str | None = None  # the question a returning remedy goes back to
    checking: bool = False  # at a written question's self-check, after the answer
    answers: dict[str, str] = field(default_factory=dict)  # written answers and opinions, to recall
    end: str | None = None  # looking at a part again: the end to go back to once out of it

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("solved", "misconceptions", "missed"):
            data[key] = list(data[key])
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
            missed=tuple(data.get("missed", ())),
            seed=int(data.get("seed", 0)),
            back_to=data.get("back_to"),
            checking=bool(data.get("checking", False)),
            answers=dict(data.get("answers", {})),
            end=data.get("end"),
        )


# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Begin the lesson from its start, forgetting any earlier state; `seed` orders the options."""

    seed: int = 0


@dataclass(frozen=True)
class Continue:
    """Go on from the message `node`."""

    node: str


@dataclass(frozen=True)
class Choose:
    """Pick option `option` of the question `node`: its index in the file (0-based), which
    is the option's identity whatever order the learner sees the options in."""

    node: str
    option: int


@dataclass(frozen=True)
class Check:
    """The points of a written question's self-check list (0-based) the learner's answer made."""

    node: str
    points: tuple[int, ...] = ()


@dataclass(frozen=True)
class Revisit:
    """Go back to the start of the section `section` to look at it again."""

    section: str


@dataclass(frozen=True)
class Follow:
    """In group study: the group has moved on to `node`, and this member with it (keeping
    their scores; a remedy or a self-check they were in is left behind)."""

    node: str


@dataclass(frozen=True)
class Answer:
    """Free text typed in answer to the current step."""

    text: str


@dataclass(frozen=True)
class Resync:
    """The learner's node is gone from an edited lesson: move to the start of their section."""


Input = Start | Continue | Choose | Check | Answer | Revisit | Resync | Follow
INPUTS = (Start, Continue, Choose, Check, Answer, Revisit, Resync, Follow)


def input_to_dict(value: Input) -> dict[str, Any]:
    data = {"kind": type(value).__name__.lower(), **asdict(value)}
    if isinstance(value, Check):
        data["points"] = list(value.points)
    return data


def input_from_dict(data: dict[str, Any]) -> Input:
    kinds = {cls.__name__.lower(): cls for cls in INPUTS}
    data = dict(data)
    if "points" in data:
        data["points"] = tuple(data["points"])
    return kinds[data.pop("kind")](**data)


# --- outputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """Information about the lesson itself: a new part begins (`part` of `parts`), the
    lesson changed."""

    text: str
    part: int | None = None  # set when the notice opens a part
    parts: int | None = None


@dataclass(frozen=True)
class Feedback:
    """The response to an answer."""

    text: str
    verdict: Literal["correct", "wrong", "neutral", "reveal", "model"]  # reveal: the right answer; model: a model answer


@dataclass(frozen=True)
class Quoted:
    """The column's own words, with the paragraph they come from."""

    text: str
    paragraph: int


@dataclass(frozen=True)
class Step:
    """The step the learner is on now, and what it waits for.

    A choice's `options` are in the order this learner sees them; `order` gives each one's
    identity (its index in the file), which is what a `Choose` names. At a `check` step the
    options are the self-check points, in the file's order."""

    node: str
    kind: Literal["message", "choice", "text", "check", "end"]
    text: str
    options: tuple[str, ...]
    part: int
    parts: int
    section: str  # the section's title
    order: tuple[int, ...] = ()
    quote: Quoted | None = None

    def option_id(self, position: int) -> int:
        """The identity of the option shown at `position` (0-based); -1 if there is none."""
        if 0 <= position < len(self.order):
            return self.order[position]
        return position if not self.order and 0 <= position < len(self.options) else -1


@dataclass(frozen=True)
class LookAgain:
    """A section worth another look, and the misconceptions the learner chose in it."""

    section: str  # its id, for `Revisit`
    part: int
    title: str
    ideas: tuple[str, ...]  # argument-map ids


@dataclass(frozen=True)
class Summary:
    """How the lesson went, shown at its end."""

    score: int
    questions: int
    misconceptions: tuple[str, ...]
    recalled: tuple[tuple[str, str], ...] = ()  # (question, the learner's answer) the end recalls
    look_again: tuple[LookAgain, ...] = ()

    @property
    def result(self) -> str:
        """The score in words, as the terminal and Telegram show it."""
        return f"{self.score} of {self.questions} question{'s' * (self.questions != 1)} right at the first try"


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
        return _enter(lesson, State(seed=value.seed), lesson.start_id, (), {})
    if isinstance(value, Resync):
        return _resync(lesson, state)
    if state.node is None:
        raise NotStarted("the lesson has not been started")
    if isinstance(value, Follow):
        if value.node not in lesson.nodes:
            raise StaleInput(f"no step '{value.node}'")
        return _enter(lesson, replace(_moved(state), section=state.section), value.node, (), {"follow": value.node})
    if isinstance(value, Revisit):
        if not state.finished:  # an old end's button, tapped mid-lesson, must not move anyone
            raise StaleInput("revisiting a part is offered at the end of the lesson")
        return _revisit(lesson, state, value.section)
    if state.finished:
        raise LessonFinished("the lesson is finished")
    node = lesson.nodes.get(state.node)
    if node is None:
        raise StaleInput(f"step '{state.node}' is no longer in the lesson")
    if isinstance(value, (Continue, Choose, Check)) and value.node != node.id:
        raise StaleInput(f"'{value.node}' is not the current step")
    if isinstance(value, Check):
        if not (isinstance(node, WriteNode) and state.checking):
            raise UnexpectedInput("this step is not a self-check")
        if any(not 0 <= point < len(node.checklist) for point in value.points):
            raise InvalidOption(f"the self-check of '{node.id}' has no such point")
        covered = sorted(set(value.points))
        outcome = {"covered": covered, "of": len(node.checklist)}
        return _enter(lesson, replace(state, checking=False), lesson.targets(node)[0], (), outcome)
    if state.checking:
        raise UnexpectedInput("this step is a self-check")
    if isinstance(value, Continue):
        if not isinstance(node, MessageNode):
            raise UnexpectedInput("this step is not a message to continue from")
        if node.returns:
            back = state.back_to if state.back_to in lesson.nodes else None
            target = lesson.retry_of(back) if back else lesson.targets(node)[0]
            return _enter(lesson, replace(state, back_to=None), target, (), {"back_to": back})
        return _enter(lesson, state, lesson.targets(node)[0], (), {})
    if isinstance(value, Choose):
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
    return _view(lesson, lesson.nodes[state.node], state)


def graded_questions(lesson: Lesson) -> int:
    """The graded questions every learner meets (a variant stands in for its original)."""
    return sum(
        1 for n in lesson.nodes.values() if isinstance(n, ChoiceNode) and n.graded and n.id not in lesson.variant_of
    )


def answered_questions(lesson: Lesson, state: State) -> set[str]:
    """The graded questions the learner has answered (right or not), a variant as its original."""
    return {
        lesson.variant_of.get(q, q)
        for q in state.attempts
        if isinstance(lesson.nodes.get(q), ChoiceNode) and lesson.nodes[q].graded
    }


CHECK_TEXT = "Which of these points does your answer make? This is for you to judge; nothing is graded."


def _view(lesson: Lesson, node: Node, state: State) -> Step:
    part, parts = lesson.part_of(node.id)
    section = lesson.section_of[node.id].title
    quote = Quoted(node.quote.text, node.quote.paragraph) if node.quote else None
    if isinstance(node, ChoiceNode):
        order = lesson.option_order(node, state.seed)
        options = tuple(node.options[i].text for i in order)
        return Step(node.id, "choice", node.ask, options, part, parts, section, order, quote)
    if isinstance(node, WriteNode) and state.checking:
        return Step(node.id, "check", CHECK_TEXT, tuple(node.checklist), part, parts, section)
    return Step(node.id, node.kind, node.text, (), part, parts, section, quote=quote)


def _enter(lesson: Lesson, state: State, target: str, said: tuple[Output, ...], outcome: dict) -> Result:
    """Move to `target`, announcing a new part and closing the lesson at an end node.

    A learner looking at a part again goes back to the end when they leave that part, not
    through the rest of the lesson."""
    if state.end is not None and state.section is not None and lesson.section_of[target].id != state.section:
        target = state.end if state.end in lesson.nodes else target
    node = lesson.nodes[target]
    section = lesson.section_of[target]
    outputs = list(said)
    if section.id != state.section:
        part, parts = lesson.part_of(target)
        outputs.append(Notice(f"Part {part} of {parts}: {section.title}", part, parts))
    finished = isinstance(node, EndNode)
    new = replace(state, node=target, section=section.id, finished=finished, end=None if finished else state.end)
    outputs.append(_view(lesson, node, new))
    if finished:
        outputs.append(summary(lesson, new, node))
    return Result(new, tuple(outputs), outcome)


def summary(lesson: Lesson, state: State, end: EndNode) -> Summary:
    recalled = []
    for node_id in end.recall:
        node = lesson.nodes.get(node_id)
        if node is not None and node_id in state.answers:
            recalled.append((node.text, state.answers[node_id]))
    return Summary(
        state.score, graded_questions(lesson), state.misconceptions, tuple(recalled), look_again(lesson, state)
    )


def look_again(lesson: Lesson, state: State) -> tuple[LookAgain, ...]:
    """The sections where the learner missed a question, in lesson order, with the
    misconceptions they chose there."""
    chosen_in: dict[str, str] = {}  # misconception -> section where the learner chose it
    for question_id in state.missed:
        question = lesson.nodes.get(question_id)
        if isinstance(question, ChoiceNode):
            for option in question.options:
                if option.misconception in state.misconceptions:
                    chosen_in.setdefault(option.misconception, lesson.section_of[question_id].id)
    missed_in = {lesson.section_of[q].id for q in state.missed if q in lesson.nodes}
    found = []
    for part, section in enumerate(lesson.sections, 1):
        if section.id in missed_in:
            ideas = tuple(m for m in state.misconceptions if chosen_in.get(m) == section.id)
            found.append(LookAgain(section.id, part, section.title, ideas))
    return tuple(found)


def _choose(lesson: Lesson, state: State, node: ChoiceNode, index: int) -> Result:
    option = node.options[index]
    tries = state.attempts.get(node.id, 0) + 1
    attempts = {**state.attempts, node.id: tries}
    original = lesson.variant_of.get(node.id, node.id)  # a variant counts as its original
    first_try = tries == 1 and original == node.id
    new = replace(state, attempts=attempts)
    if not node.graded:
        new = replace(new, answers={**state.answers, node.id: option.text})
        verdict = "neutral"
    elif option.correct:
        verdict = "correct"
        if original not in state.solved:
            new = replace(new, solved=state.solved + (original,), score=state.score + (1 if first_try else 0))
    else:
        verdict = "wrong"
        if first_try and original not in state.missed:
            new = replace(new, missed=state.missed + (original,))
    repeated = option.misconception is not None and option.misconception in state.misconceptions
    if option.misconception and not repeated:
        new = replace(new, misconceptions=new.misconceptions + (option.misconception,))
    outcome = {
        "option": index,
        "correct": option.correct if node.graded else None,
        "attempt": tries,
        "misconception": option.misconception,
    }
    said: tuple[Output, ...] = (Feedback(option.feedback, verdict),)
    if verdict == "wrong" and (not first_try or repeated):
        # A second wrong try, or a misconception already explained once: no remedy again,
        # but the right answer with its explanation, and on.
        right = next(o for o in node.options if o.correct)
        said += (Feedback(f"The answer is: {right.text}\n\n{right.feedback}", "reveal"),)
        outcome["revealed"] = True
        return _enter(lesson, new, lesson.option_target(node, right), said, outcome)
    target = lesson.option_target(node, option)
    if lesson.remedy_chain_end(option.next):
        new = replace(new, back_to=node.id)
    return _enter(lesson, new, target, said, outcome)


def _write(lesson: Lesson, state: State, node: WriteNode, text: str) -> Result:
    text = text.strip()
    if len(text.split()) < node.min_words:
        words = "a word" if node.min_words == 1 else f"{node.min_words} words"
        raise TooShort(f"please write at least {words}")
    said = (
        Feedback(SAVED, "neutral"),
        Feedback(node.model_answer, "model"),
    )
    attempts = {**state.attempts, node.id: state.attempts.get(node.id, 0) + 1}
    new = replace(state, attempts=attempts, answers={**state.answers, node.id: text})
    outcome = {"text": text}
    if node.checklist:
        new = replace(new, checking=True)
        return Result(new, said + (_view(lesson, node, new),), outcome)
    return _enter(lesson, new, lesson.targets(node)[0], said, outcome)


SAVED = "Thank you: your answer is saved, and an instructor may read it. Compare it with this one."


def _revisit(lesson: Lesson, state: State, section_id: str) -> Result:
    section = next((s for s in lesson.sections if s.id == section_id), None)
    if section is None:
        raise StaleInput(f"no section '{section_id}'")
    # Answers already given keep their score: a question answered before is not a first try.
    return _enter(lesson, replace(_moved(state), end=state.node), section.nodes[0].id, (), {"revisit": section_id})


def _moved(state: State) -> State:
    """The state of a learner moved to the start of a part (to look again, or after an edit):
    no remedy to return from, no self-check open, and the section forgotten, so that entering
    it announces it again."""
    return replace(state, section=None, finished=False, back_to=None, checking=False, end=None)


def _resync(lesson: Lesson, state: State) -> Result:
    if state.node is None or state.node in lesson.nodes:
        raise NothingToResync("the learner's step still exists")
    section = next((s for s in lesson.sections if s.id == state.section), None)
    target = section.nodes[0].id if section else lesson.start_id
    where = "the start of this part" if section else "the start of the lesson"
    notice = Notice(f"This lesson has been updated and your step is gone, so you continue from {where}.")
    return _enter(lesson, _moved(state), target, (notice,), {"from": state.node})


# --- the group's path through a lesson (group study) ---------------------------------------


def group_way_on(lesson: Lesson, node: Node) -> str | None:
    """Where the group goes from `node`: on as after a right answer."""
    if isinstance(node, EndNode):
        return None
    if isinstance(node, ChoiceNode):
        right = next((o for o in node.options if o.correct), node.options[0])
        return lesson.option_target(node, right)
    targets = lesson.targets(node)
    return targets[0] if targets else None


def group_path(lesson: Lesson) -> list[str]:
    """The group's steps in order, without those marked `solo_only` (an end always counts)."""
    found: list[str] = []
    node_id: str | None = lesson.start_id
    while node_id and node_id not in found and node_id in lesson.nodes:
        node = lesson.nodes[node_id]
        if not node.solo_only or isinstance(node, EndNode):
            found.append(node_id)
        node_id = group_way_on(lesson, node)
    return found

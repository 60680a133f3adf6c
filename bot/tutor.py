"""The tutor: what a learner can do, for every front end (terminal, Telegram, tests).

It joins the pure engine to the store: loads a learner's state, applies an input, and
records the event and the new progress in one transaction. An input that does not fit
(a stale button, text where a choice is asked) records nothing and answers with a notice
and the current step again. The wording of those answers lives here, so that every front
end says the same thing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot import engine
from bot.engine import (
    Answer,
    Check,
    Choose,
    Continue,
    Follow,
    Input,
    InputError,
    Notice,
    Output,
    Resync,
    Start,
    State,
    Step,
    input_to_dict,
)
from bot.lesson import ChoiceNode, EndNode
from bot.loader import LoadedLesson
from bot.store import Progress, Store


class UnknownLesson(Exception):
    """No lesson has that id."""


@dataclass(frozen=True)
class Reply:
    """What to show the learner after an action."""

    lesson: str | None
    outputs: tuple[Output, ...]
    error: InputError | None = None
    again: bool = False  # the current step shown again, nothing changed
    chosen: str | None = None  # the option a learner picked by typing its number (to echo, as a tap is)

    @property
    def step(self) -> Step | None:
        steps = [o for o in self.outputs if isinstance(o, Step)]
        return steps[-1] if steps else None


def progress_bar(part: int, parts: int) -> str:
    """Where a learner is, e.g. "▰▰▰▱▱▱ part 3 of 6"."""
    return f"{progress_marks(part, parts)} part {part} of {parts}"


def progress_marks(part: int, parts: int, width: int = 12) -> str:
    """One mark a part, ▰ for those reached (scaled down if there are many parts)."""
    filled = part if parts <= width else round(part * width / parts)
    return "▰" * filled + "▱" * (min(parts, width) - filled)


def explain(error: InputError) -> str:
    """What to tell a learner whose input did not fit."""
    if isinstance(error, engine.StaleInput):
        return "That button belongs to an earlier step, so nothing changed. Here is where you are now:"
    if isinstance(error, engine.InvalidOption):
        return "That answer is not one of the options, so nothing changed. Here is the question again:"
    if isinstance(error, engine.TooShort):
        return f"Could you say a little more? {str(error).capitalize()}."
    if isinstance(error, engine.LessonFinished):
        return "You have finished this lesson."
    if isinstance(error, engine.NotStarted):
        return "You have not started a lesson yet. Use /start to begin."
    return "That does not answer this step, so nothing changed. Here it is again:"


NONE_WORDS = {"", "none", "no", "nothing", "-", "0"}


def typed_input(step: Step, text: str) -> Input:
    """What a typed line means at `step`: go on from a message, pick an option by the
    number it is shown with or by its exact text, mark self-check points by their numbers
    ("1 3", or "none"), or (otherwise) a written answer."""
    line = text.strip()
    if step.kind == "message":
        return Continue(step.node)
    if step.kind == "choice":
        number = option_number(line)
        if number is not None:
            return Choose(step.node, step.option_id(number - 1))
        folded = [option.casefold() for option in step.options]
        if line.casefold() in folded:
            return Choose(step.node, step.option_id(folded.index(line.casefold())))
        if line.isnumeric():  # "²", "①", "12345": a number meant, but no option's (InvalidOption)
            return Choose(step.node, -1)
    if step.kind == "check":
        points = checked_points(line)
        if points is not None:
            return Check(step.node, points)
    return Answer(line)


def checked_points(line: str) -> tuple[int, ...] | None:
    """The self-check points (0-based) named by a typed line such as "1 3" or "1, 3";
    () for "none"; None if the line is not a list of numbers."""
    if line.strip().casefold() in NONE_WORDS:
        return ()
    words = line.replace(",", " ").split()
    numbers = [option_number(word) for word in words]
    if not words or any(number is None for number in numbers):
        return None
    return tuple(sorted({number - 1 for number in numbers if number is not None}))


def option_number(line: str) -> int | None:
    """The number a learner typed to pick an option ("2", "２", "٢"), or None.

    Only decimal digits count: "²" and "①" are digits to Python but not numbers to `int`."""
    line = line.strip()
    if 0 < len(line) <= 3 and line.isdecimal():
        return int(line)
    return None


class Tutor:
    """Lessons plus a store: the use cases of a learner."""

    def __init__(self, store: Store, lessons: dict[str, LoadedLesson], seeds: Callable[[], int] | None = None):
        self.store = store
        self.lessons = lessons
        # Each start draws the seed that orders this learner's options (kept in the event,
        # so a replay orders them the same way).
        self.seeds = seeds or (lambda: random.SystemRandom().randrange(1 << 31))

    def loaded(self, lesson_id: str) -> LoadedLesson:
        try:
            return self.lessons[lesson_id]
        except KeyError:
            raise UnknownLesson(lesson_id) from None

    def begin(
        self,
        learner: str,
        chat: str,
        lesson_id: str,
        restart: bool = False,
        update_id: int | None = None,
        greet: bool = True,
        result: bool = False,
    ) -> Reply:
        """Start a lesson, or resume it where the learner was (unless `restart`).

        Resuming says where the learner is, with a welcome back if `greet`; a finished
        lesson says so, and with `result` shows its end again (score, recall, parts to
        look at again)."""
        loaded = self.loaded(lesson_id)
        progress = self.store.progress(learner, lesson_id, chat)
        if progress is None or restart:
            return self._apply(learner, chat, loaded, State(), Start(self.seeds()), update_id)
        with self.store.joined():
            state, said = self._resynced(learner, chat, loaded, progress, update_id)
            if state.finished:
                finished = engine.LessonFinished()
                end = loaded.lesson.nodes.get(state.node or "")
                again: tuple[Output, ...] = ()
                if result and isinstance(end, EndNode):
                    again = (engine.view(loaded.lesson, state), engine.summary(loaded.lesson, state, end))
                return Reply(lesson_id, said + (Notice(explain(finished)),) + again, finished)
            step = engine.view(loaded.lesson, state)
            where = f"You are in part {step.part} of {step.parts}: {step.section}."
            part = Notice(f"Welcome back to “{loaded.lesson.title}”. {where}" if greet else where)
            return Reply(lesson_id, said + (part, step))

    def act(self, learner: str, chat: str, value: Input, lesson_id: str | None = None, update_id: int | None = None) -> Reply:
        """Apply one input to the learner's lesson in this chat (by default the latest one)."""
        progress = self._progress(learner, chat, lesson_id)
        if progress is None:
            doing = self._progress(learner, chat, None) if lesson_id is not None else None
            if doing is not None and doing.lesson in self.lessons:  # a button of a lesson left behind (or forgotten)
                stale = engine.StaleInput(f"'{lesson_id}' is not being done here")
                return self._refused(self.loaded(doing.lesson), doing.state, (), stale)
            return Reply(lesson_id, (Notice(explain(engine.NotStarted())),), engine.NotStarted())
        loaded = self.loaded(progress.lesson)
        with self.store.joined():
            state, said = self._resynced(learner, chat, loaded, progress, update_id)
            try:
                reply = self._apply(learner, chat, loaded, state, value, update_id)
            except InputError as error:
                return self._refused(loaded, state, said, error)
            return Reply(reply.lesson, said + reply.outputs)

    def typed(
        self,
        learner: str,
        chat: str,
        text: str,
        update_id: int | None = None,
        seen: Callable[[str], bool] = lambda step: True,
    ) -> Reply | None:
        """A line the learner typed, read against their current step (see `typed_input`).

        None if they have no lesson in this chat; the step again if it is gone or over, or
        if it is a message the learner has not been shown yet (`seen("<lesson>:<node>")`
        is False): text there must not move them past a passage they never read."""
        progress = self._progress(learner, chat, None)
        if progress is None:
            return None
        lesson = self.lessons[progress.lesson].lesson
        if progress.state.finished or progress.state.node not in lesson.nodes:
            return self.current(learner, chat)
        step = engine.view(lesson, progress.state)
        if step.kind == "message" and not seen(f"{lesson.id}:{step.node}"):
            return self.current(learner, chat)
        value = typed_input(step, text)
        reply = self.act(learner, chat, value, progress.lesson, update_id)
        if isinstance(value, Choose) and reply.error is None:
            node = lesson.nodes[value.node]
            assert isinstance(node, ChoiceNode)
            reply = replace(reply, chosen=node.options[value.option].text)
        return reply

    def in_group(
        self,
        learner: str,
        chat: str,
        lesson_id: str,
        node: str,
        value: Input | None,
        seed: int,
        since: str,
        update_id: int | None = None,
    ) -> Reply:
        """A member's answer at a group's step `node` (group study, chat "tg:<group>").

        The member is moved to the group's step first: their group progress starts with the
        group's `seed` (so they see the group's order of options) unless it began at or after
        `since` (the study session's start), and follows the group to `node`; then `value`,
        if given, is applied. Raises `InputError`, recording nothing, if `value` does not
        answer that step."""
        lesson = self.loaded(lesson_id).lesson
        progress = self.store.progress(learner, lesson_id, chat)
        state = progress.state if progress is not None and progress.started_at >= since else None
        moves: list[Input] = [] if state is not None else [Start(seed)]
        if state is None or state.node != node or state.checking or state.finished:
            moves.append(Follow(node))
        steps = []
        state = state or State()
        for move in moves + ([value] if value is not None else []):  # worked out first: a refusal records nothing
            result = engine.step(lesson, state, move)
            steps.append((state.node, move, result))
            state = result.state
        with self.store.atomic():
            for before, move, result in steps:
                self.store.record(learner, lesson_id, chat, self.lessons[lesson_id].content_hash, before, move, result, update_id)
        return Reply(lesson_id, steps[-1][2].outputs if steps else ())

    def accepted_already(self, learner: str, chat: str, lesson_id: str, value: Input) -> bool:
        """True if `value` is the last thing the learner did in this lesson: a second tap on
        a button that was just accepted, which must change nothing and send nothing."""
        return self.store.last_input(learner, lesson_id, chat) == input_to_dict(value)

    def current(self, learner: str, chat: str, lesson_id: str | None = None) -> Reply:
        """Show the learner's current step again."""
        progress = self._progress(learner, chat, lesson_id)
        if progress is None:
            return Reply(lesson_id, (Notice(explain(engine.NotStarted())),), engine.NotStarted())
        return replace(self.begin(learner, chat, progress.lesson, greet=False), again=True)

    def progress_text(self, learner: str, chat: str) -> str:
        """A few lines on where the learner is and how it has gone."""
        progress = self.store.latest_progress(learner, chat)
        if progress is None or progress.lesson not in self.lessons:
            return "You have not started a lesson yet. Use /start to begin."
        lesson = self.lessons[progress.lesson].lesson
        state = progress.state
        questions = engine.graded_questions(lesson)
        lines = [f"Lesson: {lesson.title}"]
        if state.finished:
            lines.append("Finished.")
        elif state.node in lesson.nodes:
            part, parts = lesson.part_of(state.node)
            lines.append(f"{progress_bar(part, parts)} {lesson.section_of[state.node].title}")
        lines.append(f"Questions answered: {len(engine.answered_questions(lesson, state))} of {questions}")
        lines.append(f"Right at the first try: {state.score}")
        return "\n".join(lines)

    def _progress(self, learner: str, chat: str, lesson_id: str | None) -> Progress | None:
        if lesson_id is None:
            progress = self.store.latest_progress(learner, chat)
            return progress if progress and progress.lesson in self.lessons else None
        if lesson_id not in self.lessons:
            return None
        return self.store.progress(learner, lesson_id, chat)

    def _apply(self, learner: str, chat: str, loaded: LoadedLesson, state: State, value: Input, update_id: int | None) -> Reply:
        result = engine.step(loaded.lesson, state, value)
        self.store.record(learner, loaded.lesson.id, chat, loaded.content_hash, state.node, value, result, update_id)
        return Reply(loaded.lesson.id, result.outputs)

    def _resynced(self, learner: str, chat: str, loaded: LoadedLesson, progress: Progress, update_id: int | None) -> tuple[State, tuple[Output, ...]]:
        """The stored state, moved (and recorded) if an edit of the lesson removed its node."""
        state = progress.state
        if state.node is None or state.node in loaded.lesson.nodes:
            return state, ()
        result = engine.step(loaded.lesson, state, Resync())
        self.store.record(learner, loaded.lesson.id, chat, loaded.content_hash, state.node, Resync(), result, update_id)
        return result.state, tuple(o for o in result.outputs if not isinstance(o, Step))

    def _refused(self, loaded: LoadedLesson, state: State, said: tuple[Output, ...], error: InputError) -> Reply:
        outputs = said + (Notice(explain(error)),)
        if not state.finished and state.node in loaded.lesson.nodes:
            outputs += (engine.view(loaded.lesson, state),)
        return Reply(loaded.lesson.id, outputs, error)

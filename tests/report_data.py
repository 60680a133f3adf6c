"""A small, known data set for instructor reports: four learners through the core lesson
(madman-core), on a clock that moves 30 seconds per event, so every figure of a report can
be worked out by hand.

- Ann (tg:101) finishes, every question right at the first try: score 3.
- Ben (tg:102) finishes; his first answer to the first question with a remedy
  (`tests.core_lesson.REMEDIED`) is its wrong one naming a misconception (the remedy
  follows, then his right second try), the rest right: score 2.
- Cat (tg:103) answers the first question right, then stops: not finished.
- Dan (tg:104) only starts.

Each event takes 30 seconds, so a learner's time spent is 30 s × (their events − 1).
The core lesson has 3 graded questions and one written one (with a self-check).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from bot.engine import Answer, Check, Choose, Continue
from bot.lesson import ChoiceNode
from bot.loader import LoadedLesson, load_all
from bot.store import Store
from bot.tutor import Reply, Tutor
from tests.core_lesson import REMEDIED, WRONG

ROOT = Path(__file__).resolve().parent.parent
LESSONS_PATH = ROOT / "dialogues" / "madman-core.yaml"
ANN, BEN, CAT, DAN = "tg:101", "tg:102", "tg:103", "tg:104"
NAMES = {ANN: "Ann Archer", BEN: "Ben Brown", CAT: "Cat Chen", DAN: "Dan Diaz"}
REFLECTION = {ANN: "Yielding buys nothing if the other side may not keep the deal.", BEN: "Trust must run both ways for a deal."}
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
STEP = timedelta(seconds=30)


class Clock:
    """A clock that moves `STEP` each time it is read."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += STEP
        return self.now


def _answer(lesson, reply: Reply, wrong_once: set[str]) -> object | None:
    step = reply.step
    if step is None or step.kind == "end":
        return None
    if step.kind == "message":
        return Continue(step.node)
    if step.kind == "choice":
        node = lesson.nodes[step.node]
        assert isinstance(node, ChoiceNode)
        if step.node in wrong_once:
            wrong_once.discard(step.node)
            return Choose(step.node, next(i for i, o in enumerate(node.options) if o.text == WRONG[step.node]))
        return Choose(step.node, next(i for i, o in enumerate(node.options) if o.correct or not node.graded))
    if step.kind == "check":
        return Check(step.node, (0,))
    return None  # a written question: the caller answers it


def build(db: Path | str = ":memory:") -> tuple[Store, dict[str, LoadedLesson], Clock]:
    """The data set in a new store (one clock for all, learners one after another)."""
    clock = Clock()
    store = Store(db, clock=clock)
    lessons = load_all([LESSONS_PATH])
    tutor = Tutor(store, lessons, seeds=lambda: 11)
    lesson = lessons["madman-core"].lesson
    for learner, stop_after, wrong in ((ANN, None, set()), (BEN, None, {REMEDIED}), (CAT, 1, set()), (DAN, 0, set())):
        store.ensure_learner(learner, NAMES[learner])
        reply = tutor.begin(learner, learner, "madman-core")
        answered = 0
        while True:
            if stop_after is not None and answered >= stop_after:
                break
            value = _answer(lesson, reply, wrong)
            if value is None and reply.step is not None and reply.step.kind == "text":
                value = Answer(REFLECTION[learner])
            if value is None:
                break
            if isinstance(value, Choose) and lesson.nodes[value.node].graded:  # type: ignore[union-attr]
                answered += 1
            reply = tutor.act(learner, learner, value)  # type: ignore[arg-type]
    return store, lessons, clock

"""The pure engine: table-driven walks through the tiny lesson, every input error, replay."""

from __future__ import annotations

import copy
import json

import pytest

from bot import engine
from bot.console import Console
from bot.engine import (
    Answer,
    Choose,
    Continue,
    Feedback,
    Notice,
    Resync,
    Start,
    State,
    Step,
    Summary,
    input_from_dict,
    input_to_dict,
    matching_phrases,
)
from bot.loader import load_file
from bot.tutor import Tutor

START = [Start(), Continue("hello"), Continue("claim")]  # at q1
AT_POLL = START + [Choose("q1", 1)]
AT_REFLECT = AT_POLL + [Choose("poll", 0)]


def run(lesson, inputs, state=None):
    """Apply inputs in order; the last result."""
    state = state or State()
    result = None
    for value in inputs:
        result = engine.step(lesson, state, value)
        state = result.state
    return result


def shown(outputs) -> list[str]:
    """Outputs as short labels: what kind, and enough to tell them apart."""
    labels = []
    for output in outputs:
        if isinstance(output, Notice):
            labels.append(f"notice: {output.text}")
        elif isinstance(output, Feedback):
            labels.append(f"{output.verdict}: {output.text}")
        elif isinstance(output, Step):
            labels.append(f"{output.kind} {output.node}")
        elif isinstance(output, Summary):
            labels.append(f"summary {output.score}/{output.questions} {list(output.misconceptions)}")
    return labels


@pytest.mark.parametrize(
    "inputs, node, score, attempts, misconceptions, outputs",
    [
        pytest.param([Start()], "hello", 0, {}, (), ["notice: Part 1 of 3: Getting started", "message hello"], id="start"),
        pytest.param(
            [Start(), Continue("hello")], "claim", 0, {}, (),
            ["notice: Part 2 of 3: Why it backfires", "message claim"], id="new part announced",
        ),
        pytest.param(START, "q1", 0, {}, (), ["choice q1"], id="same part: no notice"),
        pytest.param(
            START + [Choose("q1", 1)], "poll", 1, {"q1": 1}, (),
            ["correct: Right.", "choice poll"], id="right first try scores",
        ),
        pytest.param(
            START + [Choose("q1", 2)], "q1", 0, {"q1": 1}, (),
            ["wrong: Not quite.", "choice q1"], id="wrong asks again",
        ),
        pytest.param(
            START + [Choose("q1", 0)], "fix-m1", 0, {"q1": 1}, ("M1",),
            ["wrong: A common reading, but not the column's.", "message fix-m1"], id="misconception to remedy",
        ),
        pytest.param(
            START + [Choose("q1", 0), Continue("fix-m1")], "q1", 0, {"q1": 1}, ("M1",),
            ["choice q1"], id="remedy back to question",
        ),
        pytest.param(
            START + [Choose("q1", 2), Choose("q1", 1)], "poll", 0, {"q1": 2}, (),
            ["correct: Right.", "choice poll"], id="right second try does not score",
        ),
        pytest.param(
            START + [Choose("q1", 0), Continue("fix-m1"), Choose("q1", 0), Continue("fix-m1"), Choose("q1", 2)],
            "q1", 0, {"q1": 3}, ("M1",), ["wrong: Not quite.", "choice q1"], id="misconception counted once",
        ),
        pytest.param(
            AT_POLL + [Choose("poll", 1)], "reflect", 1, {"q1": 1, "poll": 1}, (),
            ["neutral: Fair enough.", "notice: Part 3 of 3: In your own words", "text reflect"], id="poll is neutral",
        ),
        pytest.param(
            AT_REFLECT + [Answer("They cannot keep a deal.")], "done", 1, {"q1": 1, "poll": 1, "reflect": 1}, (),
            [
                "neutral: You name the promise.",
                "neutral: Model answer: yielding only pays if the deal is kept.",
                "end done",
                "summary 1/1 []",
            ],
            id="written answer matched, end with summary",
        ),
        pytest.param(
            AT_REFLECT + [Answer("It is about fear.")], "done", 1, {"q1": 1, "poll": 1, "reflect": 1}, (),
            [
                "neutral: Think about what happens after giving in.",
                "neutral: Model answer: yielding only pays if the deal is kept.",
                "end done",
                "summary 1/1 []",
            ],
            id="written answer unmatched",
        ),
        pytest.param(
            START + [Choose("q1", 0), Continue("fix-m1"), Choose("q1", 1), Choose("poll", 0), Answer("a b c")],
            "done", 0, {"q1": 2, "poll": 1, "reflect": 1}, ("M1",),
            [
                "neutral: Think about what happens after giving in.",
                "neutral: Model answer: yielding only pays if the deal is kept.",
                "end done",
                "summary 0/1 ['M1']",
            ],
            id="summary lists misconceptions",
        ),
        pytest.param(
            AT_REFLECT + [Answer("x y z"), Start()], "hello", 0, {}, (),
            ["notice: Part 1 of 3: Getting started", "message hello"], id="restart forgets everything",
        ),
    ],
)
def test_walk(tiny, inputs, node, score, attempts, misconceptions, outputs):
    result = run(tiny.lesson, inputs)
    state = result.state
    assert (state.node, state.score, state.attempts, state.misconceptions) == (node, score, attempts, misconceptions)
    assert state.finished == (node == "done")
    assert state.section == tiny.lesson.section_of[node].id
    assert shown(result.outputs) == outputs


def test_step_shows_part_and_options(tiny):
    step = run(tiny.lesson, START).outputs[-1]
    assert step == Step(
        node="q1",
        kind="choice",
        text="Why does it backfire?",
        options=(
            "The threats stop being believed.",
            "No one trusts the madman to keep a deal.",
            "Nobody cares.",
        ),
        part=2,
        parts=3,
        section="Why it backfires",
    )
    assert engine.view(tiny.lesson, run(tiny.lesson, START).state) == step


def test_outcomes_record_the_answer(tiny):
    assert run(tiny.lesson, START + [Choose("q1", 0)]).outcome == {
        "option": 0, "correct": False, "attempt": 1, "misconception": "M1",
    }
    assert run(tiny.lesson, AT_POLL + [Choose("poll", 1)]).outcome == {
        "option": 1, "correct": None, "attempt": 1, "misconception": None,
    }
    assert run(tiny.lesson, AT_REFLECT + [Answer("  I was promised a deal  ")]).outcome == {
        "text": "I was promised a deal", "matched": ["promise"],
    }


# --- inputs that do not fit -----------------------------------------------------------


@pytest.mark.parametrize(
    "before, value, error",
    [
        pytest.param([], Continue("hello"), engine.NotStarted, id="continue before start"),
        pytest.param([], Choose("q1", 0), engine.NotStarted, id="choose before start"),
        pytest.param([], Answer("hi there you"), engine.NotStarted, id="answer before start"),
        pytest.param(START, Continue("claim"), engine.StaleInput, id="old continue button"),
        pytest.param(START, Choose("poll", 0), engine.StaleInput, id="button of another question"),
        pytest.param(AT_POLL, Choose("q1", 1), engine.StaleInput, id="question answered already"),
        pytest.param(START, Choose("q1", 3), engine.InvalidOption, id="option past the end"),
        pytest.param(START, Choose("q1", -1), engine.InvalidOption, id="negative option"),
        pytest.param(START, Answer("because of trust"), engine.UnexpectedInput, id="text where a choice is asked"),
        pytest.param(START, Continue("q1"), engine.UnexpectedInput, id="continue on a question"),
        pytest.param(START[:2], Choose("claim", 0), engine.UnexpectedInput, id="choose on a message"),
        pytest.param(START[:2], Answer("fine, go on"), engine.UnexpectedInput, id="text on a message"),
        pytest.param(AT_REFLECT, Answer("two words"), engine.TooShort, id="answer too short"),
        pytest.param(AT_REFLECT, Answer("   "), engine.TooShort, id="blank answer"),
        pytest.param(AT_REFLECT, Continue("reflect"), engine.UnexpectedInput, id="continue on a written question"),
        pytest.param(AT_REFLECT + [Answer("a b c")], Continue("done"), engine.LessonFinished, id="continue after end"),
        pytest.param(AT_REFLECT + [Answer("a b c")], Choose("q1", 1), engine.LessonFinished, id="old button after end"),
        pytest.param(START, Resync(), engine.NothingToResync, id="resync with the node present"),
        pytest.param([], Resync(), engine.NothingToResync, id="resync before start"),
    ],
)
def test_input_that_does_not_fit_changes_nothing(tiny, before, value, error):
    state = run(tiny.lesson, before).state if before else State()
    snapshot = copy.deepcopy(state)
    with pytest.raises(error):
        engine.step(tiny.lesson, state, value)
    assert issubclass(error, engine.InputError)
    assert state == snapshot


def test_too_short_says_how_many_words(tiny):
    state = run(tiny.lesson, AT_REFLECT).state
    with pytest.raises(engine.TooShort, match="^please write at least 3 words$"):
        engine.step(tiny.lesson, state, Answer("two words"))


def test_step_missing_from_lesson_is_stale(tiny):
    with pytest.raises(engine.StaleInput, match="'gone' is no longer in the lesson"):
        engine.step(tiny.lesson, State(node="gone", section="main"), Continue("gone"))


# --- free text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phrases, text, found",
    [
        (["promise"], "They made PROMISES they could not keep.", ["promise"]),
        (["promise"], "A compromise is not the point.", []),  # only at a word start
        (["assur"], "Without assurance, why yield?", ["assur"]),
        (["keep a deal"], "He won't  KEEP\na   deal.", ["keep a deal"]),  # any whitespace between words
        (["trust", "promise", "deal"], "No deal without trust.", ["trust", "deal"]),  # in the phrases' order
        (["c++"], "c++ is a language", ["c++"]),  # phrases are not regular expressions
        ([], "anything", []),
    ],
)
def test_matching_phrases(phrases, text, found):
    assert matching_phrases(phrases, text) == found


# --- state and inputs as data ---------------------------------------------------------


def test_state_round_trip_through_json(tiny):
    state = run(tiny.lesson, START + [Choose("q1", 0), Continue("fix-m1"), Choose("q1", 1)]).state
    data = json.loads(json.dumps(state.to_dict()))
    assert data == {
        "node": "poll",
        "section": "main",
        "finished": False,
        "score": 0,
        "attempts": {"q1": 2},
        "solved": ["q1"],
        "misconceptions": ["M1"],
    }
    assert State.from_dict(data) == state
    assert State.from_dict({}) == State()


@pytest.mark.parametrize("value", [Start(), Continue("hello"), Choose("q1", 2), Answer("some text"), Resync()])
def test_input_round_trip(value):
    assert input_from_dict(json.loads(json.dumps(input_to_dict(value)))) == value


def test_replaying_stored_inputs_gives_the_same_state(store, core_path):
    """A learner plays the core lesson with detours; replaying their events rebuilds each state."""
    loaded = load_file(core_path)
    tutor = Tutor(store, {loaded.lesson.id: loaded})
    answers = iter(
        ["", "", "", "2", "1", "", "1", "", "/quit"]  # wrong, right; remedy for M1, then quit
    )
    assert Console(tutor, "ann", read=lambda _: next(answers), write=lambda _: None).play("madman-core") is False
    answers = iter(["2", "2", "They cannot trust him to keep a deal, so giving in is pointless."])
    assert Console(tutor, "ann", read=lambda _: next(answers), write=lambda _: None).play("madman-core") is True

    events = store.events(learner="local:ann")
    assert [e["input"]["kind"] for e in events] == [
        "start", "continue", "continue", "continue", "choose", "choose",
        "continue", "choose", "continue", "choose", "choose", "answer",
    ]
    state = State()
    for event in events:
        assert event["node"] == state.node
        state = engine.step(loaded.lesson, state, input_from_dict(event["input"])).state
        assert state.to_dict() == event["state"]
    assert state == store.progress("local:ann", "madman-core", "console").state
    assert (state.finished, state.score, state.misconceptions) == (True, 1, ("M1",))
    assert state.attempts == {"q-madman-aim": 2, "q-why-backfire": 2, "q-both-halves": 1, "reflect-c5": 1}

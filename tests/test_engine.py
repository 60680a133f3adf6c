"""The pure engine: table-driven walks through the tiny lesson, every input error, replay."""

from __future__ import annotations

import copy
import json

import pytest

from bot import engine
from bot.engine import (
    Answer,
    Check,
    Choose,
    Continue,
    Feedback,
    Notice,
    Resync,
    Revisit,
    Start,
    State,
    Step,
    Summary,
    input_from_dict,
    input_to_dict,
)
from bot.tutor import Tutor
from tests.conftest import tiny_lesson

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
            START + [Choose("q1", 0), Continue("fix-m1"), Choose("q1", 0)],
            "poll", 0, {"q1": 2}, ("M1",),
            [
                "wrong: A common reading, but not the column's.",
                "reveal: The answer is: No one trusts the madman to keep a deal.\n\nRight.",
                "choice poll",
            ],
            id="second wrong try: the answer, not the remedy again",
        ),
        pytest.param(
            START + [Choose("q1", 2), Choose("q1", 2)],
            "poll", 0, {"q1": 2}, (),
            ["wrong: Not quite.", "reveal: The answer is: No one trusts the madman to keep a deal.\n\nRight.", "choice poll"],
            id="second wrong try without a remedy: the answer too",
        ),
        pytest.param(
            AT_POLL + [Choose("poll", 1)], "reflect", 1, {"q1": 1, "poll": 1}, (),
            ["neutral: Fair enough.", "notice: Part 3 of 3: In your own words", "text reflect"], id="poll is neutral",
        ),
        pytest.param(
            AT_REFLECT + [Answer("They cannot keep a deal.")], "done", 1, {"q1": 1, "poll": 1, "reflect": 1}, (),
            [f"neutral: {engine.SAVED}", "model: Yielding only pays if the deal is kept.", "end done", "summary 1/1 []"],
            id="written answer: no verdict, the model answer, end with summary",
        ),
        pytest.param(
            START + [Choose("q1", 0), Continue("fix-m1"), Choose("q1", 1), Choose("poll", 0), Answer("a b c")],
            "done", 0, {"q1": 2, "poll": 1, "reflect": 1}, ("M1",),
            [f"neutral: {engine.SAVED}", "model: Yielding only pays if the deal is kept.", "end done", "summary 0/1 ['M1']"],
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
    texts = [o.text for o in tiny.lesson.nodes["q1"].options]
    assert (step.node, step.kind, step.text, step.part, step.parts, step.section) == (
        "q1", "choice", "Why does it backfire?", 2, 3, "Why it backfires"
    )
    assert sorted(step.order) == [0, 1, 2]
    assert step.options == tuple(texts[i] for i in step.order)
    assert engine.view(tiny.lesson, run(tiny.lesson, START).state) == step


def test_outcomes_record_the_answer(tiny):
    assert run(tiny.lesson, START + [Choose("q1", 0)]).outcome == {
        "option": 0, "correct": False, "attempt": 1, "misconception": "M1",
    }
    assert run(tiny.lesson, AT_POLL + [Choose("poll", 1)]).outcome == {
        "option": 1, "correct": None, "attempt": 1, "misconception": None,
    }
    assert run(tiny.lesson, AT_REFLECT + [Answer("  I was promised a deal  ")]).outcome == {"text": "I was promised a deal"}
    assert run(tiny.lesson, START + [Choose("q1", 2), Choose("q1", 2)]).outcome == {
        "option": 2, "correct": False, "attempt": 2, "misconception": None, "revealed": True,
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
        "missed": ["q1"],
        "seed": 0,
        "back_to": None,
        "checking": False,
        "answers": {},
        "end": None,
    }
    assert State.from_dict(data) == state
    assert State.from_dict({}) == State()


@pytest.mark.parametrize(
    "value",
    [Start(), Start(7), Continue("hello"), Choose("q1", 2), Check("reflect", (0, 2)), Answer("some text"), Revisit("main"), Resync()],
)
def test_input_round_trip(value):
    assert input_from_dict(json.loads(json.dumps(input_to_dict(value)))) == value


def test_replaying_stored_inputs_gives_the_same_state(store):
    """A learner plays a lesson with detours (a remedy, a revealed answer, a self-check, a
    look back after the end); replaying their events rebuilds each state, option order included."""
    loaded = tiny_lesson(CHECKLIST)
    tutor = Tutor(store, {"tiny": loaded})
    tutor.begin("ann", "c", "tiny")
    for value in [Continue("hello"), Continue("claim"), Choose("q1", 0), Continue("fix-m1"), Choose("q1", 2),
                  Choose("poll", 1), Answer("They would not keep the deal."), Check("reflect", (1,)),
                  Revisit("main"), Continue("claim"), Choose("q1", 1)]:
        assert tutor.act("ann", "c", value, "tiny").error is None, value
    events = store.events(learner="ann")
    assert events[0]["input"]["kind"] == "start" and events[0]["input"]["seed"] == events[0]["state"]["seed"]
    state = State()
    for event in events:
        assert event["node"] == state.node
        state = engine.step(loaded.lesson, state, input_from_dict(event["input"])).state
        assert state.to_dict() == event["state"]
    assert state == store.progress("ann", "tiny", "c").state
    assert (state.node, state.score, state.misconceptions, state.missed) == ("poll", 0, ("M1",), ("q1",))
    assert state.answers == {"poll": "No", "reflect": "They would not keep the deal."}


# --- shuffled options ---------------------------------------------------------------------


def test_options_are_shuffled_per_learner_and_stable_on_replay(tiny):
    orders = {run(tiny.lesson, [Start(seed)] + START[1:]).outputs[-1].order for seed in range(40)}
    assert len(orders) == 6  # every order of three options turns up
    again = {seed: run(tiny.lesson, [Start(seed)] + START[1:]).outputs[-1].order for seed in range(40)}
    assert again == {seed: run(tiny.lesson, [Start(seed)] + START[1:]).outputs[-1].order for seed in range(40)}


def test_an_option_keeps_its_identity_whatever_its_place(tiny):
    for seed in range(10):
        state = run(tiny.lesson, [Start(seed)] + START[1:]).state
        step = engine.view(tiny.lesson, state)
        right = step.options.index("No one trusts the madman to keep a deal.")
        result = engine.step(tiny.lesson, state, Choose("q1", step.option_id(right)))
        assert result.outputs[0] == Feedback("Right.", "correct")
        # An old button of another learner's order (another position) still names the same option.
        assert engine.step(tiny.lesson, state, Choose("q1", 1)).outputs[0] == Feedback("Right.", "correct")


def test_an_author_can_keep_the_order_or_pin_an_option_last():
    kept = tiny_lesson(("        next: poll\n        options:", "        next: poll\n        shuffle: false\n        options:"))
    assert {run(kept.lesson, [Start(s)] + START[1:]).outputs[-1].order for s in range(20)} == {(0, 1, 2)}
    pinned = tiny_lesson(("          - text: Nobody cares.\n", "          - text: Nobody cares.\n            last: true\n"))
    orders = {run(pinned.lesson, [Start(s)] + START[1:]).outputs[-1].order for s in range(20)}
    assert {o[-1] for o in orders} == {2} and len(orders) == 2


# --- remedies that return, variants, self-checks, the end ------------------------------------

TO_Q2 = ("        next: poll\n        options:", "        next: q2\n        options:")
SHARED_REMEDY = (
    "      - id: poll\n",
    """      - id: q2
        ask: What does the madman fail to make believable?
        options:
          - text: His threats.
            misconception: M1
            feedback: Not on this argument.
            next: fix-m1
          - text: His promises.
            correct: true
            feedback: The promises.
      - id: poll
""",
)
VARIANT = (
    "      - id: fix-m1\n",
    """      - id: q1b
        ask: Put differently, what does yielding to him gain?
        next: poll
        options:
          - text: Nothing, as he may not keep the deal.
            correct: true
            feedback: Nothing is assured.
          - text: Safety from his threats.
            feedback: Only if he keeps his word.
      - id: fix-m1
""",
)
CHECKLIST = (
    "        model_answer: Yielding only pays if the deal is kept.\n",
    "        model_answer: Yielding only pays if the deal is kept.\n"
    "        checklist: [It names the promise., It says what yielding gains., It names the opponent.]\n",
)


def test_a_shared_remedy_returns_to_the_question_that_sent_the_learner():
    lesson = tiny_lesson(TO_Q2, SHARED_REMEDY).lesson
    at_q2 = START + [Choose("q1", 1)]
    result = run(lesson, at_q2 + [Choose("q2", 0), Continue("fix-m1")])
    assert result.state.node == "q2" and result.state.back_to is None
    assert run(lesson, START + [Choose("q1", 0), Continue("fix-m1")]).state.node == "q1"


def test_a_misconception_met_again_shows_the_answer_instead_of_the_same_remedy():
    lesson = tiny_lesson(TO_Q2, SHARED_REMEDY).lesson
    before = START + [Choose("q1", 0), Continue("fix-m1"), Choose("q1", 1)]
    result = run(lesson, before + [Choose("q2", 0)])
    assert shown(result.outputs) == ["wrong: Not on this argument.", "reveal: The answer is: His promises.\n\nThe promises.", "choice poll"]
    assert result.outcome["revealed"] is True and result.state.missed == ("q1", "q2")


def test_a_variant_is_asked_after_the_remedy_and_a_miss_there_shows_the_answer():
    lesson = tiny_lesson(("        next: poll\n        options:", "        next: poll\n        variant: q1b\n        options:"), VARIANT).lesson
    result = run(lesson, START + [Choose("q1", 0), Continue("fix-m1")])
    assert result.state.node == "q1b"
    assert run(lesson, START + [Choose("q1", 2)]).state.node == "q1b"  # a wrong answer without remedy too
    wrong = run(lesson, START + [Choose("q1", 0), Continue("fix-m1"), Choose("q1b", 1)])
    assert shown(wrong.outputs)[1].startswith("reveal: The answer is: Nothing, as he may not keep the deal.")
    right = run(lesson, START + [Choose("q1", 0), Continue("fix-m1"), Choose("q1b", 0)])
    assert right.state.node == "poll" and right.state.score == 0 and right.state.solved == ("q1",)
    assert engine.graded_questions(lesson) == 1


def test_a_self_check_records_the_points_marked_and_stale_or_forged_points_change_nothing():
    lesson = tiny_lesson(CHECKLIST).lesson
    answered = run(lesson, AT_REFLECT + [Answer("They would not keep the deal.")])
    assert shown(answered.outputs) == [f"neutral: {engine.SAVED}", "model: Yielding only pays if the deal is kept.", "check reflect"]
    assert answered.outputs[-1].options == ("It names the promise.", "It says what yielding gains.", "It names the opponent.")
    state = answered.state
    for value, error in [(Check("reflect", (3,)), engine.InvalidOption), (Answer("more words here"), engine.UnexpectedInput),
                         (Check("q1", (0,)), engine.StaleInput)]:
        with pytest.raises(error):
            engine.step(lesson, state, value)
    done = engine.step(lesson, state, Check("reflect", (2, 0, 0)))
    assert done.outcome == {"covered": [0, 2], "of": 3}
    assert done.state.node == "done" and not done.state.checking


def test_the_end_recalls_the_learners_words_and_offers_the_parts_they_missed(tiny):
    result = run(tiny.lesson, START + [Choose("q1", 0), Continue("fix-m1"), Choose("q1", 1), Choose("poll", 1), Answer("no deal no yield")])
    summary = result.outputs[-1]
    assert summary.recalled == (("Do you find this convincing?", "No"), ("Why does trust matter here?", "no deal no yield"))
    assert [(look.section, look.part, look.title, look.ideas) for look in summary.look_again] == [
        ("main", 2, "Why it backfires", ("M1",))
    ]
    back = engine.step(tiny.lesson, result.state, Revisit("main"))
    assert back.state.node == "claim" and not back.state.finished
    assert shown(back.outputs) == ["notice: Part 2 of 3: Why it backfires", "message claim"]
    again = run(tiny.lesson, [Continue("claim"), Choose("q1", 1)], back.state)
    assert again.state.score == 0  # a question answered before is no first try
    with pytest.raises(engine.StaleInput):  # a look back is offered at the end only
        engine.step(tiny.lesson, again.state, Revisit("main"))
    # Out of the part looked at, the learner is back at the end, not through the rest again.
    out = engine.step(tiny.lesson, again.state, Choose("poll", 1))
    assert out.state.node == "done" and out.state.finished and out.state.end is None
    assert shown(out.outputs)[-3:] == ["notice: Part 3 of 3: In your own words", "end done", "summary 0/1 ['M1']"]
    assert isinstance(out.outputs[-1], engine.Summary) and out.outputs[-1].recalled == summary.recalled
    assert State.from_dict(json.loads(json.dumps(back.state.to_dict()))) == back.state  # kept across restarts

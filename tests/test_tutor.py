"""The tutor: resume, restart, stale buttons, and lessons edited under a learner."""

from __future__ import annotations

import pytest

from bot import engine
from bot.engine import Answer, Choose, Continue, Step, Summary
from bot.loader import load_text
from bot.tutor import Tutor, UnknownLesson

CLAIM = """\
      - id: claim
        covers: [C5]
        say: Acting unpredictable can backfire.
"""
INTRO = """\
  - id: intro
    title: Getting started
    nodes:
      - id: hello
        say: Hello.
"""
UPDATED = "This lesson has been updated and your step is gone, so you continue from {}."
STALE = "That button belongs to an earlier step, so nothing changed. Here is where you are now:"


def texts(reply) -> list[str]:
    """What the learner reads: notices and feedback as text, steps by node id, the summary."""
    out = []
    for output in reply.outputs:
        if isinstance(output, Step):
            out.append(f"[{output.node}]")
        elif isinstance(output, Summary):
            out.append(f"score {output.score}/{output.questions}")
        else:
            out.append(output.text)
    return out


@pytest.fixture
def tutor(store, tiny):
    return Tutor(store, {"tiny": tiny})


def test_begin_then_resume_in_a_new_tutor(store, tiny, tutor):
    assert texts(tutor.begin("a", "c", "tiny")) == ["Part 1 of 3: Getting started", "[hello]"]
    tutor.act("a", "c", Continue("hello"))
    tutor.act("a", "c", Continue("claim"))
    events = len(store.events())

    again = Tutor(store, {"tiny": tiny})  # as after a restart of the program
    reply = again.begin("a", "c", "tiny")
    assert texts(reply) == ["Welcome back to “A tiny lesson”. You are in part 2 of 3: Why it backfires.", "[q1]"]
    assert reply.step.options[reply.step.order.index(1)] == "No one trusts the madman to keep a deal."
    first = tutor.current("a", "c").step
    assert (reply.step.options, reply.step.order) == (first.options, first.order)  # the same order after a restart
    assert len(store.events()) == events  # resuming records nothing
    # Showing the step again says where the learner is, without a welcome.
    assert texts(again.current("a", "c")) == ["You are in part 2 of 3: Why it backfires.", "[q1]"]


def test_restart_starts_over(store, tutor):
    tutor.begin("a", "c", "tiny")
    for value in [Continue("hello"), Continue("claim"), Choose("q1", 1)]:
        tutor.act("a", "c", value)
    assert store.progress("a", "tiny", "c").state.score == 1

    assert texts(tutor.begin("a", "c", "tiny", restart=True)) == ["Part 1 of 3: Getting started", "[hello]"]
    state = store.progress("a", "tiny", "c").state
    assert (state.node, state.score, state.attempts) == ("hello", 0, {})
    assert [e["input"]["kind"] for e in store.events()][-1] == "start"


def test_learners_and_chats_are_kept_apart(store, tutor):
    tutor.begin("a", "c", "tiny")
    tutor.act("a", "c", Continue("hello"))
    assert texts(tutor.begin("b", "c", "tiny")) == ["Part 1 of 3: Getting started", "[hello]"]
    assert texts(tutor.begin("a", "group", "tiny"))[-1] == "[hello]"
    assert tutor.begin("a", "c", "tiny").step.node == "claim"


def test_stale_button_changes_nothing(store, tutor):
    tutor.begin("a", "c", "tiny")
    tutor.act("a", "c", Continue("hello"))
    before = store.events()

    reply = tutor.act("a", "c", Continue("hello"))  # pressed twice
    assert isinstance(reply.error, engine.StaleInput)
    assert texts(reply) == [STALE, "[claim]"]
    assert store.events() == before
    assert tutor.act("a", "c", Continue("claim")).step.node == "q1"


@pytest.mark.parametrize(
    "value, error, message",
    [
        (Choose("q1", 7), engine.InvalidOption, "That answer is not one of the options, so nothing changed. Here is the question again:"),
        (Answer("because of trust"), engine.UnexpectedInput, "That does not answer this step, so nothing changed. Here it is again:"),
        (Choose("poll", 0), engine.StaleInput, STALE),
    ],
)
def test_refused_inputs_repeat_the_question(store, tutor, value, error, message):
    tutor.begin("a", "c", "tiny")
    tutor.act("a", "c", Continue("hello"))
    tutor.act("a", "c", Continue("claim"))
    before = store.events()
    reply = tutor.act("a", "c", value)
    assert isinstance(reply.error, error)
    assert texts(reply) == [message, "[q1]"]
    assert store.events() == before


def test_short_answer_asks_for_more(store, tutor):
    tutor.begin("a", "c", "tiny")
    for value in [Continue("hello"), Continue("claim"), Choose("q1", 1), Choose("poll", 0)]:
        tutor.act("a", "c", value)
    reply = tutor.act("a", "c", Answer("too short"))
    assert texts(reply) == ["Could you say a little more? Please write at least 3 words.", "[reflect]"]
    reply = tutor.act("a", "c", Answer("they keep a deal"))
    assert texts(reply) == [engine.SAVED, "Yielding only pays if the deal is kept.", "[done]", "score 1/1"]


def test_after_the_end(store, tutor):
    tutor.begin("a", "c", "tiny")
    for value in [Continue("hello"), Continue("claim"), Choose("q1", 1), Choose("poll", 0), Answer("a b c")]:
        tutor.act("a", "c", value)
    finished = "You have finished this lesson."
    reply = tutor.act("a", "c", Choose("q1", 1))
    assert isinstance(reply.error, engine.LessonFinished)
    assert texts(reply) == [finished]
    again = tutor.begin("a", "c", "tiny")
    assert texts(again) == [finished]
    assert isinstance(again.error, engine.LessonFinished)
    assert tutor.progress_text("a", "c") == (
        "Lesson: A tiny lesson\nFinished.\nQuestions answered: 1 of 1\nRight at the first try: 1"
    )


def test_nothing_started(tutor):
    not_started = "You have not started a lesson yet. Use /start to begin."
    reply = tutor.act("a", "c", Continue("hello"))
    assert isinstance(reply.error, engine.NotStarted)
    assert texts(reply) == [not_started]
    assert texts(tutor.current("a", "c")) == [not_started]
    assert tutor.progress_text("a", "c") == not_started
    with pytest.raises(UnknownLesson):
        tutor.begin("a", "c", "nope")


# --- the lesson file changes under a learner ------------------------------------------


def test_node_removed_moves_to_the_start_of_the_section(store, tiny, lesson_text):
    Tutor(store, {"tiny": tiny}).begin("a", "c", "tiny")
    Tutor(store, {"tiny": tiny}).act("a", "c", Continue("hello"))  # now at claim, in part 2
    edited = load_text(lesson_text((CLAIM, "")), "tiny.yaml")
    tutor = Tutor(store, {"tiny": edited})

    reply = tutor.begin("a", "c", "tiny")
    assert texts(reply) == [
        UPDATED.format("the start of this part"),
        "Part 2 of 3: Why it backfires",
        "Welcome back to “A tiny lesson”. You are in part 2 of 3: Why it backfires.",
        "[q1]",
    ]
    last = store.events()[-1]
    assert (last["input"], last["node"], last["lesson_hash"], last["state"]["node"]) == (
        {"kind": "resync"}, "claim", edited.content_hash, "q1",
    )
    # Not stuck: the learner answers on to the end.
    for value in [Choose("q1", 1), Choose("poll", 0)]:
        assert tutor.act("a", "c", value).error is None
    assert tutor.act("a", "c", Answer("they keep a deal")).step.kind == "end"


def test_node_removed_while_pressing_its_button(store, tiny, lesson_text):
    tutor = Tutor(store, {"tiny": tiny})
    tutor.begin("a", "c", "tiny")
    tutor.act("a", "c", Continue("hello"))
    edited = Tutor(store, {"tiny": load_text(lesson_text((CLAIM, "")), "tiny.yaml")})

    reply = edited.act("a", "c", Continue("claim"))  # the old button of the removed step
    assert isinstance(reply.error, engine.StaleInput)
    assert texts(reply) == [UPDATED.format("the start of this part"), "Part 2 of 3: Why it backfires", STALE, "[q1]"]
    assert store.progress("a", "tiny", "c").state.node == "q1"
    assert edited.act("a", "c", Choose("q1", 1)).step.node == "poll"


def test_section_removed_moves_to_the_start_of_the_lesson(store, tiny, lesson_text):
    Tutor(store, {"tiny": tiny}).begin("a", "c", "tiny")  # at hello, in the intro section
    edited = Tutor(store, {"tiny": load_text(lesson_text((INTRO, "")), "tiny.yaml")})

    reply = edited.act("a", "c", Continue("hello"))
    assert texts(reply) == [UPDATED.format("the start of the lesson"), "Part 1 of 2: Why it backfires", STALE, "[claim]"]
    assert store.progress("a", "tiny", "c").state.section == "main"
    assert texts(edited.act("a", "c", Continue("claim"))) == ["[q1]"]


def test_edit_that_keeps_the_node_changes_nothing(store, tiny, lesson_text):
    Tutor(store, {"tiny": tiny}).begin("a", "c", "tiny")
    edited = Tutor(store, {"tiny": load_text(lesson_text(("say: Hello.", "say: Hello again.")), "tiny.yaml")})
    reply = edited.begin("a", "c", "tiny")
    assert texts(reply) == ["Welcome back to “A tiny lesson”. You are in part 1 of 3: Getting started.", "[hello]"]
    assert reply.step.text == "Hello again."
    assert [e["input"]["kind"] for e in store.events()] == ["start"]


def test_typed_numbers_pick_what_the_learner_sees_and_self_check_numbers_mark_points(store):
    from tests.conftest import tiny_lesson

    lesson = tiny_lesson((
        "        model_answer: Yielding only pays if the deal is kept.\n",
        "        model_answer: Yielding only pays if the deal is kept.\n        checklist: [One., Two., Three.]\n",
    ))
    tutor = Tutor(store, {"tiny": lesson}, seeds=lambda: 5)
    tutor.begin("a", "c", "tiny")
    tutor.act("a", "c", Continue("hello"))
    step = tutor.act("a", "c", Continue("claim")).step
    shown_at = step.options.index("No one trusts the madman to keep a deal.") + 1
    reply = tutor.typed("a", "c", str(shown_at))
    assert reply.outputs[0].verdict == "correct"
    tutor.typed("a", "c", "No")  # an option by its exact text
    tutor.typed("a", "c", "They would not keep the deal.")
    assert tutor.current("a", "c").step.kind == "check"
    assert isinstance(tutor.typed("a", "c", "1 4").error, engine.InvalidOption)
    assert tutor.typed("a", "c", "3, 1").error is None
    assert store.events()[-1]["outcome"] == {"covered": [0, 2], "of": 3}

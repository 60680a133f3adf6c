"""How lesson steps look in Telegram: escaping, buttons, splitting, button data."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bot.engine import Feedback, LookAgain, Notice, Quoted, Step, Summary
from bot.lesson import LIST_ITEM, reflow
from bot.loader import load_all, load_text
from bot.telegram_bot.render import (
    BadButton,
    CheckButton,
    ChoiceButton,
    ConfirmButton,
    ContinueButton,
    LessonButton,
    RevisitButton,
    button_data,
    check_buttons,
    messages,
    parse_button,
    split,
    step_message,
    visible_length,
)
from tests.fake_telegram import plain, text_refused

LESSON = load_text(
    """
lesson:
  id: tiny
  title: Tiny
  description: A tiny lesson.
  source: {title: T, author: A, publication: P, date: D}
  covers: [C1]
  argument_map: {C1: "Claim one", M1: "Misreading <one> & more"}
sections:
  - id: s
    title: S
    nodes:
      - id: q
        covers: [C1]
        ask: Q?
        options:
          - {text: "yes", correct: true, feedback: ok}
          - {text: "no", misconception: M1, feedback: "no"}
      - id: e
        end: Bye
""",
    "tiny.yaml",
).lesson


def step(kind: str, text: str = "Body", options: tuple[str, ...] = ()) -> Step:
    return Step("q", kind, text, options, 1, 2, "S")


def test_lesson_text_is_escaped() -> None:
    [message] = messages(LESSON, (step("message", "Use <b>bold</b> & see"),))
    assert message.text == "▰▱ part 1 of 2\n\nUse &lt;b&gt;bold&lt;/b&gt; &amp; see"
    assert message.buttons == ((("Continue ▸", "c:tiny:q"),),)


def test_short_options_are_buttons_long_ones_are_numbered() -> None:
    [short] = messages(LESSON, (step("choice", "Q?", ("True", "False")),))
    assert short.buttons == ((("True", "a:tiny:q:0"),), (("False", "a:tiny:q:1"),))
    long_options = ("An option far longer than fits on a button", "Another long option, also too long")
    [numbered] = messages(LESSON, (step("choice", "Q?", long_options),))
    assert numbered.text == f"▰▱ part 1 of 2\n\nQ?\n\n<b>1.</b> {long_options[0]}\n<b>2.</b> {long_options[1]}"
    assert numbered.buttons == ((("1", "a:tiny:q:0"), ("2", "a:tiny:q:1")),)


def test_feedback_part_heading_step_and_summary_are_one_message() -> None:
    outputs = (
        Feedback("Right & well done", "correct"),
        Notice("Part 2 of 2: The end", 2, 2),
        Step("e", "end", "Bye", (), 2, 2, "The end"),
        Summary(1, 2, ("M1",), (("Your view?", "Mine <3"),), (LookAgain("s", 1, "S & T", ("M1",)),)),
    )
    [end] = messages(LESSON, outputs, echo="<b>Your answer:</b> Yes")  # one message for the answer
    assert end.text.startswith(
        "<b>Your answer:</b> Yes\n\n✅ Right &amp; well done\n\n┈┈┈┈┈┈┈┈\n"
        "▰▰ <b>Part 2 of 2: The end</b>\n\n🏁 Bye\n\n<b>Your result:</b> 1 of 2 questions"
    )
    assert "<b>You were asked:</b> Your view?\n<b>You said:</b> <i>Mine &lt;3</i>" in end.text
    assert "• Part 1: S &amp; T\n   – Misreading &lt;one&gt; &amp; more" in end.text
    assert end.buttons == ((("Look again: part 1", "v:tiny:s"),),)


def test_options_show_in_the_learners_order_and_each_button_names_its_option() -> None:
    shuffled = Step("q", "choice", "Q?", ("False", "True"), 1, 2, "S", order=(1, 0))
    [message] = messages(LESSON, (shuffled,))
    assert message.buttons == ((("False", "a:tiny:q:1"),), (("True", "a:tiny:q:0"),))


def test_a_quote_is_a_blockquote_with_its_author_and_paragraph() -> None:
    quoted = Step("q", "message", "So what?", (), 1, 2, "S", quote=Quoted("It isn't <working>.", 14))
    [message] = messages(LESSON, (quoted,))
    assert message.text == (
        "▰▱ part 1 of 2\n\n<blockquote>It isn&#x27;t &lt;working&gt;.</blockquote>\n"
        "<i>— A, paragraph 14</i>\n\nSo what?"
    )


def test_a_self_check_lists_its_points_with_a_toggle_each_and_done() -> None:
    check = Step("q", "check", "Which points?", ("One", "Two"), 1, 2, "S")
    [message] = messages(LESSON, (check,))
    assert "<b>1.</b> One\n<b>2.</b> Two" in message.text
    assert message.buttons == ((("☐ 1", "t:tiny:q:01"), ("☐ 2", "t:tiny:q:02")), (("Done ▸", "k:tiny:q:00"),))
    assert check_buttons("tiny", check, 0b10) == ((("☐ 1", "t:tiny:q:03"), ("☑ 2", "t:tiny:q:00")), (("Done ▸", "k:tiny:q:02"),))
    assert parse_button("t:tiny:q:03") == CheckButton("tiny", "q", 3, False)
    assert parse_button("k:tiny:q:02") == CheckButton("tiny", "q", 2, True)


def test_free_text_step_says_to_type() -> None:
    [message] = messages(LESSON, (step("text", "Explain."),))
    assert message.text.startswith("▰▱ part 1 of 2\n\nExplain.\n\n<i>") and "Type your answer" in message.text
    assert message.buttons == ()


def test_long_text_is_split_at_telegrams_limit_without_losing_words() -> None:
    words = [f"word{i}&amp;" for i in range(2000)]
    text = " ".join(words[:700]) + "\n\n" + " ".join(words[700:])
    pieces = split(text)
    assert len(pieces) > 1 and all(visible_length(p) <= 4096 for p in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())
    unbroken = "x" * 5000 + "&amp;" + "y" * 5000
    pieces = split(unbroken)
    assert all(visible_length(p) <= 4096 for p in pieces) and "".join(pieces) == unbroken
    assert all(p.count("&") == p.count(";") for p in pieces)  # no entity cut in two


@pytest.mark.parametrize("seed", range(40))
def test_every_piece_is_whole_html_telegram_takes_and_no_word_is_lost(seed: int) -> None:
    """Long replies of every shape: tags around long runs, links, entities that make the HTML
    longer than what Telegram counts, emoji that count twice, lines and unbroken runs."""
    rng = random.Random(seed)
    parts = []
    for _ in range(rng.randint(20, 400)):
        word = rng.choice(["&amp;&lt;&gt;&quot;", "word", "🙂🙂", "ĉu", "x" * rng.randint(1, 300), "&#39;"])
        tag = rng.choice([None, None, "b", "i", "blockquote", 'a href="https://example.com/?a=1&amp;b=2"'])
        parts.append(f"<{tag}>{word} {word}</{tag.split()[0]}>" if tag else word)
        parts.append(rng.choice([" ", " ", "\n", "\n\n"]))
    text = "<i>" + "".join(parts) + "</i>"
    limit = rng.choice([4096, 500, 60])
    pieces = split(text, limit)
    for piece in pieces:
        assert visible_length(piece) <= limit
        if limit == 4096:
            assert text_refused(piece, "HTML") is None, piece[:80]
    words = lambda t: "".join(plain(t).split())  # noqa: E731 - whitespace may go at a cut, nothing else
    assert words("".join(pieces)) == words(text)
    if visible_length(text) <= limit:
        assert pieces == [text]  # what fits is never cut, however long its HTML


@pytest.mark.parametrize(
    "button",
    [ChoiceButton("madman", "q-why-backfire", 3), ContinueButton("madman", "welcome"), LessonButton("madman-core"),
     ConfirmButton("restart", "madman", True), ConfirmButton("forget", None, False),
     CheckButton("madman", "reflect-c5", 0x3F, False), CheckButton("madman", "reflect-c5", 0, True), RevisitButton("madman", "libya")],
)
def test_button_data_round_trips(button) -> None:
    assert parse_button(button_data(button)) == button


def test_the_longest_ids_fit_in_64_bytes() -> None:
    for button in [ChoiceButton("l" * 24, "n" * 32, 7), CheckButton("l" * 24, "n" * 32, 0xFF, True), RevisitButton("l" * 24, "s" * 32)]:
        assert len(button_data(button).encode()) <= 64


@pytest.mark.parametrize(
    "data", [None, "", "a:madman:q", "a:madman:q:10", "a:Madman:q:1", "a:madman:q:-1", "x:1", "a:madman:q:1:extra",
             "restart:madman:maybe", "forget:", "a:madman:../q:1", "é" * 40, "t:madman:q:1", "k:madman:q:0g", "v:madman:"],
)
def test_garbled_button_data_is_refused(data) -> None:
    with pytest.raises(BadButton):
        parse_button(data)


def test_line_breaks_inside_a_paragraph_are_joined_lists_and_paragraphs_kept() -> None:
    assert reflow("The madman theory says\nthat fear works.\n\n1. A threat\n   that is believed\n2. A promise") == (
        "The madman theory says that fear works.\n\n1. A threat that is believed\n2. A promise"
    )
    dialogues = Path(__file__).resolve().parent.parent / "dialogues"
    for loaded in load_all([dialogues]).values():
        for node in loaded.lesson.nodes.values():
            for paragraph in node.text.split("\n\n"):
                for line in paragraph.split("\n")[1:]:  # a line break inside a paragraph starts a list item
                    assert LIST_ITEM.match(line), (node.id, paragraph)
    core = load_all([dialogues / "madman-core.yaml"])["madman-core"].lesson
    message = step_message("madman-core", Step("remedy-m1", "message", core.nodes["remedy-m1"].text, (), 1, 1, "x"))
    assert "\n1. If I refuse, I will be hurt" in message.text and "\n2. If I comply" in message.text


def test_a_long_recalled_answer_is_shortened_so_the_end_stays_one_valid_message() -> None:
    long_answer = "word " * 3000
    outputs = (Step("e", "end", "Bye", (), 2, 2, "The end"), Summary(1, 2, (), (("Q1?", long_answer), ("Q2?", long_answer))))
    [end] = messages(LESSON, outputs)
    assert len(end.text) < 4096 and end.text.count("<i>") == end.text.count("</i>") == 2
    assert "word …</i>" in end.text


"""The terminal player, driven through its read and write functions like a person at a keyboard."""

from __future__ import annotations

import pytest

from bot import engine
from bot.console import Console
from bot.tutor import Tutor
from tests.conftest import tiny_lesson
from tests.core_lesson import option_number

RIGHT_OPTION = "No one trusts the madman to keep a deal."
M1_OPTION = "The threats stop being believed."
CHECKLIST = (
    "        model_answer: Yielding only pays if the deal is kept.\n",
    "        model_answer: Yielding only pays if the deal is kept.\n"
    "        checklist: [It names the promise., It says what yielding gains.]\n",
)
AGAIN = "\nTo go through it again: tutorbot play --lesson tiny --restart. Other lessons: tutorbot lessons."
WELCOME_BACK = "Welcome back to “A tiny lesson”."


class Pick:
    """A scripted line that picks an option by its text: typed as the number it is shown with."""

    def __init__(self, text: str):
        self.text = text


class Terminal:
    """Scripted keyboard and captured screen. A script item that is an exception is raised."""

    def __init__(self, *lines):
        self.lines = list(lines)
        self.prompts: list[str] = []
        self.screen: list[str] = []

    def read(self, prompt: str) -> str:
        self.prompts.append(prompt)
        assert self.lines, f"the player asked for more input than scripted, at {prompt!r}"
        line = self.lines.pop(0)
        if isinstance(line, BaseException) or (isinstance(line, type) and issubclass(line, BaseException)):
            raise line
        if isinstance(line, Pick):
            shown = next(text for text in reversed(self.screen) if "  1) " in text)  # the last question shown
            return option_number(shown, line.text)
        return line

    def write(self, text: str) -> None:
        self.screen.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.screen)


RIGHT = ["", "", Pick(RIGHT_OPTION), Pick("No"), "They would not keep the deal.", "1 2"]


@pytest.fixture
def tutor(store):
    return Tutor(store, {"tiny": tiny_lesson(CHECKLIST)})


def play(tutor, terminal, name="ann", restart=False):
    return Console(tutor, name, read=terminal.read, write=terminal.write).play("tiny", restart=restart)


def test_play_through_to_the_end(tutor):
    terminal = Terminal(*RIGHT)
    assert play(tutor, terminal) is True
    assert terminal.lines == []  # every line was read, and no more asked for
    text = terminal.text
    assert "=== ▰▱▱ Part 1 of 3: Getting started ===" in text
    assert "\nHello.\n" in terminal.screen and "\n▰▰▱ part 2 of 3\n\nWhy does it backfire?" in terminal.text
    assert "=== ▰▰▰ Part 3 of 3: In your own words ===" in text
    assert "✓ Right." in text
    assert engine.SAVED in " ".join(text.split())
    assert "\nA model answer:\nYielding only pays if the deal is kept.\n" in terminal.screen
    assert "  1) It names the promise.\n  2) It says what yielding gains." in text
    assert "That's it!" in text
    assert terminal.screen[-2:] == [
        "\nYou answered 1 of 1 question right at the first try.\n\n"
        "You were asked: Do you find this convincing?\n"
        "You said: “No”\n\n"
        "You were asked: Why does trust matter here?\n"
        "You said: “They would not keep the deal.”",
        AGAIN,
    ]
    assert terminal.prompts == (
        ["[Enter to continue] > "] * 2 + ["Your choice (1-3) > ", "Your choice (1-2) > ", "Your answer > "]
        + ["Points your answer makes (e.g. 1 3; Enter for none) > "]
    )


def test_options_show_in_the_learners_own_order_and_the_number_typed_picks_what_is_shown(store):
    orders = set()
    for seed in range(12):
        tutor = Tutor(store, {"tiny": tiny_lesson()}, seeds=lambda seed=seed: seed)
        terminal = Terminal("", "", Pick(RIGHT_OPTION), "/quit")
        assert play(tutor, terminal, name=f"l{seed}") is False
        listing = next(text for text in terminal.screen if "  1) " in text)
        orders.add(tuple(line.strip()[3:] for line in listing.strip().splitlines()[-3:]))
        assert "✓ Right." in terminal.text
    assert len(orders) > 2


def test_wrong_answers_are_explained_then_answered_and_the_end_offers_a_second_look(tutor):
    terminal = Terminal("", "", Pick(M1_OPTION), "", Pick(M1_OPTION), Pick("Yes"), "a b c", "", "7", "2", "", Pick(RIGHT_OPTION), Pick("No"), "")
    assert play(tutor, terminal) is True
    text = terminal.text
    assert "✗ A common reading, but not the column's." in text
    assert "The column is about promises." in text  # the remedy, once
    assert text.count("The column is about promises.") == 1
    assert f"→ The answer is: {RIGHT_OPTION}\n\nRight." in text  # the second miss: the answer, and on
    assert (
        "Worth another look:\n"
        "  Part 2: Why it backfires\n"
        "    - Misreading: the threats stop being believed."
    ) in text
    assert "Please type one of 2, or press Enter." in terminal.screen
    assert text.count("=== ▰▰▱ Part 2 of 3: Why it backfires ===") == 2  # looked at again
    # Then back to the end (asked once, recalled at each end), not through part 3 again.
    assert text.count("Why does trust matter here?") == 3
    assert "You answered 0 of 1 question right at the first try." in terminal.screen[-2]
    assert terminal.screen[-1] == AGAIN


@pytest.mark.parametrize("stop", ["/quit", "/QUIT", "/exit", EOFError, KeyboardInterrupt])
def test_quit_and_resume_at_the_same_step(tutor, stop):
    first = Terminal("", "", stop)
    assert play(tutor, first) is False
    assert first.screen[-1] == "\nYour place is saved. Run the same command again to continue where you left off."
    question = first.screen[-2]

    second = Terminal(*RIGHT[2:])
    assert play(tutor, second) is True
    assert second.screen[:2] == [f"\n({WELCOME_BACK} You are in part 2 of 3: Why it backfires.)", question]
    assert "You answered 1 of 1 question" in second.screen[-2]


def test_quit_on_a_message_resumes_on_that_message(tutor):
    assert play(tutor, Terminal("", KeyboardInterrupt)) is False
    second = Terminal(EOFError)
    assert play(tutor, second) is False
    assert second.screen[0] == f"\n({WELCOME_BACK} You are in part 2 of 3: Why it backfires.)"
    assert second.screen[1].endswith("Acting unpredictable can backfire.\n")


def test_invalid_numbers_and_points_get_a_hint(tutor):
    terminal = Terminal("", "", "7", "0", "two", "", Pick(RIGHT_OPTION), Pick("No"), "a b c", "3", "1 x", "1", "/quit")
    assert play(tutor, terminal) is True
    assert terminal.screen.count("Please type a number from 1 to 3.") == 4
    assert terminal.screen.count("Please type the numbers of the points your answer makes (1 to 2), or press Enter for none.") == 2
    assert "✓ Right." in terminal.text


def test_an_option_typed_by_its_text_picks_it_as_in_telegram(tutor):
    terminal = Terminal("", "", "  " + M1_OPTION.upper(), "", RIGHT_OPTION.lower(), "No", "/quit")
    assert play(tutor, terminal) is False
    assert "✗ A common reading, but not the column's." in terminal.text
    assert "✓ Right." in terminal.text
    assert "Please type a number from 1 to 3." not in terminal.screen


def test_short_and_empty_written_answers(store):
    tutor = Tutor(store, {"tiny": tiny_lesson()})
    terminal = Terminal("", "", Pick(RIGHT_OPTION), Pick("No"), "", "Trust matters.", "Trust matters a lot.")
    assert play(tutor, terminal) is True
    assert "\n(Could you say a little more? Please write at least 3 words.)" in terminal.screen
    assert terminal.prompts[-3:] == ["Your answer > "] * 3


def test_a_written_answer_longer_than_a_telegram_message_is_asked_again(store):
    tutor = Tutor(store, {"tiny": tiny_lesson()})
    huge = "trust " * 1_000_000  # a 6 MB line pasted in
    terminal = Terminal("", "", Pick(RIGHT_OPTION), Pick("No"), huge, "Trust matters a lot.")
    assert play(tutor, terminal) is True
    assert "Please keep your answer under 4,096 characters (it has 5,999,999)." in terminal.screen
    [answer] = [e["input"]["text"] for e in store.events(learner="local:ann") if e["input"]["kind"] == "answer"]
    assert answer == "Trust matters a lot."


def test_commands_help_progress_and_restart(tutor):
    terminal = Terminal("", "/help", "/progress", "/restart", "", "/quit")
    assert play(tutor, terminal) is False
    assert any(line.startswith("Commands: /quit stops (your place is saved)") for line in terminal.screen)
    assert (
        "Lesson: A tiny lesson\n"
        "▰▰▱ part 2 of 3 Why it backfires\n"
        "Questions answered: 0 of 1\n"
        "Right at the first try: 0"
    ) in terminal.screen
    assert terminal.text.count("=== ▰▱▱ Part 1 of 3: Getting started ===") == 2


def test_restart_flag_and_separate_learners(tutor):
    assert play(tutor, Terminal("", "", "/quit")) is False
    bob = Terminal("/quit")
    assert play(tutor, bob, name="bob") is False
    assert "=== ▰▱▱ Part 1 of 3: Getting started ===" in bob.text and "Welcome back" not in bob.text

    ann = Terminal("/quit")
    assert play(tutor, ann) is False
    assert "You are in part 2 of 3: Why it backfires." in ann.text

    again = Terminal("/quit")
    assert play(tutor, again, restart=True) is False
    assert "=== ▰▱▱ Part 1 of 3: Getting started ===" in again.text and "Welcome back" not in again.text


def test_finished_lesson_says_so(tutor):
    assert play(tutor, Terminal(*RIGHT)) is True
    terminal = Terminal()
    assert play(tutor, terminal) is False
    assert terminal.screen == ["\n(You have finished this lesson.)", AGAIN]


def test_a_quote_is_shown_as_a_quotation_with_its_paragraph(store):
    quoted = tiny_lesson(("        say: Acting unpredictable can backfire.\n", (
        "        quote:\n          text: The madman shtick isn't working.\n          paragraph: 14\n"
        "        say: Acting unpredictable can backfire.\n")))
    terminal = Terminal("", "/quit")
    assert play(Tutor(store, {"tiny": quoted}), terminal) is False
    assert "  │ “The madman shtick isn't working.”\n  — Andreas Kluth, paragraph 14\n" in terminal.screen[-2]

"""The terminal player, driven through its read and write functions like a person at a keyboard."""

from __future__ import annotations

import pytest

from bot.console import Console
from bot.loader import load_file
from bot.tutor import Tutor

# The core lesson answered right at every first try.
RIGHT = ["", "", "", "1", "", "2", "2", "An erratic leader cannot promise to keep a deal, so nobody trusts him."]
END_TEXT = "Well done: you have followed the core step of Kluth's argument."
WELCOME_BACK = "Welcome back to “Madman theory: why threats need promises”."

AGAIN = "\nTo go through it again: tutorbot play --lesson madman-core --restart. Other lessons: tutorbot lessons."


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
        return line

    def write(self, text: str) -> None:
        self.screen.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.screen)


@pytest.fixture
def tutor(store, core_path):
    loaded = load_file(core_path)
    return Tutor(store, {loaded.lesson.id: loaded})


def play(tutor, terminal, name="ann", restart=False):
    return Console(tutor, name, read=terminal.read, write=terminal.write).play("madman-core", restart=restart)


def test_play_through_to_the_end(tutor):
    terminal = Terminal(*RIGHT)
    assert play(tutor, terminal) is True
    assert terminal.lines == []  # every line was read, and no more asked for
    text = terminal.text
    assert "=== Part 1 of 4: The question the column asks ===" in text
    assert "=== Part 4 of 4: In your own words ===" in text
    assert "  1) It frightens opponents into giving in.\n  2) It makes allies trust the leader more." in text
    assert "✓ Right. The theory bets" in text
    assert "Good: you put your finger on trust" in text
    assert END_TEXT in text
    assert terminal.screen[-2:] == ["\nYou answered 3 of 3 questions right at the first try.", AGAIN]
    assert terminal.prompts[:4] == ["[Enter to continue] > "] * 3 + ["Your choice (1-3) > "]
    assert terminal.prompts[-1] == "Your answer > "


def test_wrong_answers_are_explained_and_listed_at_the_end(tutor):
    terminal = Terminal("", "", "", "2", "1", "", "1", "", "2", "1", "2", "x y z a b c d e")
    assert play(tutor, terminal) is True
    text = terminal.text
    assert "✗ Not quite. The theory is about opponents" in text
    assert "✗ That is a common reading, but it is not the column's point." in text
    assert "Look at it from the other side of the table." in text  # the remedy
    assert "Thank you. One thing to check in your answer" in text  # no key phrase
    assert terminal.screen[-1] == AGAIN
    assert terminal.screen[-2] == (
        "\nYou answered 0 of 3 questions right at the first try.\n"
        "Ideas worth another look:\n"
        "  - Misreading: the theory fails because opponents stop believing the threats."
    )


@pytest.mark.parametrize("stop", ["/quit", "/QUIT", "/exit", EOFError, KeyboardInterrupt])
def test_quit_and_resume_at_the_same_step(tutor, stop):
    first = Terminal("", "", "", stop)
    assert play(tutor, first) is False
    assert first.screen[-1] == "\nYour place is saved. Run the same command again to continue where you left off."
    assert "Well done" not in first.text

    second = Terminal(*RIGHT[3:])
    assert play(tutor, second) is True
    assert second.screen[:2] == [
        f"\n({WELCOME_BACK} You are in part 2 of 4: The madman theory.)",
        "\nAccording to the theory, what is unpredictability supposed to achieve?\n\n"
        "  1) It frightens opponents into giving in.\n"
        "  2) It makes allies trust the leader more.\n"
        "  3) It keeps the leader's real goals secret from voters at home.\n",
    ]
    assert second.screen[-2:] == ["\nYou answered 3 of 3 questions right at the first try.", AGAIN]


def test_quit_on_a_message_resumes_on_that_message(tutor):
    assert play(tutor, Terminal("", KeyboardInterrupt)) is False
    second = Terminal(EOFError)
    assert play(tutor, second) is False
    assert second.screen[0] == f"\n({WELCOME_BACK} You are in part 1 of 4: The question the column asks.)"
    assert second.screen[1].startswith("\nYou will read a claim, then answer a question about it.")


def test_invalid_numbers_get_a_hint(tutor):
    terminal = Terminal("", "", "", "7", "0", "two", "", "1", "/quit")
    assert play(tutor, terminal) is False
    hint = "Please type a number from 1 to 3."
    assert terminal.screen.count(hint) == 4
    assert terminal.prompts[3:8] == ["Your choice (1-3) > "] * 5
    assert "✓ Right. The theory bets" in terminal.text


def test_short_and_empty_written_answers(tutor):
    terminal = Terminal(*RIGHT[:-1], "", "Trust matters.", RIGHT[-1])
    assert play(tutor, terminal) is True
    assert "\n(Could you say a little more? Please write at least 8 words.)" in terminal.screen
    assert terminal.prompts[-3:] == ["Your answer > "] * 3


def test_commands_help_progress_and_restart(tutor):
    terminal = Terminal("", "/help", "/progress", "/restart", "", "", "", "1", "/quit")
    assert play(tutor, terminal) is False
    assert any(line.startswith("Commands: /quit stops (your place is saved)") for line in terminal.screen)
    assert (
        "Lesson: Madman theory: why threats need promises\n"
        "Part 1 of 4: The question the column asks\n"
        "Questions answered: 0 of 3\n"
        "Right at the first try: 0"
    ) in terminal.screen
    assert terminal.text.count("=== Part 1 of 4: The question the column asks ===") == 2


def test_restart_flag_and_separate_learners(tutor):
    assert play(tutor, Terminal("", "", "", "1", "/quit")) is False
    bob = Terminal("/quit")
    assert play(tutor, bob, name="bob") is False
    assert "=== Part 1 of 4: The question the column asks ===" in bob.text and "Welcome back" not in bob.text

    ann = Terminal("/quit")
    assert play(tutor, ann) is False
    assert "You are in part 3 of 4: Why it can backfire." in ann.text

    again = Terminal("/quit")
    assert play(tutor, again, restart=True) is False
    assert "=== Part 1 of 4: The question the column asks ===" in again.text and "Welcome back" not in again.text


def test_finished_lesson_says_so(tutor):
    assert play(tutor, Terminal(*RIGHT)) is True
    terminal = Terminal()
    assert play(tutor, terminal) is False
    assert terminal.screen == [
        "\n(You have finished this lesson.)",
        "\nTo go through it again: tutorbot play --lesson madman-core --restart. Other lessons: tutorbot lessons.",
    ]

"""The terminal player: a lesson in a terminal, through the same tutor as the bot.

It reads lines and writes text through two functions it is given (`input` and
`click.echo` by default), so tests drive it exactly as a person at a keyboard would.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable

from bot import engine
from bot.engine import Answer, Choose, Continue, Feedback, Notice, Step, Summary
from bot.lesson import Lesson
from bot.tutor import Reply, Tutor, option_number

CHAT = "console"
HELP = (
    "Commands: /quit stops (your place is saved), /progress shows how far you are, "
    "/restart starts the lesson over, /help shows this."
)
AGAIN = "\nTo go through it again: tutorbot play --lesson {lesson} --restart. Other lessons: tutorbot lessons."
MARKS = {"correct": "✓ ", "wrong": "✗ ", "neutral": ""}


class Quit(Exception):
    """The learner asked to stop."""


def learner_id(name: str) -> str:
    return f"local:{name}"


class Console:
    """Plays one lesson for one learner until it ends or the learner quits."""

    def __init__(
        self,
        tutor: Tutor,
        learner: str,
        read: Callable[[str], str] = input,
        write: Callable[[str], None] = print,
    ):
        self.tutor = tutor
        self.learner = learner_id(learner)
        self.read = read
        self.write = write

    def play(self, lesson_id: str, restart: bool = False) -> bool:
        """Run the lesson; True if it reached an end, False if the learner quit."""
        self.tutor.store.ensure_learner(self.learner)
        lesson = self.tutor.loaded(lesson_id).lesson
        reply = self.tutor.begin(self.learner, CHAT, lesson_id, restart=restart)
        self.show(reply, lesson)
        try:
            while reply.step is not None and reply.step.kind != "end":
                reply = self.turn(lesson, reply.step)
                self.show(reply, lesson)
            self.write(AGAIN.format(lesson=lesson_id))
            return reply.step is not None
        except Quit:
            self.write("\nYour place is saved. Run the same command again to continue where you left off.")
            return False

    def turn(self, lesson: Lesson, step: Step) -> Reply:
        """Read until the learner gives an input for `step`, and apply it."""
        while True:
            line = self.ask(self.prompt(step)).strip()
            command = line.lower()
            if command in ("/quit", "/exit", "/stop"):
                raise Quit
            if command == "/help":
                self.write(HELP)
            elif command == "/progress":
                self.write(self.tutor.progress_text(self.learner, CHAT))
            elif command == "/restart":
                return self.tutor.begin(self.learner, CHAT, lesson.id, restart=True)
            elif step.kind == "message":
                return self.tutor.act(self.learner, CHAT, Continue(step.node), lesson.id)
            elif step.kind == "text":
                if line:
                    return self.tutor.act(self.learner, CHAT, Answer(line), lesson.id)
            elif (number := option_number(line)) is not None and 1 <= number <= len(step.options):
                return self.tutor.act(self.learner, CHAT, Choose(step.node, number - 1), lesson.id)
            else:
                self.write(f"Please type a number from 1 to {len(step.options)}.")

    def ask(self, prompt: str) -> str:
        try:
            return self.read(prompt)
        except (EOFError, KeyboardInterrupt):
            raise Quit from None

    @staticmethod
    def prompt(step: Step) -> str:
        if step.kind == "message":
            return "[Enter to continue] > "
        if step.kind == "text":
            return "Your answer > "
        return f"Your choice (1-{len(step.options)}) > "

    def show(self, reply: Reply, lesson: Lesson) -> None:
        for output in reply.outputs:
            self.write(render(output, lesson))


def render(output: engine.Output, lesson: Lesson) -> str:
    """One output as terminal text."""
    if isinstance(output, Notice):
        if output.text.startswith("Part "):
            return f"\n=== {output.text} ===\n"
        return f"\n({output.text})"
    if isinstance(output, Feedback):
        return f"\n{wrap(MARKS[output.verdict] + output.text)}\n"
    if isinstance(output, Summary):
        lines = [f"\nYou answered {output.score} of {output.questions} questions right at the first try."]
        if output.misconceptions:
            lines.append("Ideas worth another look:")
            lines += [f"  - {lesson.lesson.argument_map.get(m, m)}" for m in output.misconceptions]
        return "\n".join(lines)
    if isinstance(output, Step):
        if output.kind == "choice":
            options = "\n".join(wrap(f"  {i}) {text}", indent="     ") for i, text in enumerate(output.options, 1))
            return f"\n{wrap(output.text.strip())}\n\n{options}\n"
        return f"\n{wrap(output.text.strip())}\n"
    raise TypeError(f"cannot render {output!r}")


def wrap(text: str, indent: str = "") -> str:
    """Fold long lines at word ends to the terminal's width (at most 88 columns)."""
    width = min(shutil.get_terminal_size().columns, 88) - 1
    return "\n".join(
        textwrap.fill(line, width, subsequent_indent=indent, break_long_words=False) if len(line) > width else line
        for line in text.split("\n")
    )

"""The terminal player: a lesson in a terminal, through the same tutor as the bot.

It reads lines and writes text through two functions it is given (`input` and
`click.echo` by default), so tests drive it exactly as a person at a keyboard would.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable

from bot import engine
from bot.engine import Answer, Check, Choose, Continue, Feedback, Notice, Revisit, Step, Summary
from bot.lesson import Lesson
from bot.tutor import Reply, Tutor, checked_points, option_number, progress_bar, progress_marks

CHAT = "console"
MAX_ANSWER = 4096  # characters of a written answer: what one Telegram message can carry
HELP = (
    "Commands: /quit stops (your place is saved), /progress shows how far you are, "
    "/restart starts the lesson over, /help shows this."
)
AGAIN = "\nTo go through it again: {command}. Other lessons: tutorbot lessons."
MARKS = {"correct": "✓ ", "wrong": "✗ ", "neutral": "", "reveal": "→ ", "model": "A model answer:\n"}


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
        again: str | None = None,
    ):
        self.tutor = tutor
        self.learner = learner_id(learner)
        self.read = read
        self.write = write
        self.again = again  # the command that plays this lesson again (default: by its id)

    def play(self, lesson_id: str, restart: bool = False) -> bool:
        """Run the lesson; True if it reached an end, False if the learner quit."""
        self.tutor.store.ensure_learner(self.learner)
        lesson = self.tutor.loaded(lesson_id).lesson
        reply = self.tutor.begin(self.learner, CHAT, lesson_id, restart=restart)
        self.show(reply, lesson)
        try:
            while reply.step is not None:
                if reply.step.kind == "end":
                    revisit = self.after_end(lesson, reply)
                    if revisit is None:
                        break
                    reply = self.tutor.act(self.learner, CHAT, revisit, lesson.id)
                else:
                    reply = self.turn(lesson, reply.step)
                self.show(reply, lesson)
            self.write(AGAIN.format(command=self.again or f"tutorbot play --lesson {lesson_id} --restart"))
            return reply.step is not None
        except Quit:
            self.write("\nYour place is saved. Run the same command again to continue where you left off.")
            return False

    def after_end(self, lesson: Lesson, reply: Reply) -> Revisit | None:
        """At the end: the part the learner wants to look at again, or None to leave."""
        summary = next((o for o in reply.outputs if isinstance(o, Summary)), None)
        parts = {look.part: look.section for look in summary.look_again} if summary else {}
        if not parts:
            return None
        while True:
            line = self.ask("Type a part's number to look at it again, or press Enter to finish > ").strip()
            if not line or line.lower() in ("/quit", "/exit", "/stop"):
                return None
            number = option_number(line)
            if number in parts:
                return Revisit(parts[number])
            self.write(f"Please type one of {', '.join(str(p) for p in parts)}, or press Enter.")

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
                if len(line) > MAX_ANSWER:  # as long as a Telegram message may be
                    self.write(f"Please keep your answer under {MAX_ANSWER:,} characters (it has {len(line):,}).")
                elif line:
                    return self.tutor.act(self.learner, CHAT, Answer(line), lesson.id)
            elif step.kind == "check":
                points = checked_points(line)
                if points is not None and all(0 <= p < len(step.options) for p in points):
                    return self.tutor.act(self.learner, CHAT, Check(step.node, points), lesson.id)
                self.write(f"Please type the numbers of the points your answer makes (1 to {len(step.options)}), or press Enter for none.")
            elif (number := option_number(line) or chosen_text(step, line)) is not None and 1 <= number <= len(step.options):
                return self.tutor.act(self.learner, CHAT, Choose(step.node, step.option_id(number - 1)), lesson.id)
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
        if step.kind == "check":
            return "Points your answer makes (e.g. 1 3; Enter for none) > "
        return f"Your choice (1-{len(step.options)}) > "

    def show(self, reply: Reply, lesson: Lesson) -> None:
        heading = False
        for output in reply.outputs:
            self.write(render(output, lesson, bar=not heading))
            heading = isinstance(output, Notice) and output.part is not None


def chosen_text(step: Step, line: str) -> int | None:
    """The number of the option whose exact text was typed (any case), as Telegram takes it."""
    folded = [option.casefold() for option in step.options]
    return folded.index(line.casefold()) + 1 if line.casefold() in folded else None


def render(output: engine.Output, lesson: Lesson, bar: bool = True) -> str:
    """One output as terminal text. A new part's heading carries the progress marks, and
    every other step starts with them (`bar`)."""
    if isinstance(output, Notice):
        if output.part is not None and output.parts is not None:
            return f"\n=== {progress_marks(output.part, output.parts)} {output.text} ==="
        return f"\n({output.text})"
    if isinstance(output, Feedback):
        return f"\n{wrap(MARKS[output.verdict] + output.text)}\n"
    if isinstance(output, Summary):
        return summary(output, lesson)
    if isinstance(output, Step):
        head = f"\n{progress_bar(output.part, output.parts)}\n" if bar else ""
        if output.quote:
            quoted = wrap(f"“{output.quote.text}”", indent="  │ ")
            source = lesson.lesson.source.author
            head += f"\n  │ {quoted}\n  — {source}, paragraph {output.quote.paragraph}\n"
        body = wrap(output.text.strip())
        if output.kind in ("choice", "check"):
            options = "\n".join(wrap(f"  {i}) {text}", indent="     ") for i, text in enumerate(output.options, 1))
            return f"{head}\n{body}\n\n{options}\n"
        return f"{head}\n{body}\n"
    raise TypeError(f"cannot render {output!r}")


def summary(output: Summary, lesson: Lesson) -> str:
    lines = [f"\nYou answered {output.result}."]
    for question, answer in output.recalled:
        lines += ["", wrap(f"You were asked: {question}"), wrap(f"You said: “{answer}”", indent="  ")]
    if output.look_again:
        lines += ["", "Worth another look:"]
        for look in output.look_again:
            lines.append(wrap(f"  Part {look.part}: {look.title}", indent="    "))
            lines += [wrap(f"    - {lesson.lesson.argument_map.get(m, m)}", indent="      ") for m in look.ideas]
    return "\n".join(lines)


def wrap(text: str, indent: str = "") -> str:
    """Fold long lines at word ends to the terminal's width (at most 88 columns)."""
    width = min(shutil.get_terminal_size().columns, 88) - 1
    return "\n".join(
        textwrap.fill(line, width, subsequent_indent=indent, break_long_words=False) if len(line) > width else line
        for line in text.split("\n")
    )

"""Engine outputs as Telegram messages, and button data in and out.

Everything here is plain data: `OutMessage` (HTML text and button rows) and the parsed
button payloads. Button data is untrusted and tiny (64 bytes), so it carries short ids
only and is parsed strictly; anything else is `BadButton`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import InlineKeyboardButtonLimit, MessageLimit

from bot.engine import Feedback, Notice, Output, Step, Summary
from bot.lesson import Lesson
from bot.tutor import progress_bar, progress_marks

SHORT_OPTION = 30  # options up to this long go on the buttons themselves
MARKS = {"correct": "✅ ", "wrong": "❌ ", "neutral": "💬 ", "reveal": "➡️ ", "model": "📝 <b>A model answer:</b>\n"}
DONE = "Done ▸"
CONTINUE = "Continue ▸"
TYPE_HINT = "✍️ Type your answer and send it as a message."
SEPARATOR = "┈┈┈┈┈┈┈┈"  # between the feedback on an answer and the step that follows, in one message


@dataclass(frozen=True)
class OutMessage:
    """One message to send: HTML text and rows of (label, button data)."""

    text: str
    buttons: tuple[tuple[tuple[str, str], ...], ...] = ()
    step: str | None = None  # "<lesson>:<node>" when the message shows that step

    def markup(self) -> InlineKeyboardMarkup | None:
        if not self.buttons:
            return None
        return InlineKeyboardMarkup([[_button(label, data) for label, data in row] for row in self.buttons])


def _button(label: str, data: str) -> InlineKeyboardButton:
    """A button: a link if `data` is an https address (a deep link to the bot), else callback data."""
    if data.startswith("https://"):
        return InlineKeyboardButton(label, url=data)
    return InlineKeyboardButton(label, callback_data=data)


# --- button data ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChoiceButton:
    lesson: str
    node: str
    option: int


@dataclass(frozen=True)
class ContinueButton:
    lesson: str
    node: str


@dataclass(frozen=True)
class LessonButton:
    lesson: str


@dataclass(frozen=True)
class ConfirmButton:
    action: str  # "restart" or "forget"
    lesson: str | None  # the lesson to restart
    yes: bool
    event: int | None = None  # the learner's last event when asked, so that an old button is stale


@dataclass(frozen=True)
class CheckButton:
    """A self-check's buttons: `done` False toggles the points to `marked` (a bit per
    point), True submits `marked`. The marks live in the button data, not on the server."""

    lesson: str
    node: str
    marked: int
    done: bool


@dataclass(frozen=True)
class RevisitButton:
    lesson: str
    section: str


Button = ChoiceButton | ContinueButton | LessonButton | ConfirmButton | CheckButton | RevisitButton


class BadButton(ValueError):
    """Button data that no button of this bot carries."""


_ID = r"[a-z0-9][a-z0-9_-]*"
_PATTERNS = [
    (re.compile(rf"a:({_ID}):({_ID}):([0-9])"), lambda m: ChoiceButton(m[1], m[2], int(m[3]))),
    (re.compile(rf"c:({_ID}):({_ID})"), lambda m: ContinueButton(m[1], m[2])),
    (re.compile(rf"l:({_ID})"), lambda m: LessonButton(m[1])),
    (
        re.compile(rf"([tk]):({_ID}):({_ID}):([0-9a-f]{{2}})"),
        lambda m: CheckButton(m[2], m[3], int(m[4], 16), m[1] == "k"),
    ),
    (re.compile(rf"v:({_ID}):({_ID})"), lambda m: RevisitButton(m[1], m[2])),
    (
        re.compile(rf"restart:({_ID})(?::([0-9]{{1,15}}))?:(yes|no)"),
        lambda m: ConfirmButton("restart", m[1], m[3] == "yes", int(m[2]) if m[2] else None),
    ),
    (
        re.compile(r"forget(?::([0-9]{1,15}))?:(yes|no)"),
        lambda m: ConfirmButton("forget", None, m[2] == "yes", int(m[1]) if m[1] else None),
    ),
]


# Instructor review's buttons (bot.telegram_bot.review): a file to export, a reflection reviewed.
EXPORT_DATA = re.compile(rf"x:(csv|jsonl|xapi|html):({_ID}|\*)")
REVIEW_DATA = re.compile(r"rv:(ok|skip|fb):([0-9]{1,15})")


def is_review_button(data: object) -> bool:
    """Whether a button's data belongs to instructor review."""
    return isinstance(data, str) and bool(EXPORT_DATA.fullmatch(data) or REVIEW_DATA.fullmatch(data))


def parse_button(data: object) -> Button:
    """The button that sent `data`, or `BadButton`."""
    if not isinstance(data, str) or len(data.encode(errors="surrogatepass")) > InlineKeyboardButtonLimit.MAX_CALLBACK_DATA:
        raise BadButton("unreadable button data")
    for pattern, build in _PATTERNS:
        match = pattern.fullmatch(data)
        if match:
            return build(match)
    raise BadButton("unknown button data")


def button_data(button: Button) -> str:
    if isinstance(button, ChoiceButton):
        data = f"a:{button.lesson}:{button.node}:{button.option}"
    elif isinstance(button, ContinueButton):
        data = f"c:{button.lesson}:{button.node}"
    elif isinstance(button, LessonButton):
        data = f"l:{button.lesson}"
    elif isinstance(button, CheckButton):
        data = f"{'k' if button.done else 't'}:{button.lesson}:{button.node}:{button.marked:02x}"
    elif isinstance(button, RevisitButton):
        data = f"v:{button.lesson}:{button.section}"
    else:
        event = "" if button.event is None else f":{button.event}"
        what = f"restart:{button.lesson}" if button.action == "restart" else "forget"
        data = f"{what}{event}:{'yes' if button.yes else 'no'}"
    assert len(data.encode()) <= InlineKeyboardButtonLimit.MAX_CALLBACK_DATA, data
    return data


# --- outputs as messages ------------------------------------------------------------------


def messages(lesson: Lesson, outputs: tuple[Output, ...], echo: str | None = None) -> list[OutMessage]:
    """The messages that show `outputs`: one message per step, the feedback and notices
    that lead to it on top (after `echo`, the learner's answer as HTML, if given), its
    buttons under it. So an answer costs one message: Telegram's limits are counted in
    messages, and a phone shows the feedback right above what comes next.

    A new part's heading goes on top of the step it introduces; a lesson's end carries
    its summary.
    """
    sent: list[OutMessage] = []
    paragraphs: list[str] = [echo] if echo else []
    heading: str | None = None
    for output in outputs:
        if isinstance(output, Notice) and output.part is not None:
            heading = f"<b>{html.escape(output.text)}</b>"
        elif isinstance(output, Notice):
            paragraphs.append(f"<i>{html.escape(output.text)}</i>")
        elif isinstance(output, Feedback):
            paragraphs.append(MARKS[output.verdict] + html.escape(output.text.strip()))
        elif isinstance(output, Summary) and sent:  # always right after the end step
            end = sent.pop()
            text, buttons = summary(lesson, output)
            sent.append(replace(end, text=end.text + "\n\n" + text, buttons=buttons))
        elif isinstance(output, Step):
            step = step_message(lesson.id, output, heading, lesson.lesson.source.author)
            if paragraphs:
                step = replace(step, text="\n\n".join(paragraphs) + f"\n\n{SEPARATOR}\n" + step.text)
                paragraphs = []
            sent.append(step)
            heading = None
    if paragraphs:
        sent.append(OutMessage("\n\n".join(paragraphs)))
    return sent


def step_message(lesson_id: str, step: Step, heading: str | None = None, author: str = "") -> OutMessage:
    return replace(_step_message(lesson_id, step, heading, author), step=f"{lesson_id}:{step.node}")


def step_body(step: Step, heading: str | None, author: str, text: bool = True) -> str:
    """A step as HTML, under a line saying where it is (with the part's title when a new
    part begins), after the column's words if it quotes them; without the step's own
    text if not `text` (a poll carries it instead)."""
    body = html.escape(step.text.strip()) if text else ""
    if step.kind == "end":
        body = f"🏁 {body}"
    if step.quote:
        who = f"{html.escape(author)}, paragraph" if author else "Paragraph"
        quote = f"<blockquote>{html.escape(step.quote.text)}</blockquote>\n<i>— {who} {step.quote.paragraph}</i>"
        body = f"{quote}\n\n{body}"
    top = f"{progress_marks(step.part, step.parts)} {heading}" if heading else progress_bar(step.part, step.parts)
    return f"{top}\n\n{body}".rstrip()


def listed(options: tuple[str, ...]) -> str:
    """Options as a numbered list (for options too long for a button)."""
    return "\n".join(f"<b>{i}.</b> {html.escape(option)}" for i, option in enumerate(options, 1))


def _step_message(lesson_id: str, step: Step, heading: str | None, author: str) -> OutMessage:
    body = step_body(step, heading, author)
    if step.kind == "message":
        return OutMessage(body, (((CONTINUE, button_data(ContinueButton(lesson_id, step.node))),),))
    if step.kind == "text":
        return OutMessage(f"{body}\n\n<i>{TYPE_HINT}</i>")
    if step.kind == "end":
        return OutMessage(body)
    if step.kind == "check":
        return check_message(lesson_id, step, body, 0)
    data = [button_data(ChoiceButton(lesson_id, step.node, step.option_id(i))) for i in range(len(step.options))]
    if all(len(option) <= SHORT_OPTION for option in step.options):
        return OutMessage(body, tuple(((option, d),) for option, d in zip(step.options, data)))
    numbers = tuple((str(i), d) for i, d in enumerate(data, 1))
    return OutMessage(f"{body}\n\n{listed(step.options)}", (numbers,))


def check_message(lesson_id: str, step: Step, body: str, marked: int) -> OutMessage:
    """A self-check: the points listed, a toggle per point (☑ marked, ☐ not) and Done."""
    listed = "\n".join(f"<b>{i}.</b> {html.escape(point)}" for i, point in enumerate(step.options, 1))
    return OutMessage(f"{body}\n\n{listed}\n\n<i>Tap the points your answer makes, then {DONE}</i>", check_buttons(lesson_id, step, marked))


def check_buttons(lesson_id: str, step: Step, marked: int) -> tuple[tuple[tuple[str, str], ...], ...]:
    toggles = tuple(
        (f"{'☑' if marked >> i & 1 else '☐'} {i + 1}", button_data(CheckButton(lesson_id, step.node, marked ^ (1 << i), False)))
        for i in range(len(step.options))
    )
    return toggles, ((DONE, button_data(CheckButton(lesson_id, step.node, marked, True))),)


def summary(lesson: Lesson, result: Summary) -> tuple[str, tuple[tuple[tuple[str, str], ...], ...]]:
    """The end's summary as HTML, with a button for each part worth another look."""
    text = f"<b>Your result:</b> {result.result}."
    for question, answer in result.recalled:
        said = html.escape(shortened(answer, RECALLED_MAX))
        text += f"\n\n<b>You were asked:</b> {html.escape(question)}\n<b>You said:</b> <i>{said}</i>"
    buttons = []
    if result.look_again:
        text += "\n\n<b>Worth another look:</b>"
        for look in result.look_again:
            text += f"\n• Part {look.part}: {html.escape(look.title)}"
            text += "".join(f"\n   – {html.escape(lesson.lesson.argument_map.get(m, m))}" for m in look.ideas)
            label = f"Look again: part {look.part}"
            buttons.append(((label, button_data(RevisitButton(lesson.id, look.section))),))
    text += "\n\nUse /lessons for more, or /restart to go through this one again."
    return text, tuple(buttons)


RECALLED_MAX = 600  # characters of a recalled answer: a reminder, and the end stays one message


def shortened(text: str, limit: int) -> str:
    """`text`, cut at a word end with "…" if it is longer than `limit`."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip() + " …"


def answered(option: str) -> str:
    """The learner's choice, echoed on top of the reply to it."""
    return f"<b>Your answer:</b> {html.escape(option)}"


def checked(points: list[int]) -> str:
    """The self-check points the learner marked, echoed on top of the reply."""
    marked = ", ".join(str(p + 1) for p in points) if points else "none"
    return f"<b>Your answer makes:</b> {marked}"


_TOKENS = re.compile(r"<[^<>]*>|&#?\w+;|.", re.S)  # a tag, an entity, or one character
_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)")


def _width(token: str) -> int:
    """What a token of HTML text counts toward Telegram's limit: its visible length, in
    UTF-16 code units (how Telegram counts), after the tags and entities are parsed."""
    if len(token) > 1:
        return 0 if token[0] == "<" else 1  # a tag, or an entity such as &amp;
    return 2 if ord(token) > 0xFFFF else 1


def visible_length(text: str) -> int:
    """The length Telegram measures a message of HTML text by."""
    return sum(_width(token) for token in _TOKENS.findall(text))


def split(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Cut HTML text into pieces of at most `limit` visible characters (Telegram's limit is
    on the text after its tags and entities are parsed), at a line end past the piece's
    middle, else a word end. No tag or entity is cut: a tag open at a cut is closed at the
    end of its piece and opened again at the start of the next, so each piece is whole HTML.
    (A learner's answer echoed back can be long, and full of `&amp;`.)"""
    pieces: list[str] = []
    while True:
        tokens = _TOKENS.findall(text)
        cut = _cut(tokens, limit)
        if cut is None:
            pieces.append(text)
            break
        at, tags = cut
        pieces.append("".join(tokens[:at]).rstrip() + "".join(f"</{name}>" for name, _ in reversed(tags)))
        text = "".join(opening for _, opening in tags) + "".join(tokens[at:]).lstrip()
    return [piece for piece in pieces if visible_length(piece.strip())]


def _cut(tokens: list[str], limit: int) -> tuple[int, tuple[tuple[str, str], ...]] | None:
    """Where to cut `tokens` (the index of the first token of the next piece) and the tags
    open there, as (name, opening tag); None if they fit in one piece."""
    length = 0
    tags: list[tuple[str, str]] = []
    lines: list[tuple[int, tuple]] = []  # cut points at line ends past the middle, and at spaces
    spaces: list[tuple[int, tuple]] = []
    for index, token in enumerate(tokens):
        tag = _TAG.match(token) if len(token) > 1 else None
        if tag is not None:
            name = tag[2].lower()
            if not tag[1]:
                tags.append((name, token))
            elif any(open_name == name for open_name, _ in tags):
                while tags and tags.pop()[0] != name:
                    pass
            continue
        width = _width(token)
        if length + width > limit:
            found = lines or spaces
            return found[-1] if found and found[-1][0] > 0 else (max(index, 1), tuple(tags))
        if token == "\n" and length >= limit // 2:
            lines.append((index, tuple(tags)))
        elif token in (" ", "\n"):
            spaces.append((index, tuple(tags)))
        length += width
    return None

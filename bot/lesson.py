"""The lesson: what a dialogue file means, as pydantic models.

This module owns the shape of a lesson (metadata, sections, nodes, options) and the
limits that keep every piece of text and every id small enough for Telegram. It does
no I/O: `bot.loader` reads the YAML and turns problems into `file:line` messages, and
the graph rules (targets, reachability, endings) live in `bot.validate`.

A node's kind is given by the one key that carries its text:
`say` (a message), `ask` (a choice question), `write` (a free-text question), `end`.
"""

from __future__ import annotations

import random
import re
import unicodedata
from functools import cached_property
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

# Telegram's limits, restated here so that the lesson model stays free of `telegram`.
MESSAGE_MAX = 4096  # characters in one message (telegram.constants.MessageLimit)
CALLBACK_DATA_MAX = 64  # bytes of button data (InlineKeyboardButtonLimit)
OPTION_TEXT_MAX = 100  # characters of an answer option (PollLimit.MAX_OPTION_LENGTH)
# Button data is "<kind>:<lesson id>:<node id>:<option>", so ids must stay short.
LESSON_ID_MAX = 24
NODE_ID_MAX = 32
OPTIONS_MAX = 8
QUOTE_MAX = 400  # characters of one quote: a sentence or two, never a whole passage
CHECKLIST_MAX = 6  # points of a self-check list (each is a toggle button)

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
MapId = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9]*$")]
LIST_ITEM = re.compile(r"^\s*(?:[-•*]|\d{1,2}[.)])\s")


def reflow(text: str) -> str:
    """Text as a reader sees it: the line breaks an author types inside a paragraph are
    joined (a phone or a terminal wraps the lines itself); a blank line starts a new
    paragraph, and a list item (`- `, `• `, `* `, `1. `, `1) `) keeps its own line."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    out = []
    for paragraph in paragraphs:
        lines: list[str] = []
        for line in paragraph.split("\n"):
            if lines and not LIST_ITEM.match(line) and line.strip():
                lines[-1] = f"{lines[-1].rstrip()} {line.strip()}"
            elif line.strip():
                lines.append(line.rstrip())
        out.append("\n".join(lines))
    return "\n\n".join(out)


INVISIBLE = "\u115f\u1160\u2800\u3164\uffa0"  # Hangul fillers, the blank Braille pattern: blank on screen


def _visible(text: str) -> str:
    """Text that shows: not only invisible characters (U+200B, U+FEFF, ...), which make an
    empty-looking button or message, and no control character but a line break or a tab."""
    control = next((c for c in text if unicodedata.category(c) == "Cc" and c not in "\n\t"), None)
    if control is not None:
        raise ValueError(f"has the control character U+{ord(control):04X} in it, which no one can read: remove it")
    if all(unicodedata.category(c)[0] in "CZ" or c in INVISIBLE for c in text):
        shown = " ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(text))
        raise ValueError(f"has no visible text, only invisible characters ({shown[:60]}): write the text")
    return text


Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_visible), AfterValidator(reflow)
]


class Strict(BaseModel):
    """Base for every part of a dialogue file: unknown keys are an error."""

    # Validators are built when a file is first validated: a lesson from the cache
    # (bot.lesson_cache) never needs them. Strict: no coercion, so `min_words: true` or
    # `solo_only: "yes"` is an error rather than 1 or true.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, strict=True)


def _web_address(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a web address: give the column's full address, starting with https://")
    return value


class Source(Strict):
    """The column the lesson is built from."""

    title: Text
    author: Text
    publication: Text
    date: Text
    url: Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_web_address)] | None = None


class LessonMeta(Strict):
    """What a lesson is about and what it claims to teach."""

    id: Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=LESSON_ID_MAX)]
    title: Text
    description: Text
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] = "en"
    source: Source
    covers: list[MapId] = Field(min_length=1)
    argument_map: dict[MapId, Text] = Field(default_factory=dict)


class Quote(Strict):
    """The column's own words, shown as a quotation before the node's text."""

    text: Text
    paragraph: int = Field(ge=1, le=500)  # which paragraph of the column it comes from

    @field_validator("text")
    @classmethod
    def _short(cls, value: str) -> str:
        if len(value) > QUOTE_MAX:
            raise ValueError(
                f"a quote is {len(value)} characters; keep it to a sentence or two (at most {QUOTE_MAX})"
            )
        return value


class NodeBase(Strict):
    id: Id
    covers: list[MapId] = Field(default_factory=list)
    solo_only: bool = False  # makes sense one-to-one only; group study adapts it
    quote: Quote | None = None

    @field_validator("id")
    @classmethod
    def _id_fits_button_data(cls, value: str) -> str:
        size = len(value.encode())
        if size > NODE_ID_MAX:
            raise ValueError(
                f"{size} bytes long; at most {NODE_ID_MAX} fit in Telegram's "
                f"{CALLBACK_DATA_MAX}-byte button data"
            )
        return value


class MessageNode(NodeBase):
    """A message; the learner reads it and continues."""

    kind: Literal["message"] = "message"
    say: Text
    next: Id | None = None  # default: the node below it
    returns: bool = False  # a remedy: go back to the question whose answer led here

    @model_validator(mode="after")
    def _returns_or_next(self) -> MessageNode:
        if self.returns and self.next:
            raise ValueError("give either next or returns: true, not both")
        return self

    @property
    def text(self) -> str:
        return self.say


class Option(Strict):
    """One answer to a choice question."""

    text: Text
    correct: bool = False
    feedback: Text
    misconception: MapId | None = None
    next: Id | None = None  # default: the question's next if correct, else ask again
    last: bool = False  # keep this option last when the options are shuffled ("none of these")


class ChoiceNode(NodeBase):
    """A question answered by picking one option."""

    kind: Literal["choice"] = "choice"
    ask: Text
    graded: bool = True  # an ungraded question (an opinion poll) has no wrong answer
    next: Id | None = None  # where right (or ungraded) answers go; default: the node below
    options: list[Option] = Field(min_length=2, max_length=OPTIONS_MAX)
    shuffle: bool = True  # false keeps the file's order (a scale, "all of the above")
    variant: Id | None = None  # asked instead of this one after a wrong answer (and its remedy)

    @property
    def text(self) -> str:
        return self.ask


class WriteNode(NodeBase):
    """A question answered in the learner's own words; every answer is kept."""

    kind: Literal["text"] = "text"
    write: Text
    min_words: int = Field(default=1, ge=1, le=200)
    model_answer: Text  # shown after the learner's answer, to compare with their own
    checklist: list[Annotated[Text, StringConstraints(max_length=OPTION_TEXT_MAX)]] = Field(
        default_factory=list, max_length=CHECKLIST_MAX
    )  # points a good answer makes; the learner marks the ones theirs covered
    next: Id | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_verdicts(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if any(key in data for key in ("key_phrases", "matched", "unmatched")):
                raise ValueError(
                    "key_phrases, matched and unmatched are no longer used (a phrase match is no verdict "
                    "on a written answer): give a model_answer and a checklist instead"
                )
            if "feedback" in data and "model_answer" not in data:
                raise ValueError("a written question's feedback is now called model_answer")
        return data

    @property
    def text(self) -> str:
        return self.write


class EndNode(NodeBase):
    """The end of the lesson, with a closing message."""

    kind: Literal["end"] = "end"
    end: Text
    recall: list[Id] = Field(default_factory=list)  # questions whose answers are shown back at the end

    @property
    def text(self) -> str:
        return self.end


_KIND_KEYS = {"say": "message", "ask": "choice", "write": "text", "end": "end"}


def node_kind(data: Any) -> str | None:
    """Which kind a raw node is, by the key that carries its text."""
    if isinstance(data, BaseModel):
        return getattr(data, "kind", None)
    if not isinstance(data, dict):
        return None
    found = [kind for key, kind in _KIND_KEYS.items() if key in data]
    return found[0] if len(found) == 1 else None


Node = Annotated[
    Union[
        Annotated[MessageNode, Tag("message")],
        Annotated[ChoiceNode, Tag("choice")],
        Annotated[WriteNode, Tag("text")],
        Annotated[EndNode, Tag("end")],
    ],
    Discriminator(
        node_kind,
        custom_error_type="node_kind",
        custom_error_message="a node needs exactly one of say, ask, write or end",
    ),
]


class Section(Strict):
    """A part of the lesson, shown to learners as "part n of m"."""

    id: Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=NODE_ID_MAX)]  # fits button data
    title: Text
    nodes: list[Node] = Field(min_length=1)


class Lesson(Strict):
    """A whole dialogue file."""

    lesson: LessonMeta
    start: Id | None = None  # default: the first node of the first section
    sections: list[Section] = Field(min_length=1)

    @property
    def id(self) -> str:
        return self.lesson.id

    @property
    def title(self) -> str:
        return self.lesson.title

    @cached_property
    def nodes(self) -> dict[str, Node]:
        """Every node by id, in file order (the first of any duplicate id wins)."""
        found: dict[str, Node] = {}
        for section in self.sections:
            for node in section.nodes:
                found.setdefault(node.id, node)
        return found

    @cached_property
    def section_of(self) -> dict[str, Section]:
        return {n.id: s for s in self.sections for n in reversed(s.nodes)}

    @cached_property
    def following(self) -> dict[str, str]:
        """The node below each node in file order, across section borders."""
        order = [n.id for s in self.sections for n in s.nodes]
        return dict(zip(order, order[1:]))

    @property
    def start_id(self) -> str:
        return self.start or self.sections[0].nodes[0].id

    def part_of(self, node_id: str) -> tuple[int, int]:
        """(n, m) for "part n of m"."""
        return self.parts[node_id]

    @cached_property
    def parts(self) -> dict[str, tuple[int, int]]:
        """Each node's (part, parts), computed once: `part_of` runs for every step shown."""
        return {
            node.id: (number, len(self.sections))
            for number, section in enumerate(self.sections, 1)
            for node in reversed(section.nodes)  # as `section_of` finds them
        }

    def targets(self, node: Node) -> list[str]:
        """Where a node can lead, in the order the learner would meet them."""
        if isinstance(node, EndNode):
            return []
        if isinstance(node, ChoiceNode):
            found = (self.option_target(node, option) for option in node.options)
            return [target for target in found if target]
        if isinstance(node, MessageNode) and node.returns:
            return [self.retry_of(question) for question in self.senders.get(node.id, [])]
        target = node.next or self.following.get(node.id)
        return [target] if target else []

    def option_target(self, node: ChoiceNode, option: Option) -> str | None:
        """Where choosing an option leads: its `next`, or on if right, or the question again
        (or its variant) if wrong."""
        if option.next:
            return option.next
        if option.correct or not node.graded:
            return node.next or self.following.get(node.id)
        return self.retry_of(node.id)

    def retry_of(self, question: str) -> str:
        """The question to ask after a wrong answer to `question`: its variant, if it has one."""
        node = self.nodes.get(question)
        return node.variant if isinstance(node, ChoiceNode) and node.variant else question

    @cached_property
    def variant_of(self) -> dict[str, str]:
        """Each variant question's original."""
        return {n.variant: n.id for n in self.nodes.values() if isinstance(n, ChoiceNode) and n.variant}

    @cached_property
    def senders(self) -> dict[str, list[str]]:
        """For each returning remedy, the questions whose options lead to it (directly or
        through a chain of plain messages), in file order."""
        found: dict[str, list[str]] = {}
        for question in self.nodes.values():
            if not isinstance(question, ChoiceNode):
                continue
            for option in question.options:
                remedy = self.remedy_chain_end(option.next)
                if remedy and question.id not in found.setdefault(remedy, []):
                    found[remedy].append(question.id)
        return found

    def remedy_chain(self, node_id: str | None) -> list[str]:
        """The plain messages from `node_id` on up to a returning message, that one last;
        [] if reading on from `node_id` reaches no returning message."""
        chain: list[str] = []
        while node_id and node_id not in chain:
            node = self.nodes.get(node_id)
            if not isinstance(node, MessageNode):
                return []
            chain.append(node_id)
            if node.returns:
                return chain
            node_id = node.next or self.following.get(node.id)
        return []

    def remedy_chain_end(self, node_id: str | None) -> str | None:
        """The returning message reached from `node_id` through plain messages, if any."""
        chain = self.remedy_chain(node_id)
        return chain[-1] if chain else None

    def option_order(self, node: ChoiceNode, seed: int) -> tuple[int, ...]:
        """The order in which a learner with `seed` sees the options (by their index in the file).

        The same seed and question always give the same order, so a replay, the terminal and
        Telegram agree. Options marked `last` keep their place at the end."""
        pinned = [i for i, option in enumerate(node.options) if option.last]
        free = [i for i, option in enumerate(node.options) if not option.last]
        if node.shuffle:
            random.Random(f"{seed}:{self.id}:{node.id}").shuffle(free)
        return tuple(free + pinned)

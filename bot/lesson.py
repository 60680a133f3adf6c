"""The lesson: what a dialogue file means, as pydantic models.

This module owns the shape of a lesson (metadata, sections, nodes, options) and the
limits that keep every piece of text and every id small enough for Telegram. It does
no I/O: `bot.loader` reads the YAML and turns problems into `file:line` messages, and
the graph rules (targets, reachability, endings) live in `bot.validate`.

A node's kind is given by the one key that carries its text:
`say` (a message), `ask` (a choice question), `write` (a free-text question), `end`.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
)

# Telegram's limits, restated here so that the lesson model stays free of `telegram`.
MESSAGE_MAX = 4096  # characters in one message (telegram.constants.MessageLimit)
CALLBACK_DATA_MAX = 64  # bytes of button data (InlineKeyboardButtonLimit)
OPTION_TEXT_MAX = 100  # characters of an answer option (PollLimit.MAX_OPTION_LENGTH)
# Button data is "<kind>:<lesson id>:<node id>:<option>", so ids must stay short.
LESSON_ID_MAX = 24
NODE_ID_MAX = 32
OPTIONS_MAX = 8

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


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(reflow)]


class Strict(BaseModel):
    """Base for every part of a dialogue file: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(Strict):
    """The column the lesson is built from."""

    title: Text
    author: Text
    publication: Text
    date: Text
    url: str | None = None


class LessonMeta(Strict):
    """What a lesson is about and what it claims to teach."""

    id: Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=LESSON_ID_MAX)]
    title: Text
    description: Text
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] = "en"
    source: Source
    covers: list[MapId] = Field(min_length=1)
    argument_map: dict[MapId, Text] = Field(default_factory=dict)


class NodeBase(Strict):
    id: Id
    covers: list[MapId] = Field(default_factory=list)
    solo_only: bool = False  # makes sense one-to-one only; group study adapts it

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


class ChoiceNode(NodeBase):
    """A question answered by picking one option."""

    kind: Literal["choice"] = "choice"
    ask: Text
    graded: bool = True  # an ungraded question (an opinion poll) has no wrong answer
    next: Id | None = None  # where right (or ungraded) answers go; default: the node below
    options: list[Option] = Field(min_length=2, max_length=OPTIONS_MAX)

    @property
    def text(self) -> str:
        return self.ask


class WriteNode(NodeBase):
    """A question answered in the learner's own words; every answer is kept."""

    kind: Literal["text"] = "text"
    write: Text
    min_words: int = Field(default=1, ge=1, le=200)
    key_phrases: list[Text] = Field(default_factory=list)
    matched: Text | None = None  # feedback when the answer uses a key phrase
    unmatched: Text | None = None  # feedback when it uses none
    feedback: Text | None = None  # shown after every answer (e.g. a model answer)
    next: Id | None = None

    @property
    def text(self) -> str:
        return self.write


class EndNode(NodeBase):
    """The end of the lesson, with a closing message."""

    kind: Literal["end"] = "end"
    end: Text

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

    id: Id
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
        section = self.section_of[node_id]
        return self.sections.index(section) + 1, len(self.sections)

    def targets(self, node: Node) -> list[str]:
        """Where a node can lead, in the order the learner would meet them."""
        if isinstance(node, EndNode):
            return []
        if isinstance(node, ChoiceNode):
            found = (self.option_target(node, option) for option in node.options)
            return [target for target in found if target]
        target = node.next or self.following.get(node.id)
        return [target] if target else []

    def option_target(self, node: ChoiceNode, option: Option) -> str | None:
        """Where choosing an option leads: its `next`, or on if right, or the question again if wrong."""
        if option.next:
            return option.next
        if option.correct or not node.graded:
            return node.next or self.following.get(node.id)
        return node.id

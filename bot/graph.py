"""A lesson's graph as text to draw: Graphviz DOT, or a Mermaid flowchart (which needs
nothing installed). Sections are boxes; right answers are solid arrows, wrong ones dashed,
a remedy's way back dotted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from bot.lesson import ChoiceNode, EndNode, Lesson, MessageNode, WriteNode

Style = Literal["solid", "dashed", "dotted"]


def edges(lesson: Lesson) -> Iterator[tuple[str, str, Style, str]]:
    """(from, to, style, label) for every way on; a choice's label is the option's number
    in the file, with the misconception it stands for."""
    for node in lesson.nodes.values():
        if isinstance(node, ChoiceNode):
            for number, option in enumerate(node.options, 1):
                style: Style = "solid" if option.correct or not node.graded else "dashed"
                label = f"{number}" + (f" {option.misconception}" if option.misconception else "")
                target = lesson.option_target(node, option)
                if target:
                    yield node.id, target, style, label
        else:
            style = "dotted" if isinstance(node, MessageNode) and node.returns else "solid"
            for target in lesson.targets(node):
                yield node.id, target, style, ""


def graph_dot(lesson: Lesson) -> str:
    shapes = {MessageNode: "note", ChoiceNode: "diamond", WriteNode: "parallelogram", EndNode: "doublecircle"}
    lines = [f'digraph "{lesson.id}" {{', "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
    for index, section in enumerate(lesson.sections):
        lines.append(f'  subgraph "cluster_{index}" {{ label="{index + 1}. {_dot(section.title)}";')
        lines += [f'    "{node.id}" [shape={shapes[type(node)]}];' for node in section.nodes]
        lines.append("  }")
    for source, target, style, label in edges(lesson):
        if label:
            lines.append(f'  "{source}" -> "{target}" [style={style}, label="{label}"];')
        else:
            lines.append(f'  "{source}" -> "{target}"' + ("" if style == "solid" else f" [style={style}]") + ";")
    lines.append("}")
    return "\n".join(lines)


def graph_mermaid(lesson: Lesson) -> str:
    shapes = {MessageNode: ("[", "]"), ChoiceNode: ("{", "}"), WriteNode: ("[/", "/]"), EndNode: ("((", "))")}
    ids = {node_id: f"n{i}" for i, node_id in enumerate(lesson.nodes)}
    lines = ["flowchart TD"]
    for index, section in enumerate(lesson.sections):
        lines.append(f'  subgraph s{index}["{index + 1}. {_mermaid(section.title)}"]')
        for node in section.nodes:
            left, right = shapes[type(node)]
            lines.append(f'    {ids[node.id]}{left}"{node.id}"{right}')
        lines.append("  end")
    # Mermaid has one broken-line arrow (-.->); `linkStyle` (links are numbered in the
    # order they are drawn) sets its dashes: long for wrong answers, short for the way back.
    arrows = {"solid": "-->", "dashed": "-.->", "dotted": "-.->"}
    dashes = {"dashed": "6 4", "dotted": "1 3"}
    styled: dict[str, list[str]] = {"dashed": [], "dotted": []}
    for number, (source, target, style, label) in enumerate(edges(lesson)):
        tag = f"|{label}| " if label else ""
        lines.append(f"  {ids[source]} {arrows[style]} {tag}{ids[target]}")
        if style in styled:
            styled[style].append(str(number))
    for style, numbers in styled.items():
        if numbers:
            lines.append(f"  linkStyle {','.join(numbers)} stroke-dasharray: {dashes[style]}")
    return "\n".join(lines)


def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _mermaid(text: str) -> str:
    return text.replace('"', "#quot;")

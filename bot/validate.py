"""The rules a lesson must keep beyond its shape: its graph and Telegram's limits.

Each rule yields `(path, where, message)`: the path into the file's data (for the line
number), the node or section it concerns, and one sentence a dialogue author can act on.
"""

from __future__ import annotations

from collections.abc import Iterator

from bot.lesson import (
    MESSAGE_MAX,
    OPTION_TEXT_MAX,
    ChoiceNode,
    EndNode,
    Lesson,
    MessageNode,
    WriteNode,
)

Found = tuple[tuple, str, str]


def graph_problems(lesson: Lesson) -> list[Found]:
    """Every rule's findings, in rule order.

    A problem's consequences are not problems of their own: while a node id is used twice,
    an edge points nowhere or a graded question has no right answer, the loops and lost
    nodes that follow from it are not reported; they are checked once it is fixed.
    """
    broken = list(_duplicates(lesson)) + list(_targets(lesson)) + list(_unanswerable(lesson))
    found = list(broken)
    for rule in (_choices, _free_text, _lengths, _coverage):
        found += rule(lesson)
    if not broken:
        found += _reachability(lesson)
    return found


def _paths(lesson: Lesson) -> Iterator[tuple[tuple, object]]:
    for si, section in enumerate(lesson.sections):
        for ni, node in enumerate(section.nodes):
            yield ("sections", si, "nodes", ni), node


def _duplicates(lesson: Lesson) -> Iterator[Found]:
    sections: set[str] = set()
    for si, section in enumerate(lesson.sections):
        if section.id in sections:
            yield ("sections", si, "id"), section.id, f"section id '{section.id}' is used twice"
        sections.add(section.id)
    first_in: dict[str, str] = {}
    for si, section in enumerate(lesson.sections):
        for ni, node in enumerate(section.nodes):
            if node.id in first_in:
                yield (
                    ("sections", si, "nodes", ni, "id"),
                    node.id,
                    f"duplicate node id '{node.id}' (first used in section '{first_in[node.id]}')",
                )
            else:
                first_in[node.id] = section.id


def _targets(lesson: Lesson) -> Iterator[Found]:
    if lesson.start and lesson.start not in lesson.nodes:
        yield ("start",), "lesson", f"no node '{lesson.start}' for start"
    for path, node in _paths(lesson):
        if isinstance(node, EndNode):
            continue
        if isinstance(node, ChoiceNode):
            if node.next and node.next not in lesson.nodes:
                yield path + ("next",), node.id, f"no node '{node.next}' for next"
            for oi, option in enumerate(node.options):
                where = path + ("options", oi)
                if option.next and option.next not in lesson.nodes:
                    yield where + ("next",), node.id, f"no node '{option.next}' for option {oi + 1}'s next"
                elif lesson.option_target(node, option) is None:
                    yield where, node.id, (
                        f"leads nowhere: option {oi + 1} needs a next, as no node follows this one"
                    )
        elif node.next and node.next not in lesson.nodes:
            yield path + ("next",), node.id, f"no node '{node.next}' for next"
        elif not lesson.targets(node):
            yield path, node.id, "leads nowhere: give it a next, or follow it with an end node"


def _unanswerable(lesson: Lesson) -> Iterator[Found]:
    for path, node in _paths(lesson):
        if isinstance(node, ChoiceNode) and node.graded and not any(option.correct for option in node.options):
            yield path + ("options",), node.id, "graded question has no correct option"


def _choices(lesson: Lesson) -> Iterator[Found]:
    for path, node in _paths(lesson):
        if not isinstance(node, ChoiceNode):
            continue
        for oi, option in enumerate(node.options):
            where = path + ("options", oi)
            if option.correct and not node.graded:
                yield where + ("correct",), node.id, f"option {oi + 1} is marked correct in an ungraded question"
            if option.correct and option.misconception:
                yield where + ("misconception",), node.id, f"option {oi + 1} is correct but names a misconception"
        texts = [option.text.casefold() for option in node.options]
        for oi, text in enumerate(texts):
            if text in texts[:oi]:
                yield path + ("options", oi, "text"), node.id, f"option {oi + 1} repeats an earlier option's text"


def _free_text(lesson: Lesson) -> Iterator[Found]:
    for path, node in _paths(lesson):
        if not isinstance(node, WriteNode):
            continue
        if node.key_phrases and not (node.matched and node.unmatched):
            yield path + ("key_phrases",), node.id, "key_phrases need both matched and unmatched feedback"
        if not node.key_phrases and (node.matched or node.unmatched):
            yield path, node.id, "matched/unmatched feedback needs key_phrases"


def _lengths(lesson: Lesson) -> Iterator[Found]:
    def too_long(text: str, limit: int, what: str) -> str | None:
        if len(text) > limit:
            return f"{what} is {len(text)} characters; Telegram allows {limit}"
        return None

    for path, node in _paths(lesson):
        checks: list[tuple[tuple, str, int, str]] = []
        for key in ("say", "write", "end", "feedback", "matched", "unmatched"):
            text = getattr(node, key, None)
            if isinstance(text, str):
                checks.append((path + (key,), text, MESSAGE_MAX, key))
        if isinstance(node, ChoiceNode):
            # The question is sent with its options listed below it.
            whole = node.ask + "".join(f"\n\nX) {option.text}" for option in node.options)
            checks.append((path + ("ask",), whole, MESSAGE_MAX, "the question with its options"))
            for oi, option in enumerate(node.options):
                where = path + ("options", oi)
                checks.append((where + ("text",), option.text, OPTION_TEXT_MAX, f"option {oi + 1}'s text"))
                checks.append((where + ("feedback",), option.feedback, MESSAGE_MAX, f"option {oi + 1}'s feedback"))
        for where, text, limit, what in checks:
            message = too_long(text, limit, what)
            if message:
                yield where, node.id, message


def _coverage(lesson: Lesson) -> Iterator[Found]:
    known = lesson.lesson.argument_map
    taught: set[str] = set()
    for path, node in _paths(lesson):
        used = [(path + ("covers",), ref) for ref in node.covers]
        if isinstance(node, ChoiceNode):
            used += [
                (path + ("options", oi, "misconception"), option.misconception)
                for oi, option in enumerate(node.options)
                if option.misconception
            ]
        for where, ref in used:
            taught.add(ref)
            if known and ref not in known:
                yield where, node.id, f"'{ref}' is not in the lesson's argument_map"
    for ref in lesson.lesson.covers:
        if ref not in taught:
            yield ("lesson", "covers"), "lesson", f"the lesson claims to cover '{ref}' but no node covers it"


def _reachability(lesson: Lesson) -> Iterator[Found]:
    edges = {node_id: lesson.targets(node) for node_id, node in lesson.nodes.items()}
    reached = {lesson.start_id}
    todo = [lesson.start_id]
    while todo:
        for target in edges[todo.pop()]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    # Walk backwards from the ends to find every node that can still finish.
    incoming: dict[str, list[str]] = {node_id: [] for node_id in edges}
    for source, targets in edges.items():
        for target in targets:
            incoming[target].append(source)
    finishing = {node_id for node_id, node in lesson.nodes.items() if isinstance(node, EndNode)}
    todo = list(finishing)
    while todo:
        for source in incoming[todo.pop()]:
            if source not in finishing:
                finishing.add(source)
                todo.append(source)
    if not any(isinstance(node, EndNode) for node in lesson.nodes.values()):
        yield ("sections",), "lesson", "the lesson has no end node"
        return
    seen: set[str] = set()
    for path, node in _paths(lesson):
        if node.id in seen:
            continue
        seen.add(node.id)
        if node.id not in reached:
            yield path, node.id, f"cannot be reached from the start ('{lesson.start_id}')"
        elif node.id not in finishing:
            yield path, node.id, "no end can be reached from here (a loop with no way out)"


def estimated_minutes(lesson: Lesson) -> int:
    """Minutes for a learner who answers every question right the first time.

    Reading at 200 words a minute, 20 seconds to pick an option, 90 seconds to write.
    """
    seconds = 0.0
    node_id: str | None = lesson.start_id
    visited: set[str] = set()
    while node_id and node_id not in visited:
        visited.add(node_id)
        node = lesson.nodes[node_id]
        seconds += _words(node.text) * 0.3
        if isinstance(node, ChoiceNode):
            chosen = next((o for o in node.options if o.correct), node.options[0])
            seconds += 20 + _words(" ".join(o.text for o in node.options)) * 0.3 + _words(chosen.feedback) * 0.3
            node_id = lesson.option_target(node, chosen)
        elif isinstance(node, WriteNode):
            seconds += 90 + _words(node.feedback or node.matched or "") * 0.3
            node_id = lesson.targets(node)[0]
        elif isinstance(node, MessageNode):
            node_id = lesson.targets(node)[0]
        else:
            node_id = None
    return max(1, round(seconds / 60))


def _words(text: str) -> int:
    return len(text.split())


def graph_dot(lesson: Lesson) -> str:
    """The lesson as a Graphviz graph: sections as boxes, right answers solid, wrong dashed."""
    shapes = {MessageNode: "note", ChoiceNode: "diamond", WriteNode: "parallelogram", EndNode: "doublecircle"}
    lines = [f'digraph "{lesson.id}" {{', "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
    for index, section in enumerate(lesson.sections):
        lines.append(f'  subgraph "cluster_{index}" {{ label="{index + 1}. {_dot(section.title)}";')
        lines += [f'    "{node.id}" [shape={shapes[type(node)]}];' for node in section.nodes]
        lines.append("  }")
    for node in lesson.nodes.values():
        if isinstance(node, ChoiceNode):
            for number, option in enumerate(node.options, 1):
                style = "solid" if option.correct or not node.graded else "dashed"
                label = f"{number}" + (f" {option.misconception}" if option.misconception else "")
                lines.append(f'  "{node.id}" -> "{lesson.option_target(node, option)}" [style={style}, label="{label}"];')
        else:
            lines += [f'  "{node.id}" -> "{target}";' for target in lesson.targets(node)]
    lines.append("}")
    return "\n".join(lines)


def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')

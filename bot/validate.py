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
    broken = (
        list(_duplicates(lesson)) + list(_targets(lesson)) + list(_unanswerable(lesson)) + list(_returns(lesson))
    )
    found = list(broken)
    for rule in (_choices, _variants, _recall, _lengths, _coverage):
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
            if node.variant and node.variant not in lesson.nodes:
                yield path + ("variant",), node.id, f"no node '{node.variant}' for variant"
            stranded = []  # options that would go on to the node below, and there is none
            for oi, option in enumerate(node.options):
                where = path + ("options", oi)
                if option.next and option.next not in lesson.nodes:
                    yield where + ("next",), node.id, f"no node '{option.next}' for option {oi + 1}'s next"
                elif lesson.option_target(node, option) is None:
                    stranded.append(oi)
            if len(stranded) == 1:
                yield path + ("options", stranded[0]), node.id, (
                    f"leads nowhere: option {stranded[0] + 1} needs a next, as no node follows this one"
                )
            elif stranded:
                numbers = ", ".join(str(oi + 1) for oi in stranded[:-1]) + f" and {stranded[-1] + 1}"
                yield path, node.id, (
                    f"leads nowhere: options {numbers} need a next, as no node follows this one; "
                    "give the question a next, or follow it with an end node"
                )
        elif node.next and node.next not in lesson.nodes:
            yield path + ("next",), node.id, f"no node '{node.next}' for next"
        elif isinstance(node, MessageNode) and node.returns:
            continue  # checked by _returns
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


def _remedy_chains(lesson: Lesson) -> set[str]:
    """The messages an option leads into that read on to a returning remedy, with the remedy."""
    return {
        member
        for question in lesson.nodes.values()
        if isinstance(question, ChoiceNode)
        for option in question.options
        for member in lesson.remedy_chain(option.next)
    }


def _returns(lesson: Lesson) -> Iterator[Found]:
    """A remedy that returns must know where to: it is reached only through a question's
    option (directly, or through plain messages that lead to it)."""
    in_chain = _remedy_chains(lesson)
    for path, node in _paths(lesson):
        if isinstance(node, MessageNode) and node.returns and not lesson.senders.get(node.id):
            yield path + ("returns",), node.id, (
                "returns: true, but no question's option leads here, so it cannot know where to return"
            )
        if isinstance(node, ChoiceNode):
            if node.next in in_chain:
                yield path + ("next",), node.id, (
                    f"a right answer leads to '{node.next}', a remedy that returns to a question; "
                    "point only wrong options at it"
                )
            continue
        if isinstance(node, EndNode) or node.id in in_chain:
            continue
        target = node.next or lesson.following.get(node.id)
        if target in in_chain:
            where = path + ("next",) if node.next else path
            yield where, node.id, (
                f"leads to '{target}', which returns to the question that sent the learner there, "
                "but no question sends them from here: give this node a next"
            )
    if lesson.start_id in in_chain:
        yield ("sections",), "lesson", f"the lesson starts at '{lesson.start_id}', a remedy that returns to a question"


def _variants(lesson: Lesson) -> Iterator[Found]:
    for path, node in _paths(lesson):
        if not isinstance(node, ChoiceNode) or not node.variant:
            continue
        variant = lesson.nodes.get(node.variant)
        if variant is None:
            continue  # reported with the other missing targets
        if variant.id == node.id:
            yield path + ("variant",), node.id, "a question cannot be its own variant"
        elif not isinstance(variant, ChoiceNode) or not variant.graded:
            yield path + ("variant",), node.id, f"variant '{variant.id}' must be a graded question"
        elif variant.variant:
            yield path + ("variant",), node.id, f"variant '{variant.id}' has a variant of its own; one is enough"


def _recall(lesson: Lesson) -> Iterator[Found]:
    for path, node in _paths(lesson):
        if not isinstance(node, EndNode):
            continue
        for ri, ref in enumerate(node.recall):
            target = lesson.nodes.get(ref)
            if target is None:
                yield path + ("recall", ri), node.id, f"no node '{ref}' to recall"
            elif not (isinstance(target, WriteNode) or (isinstance(target, ChoiceNode) and not target.graded)):
                yield path + ("recall", ri), node.id, (
                    f"'{ref}' cannot be recalled: only written answers and ungraded questions are the learner's own"
                )


def _lengths(lesson: Lesson) -> Iterator[Found]:
    def too_long(text: str, limit: int, what: str) -> str | None:
        if len(text) > limit:
            return f"{what} is {len(text)} characters; Telegram allows {limit}"
        return None

    for path, node in _paths(lesson):
        checks: list[tuple[tuple, str, int, str]] = []
        for key in ("say", "write", "end", "model_answer"):
            text = getattr(node, key, None)
            if isinstance(text, str):
                if node.quote:  # shown above the text, in the same message
                    text = node.quote.text + "\n\n" + text
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


READING_WPM = 200  # words a minute: a careful reader of an argument on a phone
SECONDS_TO_CHOOSE = 15  # to weigh the options, on top of reading them
SECONDS_TO_WRITE = 120  # to write a few sentences
SECONDS_TO_CHECK = 20  # to compare with the model answer and mark the self-check


def estimated_minutes(lesson: Lesson) -> int:
    """Minutes for a learner who answers every question right the first time: every word
    they read (steps, quotes, options, feedback, model answers) at `READING_WPM`, plus the
    time to choose, to write and to check their writing."""
    seconds = 0.0
    node_id: str | None = lesson.start_id
    visited: set[str] = set()
    read = 60 / READING_WPM
    while node_id and node_id not in visited:
        visited.add(node_id)
        node = lesson.nodes[node_id]
        seconds += (_words(node.text) + (_words(node.quote.text) if node.quote else 0)) * read
        if isinstance(node, ChoiceNode):
            chosen = next((o for o in node.options if o.correct), node.options[0])
            seconds += SECONDS_TO_CHOOSE + _words(" ".join(o.text for o in node.options) + " " + chosen.feedback) * read
            node_id = lesson.option_target(node, chosen)
        elif isinstance(node, WriteNode):
            seconds += SECONDS_TO_WRITE + _words(node.model_answer + " " + " ".join(node.checklist)) * read
            seconds += SECONDS_TO_CHECK if node.checklist else 0
            node_id = lesson.targets(node)[0]
        elif isinstance(node, MessageNode):
            targets = lesson.targets(node)
            node_id = targets[0] if targets else None
        else:
            node_id = None
    return max(1, round(seconds / 60))


def _words(text: str) -> int:
    return len(text.split())

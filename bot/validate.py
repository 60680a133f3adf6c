"""The rules a lesson must keep beyond its shape: its graph and Telegram's limits.

Each rule yields `(path, where, message)`: the path into the file's data (for the line
number), the node or section it concerns, and one sentence a dialogue author can act on.
"""

from __future__ import annotations

from collections import Counter
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
        came = _walk(lesson)
        found += _reachability(lesson, came)
        found += _variants_off_the_way(lesson, came)
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
    """A remedy that returns must know where to: the engine learns it only when a question's
    option names the remedy (or a message leading to it) as its `next`. Every other way in
    (the start, reading on, a right answer, looking at a part again) leaves it to return to
    the first question that sends learners there, and after a right answer that is a loop."""
    in_chain = _remedy_chains(lesson)
    for path, node in _paths(lesson):
        if isinstance(node, MessageNode) and node.returns and not lesson.senders.get(node.id):
            yield path + ("returns",), node.id, (
                "returns: true, but no question's option leads here, so it cannot know where to return"
            )
        if isinstance(node, ChoiceNode):
            yield from _right_answers_into_remedies(lesson, path, node, in_chain)
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
    for si, section in enumerate(lesson.sections):
        first = section.nodes[0].id
        if first in in_chain and first != lesson.start_id:  # Revisit and Resync enter a part here
            yield ("sections", si, "nodes", 0), first, (
                f"part '{section.id}' opens with a remedy that returns to a question, but a learner who looks "
                "at the part again starts here, sent by no question: open the part with another node"
            )


def _right_answers_into_remedies(lesson: Lesson, path: tuple, node: ChoiceNode, in_chain: set[str]) -> Iterator[Found]:
    """A right answer (any answer, if ungraded; and the answer revealed after a second miss)
    must not lead into a returning remedy: it would return to this question, for ever."""
    found: dict[tuple, str] = {}  # one report per place, however many options share it
    for oi, option in enumerate(node.options):
        target = lesson.option_target(node, option)
        if not (option.correct or not node.graded) or target not in in_chain:
            continue
        answer = "a right answer" if node.graded else "an answer (the question is ungraded)"
        loop = "a remedy that returns to the question, so the learner would be asked it again and again"
        if option.next:
            found[path + ("options", oi, "next")] = (
                f"option {oi + 1}, {answer}, leads to '{target}', {loop}; point only wrong options at a remedy"
            )
        elif node.next:
            found[path + ("next",)] = f"{answer} leads to '{target}', {loop}; point only wrong options at it"
        else:
            found[path] = (
                f"{answer} goes on to '{target}', the node below, {loop}: give the question a next"
            )
    for where, message in found.items():
        yield where, node.id, message


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
        elif lesson.variant_of[variant.id] != node.id:
            # The engine counts a variant as one original only (the last to name it).
            yield path + ("variant",), node.id, (
                f"variant '{variant.id}' is also the variant of '{lesson.variant_of[variant.id]}'; "
                "give each question a variant of its own"
            )


def _variants_off_the_way(lesson: Lesson, came: dict[Place, Place | None]) -> Iterator[Found]:
    """A variant is asked only after a wrong answer to its original: the engine counts it as
    that original (it never scores, and the count of questions leaves it out), so a variant
    that a learner also meets on the way silently stops counting as a question."""
    into: dict[str, list[Place]] = {}
    for source in came:
        for node_id, _ in _moves(lesson, source):
            into.setdefault(node_id, []).append(source)
    named = Counter(node.variant for node in lesson.nodes.values() if isinstance(node, ChoiceNode) and node.variant)
    for path, node in _paths(lesson):
        variant = lesson.nodes.get(node.variant) if isinstance(node, ChoiceNode) and node.variant else None
        sound = isinstance(variant, ChoiceNode) and variant.graded and not variant.variant
        if not sound or variant.id == node.id or named[variant.id] > 1:
            continue  # no such variant, or one that _variants refuses
        # Most variants are entered only by this question's wrong answers and the remedies
        # they send to; any other way in is walked again without those wrong answers.
        others = [
            source
            for source in into.get(variant.id, [])
            if source[1] != node.id and (source[0] != node.id or (variant.id, None) in _moves(lesson, source, node.id))
        ]
        if not others and lesson.start_id != variant.id:
            continue
        seen = _walk(lesson, wrong_answers_of=node.id)
        state = next((state for state in seen if state[0] == variant.id), None)
        if state is None:
            continue
        before = seen[state]
        how = "the lesson starts there" if before is None else f"after '{before[0]}'"
        how = "a right answer here leads to it" if before and before[0] == node.id else how
        yield path + ("variant",), node.id, (
            f"variant '{variant.id}' is met on the lesson's way too ({how}), where, as a variant, it counts for "
            "nothing: make it a question of its own, or keep it off the way (only wrong answers here may lead to it)"
        )


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


Place = tuple[str, str | None]  # a node, and the question that the remedy the learner is in returns to


def _moves(lesson: Lesson, state: Place, wrong_answers_of: str | None = None) -> list[Place]:
    """Where the engine can take a learner from `state` (as `bot.engine.step` does).

    A returning remedy goes back only to the question that sent the learner there (the
    engine's `back_to`), not to every question that links to it. A wrong answer to a
    variant is never a first try, so it only reveals the right answer and goes on as that
    would. `wrong_answers_of` names a question whose wrong answers are left out."""
    node_id, back = state
    node = lesson.nodes[node_id]
    if isinstance(node, ChoiceNode):
        options = node.options
        if node.id == wrong_answers_of or (node.graded and node.id in lesson.variant_of):
            options = [option for option in options if option.correct]
        return [
            (lesson.option_target(node, o), node.id if lesson.remedy_chain_end(o.next) else back) for o in options
        ]
    if isinstance(node, MessageNode) and node.returns:
        # Without a question to return to, the engine takes the first that links here.
        return [(lesson.retry_of(back), None)] if back else [(t, None) for t in lesson.targets(node)[:1]]
    return [(target, back) for target in lesson.targets(node)]


def _walk(lesson: Lesson, wrong_answers_of: str | None = None) -> dict[Place, Place | None]:
    """Every state a learner can reach from the start, with the state it is first reached from."""
    start: Place = (lesson.start_id, None)
    came: dict[Place, Place | None] = {start: None}
    todo = [start]
    while todo:
        state = todo.pop()
        for move in _moves(lesson, state, wrong_answers_of):
            if move not in came:
                came[move] = state
                todo.append(move)
    return came


def _reachability(lesson: Lesson, came: dict[Place, Place | None]) -> Iterator[Found]:
    if not any(isinstance(node, EndNode) for node in lesson.nodes.values()):
        yield ("sections",), "lesson", "the lesson has no end node"
        return
    # Walk backwards from the ends to find every state that can still finish.
    incoming: dict[Place, list[Place]] = {state: [] for state in came}
    for source in came:
        for target in _moves(lesson, source):
            incoming[target].append(source)
    finishing = {state for state in came if isinstance(lesson.nodes[state[0]], EndNode)}
    todo = list(finishing)
    while todo:
        for source in incoming[todo.pop()]:
            if source not in finishing:
                finishing.add(source)
                todo.append(source)
    reached = {node_id for node_id, _ in came}
    finished = {node_id for node_id, _ in finishing}
    seen: set[str] = set()
    for path, node in _paths(lesson):
        if node.id in seen:
            continue
        seen.add(node.id)
        if node.id not in reached:
            yield path, node.id, f"cannot be reached from the start ('{lesson.start_id}')"
        elif node.id not in finished:
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

"""The full lesson (dialogues/madman.yaml): coverage of the argument map, a remedy for every
misconception, and every path through the lesson ending.

Everything here works from the lesson file alone, except the copying check, which reads the
column from ../shared when it is there and is skipped otherwise. Rules about how the lesson
teaches (ask, then explain; option lengths; quotes; feedback) are in test_lesson_content.py.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from bot.engine import Answer, Check, Choose, Continue, Start, State, step
from bot.lesson import ChoiceNode, EndNode, MessageNode, WriteNode
from bot.loader import load_file
from bot.validate import estimated_minutes

ROOT = Path(__file__).parent.parent
LESSON_FILE = ROOT / "dialogues" / "madman.yaml"
ARTICLE = ROOT.parent / "shared" / "lesson" / "article.txt"

THESIS = ["T"]
CLAIMS = [f"C{i}" for i in range(1, 17)]
CONCEPTS = [f"K{i}" for i in range(1, 8)]
READING = [f"R{i}" for i in range(1, 6)]
MISCONCEPTIONS = [f"M{i}" for i in range(1, 10)]
EPILOGUE = ["E"]
ALL_IDS = THESIS + CLAIMS + CONCEPTS + READING + MISCONCEPTIONS + EPILOGUE

# The column's argument in order, as the issue lists it (the section titles may differ).
SECTIONS_IN_ORDER = [
    "setting",
    "madman",
    "tehran",
    "signals",
    "libya",
    "alternative",
    "contradictions",
    "conclusion",
    "assumptions",
    "critical",
    "judge",
    "epilogue",
]

WORDS = "promise trust threat deal iran pressure evidence column argument because signal keep".split()


@pytest.fixture(scope="module")
def loaded():
    return load_file(LESSON_FILE)


@pytest.fixture(scope="module")
def lesson(loaded):
    return loaded.lesson


def choices(lesson):
    return [n for n in lesson.nodes.values() if isinstance(n, ChoiceNode)]


def wrong_options(lesson):
    for node in choices(lesson):
        if node.graded:
            for option in node.options:
                if not option.correct:
                    yield node, option


def all_correct_path(lesson):
    """The node ids a learner passes who answers everything right the first time."""
    path = []
    node_id = lesson.start_id
    while node_id and node_id not in path:
        path.append(node_id)
        node = lesson.nodes[node_id]
        if isinstance(node, ChoiceNode):
            chosen = next((o for o in node.options if o.correct), node.options[0])
            node_id = lesson.option_target(node, chosen)
        elif isinstance(node, EndNode):
            node_id = None
        else:
            node_id = lesson.targets(node)[0]
    return path


def texts(node):
    """Every piece of text a node shows in the lesson's own words (not its quote)."""
    found = []
    for key in ("say", "ask", "write", "end", "model_answer"):
        value = getattr(node, key, None)
        if isinstance(value, str):
            found.append(value)
    if isinstance(node, ChoiceNode):
        for option in node.options:
            found += [option.text, option.feedback]
    if isinstance(node, WriteNode):
        found += node.checklist
    return found


# --- 1. coverage ----------------------------------------------------------------------


def test_lesson_loads_and_validates(loaded, lesson):
    # load_file runs every graph rule, including "from every node an end is reachable".
    assert lesson.id == "madman"
    assert loaded.content_hash


def test_argument_map_lists_every_id(lesson):
    amap = lesson.lesson.argument_map
    missing = [i for i in ALL_IDS if i not in amap]
    assert not missing, f"argument_map lacks {missing}"
    assert set(amap) == set(ALL_IDS)
    for map_id, summary in amap.items():
        assert len(summary.split()) >= 5, f"{map_id} needs a real one-line summary"
    assert sorted(lesson.lesson.covers) == sorted(amap)


def test_every_map_id_is_covered_by_a_node(lesson):
    taught = set()
    for node in lesson.nodes.values():
        taught.update(node.covers)
        if isinstance(node, ChoiceNode):
            taught.update(o.misconception for o in node.options if o.misconception)
    missing = [i for i in lesson.lesson.argument_map if i not in taught]
    assert not missing, f"no node covers {missing}"


def test_every_claim_and_concept_is_taught_by_a_message(lesson):
    """Tested alone is not enough: every claim, concept and reading point is also explained."""
    said = set()
    for node in lesson.nodes.values():
        if isinstance(node, MessageNode) and not node.id.startswith("remedy-"):
            said.update(node.covers)
    missing = [i for i in THESIS + CLAIMS + CONCEPTS + READING + EPILOGUE if i not in said]
    assert not missing, f"not explained in a (non-remedy) message: {missing}"


def test_claims_are_met_in_the_column_order(lesson):
    """The first node covering C1, C2, ... C16 appears in that order along the lesson."""
    path = all_correct_path(lesson)
    first = {}
    for position, node_id in enumerate(path):
        for ref in lesson.nodes[node_id].covers:
            first.setdefault(ref, position)
    assert all(c in first for c in CLAIMS), "every claim lies on the main path"
    positions = [first[c] for c in CLAIMS]
    assert positions == sorted(positions), dict(zip(CLAIMS, positions))
    # The critical reading comes after the whole argument, R1 to R5 in order, then E.
    reading = [first[r] for r in READING]
    assert reading == sorted(reading)
    assert max(positions) < min(reading) < max(reading) < first["E"]


def test_sections_follow_the_argument(lesson):
    ids = [s.id for s in lesson.sections]
    assert ids == SECTIONS_IN_ORDER
    assert 8 <= len(ids) <= 12


# --- 2. misconceptions and their remedies ---------------------------------------------


@pytest.mark.parametrize("mid", MISCONCEPTIONS)
def test_each_misconception_is_a_wrong_option_with_a_remedy(lesson, mid):
    carriers = [(n, o) for n, o in wrong_options(lesson) if o.misconception == mid]
    assert carriers, f"no wrong option names {mid}"
    for node, option in carriers:
        target = lesson.option_target(node, option)
        remedy = lesson.nodes[target]
        assert isinstance(remedy, MessageNode), f"{node.id}: {mid} should lead to a remedy message"
        assert remedy.id.startswith("remedy-"), remedy.id
        assert mid in remedy.covers, f"{remedy.id} should cover {mid}"
        # The remedy returns to the question that sent the learner (or to its variant).
        assert remedy.returns, f"{remedy.id} should say returns: true"
        assert node.id in lesson.senders[remedy.id]
        assert lesson.retry_of(node.id) in lesson.targets(remedy)


def test_a_remedy_serves_two_questions_and_variants_replace_a_trivial_retry(lesson):
    shared = {r: qs for r, qs in lesson.senders.items() if len(qs) >= 2}
    assert shared, "no remedy is shared by two questions"
    variants = lesson.variant_of
    assert len(variants) >= 2
    for variant, original in variants.items():
        node = lesson.nodes[variant]
        assert isinstance(node, ChoiceNode) and node.graded and node.next, variant
        # A variant goes where its original goes, and is asked only after a wrong answer.
        assert node.next == lesson.nodes[original].next, variant
        assert variant not in all_correct_path(lesson)


def test_misconception_options_are_never_correct_and_remedies_are_specific(lesson):
    remedies = {}
    for node in choices(lesson):
        for option in node.options:
            if option.misconception:
                assert not option.correct
                assert option.next and option.next.startswith("remedy-"), (
                    f"{node.id}: the {option.misconception} option needs its own remedy"
                )
                remedies.setdefault(option.next, set()).add(option.misconception)
    for remedy_id, mids in remedies.items():
        covered = {c for c in lesson.nodes[remedy_id].covers if c.startswith("M")}
        assert covered == mids, f"{remedy_id} is written for {covered}, used for {mids}"


def test_every_remedy_node_is_used_by_a_misconception(lesson):
    targets = {o.next for n in choices(lesson) for o in n.options if o.misconception}
    remedies = {i for i in lesson.nodes if i.startswith("remedy-")}
    assert remedies == targets


def test_questions_with_a_remedy_below_skip_it_when_answered_right(lesson):
    path = set(all_correct_path(lesson))
    assert not any(i.startswith("remedy-") for i in path), "a right answer ran into a remedy"


# --- 3. feedback ----------------------------------------------------------------------


def test_every_wrong_option_has_its_own_feedback(lesson):
    for node in choices(lesson):
        feedbacks = [" ".join(o.feedback.split()).casefold() for o in node.options]
        for option, feedback in zip(node.options, feedbacks):
            if node.graded and not option.correct:
                assert feedbacks.count(feedback) == 1, f"{node.id}: '{option.text}' shares its feedback"
                assert len(feedback.split()) >= 6, f"{node.id}: '{option.text}' needs real feedback"


# --- 4. every path ends ---------------------------------------------------------------


def play(lesson, rng, limit=500):
    """One random play-through; returns (steps taken, nodes visited)."""
    result = step(lesson, State(), Start())
    state = result.state
    visited = {state.node}
    steps = 1
    while not state.finished:
        assert steps < limit, f"no end after {limit} steps (at {state.node})"
        node = lesson.nodes[state.node]
        if isinstance(node, MessageNode):
            value = Continue(node.id)
        elif isinstance(node, ChoiceNode):
            value = Choose(node.id, rng.randrange(len(node.options)))
        elif isinstance(node, WriteNode) and state.checking:
            value = Check(node.id, tuple(i for i in range(len(node.checklist)) if rng.random() < 0.5))
        elif isinstance(node, WriteNode):
            count = node.min_words + rng.randrange(10)
            value = Answer(" ".join(rng.choice(WORDS) for _ in range(count)))
        else:  # pragma: no cover - an end node is finished
            raise AssertionError(f"stuck at {node.id}")
        state = step(lesson, state, value).state
        visited.add(state.node)
        steps += 1
    return steps, visited


def test_random_play_throughs_all_end(lesson):
    rng = random.Random(1234)
    longest = 0
    seen = set()
    for _ in range(3000):
        steps, visited = play(lesson, rng)
        longest = max(longest, steps)
        seen |= visited
    assert longest < 500
    # With 3000 runs every branch, each remedy included, is taken at least once.
    assert seen == set(lesson.nodes), f"never visited: {set(lesson.nodes) - seen}"


def wrong_first(node: ChoiceNode) -> int:
    """The option a learner who gets everything wrong first picks: a misconception if the
    question has one, else the first wrong option (file index)."""
    wrong = [i for i, o in enumerate(node.options) if not o.correct]
    return next((i for i in wrong if node.options[i].misconception), wrong[0])


def test_answering_every_question_wrong_first_reaches_the_end(lesson):
    state = step(lesson, State(), Start()).state
    revealed = 0
    for _ in range(1000):
        if state.finished:
            break
        node = lesson.nodes[state.node]
        if isinstance(node, ChoiceNode):
            value = Choose(node.id, wrong_first(node) if node.graded else 0)
        elif isinstance(node, WriteNode):
            value = Check(node.id, (0,)) if state.checking else Answer(" ".join(["because"] * node.min_words))
        else:
            value = Continue(node.id)
        result = step(lesson, state, value)
        revealed += any(getattr(o, "verdict", None) == "reveal" for o in result.outputs)
        state = result.state
    assert state.finished
    assert state.score == 0
    assert set(state.misconceptions) == set(MISCONCEPTIONS)
    # Every question is answered wrong twice (the question, then its variant or itself), so
    # the right answer is revealed at each one, and the learner moves on.
    assert revealed >= len([n for n in choices(lesson) if n.graded and n.id not in lesson.variant_of])


def test_a_misconception_chosen_twice_is_not_explained_twice(lesson):
    """M1 can be chosen at two questions; the second time the engine reveals the answer
    instead of sending the learner to the same remedy again."""
    first, second = lesson.senders["remedy-m1"][:2]
    state = step(lesson, State(), Start()).state
    for _ in range(200):
        node = lesson.nodes[state.node]
        if node.id == second:
            break
        if isinstance(node, ChoiceNode) and not node.graded:
            value = Choose(node.id, 0)
        elif isinstance(node, ChoiceNode):
            pick = wrong_first(node) if node.id == first else next(i for i, o in enumerate(node.options) if o.correct)
            value = Choose(node.id, pick)
        elif isinstance(node, WriteNode):
            value = Check(node.id) if state.checking else Answer("because " * node.min_words)
        else:
            value = Continue(node.id)
        state = step(lesson, state, value).state
    result = step(lesson, state, Choose(second, wrong_first(lesson.nodes[second])))
    assert [o.verdict for o in result.outputs if hasattr(o, "verdict")] == ["wrong", "reveal"]
    assert not result.state.node.startswith("remedy-")


# --- 5. shape and size ----------------------------------------------------------------


def test_estimated_minutes_in_range(lesson):
    assert 30 <= estimated_minutes(lesson) <= 40


def test_question_kinds(lesson):
    writes = [n for n in lesson.nodes.values() if isinstance(n, WriteNode)]
    assert len(writes) >= 3
    for node in writes:
        assert node.min_words > 1 and node.model_answer and node.checklist, node.id
    written = {ref for n in writes for ref in n.covers}
    assert {"R2", "R5", "C11"} <= written  # the neutral rewrite, the verdict, the fallback

    true_false = [n for n in choices(lesson) if [o.text for o in n.options] == ["True", "False"]]
    assert true_false, "no true/false question"
    assert all(not n.shuffle for n in true_false), "True/False keep their order"

    pairs = [n for n in choices(lesson) if "set against each other" in n.ask.casefold()]
    assert pairs and "C13" in pairs[0].covers
    letters = [o for o in pairs[0].options if re.fullmatch(r"[A-D] and [A-D]", o.text)]
    others = [o for o in pairs[0].options if o not in letters]
    assert len(letters) >= 3 and all(o.last for o in others)


def test_ungraded_questions_are_the_opening_poll_and_the_dated_epilogue(lesson):
    ungraded = [n for n in choices(lesson) if not n.graded]
    assert {lesson.section_of[n.id].id for n in ungraded} == {"setting", "epilogue"}
    end = next(n for n in lesson.nodes.values() if isinstance(n, EndNode))
    assert {n.id for n in ungraded} <= set(end.recall), "the end shows both opinions again"
    epilogue = [n for n in lesson.nodes.values() if "E" in n.covers and isinstance(n, MessageNode)]
    assert epilogue and "April 2025" in epilogue[0].say and "June 2025" in epilogue[0].say
    assert all(n.graded is False for n in ungraded if "E" in n.covers)
    # The epilogue is the last thing before the end.
    path = all_correct_path(lesson)
    assert isinstance(lesson.nodes[path[-1]], EndNode)
    assert "E" in lesson.nodes[path[-2]].covers


def test_messages_fit_a_phone_screen_and_alternate_with_tasks(lesson):
    for node in lesson.nodes.values():
        if isinstance(node, MessageNode):
            assert len(node.say) <= 900, f"{node.id} is {len(node.say)} characters"
        if isinstance(node, ChoiceNode):
            assert all(len(o.text) <= 100 for o in node.options)
    # Along the lesson, never more than two messages in a row (not counting solo-only ones,
    # which group study may skip) before the learner has something to do.
    run = 0
    for node_id in all_correct_path(lesson):
        node = lesson.nodes[node_id]
        if isinstance(node, MessageNode):
            run += 0 if node.solo_only else 1
            assert run <= 2, f"three messages in a row, ending at {node_id}"
        else:
            run = 0


def test_every_teaching_node_names_what_it_covers(lesson):
    free = {lesson.start_id, "how-it-works"}
    for node in lesson.nodes.values():
        if node.id in free or isinstance(node, EndNode):
            continue
        assert node.covers, f"{node.id} covers nothing"


def test_judgements_are_attributed(lesson):
    """The lesson speaks of the column's judgements as Kluth's, not as its own."""
    body = " ".join(t for n in lesson.nodes.values() for t in texts(n))
    assert body.count("Kluth") >= 30


# --- 6. no copying --------------------------------------------------------------------


def _words(text: str) -> list[str]:
    text = text.casefold().replace("\u2019", "'").replace("\u2018", "'")
    return re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text)


def test_no_run_of_twelve_words_copied_from_the_column(lesson):
    if not ARTICLE.exists():
        pytest.skip(f"{ARTICLE} is not available")
    words = _words(ARTICLE.read_text(encoding="utf-8"))
    n = 12
    article = {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
    copied = []
    for node in lesson.nodes.values():
        for text in texts(node):
            mine = _words(text)
            for i in range(len(mine) - n + 1):
                if tuple(mine[i : i + n]) in article:
                    copied.append(f"{node.id}: {' '.join(mine[i : i + n])}")
    assert not copied, copied

"""What the bundled lessons teach, and how: rules for their content rather than their shape.

- Ask, then explain: no graded question can be answered by copying what was shown just before it.
- No option's length gives the answer away.
- Each section opens with the column's own words; quotes are verbatim, short and few.
- Right answers explain without praise; written answers get a model answer and a self-check.
- The end recalls the learner's own answers; the description leaves the minutes to the software.
- The full lesson weighs Kluth's assumptions and ends with a dated postscript.

Everything works from the lesson files alone, except the verbatim check of quotes, which needs
the column (TUTORBOT_ARTICLE, or ../shared/lesson/article.txt beside the repository) and is
skipped where it is absent, as in CI.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

from bot.lesson import ChoiceNode, EndNode, Lesson, MessageNode, Node, WriteNode
from bot.loader import load_file

ROOT = Path(__file__).resolve().parent.parent
FULL = ROOT / "dialogues" / "madman.yaml"
CORE = ROOT / "dialogues" / "madman-core.yaml"
FILES = {"madman": FULL, "madman-core": CORE}

# Ask, then explain. For every graded question, take the longest run of consecutive words
# (case-folded, punctuation dropped) that its right option shares with any one text the
# learner saw since the previous question: that question's feedback or model answer, every
# message, quote and remedy in between, wrong answers' feedback before a retry, and the
# question itself with its quote. A run of 5 words or more means the answer can be copied
# from the screen ("keep the US out of foreign wars"); 4 words still occur by chance in
# ordinary English ("the US and Iran", "a deal with Washington"), so 4 is the most allowed.
MAX_SHARED_RUN = 4
# Worst cases when this limit was set: 2 words in madman.yaml ("the deal", q-why-left-v) and
# 2 in madman-core.yaml ("the madman", q-why-backfire). (Before the rewrite, about 15 of 24
# questions could be answered by copying the message just above them.)

# No length gives the answer away: the right option may be the longest (alone or tied) in at
# most a third of the graded questions. Chance alone, with 3-4 options, is a quarter to a third.
LONGEST_SHARE = 1 / 3

QUOTE_CHARS = 400  # a sentence or two
QUOTED_WORDS = 500  # all quotes of one lesson together: well under half of the ~1,000-word column
PRAISE = re.compile(
    r"^\W*(right|exactly|yes|correct|well done|good|great|excellent|perfect|spot on|indeed|nice|that's it|bravo)\b",
    re.IGNORECASE,
)


@cache
def lesson_of(name: str) -> Lesson:
    return load_file(FILES[name]).lesson


@pytest.fixture(params=sorted(FILES), scope="module")
def lesson(request) -> Lesson:
    return lesson_of(request.param)


@pytest.fixture(scope="module")
def full() -> Lesson:
    return lesson_of("madman")


# --- helpers --------------------------------------------------------------------------


def words(text: str) -> list[str]:
    text = text.casefold().replace("\u2019", "'").replace("\u2018", "'")
    return re.findall(r"[^\W_]+(?:'[^\W_]+)*", text)


def shared_run(a: list[str], b: list[str]) -> list[str]:
    """The longest run of consecutive words found in both `a` and `b`."""
    best, end = 0, 0
    previous = [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        current = [0] * (len(b) + 1)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                current[j] = previous[j - 1] + 1
                if current[j] > best:
                    best, end = current[j], i
        previous = current
    return a[end - best : end]


def own_texts(node: Node) -> list[str]:
    """What a step shows by itself: its text and its quote."""
    return [node.text] + ([node.quote.text] if node.quote else [])


def graded(lesson: Lesson) -> list[ChoiceNode]:
    return [n for n in lesson.nodes.values() if isinstance(n, ChoiceNode) and n.graded]


def right_option(node: ChoiceNode):
    return next(o for o in node.options if o.correct)


def incoming(lesson: Lesson) -> dict[str, list[tuple[str, list[str]]]]:
    """For each node, the steps that lead to it and what the learner reads on the way (the
    feedback of the option chosen, a model answer and self-check)."""
    found: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for node in lesson.nodes.values():
        if isinstance(node, ChoiceNode):
            right = next((o for o in node.options if o.correct), None)
            for option in node.options:
                target = lesson.option_target(node, option)
                found[target].append((node.id, [option.feedback]))
                if node.graded and not option.correct and right is not None:
                    # A second wrong try: its feedback, then the right answer, and on.
                    found[lesson.option_target(node, right)].append(
                        (node.id, [option.feedback, right.text, right.feedback])
                    )
        elif isinstance(node, WriteNode):
            for target in lesson.targets(node):
                found[target].append((node.id, [node.model_answer, *node.checklist]))
        elif isinstance(node, MessageNode):
            for target in lesson.targets(node):
                found[target].append((node.id, []))
    return found


def shown_before(lesson: Lesson, question: str) -> list[str]:
    """Every text the learner may have seen since the previous question, up to and including
    `question` itself (over every way into it)."""
    into = incoming(lesson)
    texts = own_texts(lesson.nodes[question])
    seen: set[str] = set()
    todo = [question]
    while todo:
        for source, said in into.get(todo.pop(), []):
            texts += said
            node = lesson.nodes[source]
            if isinstance(node, MessageNode) and source not in seen:
                seen.add(source)
                texts += own_texts(node)
                todo.append(source)
    return texts


def copied(lesson: Lesson) -> list[tuple[int, str, str]]:
    """(run length, question, shared words) for every graded question, longest first."""
    found = []
    for node in graded(lesson):
        answer = words(right_option(node).text)
        runs = [shared_run(answer, words(text)) for text in shown_before(lesson, node.id)]
        run = max(runs, key=len, default=[])
        found.append((len(run), node.id, " ".join(run)))
    return sorted(found, reverse=True)


def right_is_longest(node: ChoiceNode) -> bool:
    right = right_option(node)
    return len(right.text) >= max(len(o.text) for o in node.options if o is not right)


def article_paragraphs() -> list[str] | None:
    """The column's body paragraphs (paragraph 1 is line 4 of the file), or None."""
    path = Path(os.environ.get("TUTORBOT_ARTICLE") or ROOT.parent / "shared" / "lesson" / "article.txt")
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").split("\n")[3:]
    body = []
    for line in lines:
        if not line.strip():
            break
        body.append(" ".join(line.split()))
    return body


def texts_of(nodes) -> list[str]:
    """Every text of these nodes: their own, options with feedback, model answers and points."""
    parts = []
    for node in nodes:
        parts += own_texts(node)
        if isinstance(node, ChoiceNode):
            parts += [t for o in node.options for t in (o.text, o.feedback)]
        if isinstance(node, WriteNode):
            parts += [node.model_answer, *node.checklist]
    return parts


def every_text(lesson: Lesson) -> str:
    return "\n".join([lesson.lesson.description, *texts_of(lesson.nodes.values())])


def section(lesson: Lesson, section_id: str):
    return next(s for s in lesson.sections if s.id == section_id)


def section_text(lesson: Lesson, section_id: str) -> str:
    return "\n".join(texts_of(section(lesson, section_id).nodes))


# --- the helpers themselves -----------------------------------------------------------


def test_shared_run_finds_copied_words():
    assert shared_run(words("It clashes with his pledge to stay out"), words("His pledge to stay out of wars.")) == [
        "his",
        "pledge",
        "to",
        "stay",
        "out",
    ]
    assert shared_run(words("Peaceful work, but no weapons"), words("Nothing in common here")) == []
    assert words("Iran’s “entire” programme") == ["iran's", "entire", "programme"]


def test_the_copy_check_catches_an_answer_given_away(lesson_text):
    """A message that states the answer just above its question is caught."""
    from bot.loader import load_text

    tiny = load_text(
        lesson_text(("Acting unpredictable can backfire.", "No one trusts the madman to keep a deal.")),
        "tiny.yaml",
    ).lesson
    assert copied(tiny)[0][:2] == (9, "q1")


# --- 1. ask, then explain -------------------------------------------------------------


def test_ask_then_explain(lesson):
    """No graded question's right answer can be copied from the steps shown since the
    previous question (see MAX_SHARED_RUN for the limit and the worst cases)."""
    found = copied(lesson)
    too_long = [f for f in found if f[0] > MAX_SHARED_RUN]
    assert not too_long, too_long
    print(f"\n{lesson.id}: longest shared run {found[0]}")


# --- 2. no length gives the answer away -----------------------------------------------


def test_the_right_option_is_rarely_the_longest(lesson):
    questions = graded(lesson)
    longest = [n.id for n in questions if right_is_longest(n)]
    assert len(longest) <= LONGEST_SHARE * len(questions), (
        f"{lesson.id}: the right option is the longest in {len(longest)} of {len(questions)}: {longest}"
    )
    print(f"\n{lesson.id}: right option longest in {len(longest)} of {len(questions)} graded questions")


def test_the_length_check_can_fail():
    node = ChoiceNode(
        id="q",
        ask="?",
        options=[
            {"text": "Short", "feedback": "No."},
            {"text": "The long and careful right answer", "correct": True, "feedback": "Because."},
        ],
    )
    assert right_is_longest(node)


# --- 3. quotes ------------------------------------------------------------------------


def test_every_section_opens_with_a_quote(lesson):
    bare = [s.id for s in lesson.sections if s.nodes[0].quote is None]
    assert not bare, f"{lesson.id}: sections whose first node has no quote: {bare}"


def test_quotes_are_short_and_few(lesson):
    quotes = [n.quote for n in lesson.nodes.values() if n.quote]
    assert quotes
    for quote in quotes:
        assert len(quote.text) <= QUOTE_CHARS, quote.text
    total = sum(len(q.text.split()) for q in quotes)
    assert total <= QUOTED_WORDS, f"{lesson.id} quotes {total} words of the column"
    texts = [" ".join(q.text.split()) for q in quotes]
    assert len(set(texts)) == len(texts), "a passage is quoted twice"
    print(f"\n{lesson.id}: {len(quotes)} quotes, {total} words")


def verbatim(quote: str, paragraph: str) -> bool:
    """Every piece of the quote (cut at "…") is in the paragraph, in order."""
    at = 0
    for piece in (" ".join(p.split()) for p in quote.split("…")):
        if not piece:
            continue
        found = paragraph.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def test_verbatim_check_rejects_a_changed_word():
    paragraph = "Having disarmed, Qaddafi soon felt betrayed by the US. In 2011, American and NATO forces backed Libyan insurgents."
    assert verbatim("Having disarmed, Qaddafi soon felt betrayed … NATO forces backed Libyan insurgents.", paragraph)
    assert not verbatim("Having disarmed, Qaddafi soon felt cheated by the US.", paragraph)
    assert not verbatim("NATO forces backed … Having disarmed", paragraph)  # out of order


def test_quotes_are_verbatim_from_their_paragraph(lesson):
    paragraphs = article_paragraphs()
    if paragraphs is None:
        pytest.skip("the column is not available (set TUTORBOT_ARTICLE, or check out ../shared beside the repository)")
    for node in lesson.nodes.values():
        if node.quote:
            number = node.quote.paragraph
            assert number <= len(paragraphs), f"{node.id}: the column has {len(paragraphs)} paragraphs, not {number}"
            assert verbatim(node.quote.text, paragraphs[number - 1]), (
                f"{node.id}: not verbatim from paragraph {number}: {node.quote.text}"
            )


# Words in quotation marks inside the lesson's own text are the column's, unless they name
# another source or a term (found with their source in the same sentence).
NOT_THE_COLUMNS = {
    "kluth argues",  # how the lesson attributes a view
    "sunset clauses",  # the deal's critics
    "commitment problem",  # political scientists' term
    "with the stroke of a pen",  # the senators' letter of March 2015
    "crazy like a fox?",  # McManus's study
    "mad",  # McManus's term for such leaders
    "it backfires",  # the column's sweep, in short
    "his supporters often say he has an instinct for deal-making or follows a sophisticated strategy; i think they are wrong.",  # a neutral rewrite
}


def quoted_phrases(text: str) -> list[str]:
    return re.findall(r'"([^"]+)"|\u201c([^\u201d]+)\u201d', text)


def test_words_in_quotation_marks_are_the_columns(lesson):
    paragraphs = article_paragraphs()
    if paragraphs is None:
        pytest.skip("the column is not available (set TUTORBOT_ARTICLE, or check out ../shared beside the repository)")
    path = Path(os.environ.get("TUTORBOT_ARTICLE") or ROOT.parent / "shared" / "lesson" / "article.txt")
    headline = path.read_text(encoding="utf-8").split("\n")[:3]  # the title and subtitle too
    column = " ".join(words(" ".join(headline + paragraphs)))
    wrong = []
    for found in quoted_phrases(every_text(lesson)):
        phrase = " ".join(words(found[0] or found[1]))
        if (found[0] or found[1]).casefold() not in NOT_THE_COLUMNS and f" {phrase} " not in f" {column} ":
            wrong.append(found[0] or found[1])
    assert not wrong, f"{lesson.id}: quoted as the column's words, but not in the column: {wrong}"


# --- 4. feedback and written answers --------------------------------------------------


def test_right_answers_explain_without_praise(lesson):
    for node in graded(lesson):
        feedback = right_option(node).feedback
        assert not PRAISE.match(feedback), f"{node.id}: {feedback[:40]}"
        assert len(feedback.split()) >= 8, f"{node.id}: the right answer's feedback must explain"
    assert PRAISE.match("Right. Threats and promises.") and PRAISE.match("Exactly: no deal.")


def test_written_questions_have_a_model_answer_and_a_self_check(lesson):
    writes = [n for n in lesson.nodes.values() if isinstance(n, WriteNode)]
    assert writes
    for node in writes:
        assert 2 <= len(node.checklist) <= 6, node.id
        assert all(len(point) <= 100 for point in node.checklist), node.id
        assert not re.match(r"(a )?model answer", node.model_answer, re.IGNORECASE), node.id
        assert len(node.model_answer.split()) >= 20, node.id


def test_remedies_return_and_the_full_lesson_uses_variants(lesson):
    remedies = [n for n in lesson.nodes.values() if isinstance(n, MessageNode) and n.id.startswith("remedy-")]
    assert remedies and all(r.returns for r in remedies), [r.id for r in remedies if not r.returns]
    if lesson.id == "madman":
        assert len(lesson.variant_of) >= 2
        assert any(len(questions) >= 2 for questions in lesson.senders.values()), "no remedy serves two questions"


def test_remedies_say_truly_where_they_return(lesson):
    """A remedy whose question has a variant leads to "a related question", not "back to
    the question"; and a misconception's feedback promises no explanation, since a learner
    who chose the same misconception before gets the answer instead of the remedy."""
    for remedy_id, questions in lesson.senders.items():
        text = lesson.nodes[remedy_id].text.casefold()
        to_variant = [lesson.retry_of(q) != q for q in questions]
        if any(to_variant):
            assert "back to the question" not in text, remedy_id
        if not all(to_variant):
            assert "related question" not in text, remedy_id
    for node in graded(lesson):
        for option in node.options:
            if option.misconception:
                assert "explanation follows" not in option.feedback.casefold(), node.id


# --- 5. the end and the description ---------------------------------------------------


def test_the_end_recalls_the_learners_own_answers(lesson):
    ends = [n for n in lesson.nodes.values() if isinstance(n, EndNode)]
    for end in ends:
        recalled = [lesson.nodes[r] for r in end.recall]
        assert any(isinstance(n, WriteNode) for n in recalled), f"{end.id} recalls no written answer"
    if lesson.id == "madman":
        # An opinion poll early on, recalled at the end: the learner sees how their view moved.
        polls = [n for n in lesson.nodes.values() if isinstance(n, ChoiceNode) and not n.graded]
        early = [p for p in polls if lesson.sections.index(lesson.section_of[p.id]) == 0]
        assert early, "no opinion poll in the first part"
        assert all(any(p.id in e.recall for p in early) for e in ends)
        assert all(any(lesson.nodes[r].id == "reflect-r5" for r in e.recall) for e in ends)


def test_the_end_recaps_the_argument(full):
    end = next(n for n in full.nodes.values() if isinstance(n, EndNode)).end.casefold()
    for idea in ("thesis", "mechanism", "evidence", "alternative", "weakness"):
        assert idea in end, idea


def test_the_description_leaves_the_minutes_to_the_software(lesson):
    description = lesson.lesson.description
    assert not re.search(r"\d+\s*(-\s*\d+\s*)?(minutes?|mins?)\b|\bminutes?\b", description, re.IGNORECASE), description


def test_messages_fit_a_phone_screen(lesson):
    for node in lesson.nodes.values():
        if isinstance(node, (MessageNode, EndNode)):
            assert len(node.text.split()) <= 120, f"{node.id}: {len(node.text.split())} words"
            shown = sum(len(t.split()) for t in own_texts(node))
            assert shown <= 160, f"{node.id}: {shown} words with its quote"


def test_plain_text_only(lesson):
    text = every_text(lesson)
    assert not re.search(r"</?[a-z]+[^>]*>|\*\*|__|\[[^\]]+\]\(|^#+ ", text, re.MULTILINE)


# --- 6. accuracy the issue asked for --------------------------------------------------


def test_nothing_contradicts_the_column_on_threats(lesson):
    """The M1 remedy never says erratic behaviour makes the threat easier to believe."""
    text = every_text(lesson).casefold()
    assert "easier to believe" not in text
    assert "make the first believable" not in text


def test_the_npt_binds_every_party_to_disarmament_talks(full):
    """Article VI binds every party (the nuclear-weapon states above all), not only them:
    every sentence that names it says so."""
    text = every_text(full) + "\n" + full.lesson.argument_map["K4"]
    sentences = re.split(r"(?<=[.!?;])\s+|\n", text.replace("Art. VI", "Art VI"))
    mentions = [s for s in sentences if re.search(r"\b(Article|Art) VI\b", s)]
    assert mentions
    for sentence in mentions:
        assert re.search(r"every (party|member)|all parties|each party", sentence, re.IGNORECASE), sentence


def test_khamenei_remark_is_not_called_public(full):
    text = every_text(full).casefold()
    assert "public words" not in text
    assert "inner circle" in text


def test_added_facts_name_their_sources(full):
    text = every_text(full)
    for source in ("quarterly reports", "Haldeman", "The Ends of Power (1978)", "foreign ministry", "March 2011"):
        assert source in text, source


def test_kluths_assumptions_are_weighed(full):
    ids = [s.id for s in full.sections]
    assert "assumptions" in ids
    assert ids.index("conclusion") < ids.index("assumptions") < ids.index("critical") < ids.index("judge")
    nodes = section(full, "assumptions").nodes
    assert any(isinstance(n, ChoiceNode) and n.graded for n in nodes)
    assert any(isinstance(n, WriteNode) for n in nodes)
    text = section_text(full, "assumptions")
    for key in (
        "executive agreement",  # (a) structural: no Senate-ratified treaty
        "Senate",
        "Domestic politics",  # (b) other reasons for Iran's reluctance
        "Regime security",
        "Latent capability",
        "2003",  # (c) Libya: eight years, an uprising and a UN-authorised intervention between
        "2011",
        "UN Security Council",
        "rev up",  # (d) the fallback Kluth grants both sides
        "mixed signal",
        "McManus",  # (e) what the research finds
        "British Journal of Political Science",
        "under certain conditions",
    ):
        assert key in text, key


def test_promised_parts_exist_and_come_later(lesson):
    """A pointer such as "part 11 weighs that" names a part that exists, and another part
    than the one it is in (a promise points ahead; a look back points behind)."""
    for index, sec in enumerate(lesson.sections, 1):
        for node in sec.nodes:
            texts = own_texts(node)
            if isinstance(node, ChoiceNode):
                texts += [t for o in node.options for t in (o.text, o.feedback)]
            for text in texts:
                for match in re.finditer(r"\bpart (\d+)", text, re.IGNORECASE):
                    number = int(match[1])
                    assert 1 <= number <= len(lesson.sections), f"{node.id}: no part {number}"
                    assert number != index, f"{node.id} points to its own part"
                    before = text[max(0, match.start() - 12) : match.start()].casefold()
                    after = text[match.end() : match.end() + 14].casefold()
                    if re.search(r"\b(weighs?|comes|returns|asks)\b", after) or re.search(r"\b(comes|returns) in $", before):
                        assert number > index, f"{node.id} promises part {number}, which is already past"
                    if re.search(r"\b(showed|added)\b", after) or before.endswith("from "):
                        assert number < index, f"{node.id} looks back on part {number}, which is still ahead"


def test_the_epilogue_is_dated_and_complete(full):
    text = section_text(full, "epilogue")
    for key in ("April 2025", "12 June 2025", "Board of Governors", "non-compliance", "sixth round", "15 June", "Muscat", "two days before", "Fordow", "ceasefire"):
        assert key in text, key
    poll = next(n for n in section(full, "epilogue").nodes if isinstance(n, ChoiceNode))
    assert not poll.graded, "the postscript is for discussion, not a quiz"

"""What instructors review, read from the event log: each learner's attempts at a lesson,
a lesson's summary (who started and finished, the hardest questions, the misconceptions
chosen most), a learner's transcript, and the written reflections waiting for review.

Built on the store and the lessons only, so the terminal, the bot and the exported files
say the same. Events are read in one ordered pass (`attempts`), one learner's attempt at a
time, and summaries keep running totals, never every learner at once.

An attempt is one run through a lesson in one chat: it begins with a start (a restart
begins another). Time spent is the sum of the gaps between a learner's events, a gap
longer than `BREAK` counted as a break (not at all).
"""

from __future__ import annotations

import json
import math
import statistics
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from bot import engine
from bot.engine import Feedback, Notice, State, Step, Summary, input_from_dict
from bot.lesson import ChoiceNode, Lesson, WriteNode
from bot.loader import LoadedLesson
from bot.store import Store

BREAK = 30 * 60.0  # seconds: a longer gap between two events is a break, not time spent
NAMESPACE = uuid.UUID("9f6c2b1e-5d0a-4c3e-8f71-2a4b6c8d0e1f")  # registrations are uuid5 in it


@dataclass(frozen=True)
class Filters:
    """Which events a report covers; None: all. An attempt that began before `since` is
    seen from `since` on (as if it began there)."""

    lesson: str | None = None
    chat: str | None = None
    since: str | None = None  # an ISO date or time (UTC unless it says otherwise): events at or after it
    learner: str | None = None

    def __post_init__(self) -> None:
        if self.since is not None:  # the store's own format, so that text comparison is time order
            when = datetime.fromisoformat(self.since)
            when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
            object.__setattr__(self, "since", when.astimezone(timezone.utc).isoformat(timespec="milliseconds"))


@dataclass(frozen=True)
class Scope:
    """What a reader may see: everything (`everything`), or the events of the listed
    (chat, lesson, learner, since) grants, None in a grant meaning any (for `since`, an
    ISO time in the store's format: events at or after it; an attempt under way then is
    seen from there on, as with `Filters.since`)."""

    everything: bool = False
    allowed: tuple[tuple[str | None, str | None, str | None, str | None], ...] = ()

    def where(self) -> tuple[str, list]:
        """An SQL condition over `events e` (its chat, lesson, learner and time), and its arguments."""
        if self.everything:
            return "1", []
        if not self.allowed:
            return "0", []
        parts, args = [], []
        for grant in self.allowed:
            part = ["1"]
            for column, value in zip(("chat", "lesson", "learner"), grant[:3]):
                if value is not None:
                    part.append(f"e.{column} = ?")
                    args.append(value)
            if grant[3] is not None:
                part.append("e.at >= ?")
                args.append(grant[3])
            parts.append("(" + " AND ".join(part) + ")")
        return "(" + " OR ".join(parts) + ")", args


EVERYTHING = Scope(everything=True)


@dataclass
class Response:
    """One answer in an attempt: a choice, a written text or a self-check."""

    event: int
    node: str
    kind: str  # "choice", "text", "check"
    at: str
    seconds: float  # since the learner's previous event (0 after a break)
    question: str | None = None  # for a choice: the question it counts for (a variant's original)
    option: int | None = None
    correct: bool | None = None
    attempt: int = 1
    misconception: str | None = None
    revealed: bool = False
    text: str | None = None
    covered: tuple[int, ...] = ()


@dataclass
class Attempt:
    """One learner's run through one lesson in one chat."""

    learner: str
    name: str | None
    lesson: str
    chat: str
    first_event: int
    started_at: str
    updated_at: str = ""
    finished_at: str | None = None
    score: int = 0
    events: int = 0
    seconds: float = 0.0
    responses: list[Response] = field(default_factory=list)
    edges: Counter[tuple[str, str]] = field(default_factory=Counter)  # (from node, to node) moves
    parts_reached: set[int] = field(default_factory=set)
    node: str | None = None

    @property
    def registration(self) -> str:
        """A stable id of this attempt (a UUID, as xAPI wants)."""
        return str(uuid.uuid5(NAMESPACE, f"{self.learner}|{self.lesson}|{self.chat}|{self.first_event}"))

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def first_tries(self) -> dict[str, Response]:
        """Each graded question's first answer (a variant counts as its original)."""
        found: dict[str, Response] = {}
        for response in self.responses:  # the original is always asked before its variant
            if response.kind == "choice" and response.correct is not None:
                found.setdefault(response.question or response.node, response)
        return found


def conditions(filters: Filters, scope: Scope) -> tuple[str, list]:
    """The SQL condition over `events e` that the filters and the scope make, and its arguments."""
    where, args = scope.where()
    clauses = [where]
    for column, value in (("lesson", filters.lesson), ("chat", filters.chat), ("learner", filters.learner)):
        if value is not None:
            clauses.append(f"e.{column} = ?")
            args.append(value)
    if filters.since:
        clauses.append("e.at >= ?")
        args.append(filters.since)
    return " AND ".join(clauses), args


def _events(store: Store, filters: Filters, scope: Scope) -> Iterator[tuple]:
    where, args = conditions(filters, scope)
    # Only the fields a report reads, taken out of the JSON by SQLite (much faster than
    # parsing each event's whole state in Python).
    sql = (
        "SELECT e.id, e.learner, l.name, e.lesson, e.chat, e.node, e.at, "
        "json_extract(e.input, '$.kind'), json_extract(e.input, '$.node'), "
        "json_extract(e.state, '$.score'), json_extract(e.state, '$.finished'), json_extract(e.state, '$.node'), "
        "CASE json_extract(e.input, '$.kind') WHEN 'choose' THEN json_array(json_extract(e.outcome, '$.option'), "
        "json_extract(e.outcome, '$.correct'), json_extract(e.outcome, '$.attempt'), "
        "json_extract(e.outcome, '$.misconception'), json_extract(e.outcome, '$.revealed')) "
        "WHEN 'answer' THEN json_extract(e.outcome, '$.text') "
        "WHEN 'check' THEN json_extract(e.outcome, '$.covered') END "
        "FROM events e LEFT JOIN learners l ON l.id = e.learner "
        f"WHERE {where} ORDER BY e.learner, e.lesson, e.chat, e.id"
    )
    yield from store.db.execute(sql, args)


def _seconds(before: datetime, after: datetime) -> float:
    gap = (after - before).total_seconds()
    return gap if 0 <= gap <= BREAK else 0.0


def attempts(store: Store, lessons: dict[str, LoadedLesson], filters: Filters = Filters(), scope: Scope = EVERYTHING) -> Iterator[Attempt]:
    """Every attempt the filters and scope allow, learner by learner, in one pass."""
    current: Attempt | None = None
    current_key: tuple | None = None
    previous_at: datetime | None = None
    parts: dict[str, tuple[int, int]] = {}
    variant_of: dict[str, str] = {}
    for row in _events(store, filters, scope):  # the hot loop of every report: kept plain
        event_id, learner, name, lesson_id, chat, node, at, kind, input_node, score, finished, target, outcome = row
        when = datetime.fromisoformat(at)
        key = (learner, lesson_id, chat)
        same = key == current_key
        gap = _seconds(previous_at, when) if same and previous_at is not None and kind != "start" else 0.0
        if kind == "start" or not same:
            if current is not None:
                yield current
            current, current_key = Attempt(learner, name, lesson_id, chat, event_id, at), key
            loaded = lessons.get(lesson_id)
            parts = loaded.lesson.parts if loaded is not None else {}
            variant_of = loaded.lesson.variant_of if loaded is not None else {}
        assert current is not None
        previous_at = when
        current.events += 1
        current.seconds += gap
        current.updated_at = at
        current.score = int(score or 0)
        if finished and current.finished_at is None:
            current.finished_at = at
        if node and target and node != target:
            current.edges[(node, target)] += 1
        current.node = target
        part = parts.get(target)
        if part is not None:
            current.parts_reached.add(part[0])
        if kind == "choose":
            option, correct, tries, misconception, revealed = json.loads(outcome)
            current.responses.append(Response(
                event_id, input_node, "choice", at, gap, question=variant_of.get(input_node, input_node), option=option,
                correct=None if correct is None else bool(correct), attempt=int(tries or 1),
                misconception=misconception, revealed=bool(revealed),
            ))
        elif kind == "answer" and outcome is not None:
            current.responses.append(Response(event_id, node or "", "text", at, gap, text=outcome))
        elif kind == "check":
            current.responses.append(Response(event_id, input_node, "check", at, gap, covered=tuple(json.loads(outcome or "[]"))))
    if current is not None:
        yield current


# --- a lesson's summary ------------------------------------------------------------------------


@dataclass
class QuestionStats:
    node: str
    ask: str
    answered: int = 0  # learners who answered it (their first try)
    right: int = 0  # of them, right at the first try
    options: Counter[int] = field(default_factory=Counter)  # first tries per option (file index)
    # Over finished attempts only, for the point-biserial correlation with the total score:
    finished_right: int = 0
    finished_wrong: int = 0
    sum_right: float = 0.0  # total scores of those right at the first try
    sum_wrong: float = 0.0
    sum_squares: float = 0.0  # of the total scores of both

    @property
    def facility(self) -> float | None:
        """The share right at the first try."""
        return self.right / self.answered if self.answered else None


@dataclass
class LessonSummary:
    lesson: str
    title: str
    questions_total: int
    started: int = 0  # attempts (a restart, or the lesson in a group, begins another)
    finished: int = 0
    learners: int = 0  # people: who started, who finished at least once
    finishers: int = 0
    last_learner: str | None = None  # (attempts come learner by learner: see `attempts`)
    last_finisher: str | None = None
    finish_minutes: list[float] = field(default_factory=list)  # of those who finished
    score_sum: int = 0
    score_squares: int = 0
    scored: int = 0  # attempts counted in the score figures (finished ones)
    questions: dict[str, QuestionStats] = field(default_factory=dict)
    misconceptions: Counter[str] = field(default_factory=Counter)
    parts_reached: Counter[int] = field(default_factory=Counter)  # part -> attempts that reached it
    edges: Counter[tuple[str, str]] = field(default_factory=Counter)
    reflections_waiting: int = 0

    @property
    def median_minutes(self) -> float | None:
        return statistics.median(self.finish_minutes) if self.finish_minutes else None

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.scored if self.scored else None

    @classmethod
    def empty(cls, lesson: Lesson) -> LessonSummary:
        """A lesson's summary before any attempt: a line for each graded question (a variant
        counts for its original)."""
        summary = cls(lesson.id, lesson.title, engine.graded_questions(lesson))
        for node in lesson.nodes.values():
            if isinstance(node, ChoiceNode) and node.graded and node.id not in lesson.variant_of:
                summary.questions[node.id] = QuestionStats(node.id, node.ask)
        return summary

    def discrimination(self, node: str) -> float | None:
        """The point-biserial correlation between answering `node` right at the first try and
        the learner's first-try score over the lesson (item included), over finished attempts;
        None where it is undefined (everyone right, or everyone wrong, or no spread)."""
        q = self.questions[node]
        right, wrong = q.finished_right, q.finished_wrong
        n = right + wrong  # the finished attempts that answered it: p, mean and spread over the same ones
        if n < 2 or not right or not wrong:
            return None
        mean = (q.sum_right + q.sum_wrong) / n
        variance = q.sum_squares / n - mean * mean
        if variance <= 0:
            return None
        p = right / (right + wrong)
        return (q.sum_right / right - q.sum_wrong / wrong) / math.sqrt(variance) * math.sqrt(p * (1 - p))

    def who(self) -> str:
        """"N started, M finished", of people, with the attempts where they differ."""
        text = f"{self.learners} started, {self.finishers} finished"
        if (self.started, self.finished) != (self.learners, self.finishers):
            text += f" ({self.started} attempts, {self.finished} finished: a restart or a group session is another)"
        return text

    def hardest(self, count: int = 5) -> list[QuestionStats]:
        """The questions with the lowest facility (answered by someone), hardest first."""
        answered = [q for q in self.questions.values() if q.answered]
        return sorted(answered, key=lambda q: (q.facility, -q.answered))[:count]


def summarize(store: Store, lessons: dict[str, LoadedLesson], filters: Filters = Filters(), scope: Scope = EVERYTHING) -> list[LessonSummary]:
    """A summary per lesson, in one pass over the events."""
    found: dict[str, LessonSummary] = {}
    for attempt in attempts(store, lessons, filters, scope):
        loaded = lessons.get(attempt.lesson)
        if loaded is None:
            continue
        lesson = loaded.lesson
        summary = found.get(lesson.id)
        if summary is None:
            summary = found[lesson.id] = LessonSummary.empty(lesson)
        add(summary, lesson, attempt)
    for summary in found.values():
        summary.reflections_waiting = count_waiting(store, Filters(summary.lesson, filters.chat, filters.since, filters.learner), scope)
    return list(found.values())


def add(summary: LessonSummary, lesson: Lesson, attempt: Attempt) -> None:
    summary.started += 1
    if attempt.learner != summary.last_learner:
        summary.learners, summary.last_learner = summary.learners + 1, attempt.learner
    summary.parts_reached.update(attempt.parts_reached)
    summary.edges.update(attempt.edges)
    chosen = {r.misconception for r in attempt.responses if r.misconception}
    summary.misconceptions.update(chosen)
    first_tries = [(summary.questions.get(node), response) for node, response in attempt.first_tries().items()]
    for q, response in first_tries:
        if q is not None:
            q.answered += 1
            q.right += bool(response.correct)
            if response.option is not None:
                q.options[response.option] += 1
    if not attempt.finished:
        return
    summary.finished += 1
    if attempt.learner != summary.last_finisher:
        summary.finishers, summary.last_finisher = summary.finishers + 1, attempt.learner
    summary.finish_minutes.append(attempt.seconds / 60)
    summary.scored += 1
    summary.score_sum += attempt.score
    summary.score_squares += attempt.score * attempt.score
    for q, response in first_tries:
        if q is not None:
            q.sum_squares += attempt.score * attempt.score
        if q is not None and response.correct:
            q.finished_right += 1
            q.sum_right += attempt.score
        elif q is not None:
            q.finished_wrong += 1
            q.sum_wrong += attempt.score


# --- transcripts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    at: str
    who: str  # "bot" or "learner"
    text: str
    seconds: float | None = None  # for a learner's line: time taken since the bot's last step


def transcript(store: Store, lessons: dict[str, LoadedLesson], learner: str, filters: Filters = Filters(), scope: Scope = EVERYTHING) -> list[Line]:
    """A learner's history, in order: each step the bot showed, each answer with the time
    taken, each piece of feedback; rebuilt by replaying their events through the engine."""
    lines: list[Line] = []
    for attempt in attempts(store, lessons, Filters(filters.lesson, filters.chat, filters.since, learner), scope):
        loaded = lessons.get(attempt.lesson)
        lines.append(Line(attempt.started_at, "bot", f"— {loaded.lesson.title if loaded else attempt.lesson} ({attempt.chat}; times in UTC) —"))
        if loaded is None:
            continue
        state = State()
        rows = store.db.execute(
            "SELECT id, node, input, state, at FROM events WHERE learner = ? AND lesson = ? AND chat = ? AND id >= ? ORDER BY id",
            [learner, attempt.lesson, attempt.chat, attempt.first_event],
        ).fetchall()
        begun = len(lines)
        seen: list[int] = []
        group = _group_steps(loaded.lesson) if attempt.chat.startswith("tg:-") else None
        for index, (event_id, node, raw_input, raw_state, at) in enumerate(rows):
            value = input_from_dict(json.loads(raw_input))
            if index and value.__class__.__name__ == "Start":
                break
            seen.append(event_id)
            if group is not None:  # group study: the group's steps up to this one, as the group saw them
                lines += [Line(at, "bot", text) for text in group(getattr(value, "node", None) or node, state.seed)]
            said = _said(loaded.lesson, value)
            if said:
                lines.append(Line(at, "learner", said, _gap(lines, at)))
            outputs: tuple = ()  # in a group: feedback and remedies are the member's own, the group saw none
            if group is None:
                try:
                    outputs = engine.step(loaded.lesson, state, value).outputs
                except engine.InputError:  # the lesson changed since: say what was recorded
                    pass
            state = State.from_dict(json.loads(raw_state))
            for output in outputs:
                text = _shown(output)
                if text:
                    lines.append(Line(at, "bot", text))
        lines[begun:] = sorted(lines[begun:] + _feedback(store, seen), key=lambda line: line.at)  # (a stable sort)
    return lines


def _group_steps(lesson: Lesson):
    """For a member's attempt in a group: a function giving the group's steps not shown yet,
    up to and including `node` (none if `node` is not on the group's path), shown with the
    group's `seed`."""
    steps = engine.group_path(lesson)
    shown = 0  # the group's steps shown so far

    def upto(node: str | None, seed: int) -> list[str]:
        nonlocal shown
        if node not in steps or steps.index(node) < shown:
            return []
        start, shown = shown, steps.index(node) + 1
        found = (_shown(engine.view(lesson, State(node=step, seed=seed))) for step in steps[start:shown])
        return [text for text in found if text]

    return upto


def _feedback(store: Store, events: list[int]) -> list[Line]:
    """The instructors' feedback on these events' written answers, as lines at the time it was given."""
    found = []
    for start in range(0, len(events), 500):  # (SQLite takes a limited number of parameters)
        part = events[start:start + 500]
        found += store.db.execute(
            "SELECT r.at, r.feedback, l.name FROM reviews r LEFT JOIN learners l ON l.id = r.reviewer "
            f"WHERE r.status = 'answered' AND r.event IN ({', '.join('?' * len(part))})",
            part,
        ).fetchall()
    return [Line(at, "bot", f"📝 Feedback from {name or 'an instructor'}: {text}") for at, text, name in found]


def duration(seconds: float | None) -> str:
    """A time taken, to the second under an hour ("4 min 30 s", "25 s"); "—" for none."""
    if seconds is None:
        return "—"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def shorten(text: str, limit: int) -> str:
    """`text` on one line, cut at a word end with "…" if longer than `limit`."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rsplit(" ", 1)[0] + "…"


def plain(line: Line) -> str:
    """A transcript line as plain text: the time, then the bot's words, or the learner's
    after "> " with the time they took."""
    when = line.at[:19].replace("T", " ")
    if line.who == "learner":
        took = f" (after {line.seconds:.0f} s)" if line.seconds is not None else ""
        return f"{when}  > {line.text}{took}"
    return f"{when}    {line.text}"


def _said(lesson: Lesson, value: object) -> str | None:
    if isinstance(value, engine.Choose):
        node = lesson.nodes.get(value.node)
        if isinstance(node, ChoiceNode) and 0 <= value.option < len(node.options):
            return node.options[value.option].text
        return f"option {value.option + 1}"
    if isinstance(value, engine.Answer):
        return value.text
    if isinstance(value, engine.Check):
        return "Marked points: " + (", ".join(str(p + 1) for p in value.points) or "none")
    if isinstance(value, engine.Revisit):
        return f"Look again: {value.section}"
    return None


def _shown(output: object) -> str | None:
    if isinstance(output, Step):
        options = "".join(f"\n  {i}. {o}" for i, o in enumerate(output.options, 1))
        return f"[part {output.part}] {output.text.strip()}{options}"
    if isinstance(output, Feedback):
        return f"({output.verdict}) {output.text.strip()}"
    if isinstance(output, Notice):
        return output.text
    if isinstance(output, Summary):
        return f"Result: {output.score} of {output.questions} right at the first try."
    return None


def _gap(lines: list[Line], at: str) -> float | None:
    shown = next((line.at for line in reversed(lines) if line.who == "bot"), None)
    return None if shown is None else max(0.0, (datetime.fromisoformat(at) - datetime.fromisoformat(shown)).total_seconds())


# --- reflections ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reflection:
    event: int
    learner: str
    name: str | None
    lesson: str
    chat: str
    node: str
    text: str
    at: str
    status: str | None  # None: waiting; "reviewed", "skipped", "answered"
    feedback: str | None


def waiting_reflections(store: Store, filters: Filters, scope: Scope, limit: int | None = 1, skipped: bool = False) -> list[Reflection]:
    """Written answers not yet reviewed, oldest first (`skipped` ones too if asked)."""
    return _reflections(store, filters, scope, "(r.status IS NULL OR r.status = 'skipped')" if skipped else "r.status IS NULL", limit)


def count_waiting(store: Store, filters: Filters, scope: Scope) -> int:
    """How many written answers wait for review (counted in SQL, none of them read)."""
    sql, args = _reflections_sql(filters, scope, "r.status IS NULL", "COUNT(*)")
    return store.db.execute(sql, args).fetchone()[0]


def reflection(store: Store, event: int, scope: Scope) -> Reflection | None:
    """One written answer, if the scope allows it (whatever its review status)."""
    found = _reflections(store, Filters(), scope, "e.id = ?", 1, [event])
    return found[0] if found else None


def _reflections(store: Store, filters: Filters, scope: Scope, condition: str, limit: int | None, extra: list | None = None) -> list[Reflection]:
    columns = "e.id, e.learner, l.name, e.lesson, e.chat, e.node, json_extract(e.outcome, '$.text'), e.at, r.status, r.feedback"
    sql, args = _reflections_sql(filters, scope, condition, columns, extra)
    sql += " ORDER BY (r.status IS NOT NULL), e.id" + (f" LIMIT {int(limit)}" if limit is not None else "")
    return [Reflection(*row) for row in store.db.execute(sql, args)]


def _reflections_sql(filters: Filters, scope: Scope, condition: str, columns: str, extra: list | None = None) -> tuple[str, list]:
    """The query for written answers that meet `condition` (on the review `r`), and its arguments."""
    where, args = conditions(filters, scope)
    sql = (
        f"SELECT {columns} FROM events e LEFT JOIN learners l ON l.id = e.learner LEFT JOIN reviews r ON r.event = e.id "
        f"WHERE {where} AND json_extract(e.input, '$.kind') = 'answer' AND json_extract(e.outcome, '$.text') IS NOT NULL "
        f"AND {condition}"
    )
    return sql, args + (extra or [])


def written_question(lessons: dict[str, LoadedLesson], lesson: str, node: str) -> WriteNode | None:
    loaded = lessons.get(lesson)
    found = loaded.lesson.nodes.get(node) if loaded else None
    return found if isinstance(found, WriteNode) else None

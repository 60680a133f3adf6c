"""The exported files: a gradebook for spreadsheets (CSV), the raw event log (JSON Lines)
and xAPI 1.0.3 statements for a learning record store or an LMS.

This module owns the files' formats: their columns and fields, the xAPI vocabulary used
(the ADL verbs, activity types and the IRIs of lessons and questions), and how an
attempt becomes statements. What an attempt is, how time spent is counted, and which
events a reader may see (`Filters`, `Scope`) belong to `bot.reports`, so an export says
what the reports say.

Every writer streams: it reads the events in one ordered pass (`reports.attempts`, or
the events table through a cursor) and writes as it reads, holding one attempt (or one
event) at a time, never every learner. Each returns how many rows, events or statements
it wrote, and calls `progress(n)` every `PROGRESS_EVERY` of them and once at the end.

The caller opens `out` with `encoding="utf-8"` (`"utf-8-sig"` for a CSV meant for
Excel, which reads UTF-8 only after a byte-order mark) and, for the CSV, `newline=""`.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from bot import engine
from bot.lesson import ChoiceNode, Lesson, WriteNode
from bot.loader import LoadedLesson
from bot.reports import EVERYTHING, Attempt, Filters, Response, Scope, attempts, conditions
from bot.store import Store

Progress = Callable[[int], None]
NO_FILTERS = Filters()  # every event (that the scope allows)
PROGRESS_EVERY = 100  # rows, events or statements between two progress calls

# --- the gradebook (CSV) -------------------------------------------------------------------------

CSV_COLUMNS = (
    "name",  # the learner's name as Telegram gave it (empty if unknown)
    "telegram_id",  # the Telegram user id of a "tg:" learner; empty for others
    "learner",  # the learner's id: "tg:<user id>" or "local:<name>"
    "lesson",
    "chat",  # where the attempt happened: the learner's own id for a private chat, "tg:-..." for a group
    "started",  # ISO 8601, UTC
    "finished",  # ISO 8601, UTC; empty if not finished
    "first_try_score",  # graded questions answered right at the first try
    "questions",  # graded questions in the lesson (empty if the lesson is not loaded)
    "attempts",  # answers given to questions with options (every try, polls included)
    "time_spent_minutes",  # one decimal; gaps longer than reports.BREAK are breaks, not counted
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell as a formula


def write_csv(
    store: Store,
    lessons: dict[str, LoadedLesson],
    out: TextIO,
    filters: Filters = NO_FILTERS,
    scope: Scope = EVERYTHING,
    progress: Progress | None = None,
) -> int:
    """A gradebook: a header, then one row per learner, lesson and chat (their latest
    attempt there), in the order of learner, lesson and chat ids; columns `CSV_COLUMNS`.
    Returns the rows written (the header not counted).

    A name that a spreadsheet would take for a formula (starting with =, +, -, @) is
    written after an apostrophe, as spreadsheets expect, so that opening the file never
    runs what a learner typed as their name."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for attempt in _latest(attempts(store, lessons, filters, scope)):
        writer.writerow(_row(attempt, lessons.get(attempt.lesson)))
        count += 1
        _tick(progress, count)
    _done(progress, count)
    return count


def _latest(found: Iterator[Attempt]) -> Iterator[Attempt]:
    """The last attempt of each (learner, lesson, chat): `attempts` yields one key's attempts
    one after another, so holding the latest one is enough."""
    held: Attempt | None = None
    for attempt in found:
        if held is not None and (held.learner, held.lesson, held.chat) != (attempt.learner, attempt.lesson, attempt.chat):
            yield held
        held = attempt
    if held is not None:
        yield held


def _row(attempt: Attempt, loaded: LoadedLesson | None) -> list[str | int]:
    return [
        _cell(attempt.name or ""),
        telegram_id(attempt.learner) or "",
        attempt.learner,
        attempt.lesson,
        attempt.chat,
        attempt.started_at,
        attempt.finished_at or "",
        attempt.score,
        engine.graded_questions(loaded.lesson) if loaded else "",
        sum(1 for r in attempt.responses if r.kind == "choice"),
        f"{attempt.seconds / 60:.1f}",
    ]


def _cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_START) else text


def telegram_id(learner: str) -> str | None:
    """The Telegram user id in a learner id ("tg:101" -> "101"); None for other learners."""
    prefix, _, rest = learner.partition(":")
    return rest if prefix == "tg" and rest.lstrip("-").isdigit() else None


# --- the event log (JSON Lines) ------------------------------------------------------------------


def write_jsonl(
    store: Store,
    lessons: dict[str, LoadedLesson],
    out: TextIO,
    filters: Filters = NO_FILTERS,
    scope: Scope = EVERYTHING,
    progress: Progress | None = None,
) -> int:
    """Every event the filters and scope allow, in the order they happened (by id), one
    JSON object per line (UTF-8, not ASCII-escaped, but for the line separators U+0085,
    U+2028 and U+2029, escaped). Returns the events written.

    Each object has these fields:

    - `id` (int): the event's id; ids grow with time, so they order the events.
    - `learner` (str): who acted, "tg:<Telegram user id>" or "local:<name>".
    - `name` (str or null): the learner's name, if known.
    - `lesson` (str): the lesson's id.
    - `chat` (str): where: the learner's own id for a private chat, "tg:-<id>" for a
      group, "console" for the terminal.
    - `lesson_hash` (str): the lesson file's hash when the event happened (its first 16
      hex digits of sha256), to tell which version of the lesson the learner saw.
    - `node` (str or null): the step the learner was on when acting (null for a start).
    - `input` (object): what the learner did, as `bot.engine.input_to_dict` writes it:
      `kind` ("start", "continue", "choose", "answer", "check", "revisit", "follow",
      "resync") and its own fields (`node`, `option`: the option's index in the lesson
      file, `text`, `points`, `section`, `seed`).
    - `outcome` (object): what the engine recorded of it: for a choice `option`,
      `correct` (null for an ungraded question), `attempt` (the how-many-th answer to
      that question), `misconception`, and `revealed` when the right answer was shown;
      for a written answer `text`; for a self-check `covered` and `of`; else mostly {}.
    - `state` (object): the learner's state after the event (`bot.engine.State.to_dict`:
      `node`, `section`, `finished`, `score`, `attempts`, `solved`, `misconceptions`,
      `missed`, `seed`, `back_to`, `checking`, `answers`).
    - `at` (str): when, ISO 8601 in UTC with milliseconds.
    - `update_id` (int or null): the Telegram update that carried the action, if any.

    For a reader who may not see everything, a state's `answers` keep only the ones given
    in events they see (a group's admins see a member's lesson from when they joined its
    assignment, and no written answer from before).
    """
    where, args = conditions(filters, scope)
    answered: dict[tuple[str, str, str], set[str]] = {}  # for such a reader: the answers seen given, per attempt
    sql = (
        "SELECT e.id, e.learner, l.name, e.lesson, e.chat, e.lesson_hash, e.node, e.input, e.outcome, e.state, "
        "e.at, e.update_id FROM events e LEFT JOIN learners l ON l.id = e.learner "
        f"WHERE {where} ORDER BY e.id"
    )
    count = 0
    for row in store.db.execute(sql, args):
        event_id, learner, name, lesson, chat, lesson_hash, node, raw_input, raw_outcome, raw_state, at, update_id = row
        record = {
            "id": event_id,
            "learner": learner,
            "name": name,
            "lesson": lesson,
            "chat": chat,
            "lesson_hash": lesson_hash,
            "node": node,
            "input": json.loads(raw_input),
            "outcome": json.loads(raw_outcome),
            "state": json.loads(raw_state),
            "at": at,
            "update_id": update_id,
        }
        if not scope.everything:
            _seen_answers(record, answered)
        out.write(json.dumps(record, ensure_ascii=False).translate(LINE_BREAKS) + "\n")
        count += 1
        _tick(progress, count)
    _done(progress, count)
    return count


def _seen_answers(record: dict, answered: dict[tuple[str, str, str], set[str]]) -> None:
    """Keep in `record`'s state only the answers given in the events seen so far of its attempt."""
    seen = answered.setdefault((record["learner"], record["lesson"], record["chat"]), set())
    kind = record["input"].get("kind")
    if kind == "start":
        seen.clear()
    elif kind in ("answer", "choose"):
        seen.update(node for node in (record["node"], record["input"].get("node")) if node)
    state = record["state"]
    state["answers"] = {node: text for node, text in state.get("answers", {}).items() if node in seen}


# Characters that JSON leaves raw but that many readers take for a line's end (Python's
# str.splitlines, JavaScript before ES2019): escaped, so that a line is always one event.
LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


# --- xAPI statements -------------------------------------------------------------------------------

XAPI_VERSION = "1.0.3"
BASE = "https://tutorbot.example/xapi"
TELEGRAM = "https://t.me"  # the account home page of a Telegram learner
VERBS = {
    name: {"id": f"http://adlnet.gov/expapi/verbs/{name}", "display": {"en-US": name}}
    for name in ("attempted", "answered", "completed")
}
LESSON_TYPE = "http://adlnet.gov/expapi/activities/lesson"
INTERACTION_TYPE = "http://adlnet.gov/expapi/activities/cmi.interaction"


def write_xapi(
    store: Store,
    lessons: dict[str, LoadedLesson],
    out: TextIO,
    filters: Filters = NO_FILTERS,
    scope: Scope = EVERYTHING,
    progress: Progress | None = None,
    base: str = BASE,
) -> int:
    """xAPI 1.0.3 statements, as one JSON array (what an LRS's statements resource takes).
    Returns the statements written.

    For each attempt (one learner's run through a lesson in one chat), in order:

    - "attempted" the lesson, at the attempt's first event;
    - "answered" a question, for each answer to a question with options (every try; a
      graded one with `result.success`) and each written answer (`result.response` is
      the text); the question is a cmi.interaction activity ("choice", its options'
      ids being their indexes in the lesson file, with `correctResponsesPattern` for a
      graded one; "long-fill-in" for a written one), its parent the lesson;
    - "completed" the lesson, when the learner reached its end: `result.score` is the
      first-try score (`raw` of `max` graded questions, and `scaled`), `completion` true,
      `duration` the time spent on the attempt (ISO 8601, e.g. "PT4M30S").

    Every statement of an attempt has the attempt's `context.registration`, and a stable
    `id` (a UUID made from the registration, the event and the verb), so exporting again
    gives the same ids and an LRS can drop the statements it already has. Messages read
    and self-checks are not exported.

    The actor is an Agent with an account: on Telegram (https://t.me, the user id) for a
    "tg:" learner, on `base` (the learner id) for others; with the name when known.
    Lessons are the activities `{base}/lessons/{lesson}` and questions
    `{base}/lessons/{lesson}/questions/{node}`; language maps use the lesson's language."""
    base = base.rstrip("/")
    count = 0
    out.write("[")
    for attempt in attempts(store, lessons, filters, scope):
        loaded = lessons.get(attempt.lesson)
        for statement in _statements(store, attempt, loaded.lesson if loaded else None, base):
            out.write(("\n" if count == 0 else ",\n") + json.dumps(statement, ensure_ascii=False))
            count += 1
            _tick(progress, count)
    out.write("\n]\n" if count else "]\n")
    _done(progress, count)
    return count


def _statements(store: Store, attempt: Attempt, lesson: Lesson | None, base: str) -> Iterator[dict[str, Any]]:
    registration = attempt.registration
    actor = agent(attempt.learner, attempt.name, base)
    language = lesson.lesson.language if lesson else "en"
    activity = _lesson_activity(attempt.lesson, lesson, base, language)
    parent = {"objectType": "Activity", "id": activity["id"]}

    def statement(event: int, verb: str, at: str, obj: dict, result: dict | None = None, parented: bool = False) -> dict:
        found: dict[str, Any] = {
            "id": str(uuid.uuid5(uuid.UUID(registration), f"{event}|{verb}")),
            "actor": actor,
            "verb": VERBS[verb],
            "object": obj,
        }
        if result is not None:
            found["result"] = result
        context: dict[str, Any] = {"registration": registration}
        if parented:
            context["contextActivities"] = {"parent": [parent]}
        found["context"] = context
        found["timestamp"] = at
        found["version"] = XAPI_VERSION
        return found

    yield statement(attempt.first_event, "attempted", attempt.started_at, activity)
    for response in attempt.responses:
        if response.kind not in ("choice", "text"):
            continue  # a self-check is the learner's own judgement, not an answer
        question = _question(attempt.lesson, response, lesson, base, language)
        yield statement(response.event, "answered", response.at, question, _answer(response), parented=True)
    if attempt.finished_at is not None:
        questions = engine.graded_questions(lesson) if lesson else None
        score: dict[str, Any] = {"raw": attempt.score, "min": 0}
        if questions:
            score["max"] = questions
            score["scaled"] = round(min(attempt.score / questions, 1.0), 4)
        result = {"score": score, "completion": True, "duration": iso_duration(attempt.seconds)}
        yield statement(_finishing_event(store, attempt), "completed", attempt.finished_at, activity, result)


def agent(learner: str, name: str | None, base: str = BASE) -> dict[str, Any]:
    """The xAPI Agent of a learner: a Telegram account for "tg:" learners, else an account
    on `base` named by the learner id."""
    user = telegram_id(learner)
    found: dict[str, Any] = {"objectType": "Agent"}
    if name:
        found["name"] = name
    found["account"] = {"homePage": TELEGRAM, "name": user} if user else {"homePage": base, "name": learner}
    return found


def _lesson_activity(lesson_id: str, lesson: Lesson | None, base: str, language: str) -> dict[str, Any]:
    definition: dict[str, Any] = {"type": LESSON_TYPE}
    if lesson is not None:
        definition["name"] = {language: lesson.title}
        definition["description"] = {language: lesson.lesson.description}
    return {"objectType": "Activity", "id": f"{base}/lessons/{lesson_id}", "definition": definition}


def _question(lesson_id: str, response: Response, lesson: Lesson | None, base: str, language: str) -> dict[str, Any]:
    """The question answered, as a cmi.interaction activity (described as far as the
    loaded lesson still has it)."""
    node = lesson.nodes.get(response.node) if lesson else None
    definition: dict[str, Any] = {"type": INTERACTION_TYPE}
    if response.kind == "choice":
        definition["interactionType"] = "choice"
        if isinstance(node, ChoiceNode):
            definition["name"] = {language: node.ask}
            definition["choices"] = [
                {"id": str(index), "description": {language: option.text}} for index, option in enumerate(node.options)
            ]
            if node.graded:
                # Each pattern is one right response: one pattern per right option.
                definition["correctResponsesPattern"] = [str(i) for i, option in enumerate(node.options) if option.correct]
    else:
        definition["interactionType"] = "long-fill-in"
        if isinstance(node, WriteNode):
            definition["name"] = {language: node.write}
    return {"objectType": "Activity", "id": f"{base}/lessons/{lesson_id}/questions/{response.node}", "definition": definition}


def _answer(response: Response) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if response.kind == "choice":
        if response.correct is not None:
            result["success"] = bool(response.correct)
        if response.option is not None:
            result["response"] = str(response.option)
    elif response.text is not None:
        result["response"] = response.text
    return result


def _finishing_event(store: Store, attempt: Attempt) -> int:
    """The id of the event that finished the attempt (for the completed statement's id)."""
    row = store.db.execute(
        "SELECT id FROM events WHERE learner = ? AND lesson = ? AND chat = ? AND id >= ? AND at = ? "
        "AND json_extract(state, '$.finished') ORDER BY id LIMIT 1",
        [attempt.learner, attempt.lesson, attempt.chat, attempt.first_event, attempt.finished_at],
    ).fetchone()
    return row[0] if row else attempt.first_event


def iso_duration(seconds: float) -> str:
    """An ISO 8601 duration to the hundredth of a second, as xAPI wants: 270 -> "PT4M30S"."""
    hundredths = max(0, round(seconds * 100))
    hours, rest = divmod(hundredths, 360_000)
    minutes, rest = divmod(rest, 6_000)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if rest or text == "PT":
        whole, fraction = divmod(rest, 100)
        text += f"{whole}.{fraction:02d}".rstrip("0").rstrip(".") + "S"
    return text


# --- progress ---------------------------------------------------------------------------------------


def _tick(progress: Progress | None, count: int) -> None:
    if progress is not None and count % PROGRESS_EVERY == 0:
        progress(count)


def _done(progress: Progress | None, count: int) -> None:
    if progress is not None and (count == 0 or count % PROGRESS_EVERY):  # else `_tick` just reported it
        progress(count)

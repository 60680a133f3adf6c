"""The exported files as a user opens them: the CSV gradebook read back by the `csv`
module, the JSON Lines event log line by line, and the xAPI statements checked against
the xAPI JSON Schema, all on the known data set of `tests.report_data`:

- Ann (tg:101) finishes, 3 of 3 right at the first try;
- Ben (tg:102) finishes, 2 of 3: his first answer to `REMEDIED` is wrong (misconception
  M1), the remedy follows, then his right second try;
- Cat (tg:103) answers the first question (right) and stops;
- Dan (tg:104) only starts.

Each event takes 30 s, so time spent is 30 s × (the learner's events − 1).

The xAPI schema is Rustici Software's JSON Schema for the xAPI data model, published on
npm as `tin-can-json-schema` (draft-04; its `1.0.1.json` covers the 1.0.x statement
format, which 1.0.2 and 1.0.3 left unchanged, and `formats.json` holds the regular
expressions for its formats: UUIDs, IRIs, ISO dates and durations). The test finds it in
$TIN_CAN_JSON_SCHEMA (the package's folder), ./node_modules, or npm's global folder
(`npm install -g tin-can-json-schema@2.0.0`); it is skipped where the package is not
installed, and fails instead under CI (CI=true), so that CI never passes without it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bot import exports
from bot.reports import EVERYTHING, Filters, Scope, attempts
from bot.tutor import Tutor
from tests.core_lesson import QUESTIONS, REMEDIED
from tests.report_data import ANN, BEN, CAT, DAN, NAMES, REFLECTION, build

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PACKAGE = "tin-can-json-schema"
JSONL_FIELDS = {"id", "learner", "name", "lesson", "chat", "lesson_hash", "node", "input", "outcome", "state", "at", "update_id"}
VERB = "http://adlnet.gov/expapi/verbs/"


@pytest.fixture
def data():
    store, lessons, _clock = build()
    yield store, lessons
    store.close()


def export(writer, store, lessons, **options) -> tuple[str, int]:
    out = io.StringIO(newline="")
    count = writer(store, lessons, out, **options)
    return out.getvalue(), count


def gradebook(store, lessons, **options) -> list[dict[str, str]]:
    text, count = export(exports.write_csv, store, lessons, **options)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert count == len(rows)
    return rows


def event_lines(store, lessons, **options) -> list[dict]:
    text, count = export(exports.write_jsonl, store, lessons, **options)
    lines = text.splitlines()
    assert count == len(lines)
    return [json.loads(line) for line in lines]


def statements(store, lessons, **options) -> list[dict]:
    text, count = export(exports.write_xapi, store, lessons, **options)
    found = json.loads(text)  # one JSON array
    assert isinstance(found, list) and count == len(found)
    return found


def events_of(store, learner: str) -> list[dict]:
    return store.events(learner=learner)


def minutes(store, learner: str) -> str:
    """What the gradebook should say: 30 s for each event after the first, in minutes."""
    return f"{30 * (len(events_of(store, learner)) - 1) / 60:.1f}"


def test_an_event_is_one_line_whatever_line_separators_a_learner_typed(data):
    store, lessons = data
    store.ensure_learner(ANN, "Ann\u2028Archer\x85\u2029")  # pasted text brings such characters
    found = event_lines(store, lessons)  # (split with str.splitlines, which ends a line at each)
    assert {event["name"] for event in found if event["learner"] == ANN} == {"Ann\u2028Archer\x85\u2029"}


# --- the CSV gradebook --------------------------------------------------------------------------


def test_the_gradebook_has_a_row_per_learner_with_their_figures(data):
    store, lessons = data
    text, _ = export(exports.write_csv, store, lessons)
    assert text.splitlines()[0] == ",".join(exports.CSV_COLUMNS)  # a header, no index column
    rows = {row["learner"]: row for row in gradebook(store, lessons)}
    assert list(rows) == [ANN, BEN, CAT, DAN]
    for learner, row in rows.items():
        assert row["name"] == NAMES[learner]
        assert row["telegram_id"] == learner.removeprefix("tg:")
        assert row["lesson"] == "madman-core" and row["chat"] == learner  # each studied in private
        assert row["questions"] == "3"  # the core lesson's graded questions
        assert row["started"] == events_of(store, learner)[0]["at"]
        assert row["time_spent_minutes"] == minutes(store, learner)
    ann, ben, cat, dan = (rows[learner] for learner in (ANN, BEN, CAT, DAN))
    # Ann: all 3 right at the first try, 3 answers; finished at her last event (the self-check).
    assert (ann["first_try_score"], ann["attempts"]) == ("3", "3")
    assert ann["finished"] == events_of(store, ANN)[-1]["at"]
    # Ben: 2 right at the first try; 4 answers (3 questions, one of them twice).
    assert (ben["first_try_score"], ben["attempts"]) == ("2", "4")
    assert ben["finished"] == events_of(store, BEN)[-1]["at"]
    # Cat: one answer, right; Dan: none. Neither finished: the cell is empty.
    assert (cat["first_try_score"], cat["attempts"], cat["finished"]) == ("1", "1", "")
    assert (dan["first_try_score"], dan["attempts"], dan["finished"]) == ("0", "0", "")
    # Worked out once by hand: Ann 10 events (start, 3 messages, 3 answers, reflection,
    # self-check... = 10) -> 9 × 30 s = 4.5 min; Ben 12 (a wrong answer and the remedy more)
    # -> 5.5 min; Cat 5 -> 2.0 min; Dan 1 -> 0.0 min.
    assert [rows[learner]["time_spent_minutes"] for learner in (ANN, BEN, CAT, DAN)] == ["4.5", "5.5", "2.0", "0.0"]


def test_the_gradebook_shows_the_latest_attempt_of_a_learner_who_restarted(data):
    store, lessons = data
    Tutor(store, lessons, seeds=lambda: 11).begin(ANN, ANN, "madman-core", restart=True)
    rows = [row for row in gradebook(store, lessons) if row["learner"] == ANN]
    assert len(rows) == 1  # one row per learner, lesson and chat
    restart = events_of(store, ANN)[-1]
    assert restart["input"]["kind"] == "start"
    assert (rows[0]["started"], rows[0]["finished"], rows[0]["first_try_score"], rows[0]["attempts"]) == (restart["at"], "", "0", "0")


def test_a_name_a_spreadsheet_would_run_as_a_formula_is_written_as_text(data):
    store, lessons = data
    store.ensure_learner(DAN, '=HYPERLINK("http://example.com","x")')
    row = next(row for row in gradebook(store, lessons) if row["learner"] == DAN)
    assert row["name"] == """'=HYPERLINK("http://example.com","x")"""


def test_a_reader_who_may_see_nothing_gets_the_header_alone(data):
    store, lessons = data
    text, count = export(exports.write_csv, store, lessons, scope=Scope())
    assert count == 0 and text.splitlines() == [",".join(exports.CSV_COLUMNS)]


# --- the JSON Lines event log ---------------------------------------------------------------------


def test_every_event_is_a_line_of_json_in_order(data):
    store, lessons = data
    lines = event_lines(store, lessons)
    (total,) = store.db.execute("SELECT count(*) FROM events").fetchone()
    assert len(lines) == total == 28  # Ann 10 + Ben 12 + Cat 5 + Dan 1
    assert all(set(line) == JSONL_FIELDS for line in lines)
    assert [line["id"] for line in lines] == sorted(line["id"] for line in lines)
    assert all(isinstance(line[key], dict) for line in lines for key in ("input", "outcome", "state"))
    assert {line["learner"]: line["name"] for line in lines} == NAMES
    wrong = next(line for line in lines if line["learner"] == BEN and line["outcome"].get("correct") is False)
    assert (wrong["node"], wrong["outcome"]["misconception"], wrong["outcome"]["attempt"]) == (REMEDIED, "M1", 1)
    written = [line["outcome"]["text"] for line in lines if line["input"]["kind"] == "answer"]
    assert written == [REFLECTION[ANN], REFLECTION[BEN]]
    assert lines[0]["input"] == {"kind": "start", "seed": 11} and lines[0]["node"] is None


# --- filters, scope and forgetting, in every export ----------------------------------------------


def counts(store, lessons, **options) -> tuple[int, int, int]:
    """(gradebook rows, event lines, xAPI statements)."""
    return (
        len(gradebook(store, lessons, **options)),
        len(event_lines(store, lessons, **options)),
        len(statements(store, lessons, **options)),
    )


# Statements per learner: "attempted", one "answered" per answer (choices and the written
# one), and "completed" if finished. Ann 1 + 3 + 1 + 1 = 6; Ben 1 + 4 + 1 + 1 = 7;
# Cat 1 + 1 = 2; Dan 1.
STATEMENTS = {ANN: 6, BEN: 7, CAT: 2, DAN: 1}
EVENTS = {ANN: 10, BEN: 12, CAT: 5, DAN: 1}


def test_everything_unfiltered(data):
    store, lessons = data
    assert counts(store, lessons) == (4, sum(EVENTS.values()), sum(STATEMENTS.values()))


def test_the_filters_narrow_every_export(data):
    store, lessons = data
    assert counts(store, lessons, filters=Filters(lesson="madman-core")) == (4, 28, 16)
    assert counts(store, lessons, filters=Filters(lesson="madman")) == (0, 0, 0)  # nobody took it
    assert counts(store, lessons, filters=Filters(learner=BEN)) == (1, EVENTS[BEN], STATEMENTS[BEN])
    assert counts(store, lessons, filters=Filters(chat=CAT)) == (1, EVENTS[CAT], STATEMENTS[CAT])
    # Since Cat's start: Cat's and Dan's events only (Ann and Ben were done before).
    since = events_of(store, CAT)[0]["at"][:19]  # "2026-03-02T09:13:00", as the CLI gives it
    assert {row["learner"] for row in gradebook(store, lessons, filters=Filters(since=since))} == {CAT, DAN}
    assert counts(store, lessons, filters=Filters(since=since)) == (2, EVENTS[CAT] + EVENTS[DAN], STATEMENTS[CAT] + STATEMENTS[DAN])


def test_a_scope_of_one_chat_shows_only_that_chat(data):
    store, lessons = data
    only_ann = Scope(allowed=((ANN, None, None, None),))  # Ann's private chat
    assert [row["learner"] for row in gradebook(store, lessons, scope=only_ann)] == [ANN]
    assert {line["learner"] for line in event_lines(store, lessons, scope=only_ann)} == {ANN}
    assert {s["actor"]["account"]["name"] for s in statements(store, lessons, scope=only_ann)} == {"101"}
    assert counts(store, lessons, scope=only_ann) == (1, EVENTS[ANN], STATEMENTS[ANN])
    assert counts(store, lessons, scope=Scope()) == (0, 0, 0)
    assert counts(store, lessons, scope=EVERYTHING) == (4, 28, 16)


def test_a_forgotten_learner_is_in_no_export(data):
    store, lessons = data
    store.forget(BEN)
    for writer in (exports.write_csv, exports.write_jsonl, exports.write_xapi):
        text, _ = export(writer, store, lessons)
        for trace in (BEN, NAMES[BEN], REFLECTION[BEN], '"102"'):
            assert trace not in text, (writer.__name__, trace)
    assert counts(store, lessons) == (3, 28 - EVENTS[BEN], 16 - STATEMENTS[BEN])


def test_progress_is_reported_now_and_then_and_at_the_end(data, monkeypatch):
    store, lessons = data
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 10)
    seen: list[int] = []
    export(exports.write_jsonl, store, lessons, progress=seen.append)
    assert seen == [10, 20, 28]
    seen.clear()
    export(exports.write_csv, store, lessons, progress=seen.append)
    assert seen == [4]
    seen.clear()
    export(exports.write_xapi, store, lessons, scope=Scope(), progress=seen.append)
    assert seen == [0]


# --- xAPI -------------------------------------------------------------------------------------------


def _schema_folder() -> Path | None:
    candidates = []
    if os.environ.get("TIN_CAN_JSON_SCHEMA"):
        candidates.append(Path(os.environ["TIN_CAN_JSON_SCHEMA"]))
    candidates.append(ROOT / "node_modules" / SCHEMA_PACKAGE)
    npm = shutil.which("npm")
    if npm:
        try:
            found = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60, check=False)
            if found.returncode == 0 and found.stdout.strip():
                candidates.append(Path(found.stdout.strip()) / SCHEMA_PACKAGE)
        except (OSError, subprocess.SubprocessError):
            pass
    return next((folder for folder in candidates if (folder / "1.0.1.json").is_file()), None)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must install it: see this file's docstring)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def xapi_validator():
    """A validator of xAPI statements by the published schema, with its formats."""
    try:
        import jsonschema
        from referencing import Registry
        from referencing.jsonschema import DRAFT4
    except ImportError:
        _unavailable("jsonschema is not installed")
    folder = _schema_folder()
    if folder is None:
        _unavailable(f"the xAPI JSON Schema is not installed (npm install -g {SCHEMA_PACKAGE}@2.0.0)")
    schema = json.loads((folder / "1.0.1.json").read_text(encoding="utf-8"))
    checker = jsonschema.FormatChecker(formats=())
    for name, pattern in json.loads((folder / "formats.json").read_text(encoding="utf-8")).items():
        checker.checks(name)(lambda value, rx=re.compile(pattern): not isinstance(value, str) or rx.search(value) is not None)
    registry = Registry().with_resource("tcapi:1.0.1", DRAFT4.create_resource(schema))
    return jsonschema.Draft4Validator({"$ref": "tcapi:1.0.1#statement"}, registry=registry, format_checker=checker)


def test_the_schema_validator_refuses_a_broken_statement(data, xapi_validator):
    """The validator is no rubber stamp: a statement spoiled in each of a few ways fails."""
    store, lessons = data
    good = statements(store, lessons)[-1]
    assert not list(xapi_validator.iter_errors(good))
    spoilers = [
        lambda s: s.pop("actor"),
        lambda s: s["actor"].pop("account"),  # an agent needs an identifier
        lambda s: s.update(timestamp="yesterday"),
        lambda s: s.update(id="not-a-uuid"),
        lambda s: s["verb"].update(id="answered"),  # not an IRI
        lambda s: s.update(colour="blue"),  # no such property
    ]
    for spoil in spoilers:
        bad = json.loads(json.dumps(good))
        spoil(bad)
        assert list(xapi_validator.iter_errors(bad)), bad


def test_every_statement_is_valid_xapi(data, xapi_validator):
    store, lessons = data
    found = statements(store, lessons)
    assert len(found) == 16
    for statement in found:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in xapi_validator.iter_errors(statement)]
        assert not errors, (statement, errors)
    assert len({s["id"] for s in found}) == len(found)  # every statement its own id


def by_learner(found: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for statement in found:
        grouped.setdefault("tg:" + statement["actor"]["account"]["name"], []).append(statement)
    return grouped


def verbs(found: list[dict]) -> list[str]:
    return [s["verb"]["id"].removeprefix(VERB) for s in found]


def test_the_statements_tell_each_learners_story(data):
    store, lessons = data
    found = by_learner(statements(store, lessons))
    assert verbs(found[ANN]) == ["attempted", "answered", "answered", "answered", "answered", "completed"]
    assert verbs(found[BEN]) == ["attempted"] + ["answered"] * 5 + ["completed"]
    assert verbs(found[CAT]) == ["attempted", "answered"]
    assert verbs(found[DAN]) == ["attempted"]  # Dan only started
    for learner, own in found.items():
        assert all(s["actor"] == {"objectType": "Agent", "name": NAMES[learner], "account": {"homePage": "https://t.me", "name": learner[3:]}} for s in own)
    # Every statement of an attempt carries its registration (each learner made one attempt).
    registrations = {a.learner: a.registration for a in attempts(store, lessons)}
    for learner, own in found.items():
        assert {s["context"]["registration"] for s in own} == {registrations[learner]}


def test_anns_completion_carries_her_score_and_time(data):
    store, lessons = data
    completed = by_learner(statements(store, lessons))[ANN][-1]
    assert completed["verb"]["id"] == VERB + "completed"
    assert completed["object"]["id"] == "https://tutorbot.example/xapi/lessons/madman-core"
    # 3 of 3 right at the first try; 9 gaps of 30 s = 270 s = 4 min 30 s.
    assert completed["result"] == {"score": {"raw": 3, "min": 0, "max": 3, "scaled": 1.0}, "completion": True, "duration": "PT4M30S"}
    assert completed["timestamp"] == events_of(store, ANN)[-1]["at"]
    bens = by_learner(statements(store, lessons))[BEN][-1]
    assert bens["result"]["score"] == {"raw": 2, "min": 0, "max": 3, "scaled": round(2 / 3, 4)}
    assert bens["result"]["duration"] == "PT5M30S"  # 11 gaps of 30 s


def test_bens_wrong_first_answer_to_the_remedied_question_is_unsuccessful(data):
    store, lessons = data
    question = f"https://tutorbot.example/xapi/lessons/madman-core/questions/{REMEDIED}"
    answers = [s for s in by_learner(statements(store, lessons))[BEN] if s["object"]["id"] == question]
    assert [s["result"]["success"] for s in answers] == [False, True]  # wrong, then right after the remedy
    node = QUESTIONS[REMEDIED]
    wrong = next(i for i, o in enumerate(node.options) if o.misconception == "M1")
    right = next(i for i, o in enumerate(node.options) if o.correct)
    assert [s["result"]["response"] for s in answers] == [str(wrong), str(right)]
    definition = answers[0]["object"]["definition"]
    assert definition["type"] == "http://adlnet.gov/expapi/activities/cmi.interaction"
    assert definition["interactionType"] == "choice"
    assert definition["correctResponsesPattern"] == [str(right)]
    assert [c["description"]["en"] for c in definition["choices"]] == [o.text for o in node.options]
    assert answers[0]["context"]["contextActivities"]["parent"] == [{"objectType": "Activity", "id": "https://tutorbot.example/xapi/lessons/madman-core"}]


def test_a_written_answer_is_a_long_fill_in_with_the_text(data):
    store, lessons = data
    written = [s for s in by_learner(statements(store, lessons))[ANN] if s["object"]["definition"].get("interactionType") == "long-fill-in"]
    assert len(written) == 1
    assert written[0]["result"] == {"response": REFLECTION[ANN]}  # no verdict on a written answer


def test_statements_keep_their_ids_and_take_the_base_iri(data):
    store, lessons = data
    first, again = statements(store, lessons), statements(store, lessons)
    assert [s["id"] for s in first] == [s["id"] for s in again]  # an LRS can drop what it has
    moved = statements(store, lessons, base="https://lms.example.org/tutor/")
    assert moved[0]["object"]["id"] == "https://lms.example.org/tutor/lessons/madman-core"


def test_nothing_to_export_is_an_empty_array(data):
    store, lessons = data
    text, count = export(exports.write_xapi, store, lessons, scope=Scope())
    assert (json.loads(text), count) == ([], 0)


def test_durations_are_iso_8601():
    assert exports.iso_duration(270) == "PT4M30S"
    assert exports.iso_duration(0) == "PT0S"
    assert exports.iso_duration(3600) == "PT1H"
    assert exports.iso_duration(3725.5) == "PT1H2M5.5S"
    assert exports.iso_duration(59.999) == "PT1M"

"""The instructor's commands: `tutorbot report`, `transcript` and `export`, on the known data set."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from tests.report_data import BEN, LESSONS_PATH, REFLECTION, build


@pytest.fixture
def db(tmp_path: Path) -> Path:
    store, _, _ = build(tmp_path / "bot.db")
    store.close()
    return tmp_path / "bot.db"


def tutorbot(*argv: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*argv], catch_exceptions=False)
    return result.exit_code, result.output


def test_report_prints_the_summary(db: Path) -> None:
    code, out = tutorbot("report", "--db", str(db), "--dialogues", str(LESSONS_PATH))
    assert code == 0
    assert "learners: 4 started, 2 finished; median time to finish 5.0 min; mean first-try score 2.50 of 3" in out
    assert "reflections waiting for review 2" in out
    # The remedied question: Ann right, Ben wrong at the first try; 2 finishers, scores 3 and 2:
    # facility 50 %, point-biserial (3 - 2) / 0.5 × √(0.5 × 0.5) = 1.00.
    assert any(line.rstrip().endswith("2      50%   1.00") for line in out.splitlines())
    assert "1  M1: Misreading" in out
    # Filters: a date after everything, and a chat of one learner.
    code, out = tutorbot("report", "--db", str(db), "--dialogues", str(LESSONS_PATH), "--since", "2027-01-01")
    assert code == 0 and "No learner has started" in out
    code, out = tutorbot("report", "--db", str(db), "--dialogues", str(LESSONS_PATH), "--chat", BEN)
    assert "learners: 1 started, 1 finished" in out
    code, out = tutorbot("report", "--db", str(db), "--dialogues", str(LESSONS_PATH), "--lesson", "nosuch")
    assert code == 1 and "no lesson 'nosuch'" in out


def test_transcript_replays_a_learners_history(db: Path) -> None:
    code, out = tutorbot("transcript", BEN, "--db", str(db), "--dialogues", str(LESSONS_PATH))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith(f"— Madman theory: why threats need promises ({BEN}) —")
    assert any(f"> {REFLECTION[BEN]} (after 30 s)" in line for line in lines)  # 30 s per event in the data set
    assert any("(wrong)" in line for line in lines) and any("(correct)" in line for line in lines)
    code, out = tutorbot("transcript", "tg:999", "--db", str(db), "--dialogues", str(LESSONS_PATH))
    assert code == 1 and "no history for 'tg:999'" in out


def test_export_writes_whole_files_only(db: Path, tmp_path: Path) -> None:
    for form, name in (("csv", "grades.csv"), ("jsonl", "events.jsonl"), ("xapi", "xapi.json"), ("html", "report.html")):
        target = tmp_path / name
        code, out = tutorbot("export", "--format", form, "-o", str(target), "--db", str(db), "--dialogues", str(LESSONS_PATH))
        assert code == 0 and f"to {target}" in out, out
        assert target.stat().st_size > 0
        umask = os.umask(0)
        os.umask(umask)
        assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not a private temporary one
        assert {"csv": "wrote 4 rows", "xapi": "statements", "jsonl": "events", "html": "wrote the report"}[form] in out
    assert len(list(csv.DictReader((tmp_path / "grades.csv").open()))) == 4
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    with sqlite3.connect(db) as connection:
        assert len(events) == connection.execute("SELECT COUNT(*) FROM events").fetchone()[0]  # every event, one a line
    code, out = tutorbot("export", "--format", "csv", "-o", str(tmp_path / "none" / "x.csv"), "--db", str(db))
    assert code == 1 and "no folder" in out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left

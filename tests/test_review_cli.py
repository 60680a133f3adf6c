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
    assert lines[0].endswith(f"— Madman theory: why threats need promises ({BEN}; times in UTC) —")  # the times' zone is stated
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
    assert (tmp_path / "grades.csv").read_bytes().startswith(b"\xef\xbb\xbfname,")  # a BOM, so that Excel reads UTF-8
    assert len(list(csv.DictReader((tmp_path / "grades.csv").open(encoding="utf-8-sig")))) == 4
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    with sqlite3.connect(db) as connection:
        assert len(events) == connection.execute("SELECT COUNT(*) FROM events").fetchone()[0]  # every event, one a line
    code, out = tutorbot("export", "--format", "csv", "-o", str(tmp_path / "none" / "x.csv"), "--db", str(db))
    assert code == 1 and "no folder" in out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


@pytest.mark.parametrize("form", ["csv", "jsonl", "xapi", "html"])
def test_export_to_dash_writes_standard_output(db: Path, tmp_path: Path, monkeypatch, form: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["export", "--format", form, "-o", "-", "--db", str(db), "--dialogues", str(LESSONS_PATH)])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "-").exists()
    assert result.stderr.startswith("wrote ") and result.stderr.rstrip().endswith("to standard output")
    assert "wrote" not in result.stdout  # the export alone, ready for a pipe
    if form == "csv":
        assert len(list(csv.DictReader(result.stdout.splitlines()))) == 4
    elif form == "jsonl":
        assert all(json.loads(line) for line in result.stdout.splitlines())
    elif form == "xapi":
        assert isinstance(json.loads(result.stdout), list)
    else:
        assert result.stdout.startswith("<!DOCTYPE html>")
    # A file named - is still written as ./-.
    code, out = tutorbot("export", "--format", form, "-o", "./-", "--db", str(db), "--dialogues", str(LESSONS_PATH))
    assert code == 0 and (tmp_path / "-").stat().st_size > 0 and "to ./-" in out


def test_export_to_a_pipe_closed_early_ends_quietly(db: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "tutorbot"
    command = f"{script} export --format jsonl -o - --db {db} --dialogues {LESSONS_PATH} | head -c 10"
    result = subprocess.run(["bash", "-c", command], check=False, capture_output=True, text=True, timeout=60)
    assert len(result.stdout) == 10 and "Traceback" not in result.stderr and "Broken pipe" not in result.stderr


@pytest.mark.parametrize(("name", "meant"), [("102", "tg:102"), ("ann", "local:ann")])
def test_transcript_of_a_name_without_its_prefix_suggests_it(db: Path, name: str, meant: str) -> None:
    played = CliRunner().invoke(main, ["play", "--lesson", "madman-core", "--dialogues", str(LESSONS_PATH), "--db", str(db), "--learner", "ann"], input="/quit\n")
    assert played.exit_code == 0, played.output
    code, out = tutorbot("transcript", name, "--db", str(db), "--dialogues", str(LESSONS_PATH))
    assert code == 1 and out.strip() == f"Error: no history for {name!r} (with these filters); did you mean {meant}?"
    code, out = tutorbot("transcript", "nobody", "--db", str(db), "--dialogues", str(LESSONS_PATH))
    assert code == 1 and "learners are named tg:<telegram id> or local:<name>" in out

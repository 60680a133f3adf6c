"""Smoke test of `python -m benchmarks`: the quick run works end to end and writes its table.

It runs every measurement once at tiny sizes (a few learners, under a second each) as real
processes against the fake Bot API, and checks that BENCHMARKS.md-style output has every
row of the table with a figure in it. No timing is asserted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from benchmarks.__main__ import QUICK, Bench, report_timer

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


def table_rows(text: str) -> dict[str, list[str]]:
    """The table's rows (not its headings) by label: unit, min, median, max, n, note."""
    rows = {}
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith(("| Measurement", "| **")):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        rows[cells[0]] = cells[1:]
    return rows


def test_the_quick_run_writes_every_row_with_a_figure(tmp_path: Path) -> None:
    out = tmp_path / "B.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--repeats", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    text = out.read_text()
    assert "| Measurement | Unit | min | median | max | n | Note |" in done.stdout  # printed too
    assert "`python -m benchmarks --quick --repeats 1 --out" in text
    for fact in ("- CPU: ", "- Python: ", "- Date: "):
        assert fact in text

    # Every row the table has (an empty run of the same plan lists them all), measured.
    expected = [row.label for row in Bench(QUICK, 1, lambda line: None).build_table().rows if not row.section]
    rows = table_rows(text)
    missing = [label for label in expected if label not in rows]
    assert not missing, f"rows missing: {missing}"
    unmeasured = {label: rows[label] for label in expected if not NUMBER.match(rows[label][2])}
    assert not unmeasured, f"rows without a figure: {unmeasured}\n{done.stderr[-3000:]}"
    assert any(label.startswith("tutorbot, limiter on, ") for label in expected)
    assert any(label.startswith("floor, limiter off, ") for label in expected)
    assert any("ConversationHandler" in label for label in expected)
    # Below the limits (learners who pause), and tutorbot stopped with SIGTERM under its longest queue.
    paced = f"{QUICK.paced_learners} learners pausing {QUICK.paced_think:g} s"
    for kind in ("tutorbot", "floor"):
        for name in ("answers/s", "reply latency p50", "reply latency p99", "reply latency max", "CPU per answer"):
            assert f"{kind}, limiter on, {paced}: {name}" in expected
    assert "goal < 1 s" in rows[f"tutorbot, limiter on, {paced}: reply latency p99"][-1]
    for label in ("tutorbot: exit after SIGTERM", "tutorbot: replies waiting in the outbox at exit"):
        assert label in expected
    assert "Reply latency below the limits" in text and "Stopping under a full queue" in text
    # The group burst: every figure of it, from the real bot process.
    burst = [label for label in expected if label.startswith(f"group burst, {QUICK.burst_members} members: ")]
    assert len(burst) == 8 and "A burst in a group" in text
    if report_timer() is not None:  # benchmarks.report_html offers the instructor's outputs' timings
        review = [label for label in expected if label.endswith(f", {QUICK.report_learners:,} learners")]
        assert len(review) == 6 and any(label.startswith("HTML report") for label in review)

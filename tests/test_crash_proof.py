"""The crash proof, short: the bot (`tutorbot run`, its own process) is killed with SIGKILL
a dozen times at random moments while three learners work through the core lesson, and
restarted each time; afterwards nothing may be lost, recorded twice or left unsent.

The same code as `python -m reliability.crash` (see there for what runs and what is
checked); RELIABILITY.md publishes the long run's figures.
"""

from __future__ import annotations

from pathlib import Path

from reliability.crash import run

SEED = 20261127


def test_killing_the_bot_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run(kills=12, learners=3, seed=SEED, lesson="madman-core", workdir=tmp_path, timeout=90, out=lines.append)
    report = "\n".join(lines)
    for check in result.checks:
        assert check.ok, f"{check.name}: {check.detail}\n\n{report}\n\nlog and database: {tmp_path}"
    assert result.ok
    assert result.kills == 12
    assert result.lost == result.recorded_twice == result.never_sent == 0
    assert result.recorded > 0 and result.answers == result.recorded + sum(result.refused.values())
    assert result.summary_row().startswith("| SIGKILL") and f"--seed {SEED}" in result.summary_row()

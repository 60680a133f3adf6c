"""The engine and the lesson models stay pure: no Telegram, no database, no clock, no dice."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bot

BOT = Path(bot.__file__).resolve().parent
ROOT = BOT.parent


def test_core_modules_import_neither_telegram_nor_sqlite_utils():
    code = (
        "import sys\n"
        "import bot.engine, bot.lesson, bot.loader, bot.validate\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('telegram', 'sqlite_utils', 'sqlite3'))\n"
        "assert not bad, bad\n"
        "print('pure')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pure\n"


def test_the_check_is_able_to_fail():
    """The same check does notice a module that pulls in the database library."""
    code = "import sys, bot.store; assert 'sqlite3' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "AssertionError" in result.stderr


def imported(path: Path) -> set[str]:
    """Top-level names of every module the file imports, anywhere in it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", ["engine", "lesson", "loader", "validate"])
def test_source_imports_no_telegram_or_database(module):
    assert not imported(BOT / f"{module}.py") & {"telegram", "sqlite_utils", "sqlite3"}


def test_engine_has_no_clock_and_no_randomness():
    names = imported(BOT / "engine.py")
    assert not names & {"random", "secrets", "datetime", "time", "uuid", "os"}, names
    source = (BOT / "engine.py").read_text()
    for word in ("import random", "import datetime", "from datetime", "import time", "from time"):
        assert word not in source, word

"""A new database is made from the schema snapshot (`bot.schema`) in one step, and ends up
exactly as the migrations would have left it, even when the snapshot lags behind."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

import bot.schema_snapshot
from bot import schema, store
from bot.store import MIGRATION_SET, MIGRATIONS, Store


def layout(db) -> list[tuple]:
    """Everything SQLite knows of a schema: each table's and index's name, table and SQL."""
    return sorted(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall())


def recorded(db) -> list[str]:
    return [name for (name,) in db.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY id", [MIGRATION_SET])]


@pytest.fixture
def by_migrations():
    db = schema.migrated(MIGRATIONS, MIGRATION_SET)
    yield db
    db.close()


def test_the_snapshot_is_current():
    assert schema.render() == schema.SNAPSHOT_PATH.read_text(encoding="utf-8"), (
        "bot/schema_snapshot.py is stale: run python -m bot.schema"
    )


def test_the_check_command_says_so():
    done = subprocess.run([sys.executable, "-m", "bot.schema", "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "is current" in done.stdout


def test_a_new_database_is_made_in_one_step_as_the_migrations_make_it(tmp_path, by_migrations, monkeypatch):
    import sqlite_utils.migrations

    def no_migrations(*args, **kwargs):
        raise AssertionError("a new database should not need sqlite-utils' migrations")

    monkeypatch.setattr(sqlite_utils.migrations, "Migrations", no_migrations)
    new = Store(tmp_path / "new.db")
    assert layout(new.db) == layout(by_migrations)
    assert recorded(new.db) == [step.__name__ for step in MIGRATIONS]
    new.close()


def test_a_stale_snapshot_still_gives_a_complete_database(tmp_path, by_migrations, monkeypatch):
    older: dict = {}
    exec(schema.render(MIGRATIONS[:4]), older)  # the snapshot as it was four migrations ago
    monkeypatch.setattr(bot.schema_snapshot, "MIGRATIONS", older["MIGRATIONS"])
    monkeypatch.setattr(bot.schema_snapshot, "STATEMENTS", older["STATEMENTS"])
    assert len(older["MIGRATIONS"]) == 4

    new = Store(tmp_path / "new.db")
    assert layout(new.db) == layout(by_migrations)
    assert recorded(new.db) == [step.__name__ for step in MIGRATIONS]
    new.close()


def test_a_database_that_holds_something_already_is_migrated_as_before(tmp_path, by_migrations):
    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        raw.execute("INSERT INTO notes (text) VALUES ('keep me')")
    opened = Store(path)
    assert layout(opened.db) == sorted(layout(by_migrations) + layout_of_notes(opened.db))
    assert opened.db.execute("SELECT text FROM notes").fetchall() == [("keep me",)]
    assert recorded(opened.db) == [step.__name__ for step in MIGRATIONS]
    opened.close()


def layout_of_notes(db) -> list[tuple]:
    return [row for row in layout(db) if row[2] == "notes"]


def test_a_migration_that_writes_rows_cannot_be_snapshotted():
    def seeds(db) -> None:
        db["levels"].insert({"name": "first"})

    with pytest.raises(ValueError, match="put rows in levels"):
        schema.render([*store.MIGRATIONS, seeds])

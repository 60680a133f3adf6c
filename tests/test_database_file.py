"""Bad database paths and the one-bot-per-database lock, through the real `tutorbot` command.

A path that cannot be used is one line (`Error: ...`) naming it, exit 1, no traceback, and
the file and its folder are left exactly as they were: no bytes changed, no -wal/-shm.
`play` runs in-process through click's runner; `run` runs as its own process, because it
sets up logging for the whole process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.database_file import DatabaseError, lock_path, single_instance
from bot.store import Store

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "dialogues" / "madman-core.yaml"
TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijklmnop"
RUN_ENV = {
    "TELEGRAM_BOT_TOKEN": TOKEN,
    "TUTORBOT_BOT_API_BASE_URL": "http://127.0.0.1:9/bot",  # nothing listens there
    "TUTORBOT_DIALOGUES": str(CORE),
    "TUTORBOT_DEFAULT_LESSON": "madman-core",
}
AS_ROOT = os.geteuid() == 0
ROOT_WRITES_ANYWAY = "root may write to read-only files and folders; see the os.access test instead"


pytestmark = pytest.mark.usefixtures("clean_environment")


def tutorbot() -> list[str]:
    script = Path(sys.executable).parent / "tutorbot"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


def play_db_option(db: Path) -> tuple[int, str]:
    argv = ["play", "--lesson", "madman-core", "--dialogues", str(CORE), "--db", str(db)]
    result = CliRunner().invoke(main, argv, input="")
    return result.exit_code, result.output


def play_db_setting(db: Path) -> tuple[int, str]:
    argv = ["play", "--lesson", "madman-core", "--dialogues", str(CORE)]
    result = CliRunner().invoke(main, argv, input="", env={"TUTORBOT_DATABASE": str(db)})
    return result.exit_code, result.output


def run_bot(db: Path) -> tuple[int, str]:
    env = {**os.environ, **RUN_ENV, "TUTORBOT_DATABASE": str(db)}
    result = subprocess.run(tutorbot() + ["run"], env=env, capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


COMMANDS = [play_db_option, play_db_setting, run_bot]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry in `folder` with its bytes (None for a folder)."""
    if not folder.is_dir():
        return {}
    return {p.name: None if p.is_dir() else p.read_bytes() for p in sorted(folder.iterdir())}


def tutorbot_database(path: Path) -> Path:
    Store(path).close()
    return path


def newer_database(path: Path) -> Path:
    """A database a later version has migrated: it records a migration this one lacks."""
    tutorbot_database(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('tutorbot', 'm999_from_the_future', '2099-01-01 00:00:00+00:00')"
        )
    conn.close()
    return path


def text_file(path: Path) -> Path:
    path.write_text("not a database\n")
    return path


def folder(path: Path) -> Path:
    path.mkdir()
    return path


def under_a_file(path: Path) -> Path:
    """A database whose folder cannot be created: a file stands where the folder would be."""
    path.write_text("a file, not a folder\n")
    return path / "data" / "tutorbot.db"


BAD_PATHS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "text file": (text_file, "is not an SQLite database"),
    "folder": (folder, "is a folder"),
    "folder cannot be created": (under_a_file, "cannot create the folder"),
    "newer version": (newer_database, "written by a newer tutorbot"),
}


def assert_refused(exit_code: int, output: str, db: Path, expected: str) -> None:
    assert exit_code == 1, output
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ") and str(db) in lines[0] and expected in lines[0], output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("case", BAD_PATHS)
def test_a_bad_database_path_is_one_clear_line_and_changes_nothing(tmp_path, case, command):
    make, expected = BAD_PATHS[case]
    data = tmp_path / "data"
    data.mkdir()
    db = make(data / "tutorbot.db")
    before = snapshot(data)

    exit_code, output = command(db)

    assert_refused(exit_code, output, db, expected)
    after = snapshot(data)
    if command is run_bot:  # the lock is taken first, and its file stays (see single_instance)
        after.pop(lock_path(db).name, None)
    assert after == before


@pytest.mark.skipif(AS_ROOT, reason=ROOT_WRITES_ANYWAY)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.__name__)
def test_a_read_only_database_is_refused(tmp_path, command):
    db = tutorbot_database(tmp_path / "tutorbot.db")
    db.chmod(0o444)
    before = snapshot(tmp_path)

    assert_refused(*command(db), db, "read-only")
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(AS_ROOT, reason=ROOT_WRITES_ANYWAY)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.__name__)
def test_a_database_in_a_read_only_folder_is_refused(tmp_path, command):
    data = tmp_path / "data"
    data.mkdir()
    db = tutorbot_database(data / "tutorbot.db")
    before = snapshot(data)
    data.chmod(0o555)
    try:
        assert_refused(*command(db), db, "read-only")
    finally:
        data.chmod(0o755)
    assert snapshot(data) == before


@pytest.mark.parametrize("read_only", ["file", "folder"])
def test_what_os_access_calls_read_only_is_refused(tmp_path, monkeypatch, read_only):
    """Read-only as the operating system reports it, so this runs as root too."""
    db = tutorbot_database(tmp_path / "tutorbot.db")
    denied = db if read_only == "file" else tmp_path
    real_access = os.access

    def access(path, mode, **kwargs):
        if Path(path) == denied and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    before = snapshot(tmp_path)

    assert_refused(*play_db_option(db), db, "read-only")
    assert snapshot(tmp_path) == before


def test_a_missing_folder_is_created_and_an_empty_file_is_a_new_database(tmp_path):
    db = tmp_path / "new" / "folder" / "tutorbot.db"
    exit_code, output = play_db_option(db)
    assert exit_code == 0, output
    assert db.read_bytes().startswith(b"SQLite format 3")

    (tmp_path / "empty.db").touch()
    exit_code, output = play_db_option(tmp_path / "empty.db")
    assert exit_code == 0, output


# --- one bot per database -------------------------------------------------------------


def test_the_lock_is_exclusive_and_names_its_holder(tmp_path):
    db = tmp_path / "tutorbot.db"
    with single_instance(db):
        assert lock_path(db).read_text() == f"{os.getpid()}\n"
        with pytest.raises(DatabaseError, match=rf"another tutorbot is already running on {db} \(pid {os.getpid()}\)"):
            with single_instance(db):
                pass
    with single_instance(db):  # released at the end of the block
        pass


@pytest.fixture
def lock_holder(tmp_path):
    """A child process that holds the lock on tmp_path/tutorbot.db, as a running bot does."""
    db = tmp_path / "tutorbot.db"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from bot.database_file import single_instance\n"
        "with single_instance(Path(sys.argv[1])):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(120)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "locked\n"
        yield db, child
    finally:
        child.kill()
        child.wait(10)


def test_a_second_bot_on_one_database_refuses_before_going_online(lock_holder):
    db, holder = lock_holder

    exit_code, output = run_bot(db)

    assert_refused(exit_code, output, db, f"another tutorbot is already running on {db} (pid {holder.pid})")
    assert TOKEN not in output and TOKEN.split(":")[1] not in output


def test_play_may_share_the_database_with_a_running_bot(lock_holder):
    db, _ = lock_holder
    exit_code, output = play_db_option(db)
    assert exit_code == 0, output


def test_a_killed_bot_leaves_the_database_free(lock_holder):
    db, holder = lock_holder
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    with single_instance(db):
        pass


# --- a database that may be read but not written ------------------------------------------------


def report_data(db: Path) -> Path:
    """A database with one local learner's start of madman-core."""
    result = CliRunner().invoke(main, ["play", "--lesson", "madman-core", "--dialogues", str(CORE), "--db", str(db), "--learner", "ann"], input="/quit\n")
    assert result.exit_code == 0, result.output
    return db


READERS = {
    "report": ["report"],
    "transcript": ["transcript", "local:ann"],
    "export": ["export", "--format", "csv", "-o", "-"],
    "inbox": ["inbox"],
}


def read_command(db: Path, argv: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*argv, "--db", str(db), *(["--dialogues", str(CORE)] if argv[0] != "inbox" else [])])
    return result.exit_code, result.output


@pytest.fixture
def denied_writes(monkeypatch):
    """`os.access` says these paths may not be written, so this runs as root too."""
    denied: set[Path] = set()
    real_access = os.access

    def access(path, mode, **kwargs):
        if Path(path) in denied and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    return denied


@pytest.mark.parametrize("read_only", ["file", "folder"])
@pytest.mark.parametrize("command", READERS)
def test_read_only_commands_read_a_read_only_database_and_write_nothing(tmp_path, denied_writes, read_only, command):
    data = tmp_path / "data"
    data.mkdir()
    db = report_data(data / "tutorbot.db")
    denied_writes.add(db if read_only == "file" else data)
    db.chmod(0o444)
    before = snapshot(data)

    exit_code, output = read_command(db, READERS[command])

    assert exit_code == 0, output
    assert "read-only" not in output and "Traceback" not in output
    assert {"report": "learners: 1 started", "transcript": "Part 1 of 4", "export": "local:ann", "inbox": "0 update(s) stored"}[command] in output
    assert snapshot(data) == before  # not a byte written, no -wal or -shm


@pytest.mark.skipif(AS_ROOT, reason=ROOT_WRITES_ANYWAY)
@pytest.mark.parametrize("command", READERS)
def test_read_only_commands_read_a_database_the_user_may_not_write(tmp_path, command):
    data = tmp_path / "data"
    data.mkdir()
    db = report_data(data / "tutorbot.db")
    db.chmod(0o444)
    data.chmod(0o555)
    try:
        before = snapshot(data)
        exit_code, output = read_command(db, READERS[command])
        assert snapshot(data) == before
    finally:
        data.chmod(0o755)
    assert exit_code == 0, output


def older_database(path: Path) -> Path:
    """A database an older tutorbot wrote: its latest migration not yet applied."""
    report_data(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM _sqlite_migrations WHERE rowid = (SELECT MAX(rowid) FROM _sqlite_migrations)")
    conn.close()
    return path


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (older_database, "is read-only and older than this tutorbot: it needs upgrading, which writes it"),
        (newer_database, "was written by a newer tutorbot"),
        (text_file, "is not an SQLite database"),
        (lambda path: (path.touch(), path)[1], "is empty"),
    ],
)
@pytest.mark.parametrize("command", READERS)
def test_a_read_only_database_that_cannot_be_read_as_it_is_says_why(tmp_path, denied_writes, make, said, command):
    db = make(tmp_path / "tutorbot.db")
    denied_writes.add(db)
    before = snapshot(tmp_path)
    exit_code, output = read_command(db, READERS[command])
    assert_refused(exit_code, output, db, said)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("argv", [["play", "--lesson", "madman-core"], ["inbox"], ["report"], ["run"]], ids=lambda argv: argv[0])
def test_a_fifo_as_the_database_is_an_error_not_a_wait(tmp_path, argv):
    os.mkfifo(tmp_path / "fifo.db")
    env = {**os.environ, **RUN_ENV, "TUTORBOT_DATABASE": str(tmp_path / "fifo.db")}
    result = subprocess.run(tutorbot() + argv, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"Error: the database path {tmp_path / 'fifo.db'} is not a regular file: give the path of a file"

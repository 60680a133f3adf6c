"""The database connection; opening the file: clear errors for bad paths, and the
single-instance lock.

Every problem with the path is a `DatabaseError` whose message is one line naming the path
and saying what to do. A refused file is never written: the checks only read it, and the
-wal/-shm files SQLite makes for a read are removed when that connection closes.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlite_utils import Database

SQLITE_HEADER = b"SQLite format 3\x00"
MIGRATIONS_TABLE = "_sqlite_migrations"  # where sqlite-utils' Migrations record what they applied


class DatabaseError(Exception):
    """The database path cannot be used; the message says why and what to do."""


class Db:
    """One SQLite connection: plain SQL for everything the bot does, and sqlite-utils'
    table API (`db["events"]`, `db.utils`) for migrations and tooling, imported on first
    use. Importing sqlite-utils takes about 85 ms and 13 MB, which the running bot need
    not pay."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._utils: Database | None = None

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any]) -> sqlite3.Cursor:
        return self.conn.executemany(sql, parameters)

    def close(self) -> None:
        self.conn.close()

    def table_names(self) -> list[str]:
        return [name for (name,) in self.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]

    @property
    def utils(self) -> Database:
        """sqlite-utils' `Database` on this same connection."""
        if self._utils is None:
            from sqlite_utils import Database

            self._utils = Database(self.conn)
        return self._utils

    def __getitem__(self, table: str) -> Any:
        return self.utils[table]


def applied_migrations(db: Db, migration_set: str) -> list[str]:
    """The names of the migrations of `migration_set` applied to `db`, in order."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [MIGRATIONS_TABLE]).fetchone() is None:
        return []
    rows = db.execute(f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY rowid", [migration_set])
    return [name for (name,) in rows]


def open_database(path: Path, migration_set: str, known: Iterable[str], read_only: bool = False) -> Db:
    """The database at `path`, checked first; its folder is created if missing.

    Refuses a database with migrations of `migration_set` that are not `known`: a newer
    tutorbot wrote it, and writing into it could break it. `read_only`: for a file that may
    not be written (`writable`), opened so that nothing is written, -wal and -shm included;
    it must have every migration `known`, as bringing it up to date would write it.
    """
    known = list(known)
    if read_only:
        check_file(path, read_only=True)
    else:
        check_path(path)
    db = None
    try:
        db = Db(_connect_read_only(path) if read_only else sqlite3.connect(path))
        db.execute("PRAGMA busy_timeout = 5000")  # a running bot may be writing
        applied = applied_migrations(db, migration_set)
    except sqlite3.DatabaseError as exc:
        if db is not None:
            db.close()
        raise DatabaseError(f"{path} cannot be read as a database ({exc}): choose another path") from None
    unknown = [name for name in applied if name not in set(known)]
    if unknown:
        db.close()
        raise DatabaseError(
            f"{path} was written by a newer tutorbot (it has migrations {', '.join(unknown)}): "
            "upgrade tutorbot, or choose another path"
        )
    if read_only and len(applied) < len(known):
        db.close()
        raise DatabaseError(
            f"the database {path} is read-only and older than this tutorbot: it needs upgrading, which writes it; "
            "make it writable once (chmod u+w) and run this again, or read a writable copy"
        )
    return db


def writable(path: Path) -> bool:
    """Whether `path` (an existing database) and its folder, where SQLite keeps its -wal and
    -shm files, may be written."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write the file (SQLite's mode=ro).

    A database in WAL mode needs its -shm file even to be read, and SQLite would create it
    (and a -wal) beside the database, owned by this user, where the bot might not be able
    to write them later. When neither exists, no bot has the database open, so it is read
    as immutable: without locks, -wal or -shm."""
    uri = path.resolve().as_uri() + "?mode=ro"
    if not Path(f"{path}-shm").exists() and not Path(f"{path}-wal").exists():
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True)


def check_path(path: Path) -> None:
    """Raise DatabaseError unless `path` is, or can become, a tutorbot database file."""
    if path.is_dir():
        raise DatabaseError(f"the database path {path} is a folder: give a file path, e.g. {path / 'tutorbot.db'}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(
            f"cannot create the folder {folder} for the database {path} ({exc.strerror}): choose another path"
        ) from None
    # SQLite keeps its -wal and -shm files beside the database.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatabaseError(
            f"the folder {folder} of the database {path} is read-only: make it writable, or choose another path"
        )
    if path.exists():
        check_file(path)


def check_file(path: Path, read_only: bool = False) -> None:
    """An existing file must be a regular file, readable, writable (unless `read_only`) and
    SQLite (an empty file is a new database)."""
    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer, for ever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise DatabaseError(
            f"cannot read the database {path} ({exc.strerror}): fix its permissions, or choose another path"
        ) from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DatabaseError(f"the database path {path} is not a regular file: give the path of a file")
        header = file.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise DatabaseError(f"{path} is not an SQLite database: choose another path, or move that file away")
    if not header and read_only:
        raise DatabaseError(f"the database {path} is empty: nothing has been recorded in it")
    if not read_only and not os.access(path, os.W_OK):
        raise DatabaseError(
            f"the database {path} is read-only: make it writable (chmod u+w), or choose another path"
        )


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


@contextmanager
def single_instance(database: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<database>.lock` for the block, or raise DatabaseError.

    An OS advisory lock (flock) is released by the kernel however the process ends, so a
    killed bot starts again without cleanup. The file stays, holding the last holder's pid.
    """
    check_path(database)
    path = lock_path(database)
    try:
        handle = path.open("a+")  # not "w": that would wipe the holder's pid before we know we hold it
    except OSError as exc:
        raise DatabaseError(f"cannot create the lock file {path} ({exc.strerror}): make its folder writable") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            raise DatabaseError(
                f"another tutorbot is already running on {database} (pid {pid}): stop it first, or use another database"
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield

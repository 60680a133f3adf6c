"""Validated lessons kept between starts, as Python keeps compiled modules.

Reading a dialogue file costs a YAML parse and pydantic's validation, and pydantic's
validators hold memory the running bot never uses again (for the shipped lessons, about
35 ms and 1.3 MiB of the bot's idle 59 MiB). So `tutorbot run` and `tutorbot play` keep
each lesson they validated in a cache folder and take it from there at the next start.

An entry is named by a hash of the file's bytes *and* of the code that reads it (every
module of the `bot` package, pydantic's and Python's versions): an edited file, another
release or another Python never meets a stale entry, and `tutorbot check` never uses the
cache. A missing, unreadable or foreign entry is only a miss, and a folder that cannot be
written only costs the next start its time.

Entries are pickles, so the folder must be the bot's own, as `__pycache__` is: it is made
readable by its owner only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pickle
import sys
from functools import cache
from pathlib import Path

import pydantic
import pydantic_core

from bot.loader import LoadedLesson

log = logging.getLogger(__name__)

KEPT = 64  # entries kept, the least recently used going first (each edit of a lesson makes one)


@cache
def code_key() -> bytes | None:
    """What the validated lesson depends on besides the file: the `bot` package's source,
    pydantic's version and Python's. None where the source is not there to read (a
    deployment of bytecode only): then no entry could be told from a stale one."""
    digest = hashlib.sha256(f"{sys.version}|{pydantic.VERSION}|{pydantic_core.__version__}".encode())
    package = Path(__file__).resolve().parent
    sources = sorted(package.rglob("*.py"))
    if Path(__file__).resolve() not in sources:
        return None
    for path in sources:
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.digest()


class LessonCache:
    """The cache folder: `get` a file's validated lesson, `put` one just validated."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _entry(self, data: bytes) -> Path | None:
        code = code_key()
        return None if code is None else self.folder / f"{hashlib.sha256(code + data).hexdigest()[:32]}.pickle"

    def get(self, data: bytes, path: Path) -> LoadedLesson | None:
        """The lesson validated from these bytes before, as read from `path` now; None if
        there is none (or it cannot be read)."""
        entry = self._entry(data)
        if entry is None:
            return None
        try:
            with entry.open("rb") as stream:
                loaded = pickle.load(stream)
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - a damaged entry is a miss, whatever it raises
            log.debug("lesson cache: %s cannot be read (%s)", entry, exc)
            return None
        if not isinstance(loaded, LoadedLesson):
            return None
        try:
            os.utime(entry)  # in use: the last to be pruned
        except OSError:
            pass
        return dataclasses.replace(loaded, path=path)

    def put(self, data: bytes, loaded: LoadedLesson) -> None:
        """Keep `loaded`, validated from `data` (best effort: a failure is only logged)."""
        entry = self._entry(data)
        if entry is None:
            return
        import tempfile  # only when writing: a start the cache serves does without it

        part: Path | None = None
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".", suffix=".part", delete=False) as stream:
                part = Path(stream.name)
                pickle.dump(loaded, stream, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(part, entry)  # whole or not at all, for a reader at the same time
            self._prune()
        except Exception as exc:  # noqa: BLE001 - the cache only saves time
            log.debug("lesson cache: cannot write to %s (%s)", self.folder, exc)
            if part is not None:
                part.unlink(missing_ok=True)

    def _prune(self) -> None:
        entries = sorted(self.folder.glob("*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEPT:]:
            old.unlink(missing_ok=True)

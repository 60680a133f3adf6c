"""Reading dialogue files: YAML in, a validated `Lesson` or `file:line` problems out.

This module owns the link between a lesson and the files it came from: which files are
dialogue files, how their bytes become text, the limits that keep a hostile or broken
file from using up memory or time, the content hash that events record, the problems'
form (`file:line: node-id: what is wrong`) and the lesson cache's part. Parsing and
validating the text is `bot.lesson_text`'s, imported only when the cache does not have
the file (PyYAML and the validators' messages are then never loaded). Whatever is wrong
with a file, the caller gets a `LessonError`, never another exception.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.lesson import Lesson
    from bot.lesson_cache import LessonCache

SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 1_000_000  # the longest lesson, madman.yaml, is 79 kB; parsing 1 MB takes about a second
MAX_DEPTH = 50  # nested mappings and lists; a lesson needs 7
MAX_ITEMS = 20_000  # keys, values and list items, an alias counting as many as it names; madman.yaml has 2,048


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a dialogue file."""

    file: str
    line: int
    where: str  # the node id, or the section id, or "lesson"
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.where}: {self.message}"


class LessonError(Exception):
    """A dialogue file (or several) did not validate; `problems` lists every reason, once each."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class LoadedLesson:
    """A valid lesson with where it came from."""

    lesson: Lesson
    path: Path
    content_hash: str  # sha256 of the file's bytes, first 16 hex digits
    lines: dict[tuple, int] = field(repr=False, compare=False, default_factory=dict)


def _refuse(path: Path | str, line: int, message: str) -> LessonError:
    return LessonError([Problem(str(path), line, "lesson", message)])


def _position(text: str, index: int) -> tuple[int, int]:
    """Line and column (from 1) of a character index."""
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


# --- files ----------------------------------------------------------------------------


def load_text(text: str, path: Path | str, digest: str | None = None) -> LoadedLesson:
    """Parse and validate one dialogue file's text; raise `LessonError` with every problem.

    `digest` is the content hash to record (default: of the text's UTF-8 bytes)."""
    from bot.lesson_text import read_lesson  # PyYAML and the validators, loaded on first use

    return read_lesson(text, path, digest)


def content_hash(data: bytes) -> str:
    """What events record of a lesson's version: sha256 of the file, first 16 hex digits."""
    return hashlib.sha256(data).hexdigest()[:16]


# UTF-32's little-endian mark begins with UTF-16's, so it is tried first.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _decode(data: bytes, path: Path) -> str:
    """A file's text: UTF-8, or UTF-16, UTF-32 or UTF-8 with a byte-order mark."""
    bom, codec = next(((bom, codec) for bom, codec in _BOMS if data.startswith(bom)), (b"", "utf-8"))
    body = data[len(bom) :]
    if not bom and b"\0" in body:
        line = body.count(b"\n", 0, body.index(b"\0")) + 1
        message = "the file has NUL bytes: it is binary, or UTF-16 without a byte-order mark; save it as UTF-8 text"
        raise _refuse(path, line, message)
    try:
        return body.decode(codec)
    except UnicodeDecodeError as exc:
        before = body[: exc.start].decode(codec, errors="replace")
        line, column = _position(before, len(before))
        message = f"not valid {codec.upper()}: byte 0x{body[exc.start]:02x} at column {column}; save the file as UTF-8"
        raise _refuse(path, line, message) from None


NOT_A_FILE = "not a regular file: a dialogue file is a plain file (not a FIFO, socket or device)"


def _read(path: Path) -> bytes:
    """The file's bytes, refusing before parsing a file too large to be a lesson.

    Opened without blocking and checked to be a regular file: a FIFO would otherwise wait
    for a writer for ever, and a device or socket is no lesson."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a socket cannot even be opened
            raise _refuse(path, 1, NOT_A_FILE)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since
                raise _refuse(path, 1, NOT_A_FILE)
            if path.suffix.lower() not in SUFFIXES:
                raise _refuse(path, 1, "not a dialogue file: a dialogue file's name ends in .yaml or .yml")
            data = stream.read(MAX_FILE_BYTES + 1)  # bounded, in case the file is huge or endless
    except OSError as exc:
        raise _refuse(path, 1, f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _refuse(path, 1, f"the file is over {MAX_FILE_BYTES // 1_000_000} MB, the limit for a dialogue file")
    return data


def load_file(path: Path | str, cache: LessonCache | None = None) -> LoadedLesson:
    """One dialogue file's lesson: from `cache` if it validated these bytes before."""
    path = Path(path)
    data = _read(path)
    if cache is not None and (kept := cache.get(data, path)) is not None:
        return kept
    loaded = load_text(_decode(data, path), path, content_hash(data))
    if cache is not None:
        cache.put(data, loaded)
    return loaded


def _is_dialogue(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES and not path.name.startswith(".") and not path.is_dir()


def _identity(path: Path) -> object:
    """What makes two names one file: device and inode (a symbolic or hard link, or
    `x.yaml` and `$PWD/x.yaml`), else the resolved path for a file that cannot be seen."""
    try:
        found = path.stat()
        return found.st_dev, found.st_ino
    except (OSError, ValueError):
        try:
            return path.resolve()
        except RuntimeError:  # a symbolic link loop (Python before 3.13): reading it says so
            return path.absolute()


def dialogue_files(paths: list[Path | str]) -> list[Path]:
    """The dialogue files named, with folders expanded to their *.yaml and *.yml files; a
    file named twice (under any name) comes once, under the first.

    A folder that cannot be listed raises `LessonError`."""
    found: dict[object, Path] = {}
    for path in map(Path, paths):
        if not path.is_dir():
            found.setdefault(_identity(path), path)
            continue
        try:
            files = sorted(p for p in path.iterdir() if _is_dialogue(p))
        except OSError as exc:
            raise _refuse(path, 1, f"cannot read folder: {exc.strerror or exc}") from None
        for file in files:
            found.setdefault(_identity(file), file)
    return list(found.values())


def load_all(paths: list[Path | str], cache: LessonCache | None = None) -> dict[str, LoadedLesson]:
    """Every lesson in the paths by id; raise `LessonError` with all problems of all files.

    With `cache`, a file validated before is taken from it (see `bot.lesson_cache`)."""
    problems: list[Problem] = []
    files: list[Path] = []
    for path in paths:
        try:
            named = dialogue_files([path])
        except LessonError as exc:
            problems += exc.problems
            continue
        if not named:
            problems.append(Problem(str(path), 1, "lesson", "no dialogue files (*.yaml or *.yml) found"))
        files += named
    files = dialogue_files(files)  # each file once, however often it was named
    lessons: dict[str, LoadedLesson] = {}
    for path in files:
        try:
            loaded = load_file(path, cache)
        except LessonError as exc:
            problems += exc.problems
            continue
        if loaded.lesson.id in lessons:
            first = lessons[loaded.lesson.id].path
            line = loaded.lines.get(("lesson", "id"), 1)
            problems.append(Problem(str(path), line, "lesson", f"lesson id '{loaded.lesson.id}' is also used by {first}"))
            continue
        lessons[loaded.lesson.id] = loaded
    if problems:
        raise LessonError(problems)
    return lessons

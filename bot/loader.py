"""Reading dialogue files: YAML in, a validated `Lesson` or `file:line` problems out.

This module owns the link between a lesson and the text it came from: line numbers for
every key, the content hash that events record, and turning pydantic's and the graph
validator's complaints into one line each, `file:line: node-id: what is wrong`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.lesson import Lesson
from bot.validate import graph_problems


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
    """A dialogue file (or several) did not validate; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class LoadedLesson:
    """A valid lesson with where it came from."""

    lesson: Lesson
    path: Path
    content_hash: str  # sha256 of the file's bytes, first 16 hex digits
    lines: dict[tuple, int] = field(repr=False, compare=False, default_factory=dict)


class _LineLoader(yaml.SafeLoader):
    """A safe loader that also reports keys given twice in one mapping."""


def _walk(node: yaml.Node, path: tuple, lines: dict[tuple, int], dupes: list[tuple[tuple, int, str]]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                dupes.append((path, key_node.start_mark.line + 1, key))
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), lines, dupes)


def _where(data: Any, path: tuple) -> str:
    """The node id (else section id, else "lesson") that a path points into."""
    where = "lesson"
    current = data
    for step in path:
        try:
            current = current[step]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(current, dict) and isinstance(current.get("id"), str) and step != "lesson":
            where = current["id"]
    return where


def _resolve(data: Any, loc: tuple) -> tuple:
    """Pydantic's error location, less the union tags that are not keys of the data."""
    path: tuple = ()
    current = data
    for step in loc:
        try:
            current = current[step]
        except (KeyError, IndexError, TypeError):
            continue
        path += (step,)
    return path


def _line(lines: dict[tuple, int], path: tuple) -> int:
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path, 1)


def _describe(error: dict) -> str:
    kind = error["type"]
    loc = [str(part) for part in error["loc"] if isinstance(part, str)]
    name = loc[-1] if loc else "value"
    if kind == "missing":
        return f"missing field '{name}'"
    if kind == "extra_forbidden":
        return f"unknown field '{name}'"
    if kind == "string_type" and isinstance(error.get("input"), bool):
        return f"'{name}' must be text; YAML reads unquoted yes, no, true and false as booleans, so put it in quotes"
    if kind == "string_pattern_mismatch":
        return f"'{name}' must match {error['ctx']['pattern']}, got {error['input']!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{name}: {message}" if name != "value" and kind != "node_kind" else message


def load_text(text: str, path: Path | str, digest: str | None = None) -> LoadedLesson:
    """Parse and validate one dialogue file's text; raise `LessonError` with every problem.

    `digest` is the content hash to record (default: of the text's UTF-8 bytes)."""
    name = str(path)
    try:
        root = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise LessonError([Problem(name, line, "lesson", f"YAML syntax error: {problem}")]) from None
    lines: dict[tuple, int] = {}
    dupes: list[tuple[tuple, int, str]] = []
    if root is not None:
        _walk(root, (), lines, dupes)
    if not isinstance(data, dict):
        raise LessonError([Problem(name, 1, "lesson", "a dialogue file must be a mapping with lesson and sections")])
    problems = [Problem(name, line, _where(data, path), f"key '{key}' is given twice") for path, line, key in dupes]
    try:
        lesson = Lesson.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            path = _resolve(data, error["loc"])
            problems.append(Problem(name, _line(lines, path), _where(data, path), _describe(error)))
        raise LessonError(problems) from None
    for path, where, message in graph_problems(lesson):
        problems.append(Problem(name, _line(lines, path), where, message))
    if problems:
        raise LessonError(problems)
    digest = digest or content_hash(text.encode())
    return LoadedLesson(lesson, Path(path), digest, lines)


def content_hash(data: bytes) -> str:
    """What events record of a lesson's version: sha256 of the file, first 16 hex digits."""
    return hashlib.sha256(data).hexdigest()[:16]


def load_file(path: Path | str) -> LoadedLesson:
    path = Path(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LessonError([Problem(str(path), 1, "lesson", f"cannot read file: {reason}")]) from None
    return load_text(text, path, content_hash(data))


def dialogue_files(paths: list[Path | str]) -> list[Path]:
    """The dialogue files named, with folders expanded to their *.yaml and *.yml files."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            found.append(path)
    return found


def load_all(paths: list[Path | str]) -> dict[str, LoadedLesson]:
    """Every lesson in the paths by id; raise `LessonError` with all problems of all files."""
    lessons: dict[str, LoadedLesson] = {}
    problems: list[Problem] = []
    files = dialogue_files(paths)
    if not files:
        where = ", ".join(str(p) for p in paths)
        raise LessonError([Problem(where, 1, "lesson", "no dialogue files (*.yaml) found")])
    for path in files:
        try:
            loaded = load_file(path)
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

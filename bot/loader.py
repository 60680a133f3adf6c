"""Reading dialogue files: YAML in, a validated `Lesson` or `file:line` problems out.

This module owns the link between a lesson and the text it came from: which files are
dialogue files, how their bytes become text, the limits that keep a hostile or broken
file from using up memory or time, line numbers for every key, the content hash that
events record, and turning YAML's, pydantic's and the graph validator's complaints into
one line each, `file:line: node-id: what is wrong`. Whatever is wrong with a file, the
caller gets a `LessonError`, never another exception.
"""

from __future__ import annotations

import codecs
import datetime
import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.lesson import Lesson
from bot.validate import graph_problems

SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 1_000_000  # the longest lesson, madman.yaml, is 58 kB; parsing 1 MB takes about a second
MAX_DEPTH = 50  # nested mappings and lists; a lesson needs about 8
MAX_ITEMS = 20_000  # keys, values and list items, an alias counting as many as it names; madman.yaml has 1,456

_NULL_TAG = "tag:yaml.org,2002:null"


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


# --- YAML -----------------------------------------------------------------------------


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a dialogue file may not hold; its `problem` is the whole message."""


class _Loader(yaml.SafeLoader):
    """A safe loader that refuses, while composing, documents nested or expanding too far.

    PyYAML shares an aliased node instead of copying it, so a 1 kB file can stand for
    10**9 items ("billion laughs"). Everything after composing (line numbers, pydantic)
    walks the expanded tree, so it is the expanded size that must stay small.
    """

    def __init__(self, text: str):
        super().__init__(text)
        self.items = 0  # nodes composed so far, an alias counting as many as it names
        self.depth = 0  # collections around the node being composed
        self.sizes: dict[str, int] = {}  # anchor -> items in its node, once that is complete

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        anchor = event.anchor
        if isinstance(event, yaml.AliasEvent):
            if anchor in self.anchors and anchor not in self.sizes:
                raise _Refused(problem=f"alias *{anchor} is inside the node it names", problem_mark=event.start_mark)
            self._count(self.sizes.get(anchor, 0), event.start_mark, alias=True)
            return super().compose_node(parent, index)
        if anchor in self.anchors:
            first = self.anchors[anchor].start_mark.line + 1
            message = f"anchor &{anchor} is defined twice (first on line {first})"
            raise _Refused(problem=message, problem_mark=event.start_mark)
        if isinstance(event, yaml.CollectionStartEvent) and self.depth >= MAX_DEPTH:
            raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark)
        start = self.items
        self._count(1, event.start_mark, alias=False)
        self.depth += 1
        node = super().compose_node(parent, index)
        self.depth -= 1
        if anchor is not None:
            self.sizes[anchor] = self.items - start
        return node

    def _count(self, items: int, mark: yaml.Mark, alias: bool) -> None:
        self.items += items
        if self.items > MAX_ITEMS:
            what = "aliases expand the file to" if alias else "the file has"
            raise _Refused(problem=f"{what} more than {MAX_ITEMS:,} items; a lesson needs far fewer", problem_mark=mark)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's constructors let through what they meet: 2025-13-01, !!timestamp x
            value = node.value if isinstance(node, yaml.ScalarNode) else node.tag
            value = value if len(value) <= 40 else value[:37] + "..."
            raise _Refused(problem=f"cannot read {value!r}: {str(exc)[:80]}", problem_mark=node.start_mark) from None


@dataclass
class _Scan:
    """What the composed document says about itself: lines, and keys given twice or empty."""

    lines: dict[tuple, int] = field(default_factory=dict)
    dupes: list[tuple[tuple, int, str]] = field(default_factory=list)
    empties: dict[tuple, int] = field(default_factory=dict)  # path of a key with no value -> line

    def walk(self, node: yaml.Node, path: tuple = ()) -> _Scan:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # constructing the data reports a list or mapping as a key
                key, line = key_node.value, key_node.start_mark.line + 1
                if key in seen:
                    self.dupes.append((path, line, key))
                seen.add(key)
                self.lines[path + (key,)] = line
                if _is_empty(value_node):
                    self.empties[path + (key,)] = line
                self.walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, path + (index,))
        return self


def _is_empty(node: yaml.Node) -> bool:
    """`key:` with nothing after it, `key: null` or `key: ""`."""
    return isinstance(node, yaml.ScalarNode) and (node.tag == _NULL_TAG or not node.value.strip())


def _parse(text: str) -> tuple[yaml.Node | None, _Scan, Any]:
    """The document's root node, what it says about itself, and its data; may raise `yaml.YAMLError`."""
    loader = _Loader(text)
    root = loader.get_single_node()
    if root is None:
        return None, _Scan(), None
    scan = _Scan().walk(root)  # before constructing, which rewrites merge keys (<<)
    return root, scan, loader.construct_document(root)


def _position(text: str, index: int) -> tuple[int, int]:
    """Line and column (from 1) of a character index."""
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        line, column = _position(text, exc.position)
        return line, f"character U+{exc.character:04X} at column {column} is not allowed in a YAML file"
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark else 1
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, _Refused):
        return line, problem
    context = getattr(exc, "context", None)
    if context and problem.startswith("but "):  # "expected a single document ..., but found another"
        problem = f"{context}, {problem}"
    return line, f"YAML syntax error: {problem}"


def _not_a_lesson(root: yaml.Node | None, text: str) -> tuple[int, str] | None:
    """Line and message if the document is not a mapping at all."""
    if isinstance(root, yaml.MappingNode):
        return None
    if root is None or _is_empty(root):
        what = "the file holds only comments" if text.strip() else "the file is empty"
    else:
        what = "the file is a list" if isinstance(root, yaml.SequenceNode) else "the file is a single value"
    line = root.start_mark.line + 1 if root is not None else 1
    return line, f"{what}: a dialogue file must be a mapping with lesson and sections"


# --- pydantic's errors as lines -------------------------------------------------------


def _where(data: Any, path: tuple) -> str:
    """The node id (else section id, else "lesson") that a path points into."""
    where = "lesson"
    current = data
    for step in path:
        try:
            current = current[step]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(step, int) and isinstance(current, dict) and isinstance(current.get("id"), str):
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


def _kind(value: Any) -> str:
    """What YAML made of what an author wrote, in their words: "a number", "a list", ..."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"the date {value}"
    kinds = {list: "a list", dict: "a mapping", str: "text"}
    return next((name for kind, name in kinds.items() if isinstance(value, kind)), f"a {type(value).__name__}")


def _describe(error: dict) -> str:
    kind = error["type"]
    loc = [str(part) for part in error["loc"] if isinstance(part, str)]
    name = loc[-1] if loc else "value"
    value = error.get("input")
    if kind == "missing":
        return f"missing field '{name}'"
    if kind == "extra_forbidden":
        hint = error.get("did_you_mean")
        return f"unknown field '{name}'" + (f" (did you mean '{hint}'?)" if hint else "")
    if value is None or value == "":
        return f"'{name}' is empty"
    if kind == "node_kind" and not isinstance(value, dict):
        return f"a node must be a mapping with an id and one of say, ask, write or end, not {_kind(value)}"
    if kind == "string_type" and isinstance(value, bool):
        return f"'{name}' must be text; YAML reads unquoted yes, no, true and false as booleans, so put it in quotes"
    if kind == "string_type":
        quote = "" if isinstance(value, (list, dict)) else "; put it in quotes"
        return f"'{name}' must be text, not {_kind(value)}{quote}"
    if kind in ("list_type", "model_type", "dict_type", "model_attributes_type"):
        shape = "a list" if kind == "list_type" else "a mapping (key: value lines)"
        what = f"each item of '{name}'" if isinstance(error["loc"][-1], int) else f"'{name}'"
        return f"{what} must be {shape}, not {_kind(value)}"
    if kind == "too_short" and not value:
        return f"'{name}' is empty: list at least {error['ctx']['min_length']}"
    if kind == "string_pattern_mismatch":
        return f"'{name}' must match {error['ctx']['pattern']}, got {value!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{name}: {message}" if name != "value" and kind != "node_kind" else message


def _empty(key: str) -> str:
    hints = {"next": "name the node that follows, or remove the key", "start": "name the first node, or remove the key"}
    return f"'{key}' is empty: {hints.get(key, 'give it a value')}"


def _note_typos(errors: list[dict]) -> list[dict]:
    """An unknown key that is a missing one misspelt is one mistake: name it once, with a hint."""
    missing = {(e["loc"][:-1], e["loc"][-1]): e for e in errors if e["type"] == "missing"}
    for error in errors:
        if error["type"] != "extra_forbidden":
            continue
        parent, key = error["loc"][:-1], str(error["loc"][-1])
        names = [name for where, name in missing if where == parent and isinstance(name, str)]
        for match in difflib.get_close_matches(key, names, n=1):
            error["did_you_mean"] = match
            dropped = missing.pop((parent, match))
            errors = [e for e in errors if e is not dropped]
    return errors


def _validate(data: Any, scan: _Scan, name: str) -> tuple[Lesson | None, list[Problem]]:
    """The lesson if its shape is right, and the problems of its shape (keys twice or empty too)."""
    try:
        lesson, errors = Lesson.model_validate(data), []
    except ValidationError as exc:
        lesson, errors = None, _note_typos(exc.errors())
    paths = [_resolve(data, error["loc"]) for error in errors]
    unknown = {path for path, error in zip(paths, errors) if error["type"] == "extra_forbidden"}
    empties = {path: line for path, line in scan.empties.items() if path not in unknown}
    problems = [Problem(name, line, _where(data, path), f"key '{key}' is given twice") for path, line, key in scan.dupes]
    problems += [Problem(name, line, _where(data, path), _empty(path[-1])) for path, line in empties.items()]
    for path, error in zip(paths, errors):
        if path not in empties:  # else already said: the key is empty
            problems.append(Problem(name, _line(scan.lines, path), _where(data, path), _describe(error)))
    return (None if empties else lesson), problems


# --- files ----------------------------------------------------------------------------


def load_text(text: str, path: Path | str, digest: str | None = None) -> LoadedLesson:
    """Parse and validate one dialogue file's text; raise `LessonError` with every problem.

    `digest` is the content hash to record (default: of the text's UTF-8 bytes)."""
    name = str(path)
    try:
        root, scan, data = _parse(text)
    except yaml.YAMLError as exc:
        raise _refuse(name, *_yaml_problem(exc, text)) from None
    wrong = _not_a_lesson(root, text)
    if wrong:
        raise _refuse(name, *wrong)
    lesson, problems = _validate(data, scan, name)
    if lesson is None:  # the graph is checked once the shape is right and every next is named
        raise LessonError(problems)
    for path, where, message in graph_problems(lesson):
        problems.append(Problem(name, _line(scan.lines, path), where, message))
    if problems:
        raise LessonError(problems)
    digest = digest or content_hash(text.encode())
    return LoadedLesson(lesson, Path(path), digest, scan.lines)


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


def _read(path: Path) -> bytes:
    """The file's bytes, refusing before parsing a file too large to be a lesson."""
    try:
        with path.open("rb") as stream:
            if path.suffix.lower() not in SUFFIXES:
                raise _refuse(path, 1, "not a dialogue file: a dialogue file's name ends in .yaml or .yml")
            data = stream.read(MAX_FILE_BYTES + 1)  # bounded, in case the file is huge or endless
    except OSError as exc:
        raise _refuse(path, 1, f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _refuse(path, 1, f"the file is over {MAX_FILE_BYTES // 1_000_000} MB, the limit for a dialogue file")
    return data


def load_file(path: Path | str) -> LoadedLesson:
    path = Path(path)
    data = _read(path)
    return load_text(_decode(data, path), path, content_hash(data))


def _is_dialogue(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES and not path.name.startswith(".") and not path.is_dir()


def dialogue_files(paths: list[Path | str]) -> list[Path]:
    """The dialogue files named, with folders expanded to their *.yaml and *.yml files.

    A folder that cannot be listed raises `LessonError`."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        try:
            found += sorted(p for p in path.iterdir() if _is_dialogue(p))
        except OSError as exc:
            raise _refuse(path, 1, f"cannot read folder: {exc.strerror or exc}") from None
    return list(dict.fromkeys(found))  # a file named twice is loaded once


def load_all(paths: list[Path | str]) -> dict[str, LoadedLesson]:
    """Every lesson in the paths by id; raise `LessonError` with all problems of all files."""
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
        files += [file for file in named if file not in files]
    lessons: dict[str, LoadedLesson] = {}
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

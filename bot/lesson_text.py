"""One dialogue file's text to a validated `Lesson`, or `file:line` problems.

The half of reading a dialogue file that needs PyYAML and the validators: parsing with a
line number for every key (guarded against documents nested or expanding too far),
pydantic's and the graph validator's complaints turned into one line each. `bot.loader`
imports it only when a file has to be read, not when the lesson cache has it.
"""

from __future__ import annotations

import datetime
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:
    from yaml.cyaml import CParser  # PyYAML's wheels carry libyaml; a build without it reads in Python
except ImportError:  # pragma: no cover
    CParser = None  # type: ignore[assignment,misc]
from pydantic import ValidationError

from bot.lesson import Lesson
from bot.loader import MAX_DEPTH, MAX_ITEMS, LessonError, LoadedLesson, Problem, _position, _refuse, content_hash
from bot.validate import graph_problems

_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_CUT_BY_COMMENT = re.compile(r"^ #[^\s#]")  # one space, a #, then a word: text, not a comment


# --- YAML -----------------------------------------------------------------------------


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a dialogue file may not hold; its `problem` is the whole message."""


class _Resolver(yaml.resolver.Resolver):
    """PyYAML's resolver with YAML 1.2's booleans: only true and false (True, TRUE, ...).

    YAML 1.1 also reads yes, no, on and off as booleans, so an unquoted `correct: yes`
    would be true; here it stays the text "yes", which a true-or-false field refuses."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Guarded(yaml.composer.Composer):
    """A composer that refuses documents nested or expanding too far.

    PyYAML shares an aliased node instead of copying it, so a 1 kB file can stand for
    10**9 items ("billion laughs"). Everything after composing (line numbers, pydantic)
    walks the expanded tree, so it is the expanded size that must stay small.
    """

    def __init__(self) -> None:
        self.anchors: dict[str, yaml.Node] = {}
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
        if getattr(event, "tag", None) not in (None, "!"):  # `!!set`, `!!binary`, `!!python/...`
            tag = event.tag.replace("tag:yaml.org,2002:", "!!")[:40]
            message = f"tags such as {tag} are not allowed in a dialogue file: write the value plainly (text in quotes)"
            raise _Refused(problem=message, problem_mark=event.start_mark)
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


class _Loader(_Guarded, _Resolver, yaml.SafeLoader):
    """A guarded safe loader that reads the text in Python: its errors quote the line."""

    def __init__(self, text: str):
        yaml.SafeLoader.__init__(self, text)
        _Guarded.__init__(self)


class _FastLoader(_Guarded, CParser or object, yaml.constructor.SafeConstructor, _Resolver):  # type: ignore[misc]
    """The same, reading the text with libyaml: 5 times faster (a start-up cost of the bot).
    Its nodes are those of `_Loader`, marks included; a file it refuses is read again
    with `_Loader`, for the error message."""

    def __init__(self, text: str):
        CParser.__init__(self, text)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        _Guarded.__init__(self)


@dataclass
class _Scan:
    """What the composed document says about itself: lines, keys given twice or empty,
    what the author typed where YAML read something other than text, and texts that a
    comment cut short."""

    text: str = ""
    lines: dict[tuple, int] = field(default_factory=dict)
    dupes: list[tuple[tuple, int, str]] = field(default_factory=list)
    empties: dict[tuple, int] = field(default_factory=dict)  # path of a key with no value -> line
    typed: dict[tuple, str] = field(default_factory=dict)  # path -> an unquoted value as written
    cut: list[tuple[tuple, int, str | None, str]] = field(default_factory=list)  # path, line, text, comment

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
                    self._comment_after(key_node, path + (key,), empty=True)
                self.walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, path + (index,))
        elif isinstance(node, yaml.ScalarNode) and not node.style and path:
            self.typed.setdefault(path, node.value)
            self._comment_after(node, path)
        return self

    def _comment_after(self, node: yaml.ScalarNode, path: tuple, empty: bool = False) -> None:
        """Note an unquoted text followed by ` #word` on its line: most likely the author's
        text went on (`#1`, `#MeToo`), and YAML took the rest of the line for a comment.
        A comment written as one (`  # note`, with a space after the #) is left alone.

        With `empty`, `node` is the key of an empty value, as in `say: #1 in line`."""
        if node.tag != _STR_TAG:
            return
        end = node.end_mark
        stop = self.text.find("\n", end.index)
        rest = self.text[end.index : stop if stop >= 0 else None]
        if empty and rest.startswith(":"):
            rest = " " + rest[1:].lstrip(" ")
        if _CUT_BY_COMMENT.match(rest):
            text: str | None = node.value  # None: the text goes over several lines
            if empty or node.start_mark.line != end.line:
                text = "" if empty else None
            self.cut.append((path, end.line + 1, text, rest[1:].rstrip()))


def _is_empty(node: yaml.Node) -> bool:
    """`key:` with nothing after it, `key: null` or `key: ""`."""
    return isinstance(node, yaml.ScalarNode) and (node.tag == _NULL_TAG or not node.value.strip())


def _fast_reads(text: str) -> bool:
    """Whether libyaml reads `text` as PyYAML does: it counts a byte-order mark in no
    position, and takes U+0085, U+2028 and U+2029 for line breaks in more places."""
    return CParser is not None and not any(odd in text for odd in "\ufeff\x85\u2028\u2029")


def _parse(text: str) -> tuple[yaml.Node | None, _Scan, Any]:
    """The document's root node, what it says about itself, and its data; may raise `yaml.YAMLError`."""
    try:
        loader: _Guarded = _FastLoader(text) if _fast_reads(text) else _Loader(text)
        root = loader.get_single_node()
    except yaml.YAMLError:
        loader = _Loader(text)
        root = loader.get_single_node()
    if root is None:
        return None, _Scan(), None
    scan = _Scan(text).walk(root)  # before constructing, which rewrites merge keys (<<)
    return root, scan, loader.construct_document(root)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        line, column = _position(text, exc.position)
        return line, f"character U+{exc.character:04X} at column {column} is not allowed in a YAML file"
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark else 1
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, _Refused):
        return line, problem
    if mark and problem == "mapping values are not allowed here":
        return line, _colon_hint(text, mark)
    if mark and problem.startswith("found character '\\t'"):
        return line, f"a tab at column {mark.column + 1}: YAML allows only spaces here; replace the tab with spaces"
    context = getattr(exc, "context", None)
    if context and problem.startswith("but "):  # "expected a single document ..., but found another"
        problem = f"{context}, {problem}"
    return line, f"YAML syntax error: {problem}"


_COMMENT = re.compile(r"\s+#(?=\s|$)|\s{2,}#")  # a comment as one is written, not ` #1`
_KEY_AND_TEXT = re.compile(r"^\s*(?:-\s+)?(?P<key>[^\s#'\"\[\]{},:][^:#]*?):\s+(?P<text>\S.*?)\s*$")


def _colon_hint(text: str, mark: yaml.Mark) -> str:
    """What to do when YAML finds `: ` where no key may start: most often a text with a
    colon in it (`say: Note: this`), else a line indented too far or a text going on
    over lines with a colon in it."""
    stop = text.find("\n", mark.index)
    line = text[mark.index - mark.column : stop if stop >= 0 else None]
    found = _KEY_AND_TEXT.match(line)
    if found and found.end("key") < mark.column:  # the key's own colon comes before this one
        key, value = found["key"], _COMMENT.split(found["text"])[0]
        example = f": {key}: {_quoted(value)}" if len(value) <= 60 else ""
        return (
            "the text has ': ' (a colon and a space) in it, which YAML reads as a new key; "
            f"put the whole text in quotes{example}"
        )
    return (
        "YAML found a key where none may start: indent this line like the keys around it, "
        "or, if it goes on with the text above and has ': ' in it, put that whole text in quotes"
    )


def _quoted(text: str) -> str:
    """`text` quoted for YAML: in double quotes, or single ones if it has a \" or \\ in it."""
    if '"' in text or "\\" in text:
        return "'" + text.replace("'", "''") + "'"
    return f'"{text}"'


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
    return where if where.isprintable() else repr(where)  # a bad id such as "q1\n": the problem stays one line


def _resolve(data: Any, loc: tuple) -> tuple:
    """Pydantic's error location, less the union tags that are not keys of the data.

    A tag can be a key too: in `- id: b` / `end: Bye` the location of the id is
    `(..., "end", "id")`, "end" naming the kind of node. A step into a plain value with
    steps still to go is such a tag. A mapping's key that is wrong ends in "[key]"."""
    loc = tuple(step for step in loc if step != "[key]")
    path: tuple = ()
    current = data
    for index, step in enumerate(loc):
        try:
            inner = current[step]
        except (KeyError, IndexError, TypeError):
            continue
        if index < len(loc) - 1 and not isinstance(inner, (dict, list)):
            continue
        current = inner
        path += (step,)
    return path


def _line(lines: dict[tuple, int], path: tuple) -> int:
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path, 1)


def _as_written(data: Any, path: tuple) -> tuple:
    """A path into the data with its mapping keys as YAML text, as the scan records them:
    the key `2` of `argument_map: {2: x}` is the int 2 in the data, "2" in the file."""
    written: tuple = ()
    current = data
    for step in path:
        written += (str(step) if isinstance(current, dict) and not isinstance(step, str) else step,)
        try:
            current = current[step]
        except (KeyError, IndexError, TypeError):
            break
    return written


def _kind(value: Any, typed: str | None = None) -> str:
    """What YAML made of what an author wrote, in their words: "a number", "a list", ...

    `typed` is the value as written, if it was unquoted: `12:30` is the number 750 to YAML."""
    shown = typed if typed is not None else value
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return f"the number {shown}"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"the date {shown}"
    kinds = {list: "a list", dict: "a mapping", str: "text", type(None): "nothing"}
    return next((name for kind, name in kinds.items() if isinstance(value, kind)), f"a {type(value).__name__}")


def _shown(value: Any, typed: str | None) -> str:
    """A value as the author wrote it: `'maybe'`, `1.5`."""
    return repr(value) if isinstance(value, str) else (typed or str(value))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}
_SHAPES = {
    "list_type": "a list",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "dict_type": "a mapping (key: value lines)",
}


def _describe(error: dict, path: tuple, scan: _Scan) -> str:
    """One of pydantic's errors in an author's words, with what to do about it.

    `path` is where the error is in the data; pydantic's own messages ("Input should be
    ...", "Field required", ...) never reach the author: an error this does not know gets
    a plain sentence too, and only a lesson's own rules (value errors) speak for themselves.
    """
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        return f"missing field '{error['loc'][-1]}'"
    if kind == "extra_forbidden":
        hint = error.get("did_you_mean")
        return f"unknown field '{error['loc'][-1]}'" + (f" (did you mean '{hint}'?)" if hint else "")
    names = [step for step in path if isinstance(step, str)]
    name = names[-1] if names else "value"
    item = bool(path) and isinstance(path[-1], int)
    what = f"an item of '{name}'" if item else f"'{name}'"
    typed = scan.typed.get(path)
    subject = f"'{name}'"  # as the rules of ids name it, item or not: "'covers' must match ..."
    if error["loc"][-1:] == ("[key]",) and path:  # a key of a mapping such as argument_map, not a value
        value, item = path[-1], False
        mapping = [step for step in path[:-1] if isinstance(step, str)]
        what = f"the key {_shown(value, typed)} in '{mapping[-1] if mapping else 'lesson'}'"
        subject, typed = what, None  # what was typed is the value at the key, not the key
    if value is None or value == "":
        return f"{what} is empty: give it a value, or remove it" if item else _empty(name)
    if kind == "node_kind" and not isinstance(value, dict):
        return f"a node must be a mapping with an id and one of say, ask, write or end, not {_kind(value)}"
    if kind in ("node_kind", "value_error", "assertion_error"):  # the lesson's own rules, written for authors
        message = str(ctx.get("error") or error["msg"])
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if message.startswith("has "):  # a text's own rule: "'title' has no visible text"
            return f"{what} {message}"
        return f"{path[-1]}: {message}" if kind != "node_kind" and path and isinstance(path[-1], str) else message
    if kind == "string_type":
        if isinstance(value, bool):
            written = typed or str(value).lower()
            return f"{what} must be text, but YAML reads an unquoted {written} as true or false; put it in quotes"
        if isinstance(value, dict):
            return (
                f"{what} must be text, not a mapping: a colon and a space (': ') in unquoted text "
                "start a new key; put the whole text in quotes"
            )
        quote = "" if isinstance(value, list) else "; put it in quotes"
        return f"{what} must be text, not {_kind(value, typed)}{quote}"
    if kind == "string_unicode":  # "\ud800" in quotes: half of a pair of escapes, no character
        return f"{what} has a lone surrogate escape (such as \\ud800) in it, which is no character: write the character itself"
    if kind in _SHAPES:
        whose = f"each item of '{name}'" if item else what
        return f"{whose} must be {_SHAPES[kind]}, not {_kind(value, typed)}"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        if not value:
            return f"{what} is empty: list at least {least}"
        return f"{what} lists {_plural(ctx.get('actual_length', 0), 'item')}; it needs at least {least}"
    if kind == "too_long":
        most = ctx.get("max_length")
        return f"{what} lists {_plural(ctx.get('actual_length', 0), 'item')}; at most {most} are allowed"
    if kind == "string_too_short":
        return f"{what} is empty: give it some text" + (", or remove it" if item else "")
    if kind == "string_too_long":
        size = len(value) if isinstance(value, str) else "too many"
        return f"{what} is {size} characters long; at most {ctx.get('max_length')} are allowed"
    if kind == "string_pattern_mismatch":
        return f"{subject} must match {ctx.get('pattern')}, got {value!r}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{what} must be true or false, not {_shown(value, typed)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{what} must be a whole number, not {_shown(value, typed)}"
    if kind in ("float_type", "float_parsing"):
        return f"{what} must be a number, not {_shown(value, typed)}"
    if kind in _BOUNDS:
        bound, words = _BOUNDS[kind]
        return f"{what} must be {words} {ctx.get(bound)}, not {_shown(value, typed)}"
    if kind == "literal_error" and name == "kind":
        return "'kind' is not written in a dialogue file: the say, ask, write or end key gives a node's kind; remove it"
    if kind == "literal_error":
        return f"{what} must be {ctx.get('expected')}, not {_shown(value, typed)}"
    if kind.startswith("url_"):
        return f"{what} must be a web address (https://...), not {_shown(value, typed)}"
    return f"{what} cannot be {_kind(value, typed)} here: see docs/authoring.md for what it takes"


def _empty(key: str) -> str:
    hints = {"next": "name the node that follows, or remove the key", "start": "name the first node, or remove the key"}
    return f"'{key}' is empty: {hints.get(key, 'give it a value')}"


def _cut(path: tuple, text: str | None, comment: str) -> str:
    """An unquoted text that a ` #` cut short, and how to keep it whole."""
    shown = comment if len(comment) <= 30 else comment[:27] + "..."
    if text == "" and isinstance(path[-1], str):
        message = f"'{path[-1]}' is empty: YAML reads ' {shown}' as a comment"
    else:
        message = f"the text is cut short at ' {shown}': YAML reads ' #' as the start of a comment"
    message += "; put the whole text in quotes"
    whole = f"{text} {comment}".strip() if text is not None else ""
    if not whole or len(whole) > 60:
        return message
    lead = f"{path[-1]}: " if isinstance(path[-1], str) else "- "
    return f"{message}: {lead}{_quoted(whole)}"


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
    cut = {path for path, *_ in scan.cut}  # a text that a comment took all of is said once, as cut
    empty = [(path, line) for path, line in empties.items() if path not in cut]
    problems += [Problem(name, line, _where(data, path), _empty(path[-1])) for path, line in empty]
    problems += [Problem(name, line, _where(data, path), _cut(path, *rest)) for path, line, *rest in scan.cut]
    for path, error in zip(paths, errors):
        if path not in empties:  # else already said: the key is empty
            line = _line(scan.lines, _as_written(data, path))
            problems.append(Problem(name, line, _where(data, path), _describe(error, path, scan)))
    return (None if empties else lesson), problems


# --- the whole file -------------------------------------------------------------------


def read_lesson(text: str, path: Path | str, digest: str | None = None) -> LoadedLesson:
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

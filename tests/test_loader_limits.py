"""Broken and hostile dialogue files: one `file:line: where: what` line per problem, quickly.

Whatever a file holds, loading it raises `LessonError` (never another exception), within
bounded time and memory, and every other file's problems are still reported.
"""

from __future__ import annotations

import codecs
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.loader import (
    MAX_DEPTH,
    MAX_ITEMS,
    LessonError,
    content_hash,
    load_all,
    load_file,
    load_text,
)

# A valid lesson; the comments give the line numbers that the tests below refer to.
LESSON = """\
lesson:                    # 1
  id: tiny                 # 2
  title: Tiny              # 3
  description: A tiny lesson.
  source: {title: T, author: A, publication: P, date: D}
  covers: [C1]             # 6
sections:                  # 7
  - id: main               # 8
    title: Main            # 9
    nodes:                 # 10
      - id: a              # 11
        covers: [C1]       # 12
        say: Hi            # 13
        next: b            # 14
      - id: b              # 15
        end: Bye           # 16
"""

# 1 kB that stands for 10**9 items once its aliases are expanded ("billion laughs").
BOMB = "a: &a [" + ", ".join(['"lol"'] * 9) + "]\n" + "".join(
    f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n" for previous, name in zip("abcdefgh", "bcdefghi")
) + "lesson: *i\n"  # line 10


def edit(old: str, new: str) -> str:
    assert old in LESSON
    return LESSON.replace(old, new, 1)


def problems_of(load, *args) -> list[str]:
    """The problem lines a load reports, failing unless it raises `LessonError` within 5 s."""
    started = time.monotonic()
    with pytest.raises(LessonError) as caught:
        load(*args)
    assert time.monotonic() - started < 5
    return [str(p) for p in caught.value.problems]


def problems(text: str) -> list[str]:
    return problems_of(load_text, text, "x.yaml")


def test_the_lesson_here_loads():
    assert list(load_text(LESSON, "x.yaml").lesson.nodes) == ["a", "b"]


# --- limits: aliases, nesting, size ---------------------------------------------------


def test_alias_bomb_is_refused_quickly(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    assert len(BOMB) < 1000
    [found] = problems_of(load_file, bomb)
    path, line, rest = found.split(":", 2)
    assert path == str(bomb)
    assert rest == f" lesson: aliases expand the file to more than {MAX_ITEMS:,} items; a lesson needs far fewer"
    assert 2 <= int(line) <= 10  # on an alias line


def test_a_few_aliases_and_merge_keys_still_work():
    text = edit("next: b ", "next: c ").replace("say: Hi ", "say: &hi Hi ")
    text += "      - id: c\n        <<: {covers: [C1]}\n        say: *hi\n        next: b\n"
    node = load_text(text, "x.yaml").lesson.nodes["c"]
    assert (node.say, node.covers) == ("Hi", ["C1"])


def test_alias_inside_the_node_it_names():
    assert problems("a: &x\n  b: [1, *x]\n") == ["x.yaml:2: lesson: alias *x is inside the node it names"]


def test_anchor_defined_twice():
    assert problems("a: &x 1\nb: &x 2\n") == ["x.yaml:2: lesson: anchor &x is defined twice (first on line 1)"]


def test_too_many_items_without_aliases():
    text = "lesson: [" + "x, " * (MAX_ITEMS + 10) + "]\n"
    assert problems(text) == [f"x.yaml:1: lesson: the file has more than {MAX_ITEMS:,} items; a lesson needs far fewer"]


@pytest.mark.parametrize("text", ["[" * 100_000, "lesson: " + "{a: " * 100_000, "- " * 100_000])
def test_deep_nesting_on_one_line(text):
    assert problems(text) == [f"x.yaml:1: lesson: nested more than {MAX_DEPTH} levels deep"]


def test_deep_nesting_names_the_line_where_it_goes_too_deep():
    text = "".join(" " * depth + f"k{depth}:\n" for depth in range(1000))
    assert problems(text) == [f"x.yaml:{MAX_DEPTH + 1}: lesson: nested more than {MAX_DEPTH} levels deep"]


def test_fifty_levels_are_allowed():
    text = "".join(" " * depth + f"k{depth}:\n" for depth in range(MAX_DEPTH)) + " " * MAX_DEPTH + "end\n"
    assert not any("nested" in problem for problem in problems(text))


def test_large_file_is_refused_before_reading_it_all(tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("wb") as stream:
        stream.write(b"lesson: x\n")
        stream.truncate(50_000_000)
    assert problems_of(load_file, big) == [f"{big}:1: lesson: the file is over 1 MB, the limit for a dialogue file"]


def test_a_file_just_under_the_limit_is_read(tmp_path):
    padded = tmp_path / "padded.yaml"
    padded.write_text(LESSON + "# " + "x" * (999_000 - len(LESSON)) + "\n")
    assert load_file(padded).lesson.id == "tiny"


# --- encodings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bom, codec",
    [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
    ],
)
def test_files_with_a_byte_order_mark_are_read(tmp_path, bom, codec):
    path = tmp_path / "marked.yaml"
    data = bom + LESSON.replace("say: Hi", "say: Grüße, café").encode(codec)
    path.write_bytes(data)
    loaded = load_file(path)
    assert loaded.lesson.nodes["a"].say == "Grüße, café"
    assert loaded.content_hash == content_hash(data)


def test_invalid_utf8_names_line_and_column(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(LESSON.replace("say: Hi", "say: café").encode("latin-1"))
    assert problems_of(load_file, path) == [
        f"{path}:13: lesson: not valid UTF-8: byte 0xe9 at column 17; save the file as UTF-8"
    ]


def test_invalid_utf16_names_line_and_column(tmp_path):
    path = tmp_path / "broken16.yaml"
    path.write_bytes(codecs.BOM_UTF16_LE + "lesson:\n  id: x".encode("utf-16-le") + b"\x00\xdc")  # a lone surrogate
    assert problems_of(load_file, path) == [
        f"{path}:2: lesson: not valid UTF-16-LE: byte 0x00 at column 8; save the file as UTF-8"
    ]


@pytest.mark.parametrize(
    "data, line",
    [
        (LESSON.encode("utf-16-le"), 1),  # UTF-16 without a byte-order mark
        (bytes(range(256)) * 8, 1),  # binary
        (LESSON.replace("title: Main", "title: Ma\0in").encode(), 9),
    ],
)
def test_nul_bytes(tmp_path, data, line):
    path = tmp_path / "nul.yaml"
    path.write_bytes(data)
    assert problems_of(load_file, path) == [
        f"{path}:{line}: lesson: the file has NUL bytes: it is binary, or UTF-16 without a byte-order mark; "
        "save it as UTF-8 text"
    ]


def test_control_character_names_line_and_column():
    text = edit("title: Main", "title: Ma\x07in")
    assert problems(text) == ["x.yaml:9: lesson: character U+0007 at column 14 is not allowed in a YAML file"]


# --- a problem is named once, at its own line, not as its consequences ----------------


@pytest.mark.parametrize("value", ["", " ~", " null", ' ""', " ''", ' "  "'])
def test_empty_next_is_named_at_its_line(value):
    text = edit("next: b ", f"next:{value} ")
    assert problems(text) == ["x.yaml:14: a: 'next' is empty: name the node that follows, or remove the key"]


def test_empty_next_of_the_last_node():
    text = LESSON.replace("      - id: b              # 15\n        end: Bye           # 16\n", "")
    assert problems(text.replace("next: b", "next:")) == [
        "x.yaml:14: a: 'next' is empty: name the node that follows, or remove the key"
    ]


def test_empty_next_of_an_option():
    text = edit(
        "        say: Hi            # 13\n        next: b            # 14\n",
        "        ask: Which?        # 13\n"
        "        options:           # 14\n"
        "          - text: A        # 15\n"
        "            correct: true  # 16\n"
        "            feedback: Yes. # 17\n"
        "          - text: B        # 18\n"
        "            feedback: No.  # 19\n"
        "            next:          # 20\n",
    )
    assert problems(text) == ["x.yaml:20: a: 'next' is empty: name the node that follows, or remove the key"]


def test_empty_start():
    text = edit("sections:", "start:\nsections:")
    assert problems(text) == ["x.yaml:7: lesson: 'start' is empty: name the first node, or remove the key"]


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("next: b", "next: 5", "x.yaml:14: a: 'next' must be text, not the number 5; put it in quotes"),
        ("- id: a ", "- id: [a, c]", "x.yaml:11: main: 'id' must be text, not a list"),
        ("say: Hi", "say:", "x.yaml:13: a: 'say' is empty: give it a value"),
        ("date: D", "date: 2025-04-01", "x.yaml:5: lesson: 'date' must be text, not the date 2025-04-01; put it in quotes"),
        ("date: D", "date: 2025-13-01", "x.yaml:5: lesson: cannot read '2025-13-01': month must be in 1..12"),
        ("covers: [C1]      ", "covers: C1", "x.yaml:6: lesson: 'covers' must be a list, not text"),
        ("covers: [C1]      ", "covers: []", "x.yaml:6: lesson: 'covers' is empty: list at least 1"),
        ("next: b", "nxt: b", "x.yaml:14: a: unknown field 'nxt'"),
        ("  title: Tiny", "  titel: Tiny", "x.yaml:3: lesson: unknown field 'titel' (did you mean 'title'?)"),
        ("lesson:  ", "lessons:", "x.yaml:1: lesson: unknown field 'lessons' (did you mean 'lesson'?)"),
        (
            "      - id: b  ",
            "      - b\n      - id: c",
            "x.yaml:15: main: a node must be a mapping with an id and one of say, ask, write or end, not text",
        ),
    ],
)
def test_one_mistake_one_line(old, new, expected):
    assert problems(edit(old, new)) == [expected]


def test_section_with_no_nodes():
    text = LESSON.split("      - id: a")[0]
    assert problems(text) == ["x.yaml:10: main: 'nodes' is empty: give it a value"]
    assert problems(text.replace("nodes: ", "nodes: []")) == ["x.yaml:10: main: 'nodes' is empty: list at least 1"]


def test_question_with_an_empty_option_list():
    text = edit("say: Hi            # 13\n        next: b ", "ask: Which?\n        options: []")
    assert problems(text) == ["x.yaml:14: a: 'options' is empty: list at least 2"]


def test_missing_sections():
    assert problems(LESSON.split("sections:")[0]) == ["x.yaml:1: lesson: missing field 'sections'"]


@pytest.mark.parametrize(
    "text, line, what",
    [
        ("", 1, "the file is empty"),
        ("\n\n", 1, "the file is empty"),
        ("# A lesson, one day.\n", 1, "the file holds only comments"),
        ("# A list:\n- lesson\n- sections\n", 2, "the file is a list"),
        ("lesson\n", 1, "the file is a single value"),
    ],
)
def test_a_file_that_is_not_a_mapping(text, line, what):
    expected = f"x.yaml:{line}: lesson: {what}: a dialogue file must be a mapping with lesson and sections"
    assert problems(text) == [expected]


def test_two_documents_in_one_file():
    assert problems(LESSON + "---\nmore: 1\n") == [
        "x.yaml:17: lesson: YAML syntax error: expected a single document in the stream, but found another document"
    ]


def test_a_broken_next_is_not_also_reported_as_loops_and_lost_nodes():
    text = edit("next: b ", "next: bb")  # and so b, the end, is never reached
    assert problems(text) == ["x.yaml:14: a: no node 'bb' for next"]


def test_a_duplicate_id_is_not_also_reported_as_its_consequences():
    # With two nodes named a, edges to a are ambiguous: fix that first.
    text = LESSON + "      - id: a\n        say: Again\n        next: a\n"
    assert problems(text) == ["x.yaml:17: a: duplicate node id 'a' (first used in section 'main')"]


# --- files and folders ----------------------------------------------------------------


def test_yml_and_yaml_are_alike(tmp_path):
    (tmp_path / "one.yaml").write_text(LESSON)
    (tmp_path / "two.yml").write_text(LESSON.replace("id: tiny", "id: two"))
    (tmp_path / "three.YML").write_text(LESSON.replace("id: tiny", "id: three"))
    (tmp_path / "notes.txt").write_text("not a lesson")
    (tmp_path / ".#one.yaml").write_text("an editor's lock file")
    assert sorted(load_all([tmp_path])) == ["three", "tiny", "two"]
    assert list(load_all([tmp_path / "two.yml"])) == ["two"]
    assert list(load_all([tmp_path / "two.yml", tmp_path])) == ["two", "tiny", "three"]  # each file once


def test_a_path_of_another_kind(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Lessons\n")
    assert problems_of(load_all, [readme]) == [
        f"{readme}:1: lesson: not a dialogue file: a dialogue file's name ends in .yaml or .yml"
    ]


def test_a_path_that_does_not_exist_and_a_folder_without_lessons(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "good.yaml").write_text(LESSON)
    assert problems_of(load_all, [tmp_path / "nope", tmp_path / "empty", tmp_path / "good.yaml"]) == [
        f"{tmp_path / 'empty'}:1: lesson: no dialogue files (*.yaml or *.yml) found",
        f"{tmp_path / 'nope'}:1: lesson: cannot read file: No such file or directory",
    ]


def test_unreadable_file_and_folder(tmp_path, monkeypatch):
    locked, closed = tmp_path / "locked.yaml", tmp_path / "closed"
    locked.write_text(LESSON)
    closed.mkdir()
    real_open, real_iterdir = os.open, Path.iterdir

    def open_(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    def iterdir(self):
        if self == closed:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(Path, "iterdir", iterdir)
    assert problems_of(load_all, [locked, closed]) == [
        f"{closed}:1: lesson: cannot read folder: Permission denied",
        f"{locked}:1: lesson: cannot read file: Permission denied",
    ]


def test_one_bad_file_does_not_hide_another(tmp_path):
    (tmp_path / "a-bomb.yaml").write_text(BOMB)
    (tmp_path / "b.yml").write_text(edit("next: b", "next: zz"))
    (tmp_path / "c.yaml").write_text(LESSON.replace("id: tiny", "id: fine"))
    found = problems_of(load_all, [tmp_path])
    assert len(found) == 2
    assert "aliases expand the file" in found[0] and found[0].startswith(f"{tmp_path / 'a-bomb.yaml'}:")
    assert found[1] == f"{tmp_path / 'b.yml'}:14: a: no node 'zz' for next"


def test_check_command_reports_a_bomb_and_an_ordinary_error(tmp_path):
    folder = tmp_path / "dialogues"
    folder.mkdir()
    (folder / "bomb.yaml").write_text(BOMB)
    (folder / "typo.yml").write_text(edit("next: b", "next: zz"))
    started = time.monotonic()
    result = CliRunner().invoke(main, ["check", str(folder)], catch_exceptions=False)
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{folder / 'bomb.yaml'}:") and "aliases expand the file" in lines[0]
    assert lines[1] == f"{folder / 'typo.yml'}:14: a: no node 'zz' for next"
    assert result.stderr == "2 problem(s) found.\n"
    assert "Traceback" not in result.output


def _nodes(node, out: list) -> list:
    """Every node of a composed document with what the loader reads of it."""
    out.append((type(node).__name__, node.tag, node.start_mark.line, node.start_mark.column, node.start_mark.index,
                node.end_mark.line, node.end_mark.index, getattr(node, "style", None) or None,
                node.value if isinstance(node.value, str) else None))
    for child in node.value if isinstance(node.value, list) else ():
        for part in child if isinstance(child, tuple) else (child,):
            _nodes(part, out)
    return out


LESSON_FILES = sorted((Path(__file__).parent.parent / "dialogues").glob("*.yaml"))
TRICKY = [
    LESSON,
    LESSON.replace("\n", "\r\n"),
    'a: "é — “quoted”"\nb: |\n  ü line\n  two\nc: >\n  folded\n  text\nd: \'single\'\n',
    "base: &b {k: v, n: 1}\nuse:\n  <<: *b\n  extra: [1, 2.5, yes, ~, 2025-01-01]\n",
    "a: 'x\u2028y'\nb: 'tab\there'\nc: x # a comment\nd: \"\x85\"\n",
    "list:\n- one\n-   two\n- {inline: map}\n- [nested, [deeper]]\n",
    "\ufeffkey: value with a BOM\n",
]


@pytest.mark.parametrize("text", [path.read_text(encoding="utf-8") for path in LESSON_FILES] + TRICKY)
def test_libyaml_and_python_read_the_same_nodes(text):
    """The bot reads dialogue files with libyaml (fast), and in Python where libyaml would
    read otherwise or refuses (for the message): either way, the same document, line
    numbers and all."""
    from bot.lesson_text import _Loader, _parse

    root, _, data = _parse(text)
    slow = _Loader(text)
    slow_root = slow.get_single_node()
    assert data == slow.construct_document(slow_root)
    assert _nodes(root, []) == _nodes(slow_root, [])  # (both as constructing left them: merge keys resolved)


def test_the_lessons_are_read_with_libyaml():
    from bot.lesson_text import _fast_reads

    assert all(_fast_reads(path.read_text(encoding="utf-8")) for path in LESSON_FILES)


# --- files that are not plain files, or cannot be read ------------------------------------------

TUTORBOT = Path(sys.executable).parent / "tutorbot"
CORE = Path(__file__).resolve().parent.parent / "dialogues" / "madman-core.yaml"


def fifo(path: Path) -> None:
    os.mkfifo(path)


def unix_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


@pytest.mark.parametrize("make", [fifo, unix_socket], ids=["fifo", "socket"])
@pytest.mark.parametrize(
    "argv", [["check", "{d}"], ["lessons", "--dialogues", "{d}"], ["play", "--dialogues", "{d}"], ["play", "{d}/x.yaml"], ["run"]],
    ids=["check", "lessons", "play", "play file", "run"],
)
def test_a_file_that_is_not_a_plain_file_is_an_error_never_a_wait(tmp_path, make, argv):
    folder = tmp_path / "d"
    folder.mkdir()
    shutil.copy(CORE, folder)
    make(folder / "x.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORBOT_")}
    env |= {"TELEGRAM_BOT_TOKEN": "1:x", "TUTORBOT_DIALOGUES": str(folder), "TUTORBOT_BOT_API_BASE_URL": "http://127.0.0.1:9/bot"}
    command = [str(TUTORBOT)] + [arg.format(d=folder) for arg in argv]
    result = subprocess.run(command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"{folder / 'x.yaml'}:1: lesson: not a regular file" in output and "Traceback" not in output


def test_a_device_is_not_a_dialogue_file(tmp_path):
    assert problems_of(load_all, ["/dev/null"]) == [
        "/dev/null:1: lesson: not a regular file: a dialogue file is a plain file (not a FIFO, socket or device)"
    ]


@pytest.mark.parametrize(
    "argv",
    [["check", "{f}"], ["play", "{f}"], ["graph", "{f}"], ["lessons", "--dialogues", "{f}"], ["check", "{d}"]],
    ids=["check", "play", "graph", "lessons", "check folder"],
)
def test_an_unreadable_file_is_a_file_line_problem_not_a_usage_error(clean_environment, tmp_path, monkeypatch, argv):
    """Unreadable as the operating system reports it (os.access and open), so this runs as root too."""
    locked = tmp_path / "locked.yaml"
    shutil.copy(CORE, locked)
    real_open, real_access = os.open, os.access

    def open_(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != locked and real_access(path, mode, **kw))
    result = CliRunner().invoke(main, [arg.format(f=locked, d=tmp_path) for arg in argv])
    assert result.exit_code == 1, result.output
    assert f"{locked}:1: lesson: cannot read file: Permission denied" in result.output
    assert "Usage:" not in result.output and "not readable" not in result.output


@pytest.mark.parametrize(
    "second",
    ["{cwd}/x.yaml", "./x.yaml", "link.yaml", "hard.yaml", "."],
    ids=["absolute", "dot-slash", "symlink", "hard link", "its folder"],
)
def test_the_same_file_named_twice_is_read_once(clean_environment, tmp_path, second):
    shutil.copy(CORE, tmp_path / "x.yaml")
    (tmp_path / "link.yaml").symlink_to("x.yaml")
    os.link(tmp_path / "x.yaml", tmp_path / "hard.yaml")
    result = CliRunner().invoke(main, ["check", "x.yaml", second.format(cwd=tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"x.yaml: madman-core: ok: {result.output.split(': ok: ')[1].strip()}"]


def test_two_files_with_one_id_are_still_refused(clean_environment, tmp_path):
    shutil.copy(CORE, tmp_path / "x.yaml")
    shutil.copy(CORE, tmp_path / "y.yaml")
    result = CliRunner().invoke(main, ["check", "x.yaml", "y.yaml"])
    assert result.exit_code == 1 and "lesson id 'madman-core' is also used by x.yaml" in result.output


@pytest.mark.parametrize("named", ["loop.yaml", "."], ids=["the link", "its folder"])
def test_a_symbolic_link_loop_is_a_problem_not_a_traceback(clean_environment, tmp_path, named):
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    result = CliRunner().invoke(main, ["check", named])
    assert result.exit_code == 1, result.output
    assert "loop.yaml:1: lesson: cannot read file: Too many levels of symbolic links" in result.output

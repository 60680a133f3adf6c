"""What an author sees from `tutorbot check FILE` for the mistakes YAML and pydantic make
easy: one `file:line: where: message` line per mistake, in plain words with the fix, exit
1, no traceback, and never the validation library's own wording."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints, ValidationError

from bot.cli import main
from bot.lesson_text import _describe, _Scan

pytestmark = pytest.mark.usefixtures("clean_environment")

# A lesson of say, ask (an ungraded poll) and end nodes; the tests below change one line.
BASE = """\
lesson:
  id: tiny
  title: Tiny
  description: A tiny lesson.
  source:
    title: T
    author: A
    publication: P
    date: April 2025
  covers: [C1]
sections:
  - id: main
    title: Main
    nodes:
      - id: hello
        covers: [C1]
        say: Hello.
      - id: poll
        ask: Do you agree?
        graded: false
        options:
          - text: "Yes"
            feedback: Noted.
          - text: "No"
            feedback: Fair.
      - id: bye
        end: Bye.
"""

# pydantic's phrases (and Python's), none of which an author may ever see.
RAW = (
    "Input should",
    "Field required",
    "Extra inputs are not permitted",
    "String should",
    "List should",
    "Dictionary should",
    "should have at",
    "Value error",
    "Assertion failed",
    "validation error",
    "pydantic",
    "[key]",
    "Traceback",
    "NoneType",
)


def edit(*changes: tuple[str, str]) -> str:
    text = BASE
    for old, new in changes:
        assert text.count(old) == 1, f"change does not apply once: {old!r}"
        text = text.replace(old, new)
    return text


def check(text: str) -> list[str]:
    """`tutorbot check x.yaml` on `text`: the problem lines, once the run is shown to fail
    as it should (exit 1, a count on stderr, no traceback, no raw wording)."""
    with open("x.yaml", "w", encoding="utf-8") as stream:
        stream.write(text)
    result = CliRunner().invoke(main, ["check", "x.yaml"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stdout.splitlines()
    assert lines and result.stderr == f"{len(lines)} problem(s) found.\n"
    assert all(line.startswith("x.yaml:") for line in lines), lines
    for phrase in RAW:
        assert phrase not in result.output, (phrase, result.output)
    return lines


def test_base_lesson_is_clean_and_its_lines_are_where_the_tests_say():
    with open("x.yaml", "w", encoding="utf-8") as stream:
        stream.write(BASE)
    result = CliRunner().invoke(main, ["check", "x.yaml"])
    assert result.exit_code == 0, result.output
    lines = BASE.splitlines()
    assert (lines[8], lines[16], lines[21], lines[25]) == (
        "    date: April 2025",
        "        say: Hello.",
        '          - text: "Yes"',
        "      - id: bye",
    )


# --- (a) a date YAML reads as a date ----------------------------------------------------


@pytest.mark.parametrize(
    ("written", "shown"),
    [("2025-04-01", "the date 2025-04-01"), ("2025-04-01 10:30:00", "the date 2025-04-01 10:30:00")],
)
def test_unquoted_date(written, shown):
    assert check(edit(("date: April 2025", f"date: {written}"))) == [
        f"x.yaml:9: lesson: 'date' must be text, not {shown}; put it in quotes"
    ]


def test_quoted_date_is_text():
    with open("x.yaml", "w", encoding="utf-8") as stream:
        stream.write(edit(("date: April 2025", 'date: "2025-04-01"')))
    assert CliRunner().invoke(main, ["check", "x.yaml"]).exit_code == 0


# --- (b) yes, no, on, off and numbers where text is expected -----------------------------


@pytest.mark.parametrize("word", ["true", "True", "TRUE", "false", "False"])
def test_unquoted_true_false_in_an_option(word):
    assert check(edit(('- text: "Yes"', f"- text: {word}"))) == [
        f"x.yaml:22: poll: 'text' must be text, but YAML reads an unquoted {word} as true or false; put it in quotes"
    ]


@pytest.mark.parametrize("word", ["Yes", "yes", "NO", "on", "Off", "y", "N"])
def test_unquoted_yes_no_on_off_are_text_as_in_yaml_1_2(word):
    with open("x.yaml", "w", encoding="utf-8") as stream:
        stream.write(edit(('- text: "Yes"', f"- text: {word}"), ('- text: "No"', '- text: "Other"')))
    result = CliRunner().invoke(main, ["check", "x.yaml"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "Yes", "NO"])
def test_yes_no_on_off_are_not_booleans(word):
    assert check(edit(('- text: "Yes"\n', f'- text: "Yes"\n            correct: {word}\n'))) == [
        f"x.yaml:23: poll: 'correct' must be true or false, not {word!r}"
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("title: Main", "title: true", "x.yaml:13: main: 'title' must be text, but YAML reads an unquoted true as true or false; put it in quotes"),
        ("say: Hello.", "say: False", "x.yaml:17: hello: 'say' must be text, but YAML reads an unquoted False as true or false; put it in quotes"),
        ("title: Tiny", "title: 1984", "x.yaml:3: lesson: 'title' must be text, not the number 1984; put it in quotes"),
        ("say: Hello.", "say: 3.14", "x.yaml:17: hello: 'say' must be text, not the number 3.14; put it in quotes"),
        # YAML 1.1 reads 12:30 as 750 (base 60): the author is shown what they typed.
        ("say: Hello.", "say: 12:30", "x.yaml:17: hello: 'say' must be text, not the number 12:30; put it in quotes"),
        ("- id: bye", "- id: 42", "x.yaml:26: main: 'id' must be text, not the number 42; put it in quotes"),
        ("2025\n  covers: [C1]\n", "2025\n  covers: [C1, 2]\n", "x.yaml:10: lesson: an item of 'covers' must be text, not the number 2; put it in quotes"),
    ],
)
def test_unquoted_booleans_and_numbers_where_text_is_expected(old, new, expected):
    assert check(edit((old, new))) == [expected]


# --- (c) ': ' and ' #' inside unquoted text --------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "say: Hello.",
            "say: Note: this matters",
            "x.yaml:17: lesson: the text has ': ' (a colon and a space) in it, which YAML reads as a new key; "
            'put the whole text in quotes: say: "Note: this matters"',
        ),
        (
            "feedback: Fair.",
            "feedback: Fair. Remember: it is a poll.",
            "x.yaml:25: lesson: the text has ': ' (a colon and a space) in it, which YAML reads as a new key; "
            'put the whole text in quotes: feedback: "Fair. Remember: it is a poll."',
        ),
        (
            '- text: "No"',
            '- text: He said "no": twice',
            "x.yaml:24: lesson: the text has ': ' (a colon and a space) in it, which YAML reads as a new key; "
            "put the whole text in quotes: text: 'He said \"no\": twice'",
        ),
        (
            "description: A tiny lesson.",
            "description: Lesson: one  # a real comment",
            "x.yaml:4: lesson: the text has ': ' (a colon and a space) in it, which YAML reads as a new key; "
            'put the whole text in quotes: description: "Lesson: one"',
        ),
    ],
)
def test_colon_in_unquoted_text(old, new, expected):
    assert check(edit((old, new))) == [expected]


def test_colon_on_a_line_that_goes_on_with_the_text_above():
    text = edit(("say: Hello.", "say: Hello, this goes on\n          and here: it breaks"))
    assert check(text) == [
        "x.yaml:18: lesson: YAML found a key where none may start: indent this line like the keys around it, "
        "or, if it goes on with the text above and has ': ' in it, put that whole text in quotes"
    ]


def test_colon_text_becomes_a_mapping_on_its_own_line():
    text = edit(("say: Hello.", "say:\n          Note: this"))
    assert check(text) == [
        "x.yaml:17: hello: 'say' must be text, not a mapping: a colon and a space (': ') in unquoted text "
        "start a new key; put the whole text in quotes"
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "say: Hello.",
            "say: You are #1 in line",
            "x.yaml:17: hello: the text is cut short at ' #1 in line': YAML reads ' #' as the start of a comment; "
            'put the whole text in quotes: say: "You are #1 in line"',
        ),
        (
            "date: April 2025",
            "date: April 2025 #3",
            "x.yaml:9: lesson: the text is cut short at ' #3': YAML reads ' #' as the start of a comment; "
            'put the whole text in quotes: date: "April 2025 #3"',
        ),
        (
            "feedback: Noted.",
            "feedback: Noted. See the thread at #MeToo",
            "x.yaml:23: poll: the text is cut short at ' #MeToo': YAML reads ' #' as the start of a comment; "
            'put the whole text in quotes: feedback: "Noted. See the thread at #MeToo"',
        ),
    ],
)
def test_hash_cuts_unquoted_text_short(old, new, expected):
    assert check(edit((old, new))) == [expected]


def test_text_that_starts_with_a_hash_is_all_comment():
    assert check(edit(("say: Hello.", "say: #1 in line"))) == [
        "x.yaml:17: hello: 'say' is empty: YAML reads ' #1 in line' as a comment; "
        'put the whole text in quotes: say: "#1 in line"'
    ]
    assert check(edit(("say: Hello.", "say: # a note"))) == ["x.yaml:17: hello: 'say' is empty: give it a value"]


@pytest.mark.parametrize("comment", ["say: Hello.  # a note", "say: Hello. # a note", 'say: "Hello #1"', "say: Hello#1"])
def test_comments_written_as_comments_and_quoted_hashes_are_fine(comment):
    with open("x.yaml", "w", encoding="utf-8") as stream:
        stream.write(edit(("say: Hello.", comment)))
    result = CliRunner().invoke(main, ["check", "x.yaml"])
    assert result.exit_code == 0, result.output


def test_tab_in_indentation():
    assert check(edit(("        say: Hello.", "\tsay: Hello."))) == [
        "x.yaml:17: lesson: a tab at column 1: YAML allows only spaces here; replace the tab with spaces"
    ]


# --- (d) a missing or broken next: one line, not its consequences ------------------------


def test_last_node_without_next_is_one_line():
    # No end node at all now, and nothing follows `bye`: one mistake, one line.
    assert check(edit(("        end: Bye.", "        say: Bye."))) == [
        "x.yaml:26: bye: leads nowhere: give it a next, or follow it with an end node"
    ]


def test_node_after_the_end_without_next_is_one_line():
    text = BASE + "      - id: extra\n        say: Forgotten.\n"
    assert check(text) == ["x.yaml:28: extra: leads nowhere: give it a next, or follow it with an end node"]


def test_next_naming_no_node_in_the_middle_is_one_line():
    # Without the edge, bye and poll cannot be reached: that follows from the one mistake.
    text = edit(("        say: Hello.\n", "        say: Hello.\n        next: by\n"))
    assert check(text) == ["x.yaml:18: hello: no node 'by' for next"]


def test_option_next_naming_no_node_is_one_line():
    text = edit(("            feedback: Fair.\n", "            feedback: Fair.\n            next: nowhere\n"))
    assert check(text) == ["x.yaml:26: poll: no node 'nowhere' for option 2's next"]


def test_empty_next_is_one_line():
    text = edit(("        say: Hello.\n", "        say: Hello.\n        next:\n"))
    assert check(text) == ["x.yaml:18: hello: 'next' is empty: name the node that follows, or remove the key"]


def test_last_question_without_next_is_one_line_not_one_per_option():
    text = edit(("      - id: bye\n        end: Bye.\n", "")).replace("      - id: hello\n", "      - id: bye\n        end: Bye.\n      - id: hello\n")
    text = text.replace("lesson:\n", "start: hello\nlesson:\n", 1)
    assert check(text) == [
        "x.yaml:21: poll: leads nowhere: options 1 and 2 need a next, as no node follows this one; "
        "give the question a next, or follow it with an end node"
    ]


# --- (e) every other phrase of pydantic's, in an author's words --------------------------

NINE = "".join(f"          - text: Option {n}\n            feedback: Fine.\n" for n in range(7))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # "List should have at least 2 items after validation, not 1"
        ('          - text: "No"\n            feedback: Fair.\n', "", "x.yaml:21: poll: 'options' lists 1 item; it needs at least 2"),
        # "List should have at most 8 items after validation, not 9"
        ("        options:\n", "        options:\n" + NINE, "x.yaml:21: poll: 'options' lists 9 items; at most 8 are allowed"),
        # "List should have at least 1 item after validation, not 0"
        ("2025\n  covers: [C1]\n", "2025\n  covers: []\n", "x.yaml:10: lesson: 'covers' is empty: list at least 1"),
        # "String should have at most 24 characters"
        ("id: tiny", "id: " + "t" * 25, "x.yaml:2: lesson: 'id' is 25 characters long; at most 24 are allowed"),
        # "Field required"
        ("    title: Main\n", "", "x.yaml:12: main: missing field 'title'"),
        # "Extra inputs are not permitted"
        ("        say: Hello.\n", "        say: Hello.\n        colour: red\n", "x.yaml:18: hello: unknown field 'colour'"),
        ("  title: Tiny\n", "  titel: Tiny\n", "x.yaml:3: lesson: unknown field 'titel' (did you mean 'title'?)"),
        # "Input should be a valid boolean, unable to interpret input"
        ("graded: false", "graded: perhaps", "x.yaml:20: poll: 'graded' must be true or false, not 'perhaps'"),
        # "Input should be 'message'"
        (
            "        say: Hello.\n",
            "        say: Hello.\n        kind: choice\n",
            "x.yaml:18: hello: 'kind' is not written in a dialogue file: the say, ask, write or end key gives a "
            "node's kind; remove it",
        ),
        # "Input should be a valid dictionary or instance of Source"
        ("  source:\n    title: T\n    author: A\n    publication: P\n    date: April 2025\n", "  source: Bloomberg\n",
         "x.yaml:5: lesson: 'source' must be a mapping (key: value lines), not text"),
        # "Input should be a valid list"
        ("2025\n  covers: [C1]\n", "2025\n  covers: C1\n", "x.yaml:10: lesson: 'covers' must be a list, not text"),
        # "Input should be a valid string" (a key of argument_map)
        ("2025\n  covers: [C1]\n", "2025\n  covers: [C1]\n  argument_map:\n    C1: One.\n    2: Two.\n",
         "x.yaml:13: lesson: the key 2 in 'argument_map' must be text, not the number 2; put it in quotes"),
        # "Input should be a valid string, unable to parse raw data as a unicode string"
        ("  title: Tiny\n", '  title: "Tiny \\ud83d"\n',
         "x.yaml:3: lesson: 'title' has a lone surrogate escape (such as \\ud800) in it, which is no character: "
         "write the character itself"),
    ],
)
def test_pydantic_phrases_in_an_authors_words(old, new, expected):
    assert check(edit((old, new))) == [expected]


@pytest.mark.parametrize("bad", ["hello\\n", "hello\\tthere", "hello\\e[31m"])
def test_a_node_id_with_a_control_character_is_named_on_one_line(bad):
    shown = repr(bad.replace("\\n", "\n").replace("\\t", "\t").replace("\\e", "\x1b"))
    assert check(edit(("      - id: hello\n", f'      - id: "{bad}"\n'))) == [
        f"x.yaml:15: {shown}: 'id' must match ^[a-z0-9][a-z0-9_-]*$, got {shown}"
    ]


def test_several_mistakes_are_one_line_each_in_file_order():
    text = edit(
        ("date: April 2025", "date: 2025-04-01"),
        ("say: Hello.", "say: Note: this"),
    )
    assert check(text) == [  # YAML stops at the first syntax error
        "x.yaml:17: lesson: the text has ': ' (a colon and a space) in it, which YAML reads as a new key; "
        'put the whole text in quotes: say: "Note: this"'
    ]
    text = edit(
        ("date: April 2025", "date: 2025-04-01"),
        ('- text: "Yes"', "- text: True"),
        ("        say: Hello.\n", "        say: Hello.\n        colour: red\n"),
    )
    assert check(text) == [
        "x.yaml:9: lesson: 'date' must be text, not the date 2025-04-01; put it in quotes",
        "x.yaml:18: hello: unknown field 'colour'",
        "x.yaml:23: poll: 'text' must be text, but YAML reads an unquoted True as true or false; put it in quotes",
    ]


# --- (e2) text that shows nothing, control characters and tags --------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("title: Main", 'title: "\\u200b"', "x.yaml:13: main: 'title' has no visible text, only invisible characters (U+200B): write the text"),
        ('- text: "Yes"', '- text: "\\u200d\\ufeff"', "x.yaml:22: poll: 'text' has no visible text, only invisible characters (U+200D U+FEFF): write the text"),
        ("say: Hello.", 'say: "\\u2060 \\u00ad\\u200e"', "x.yaml:17: hello: 'say' has no visible text, only invisible characters (U+2060 U+0020 U+00AD U+200E): write the text"),
        ("title: Tiny", 'title: "\\u3164"', "x.yaml:3: lesson: 'title' has no visible text, only invisible characters (U+3164): write the text"),
        ("feedback: Fair.", 'feedback: "\\x7f"', "x.yaml:25: poll: 'feedback' has the control character U+007F in it, which no one can read: remove it"),
        ("title: Main", 'title: "a\\0b"', "x.yaml:13: main: 'title' has the control character U+0000 in it, which no one can read: remove it"),
        ("say: Hello.", 'say: "Hello\\e[31m."', "x.yaml:17: hello: 'say' has the control character U+001B in it, which no one can read: remove it"),
        ("title: Main", 'title: "   "', "x.yaml:13: main: 'title' is empty: give it a value"),
    ],
)
def test_text_that_shows_nothing_or_has_control_characters(old, new, expected):
    assert check(edit((old, new))) == [expected]


def test_line_breaks_tabs_and_joiners_inside_visible_text_are_fine():
    text = edit(("say: Hello.", 'say: "Hello,\\n\\nthere.\\tTab. \\U0001F469\\u200d\\U0001F4BB"'), ("title: Main", 'title: "\\u200bMain"'))
    with open("x.yaml", "w", encoding="utf-8") as stream:
        stream.write(text)
    assert CliRunner().invoke(main, ["check", "x.yaml"]).exit_code == 0


@pytest.mark.parametrize(
    ("new", "tag"),
    [
        ("title: !!set {a, b}", "!!set"),
        ("title: !!binary aGVsbG8=", "!!binary"),
        ("title: !!omap [a: 1]", "!!omap"),
        ("title: !!python/object/apply:os.system [ls]", "!!python/object/apply:os.system"),
        ("title: !!str Main", "!!str"),
        ("title: !local Main", "!local"),
        ("title:\n      !!seq [a]", "!!seq"),
    ],
)
def test_a_tag_is_one_line_at_the_tag(new, tag):
    line = 14 if "\n" in new else 13
    assert check(edit(("title: Main", new))) == [
        f"x.yaml:{line}: lesson: tags such as {tag} are not allowed in a dialogue file: write the value plainly (text in quotes)"
    ]


# --- (f) a value of the wrong type is refused, never converted ---------------------------

WRITE = "        write: Why?\n        model_answer: Because.\n"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("        say: Hello.\n", '        say: Hello.\n        solo_only: "yes"\n',
         "x.yaml:18: hello: 'solo_only' must be true or false, not 'yes'"),
        ("        say: Hello.\n", "        say: Hello.\n        solo_only: 1\n",
         "x.yaml:18: hello: 'solo_only' must be true or false, not 1"),
        ("        say: Hello.\n", '        say: Hello.\n        returns: "true"\n',
         "x.yaml:18: hello: 'returns' must be true or false, not 'true'"),
        ("graded: false", 'graded: "false"', "x.yaml:20: poll: 'graded' must be true or false, not 'false'"),
        ("graded: false\n", "graded: false\n        shuffle: 0\n", "x.yaml:21: poll: 'shuffle' must be true or false, not 0"),
        ('- text: "Yes"\n', '- text: "Yes"\n            correct: 1\n', "x.yaml:23: poll: 'correct' must be true or false, not 1"),
        ("feedback: Fair.\n", 'feedback: Fair.\n            last: "no"\n', "x.yaml:26: poll: 'last' must be true or false, not 'no'"),
        ("        say: Hello.\n", WRITE + "        min_words: true\n",
         "x.yaml:19: hello: 'min_words' must be a whole number, not true"),
        ("        say: Hello.\n", WRITE + "        min_words: 8.0\n",
         "x.yaml:19: hello: 'min_words' must be a whole number, not 8.0"),
        ("        say: Hello.\n", WRITE + '        min_words: "8"\n',
         "x.yaml:19: hello: 'min_words' must be a whole number, not '8'"),
        ("        say: Hello.\n", '        quote: {text: Words., paragraph: "3"}\n        say: Hello.\n',
         "x.yaml:17: hello: 'paragraph' must be a whole number, not '3'"),
        ("        say: Hello.\n", "        quote: {text: Words., paragraph: true}\n        say: Hello.\n",
         "x.yaml:17: hello: 'paragraph' must be a whole number, not true"),
    ],
)
def test_values_of_the_wrong_type_are_refused_not_converted(old, new, expected):
    assert check(edit((old, new))) == [expected]


@pytest.mark.parametrize("url", ["not a url", "www.bloomberg.com/opinion", "ftp://example.com/a", "https://", "https://a b.com"])
def test_a_source_url_must_be_a_web_address(url):
    text = edit(("    date: April 2025\n", f'    date: April 2025\n    url: "{url}"\n'))
    assert check(text) == [
        f"x.yaml:10: lesson: url: {url!r} is not a web address: give the column's full address, starting with https://"
    ]


def test_a_source_url_that_is_a_web_address_is_fine():
    with open("x.yaml", "w", encoding="utf-8") as stream:
        stream.write(edit(("    date: April 2025\n", "    date: April 2025\n    url: https://www.bloomberg.com/opinion/x\n")))
    assert CliRunner().invoke(main, ["check", "x.yaml"]).exit_code == 0


# --- every error pydantic can give, not only the lesson's: never its own wording --------


class _Every(BaseModel):
    """Fields of every constraint a lesson uses or may come to use."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5)]
    texts: list[Annotated[str, StringConstraints(min_length=1, pattern=r"^[A-Z]$")]] = Field(min_length=1, max_length=2)
    count: int = Field(ge=1, le=5)
    above: int = Field(default=1, gt=0, lt=9)
    ratio: float = 0.5
    flag: bool = False
    choice: Literal["a", "b"] = "a"
    url: HttpUrl | None = None
    when: datetime.date | None = None
    table: dict[Annotated[str, StringConstraints(pattern=r"^[A-Z]$")], str] = Field(default_factory=dict)


BAD = [
    {"text": "", "texts": [], "count": 0},
    {"text": "   ", "texts": ["", "a", "B"], "count": 9, "above": 0, "ratio": "x", "flag": "maybe"},
    {"text": "toolong", "texts": "A", "count": 1.5, "above": 10, "choice": "c", "url": "no", "when": "x"},
    {"text": 5, "texts": [1], "count": "many", "flag": 2, "url": 7, "table": {"a": "x", 1: 2}, "other": 1},
    {"text": True, "texts": {"A": 1}, "count": None, "table": []},
    {"texts": ["A"], "count": True, "ratio": [1], "when": 5, "table": {"A": None}},
    "not a mapping",
]


class _EveryStrict(_Every):
    """The same, strict, as a lesson is: nothing converted, so other errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


@pytest.mark.parametrize("model", [_Every, _EveryStrict])
@pytest.mark.parametrize("data", BAD)
def test_no_pydantic_wording_for_any_error(data, model):
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    for error in caught.value.errors():
        path = tuple(step for step in error["loc"] if step != "[key]")
        message = _describe(error, path, _Scan())
        assert message and error["msg"] not in message, (error, message)
        for phrase in RAW:
            assert phrase not in message, (error, message)

"""One test per rule of the dialogue checker, each asserting the exact `file:line: where: message` lines."""

from __future__ import annotations

import pytest

from bot.loader import LessonError, load_all, load_file, load_text

# Lines 1-10; every body below starts on line 11, and its comments give the line numbers.
HEAD = """\
lesson:
  id: tiny
  title: Tiny
  description: A tiny lesson.
  source: {title: T, author: A, publication: P, date: D}
  covers: [C1]
sections:
  - id: main
    title: Main
    nodes:
"""

END = """\
      - id: b
        end: Bye
"""


def problems(text: str, name: str = "x.yaml") -> list[str]:
    """The problem lines `load_text` reports for `text` (failing if it loads)."""
    with pytest.raises(LessonError) as caught:
        load_text(text, name)
    lines = [str(p) for p in caught.value.problems]
    assert str(caught.value) == "\n".join(lines)
    return lines


def test_head_is_ten_lines_and_a_minimal_lesson_loads():
    assert len(HEAD.splitlines()) == 10
    loaded = load_text(HEAD + "      - id: a\n        covers: [C1]\n        say: Hi\n" + END, "x.yaml")
    assert list(loaded.lesson.nodes) == ["a", "b"]
    assert loaded.lines[("sections", 0, "nodes", 1)] == 14


# --- YAML itself ----------------------------------------------------------------------


def test_yaml_syntax_error():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1]   # 12\n"
        '        say: "Hi" there  # 13\n' + END
    )
    assert problems(text) == ["x.yaml:13: lesson: YAML syntax error: expected <block end>, but found '<scalar>'"]


def test_unclosed_bracket_is_a_syntax_error_where_yaml_notices_it():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1\n"  # 12
        "        say: Hi\n"  # 13
        + END
    )
    assert problems(text) == ["x.yaml:13: lesson: YAML syntax error: expected ',' or ']', but got ':'"]


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("", "the file is empty"),
        ("# only a note\n", "the file holds only comments"),
        ("just a string\n", "the file is a single value"),
        ("- a\n- b\n", "the file is a list"),
    ],
)
def test_a_file_must_be_a_mapping(text, what):
    assert problems(text) == [f"x.yaml:1: lesson: {what}: a dialogue file must be a mapping with lesson and sections"]


def test_duplicate_key():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1]   # 12\n"
        "        say: Hi        # 13\n"
        "        say: Hello     # 14\n" + END
    )
    assert problems(text) == ["x.yaml:14: a: key 'say' is given twice"]


def test_duplicate_key_in_the_lesson_metadata():
    text = HEAD.replace("  covers: [C1]\n", "  covers: [C1]\n  title: Again\n") + (
        "      - id: a\n        covers: [C1]\n        say: Hi\n" + END
    )
    assert problems(text) == ["x.yaml:7: lesson: key 'title' is given twice"]


# --- shape: missing, unknown and malformed fields -------------------------------------


def test_unknown_field():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1]   # 12\n"
        "        say: Hi        # 13\n"
        "        colour: red    # 14\n" + END
    )
    assert problems(text) == ["x.yaml:14: a: unknown field 'colour'"]


def test_missing_field_in_an_option():
    text = HEAD + (
        "      - id: q              # 11\n"
        "        covers: [C1]       # 12\n"
        "        ask: Which?        # 13\n"
        "        options:           # 14\n"
        "          - text: A        # 15\n"
        "            correct: true  # 16\n"
        "          - text: B        # 17\n"
        "            feedback: No.  # 18\n" + END
    )
    assert problems(text) == ["x.yaml:15: q: missing field 'feedback'"]


def test_missing_fields_of_the_lesson():
    text = "lesson:\n  id: tiny\n"
    assert problems(text) == [
        "x.yaml:1: lesson: missing field 'covers'",
        "x.yaml:1: lesson: missing field 'description'",
        "x.yaml:1: lesson: missing field 'sections'",
        "x.yaml:1: lesson: missing field 'source'",
        "x.yaml:1: lesson: missing field 'title'",
    ]


def test_node_needs_exactly_one_kind():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1]   # 12\n"
        "        say: Hi        # 13\n"
        "        end: Bye       # 14\n"
        "      - id: c          # 15\n"
        "        covers: [C1]   # 16\n" + END
    )
    assert problems(text) == [
        "x.yaml:11: a: a node needs exactly one of say, ask, write or end",
        "x.yaml:15: c: a node needs exactly one of say, ask, write or end",
    ]


def test_ids_must_match_the_pattern():
    text = HEAD + (
        "      - id: Big        # 11\n"
        "        covers: [c1]   # 12\n"
        "        say: Hi        # 13\n" + END
    )
    assert problems(text) == [
        "x.yaml:11: Big: 'id' must match ^[a-z0-9][a-z0-9_-]*$, got 'Big'",
        "x.yaml:12: Big: 'covers' must match ^[A-Z][0-9]*$, got 'c1'",
    ]


def test_a_question_needs_two_options():
    text = HEAD + (
        "      - id: q              # 11\n"
        "        covers: [C1]       # 12\n"
        "        ask: Which?        # 13\n"
        "        options:           # 14\n"
        "          - text: A        # 15\n"
        "            correct: true\n"
        "            feedback: Yes.\n" + END
    )
    assert problems(text) == ["x.yaml:14: q: 'options' lists 1 item; it needs at least 2"]


# --- ids ------------------------------------------------------------------------------


def test_duplicate_node_id():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1]   # 12\n"
        "        say: Hi        # 13\n"
        "      - id: a          # 14\n"
        "        say: Again     # 15\n" + END
    )
    assert problems(text) == ["x.yaml:14: a: duplicate node id 'a' (first used in section 'main')"]


def test_duplicate_section_id():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1]   # 12\n"
        "        say: Hi        # 13\n"
        "  - id: main           # 14\n"
        "    title: Again\n"
        "    nodes:\n" + END
    )
    assert problems(text) == ["x.yaml:14: main: section id 'main' is used twice"]


def test_node_id_too_long_for_button_data():
    node_id = "n" * 33
    text = HEAD + (
        f"      - id: {node_id}  # 11\n"
        "        covers: [C1]\n"
        "        say: Hi\n" + END
    )
    assert problems(text) == [
        f"x.yaml:11: {node_id}: id: 33 bytes long; at most 32 fit in Telegram's 64-byte button data"
    ]


def test_node_id_of_32_bytes_fits():
    text = HEAD + f"      - id: {'n' * 32}\n        covers: [C1]\n        say: Hi\n" + END
    assert load_text(text, "x.yaml").lesson.start_id == "n" * 32


def test_lesson_id_too_long_for_button_data():
    text = HEAD.replace("id: tiny", "id: " + "t" * 25) + "      - id: a\n        covers: [C1]\n        say: Hi\n" + END
    assert problems(text) == ["x.yaml:2: lesson: 'id' is 25 characters long; at most 24 are allowed"]


def test_two_files_with_one_lesson_id(tmp_path):
    body = "      - id: a\n        covers: [C1]\n        say: Hi\n" + END
    (tmp_path / "a.yaml").write_text(HEAD + body)
    (tmp_path / "b.yaml").write_text(HEAD + body)
    with pytest.raises(LessonError) as caught:
        load_all([tmp_path])
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'b.yaml'}:2: lesson: lesson id 'tiny' is also used by {tmp_path / 'a.yaml'}"
    ]


# --- the graph ------------------------------------------------------------------------


def test_next_names_no_node():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1]   # 12\n"
        "        say: Hi        # 13\n"
        "        next: nowhere  # 14\n" + END
    )
    assert problems(text) == ["x.yaml:14: a: no node 'nowhere' for next"]


def test_start_names_no_node():
    text = HEAD.replace("sections:\n", "start: zz\nsections:\n") + (  # start is line 7
        "      - id: a\n        covers: [C1]\n        say: Hi\n" + END
    )
    assert problems(text) == ["x.yaml:7: lesson: no node 'zz' for start"]


def test_option_next_names_no_node():
    text = HEAD + (
        "      - id: q              # 11\n"
        "        covers: [C1]       # 12\n"
        "        ask: Which?        # 13\n"
        "        options:           # 14\n"
        "          - text: A        # 15\n"
        "            correct: true  # 16\n"
        "            feedback: Yes. # 17\n"
        "          - text: B        # 18\n"
        "            feedback: No.  # 19\n"
        "            next: zz       # 20\n" + END
    )
    assert problems(text) == ["x.yaml:20: q: no node 'zz' for option 2's next"]


def test_unreachable_node():
    text = HEAD + (
        "      - id: a            # 11\n"
        "        covers: [C1]     # 12\n"
        "        say: Hi          # 13\n"
        "        next: b          # 14\n"
        "      - id: lost         # 15\n"
        "        say: Nobody comes here.\n" + END
    )
    assert problems(text) == ["x.yaml:15: lost: cannot be reached from the start ('a')"]


def test_loop_with_no_way_out():
    text = HEAD + (
        "      - id: a            # 11\n"
        "        covers: [C1]     # 12\n"
        "        say: Hi          # 13\n"
        "      - id: loop         # 14\n"
        "        say: Round we go # 15\n"
        "        next: a          # 16\n"
        "      - id: b            # 17\n"
        "        end: Bye         # 18\n"
    )
    assert problems(text) == [
        "x.yaml:11: a: no end can be reached from here (a loop with no way out)",
        "x.yaml:14: loop: no end can be reached from here (a loop with no way out)",
        "x.yaml:17: b: cannot be reached from the start ('a')",
    ]


def test_wrong_answers_that_can_only_loop_are_found():
    # The only correct option's next goes back to the question: answering can never finish.
    text = HEAD + (
        "      - id: q              # 11\n"
        "        covers: [C1]       # 12\n"
        "        ask: Which?        # 13\n"
        "        next: q            # 14\n"
        "        options:\n"
        "          - text: A\n"
        "            correct: true\n"
        "            feedback: Yes.\n"
        "          - text: B\n"
        "            feedback: No.\n"
        "      - id: b              # 21\n"
        "        end: Bye\n"
    )
    assert problems(text) == [
        "x.yaml:11: q: no end can be reached from here (a loop with no way out)",
        "x.yaml:21: b: cannot be reached from the start ('q')",
    ]


def test_last_message_leads_nowhere():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1]\n"
        "        say: Hi\n"
    )
    assert problems(text) == ["x.yaml:11: a: leads nowhere: give it a next, or follow it with an end node"]


def test_last_question_option_leads_nowhere():
    text = HEAD + (
        "      - id: q              # 11\n"
        "        covers: [C1]       # 12\n"
        "        ask: Which?        # 13\n"
        "        options:           # 14\n"
        "          - text: A        # 15\n"
        "            correct: true\n"
        "            feedback: Yes.\n"
        "          - text: B\n"
        "            feedback: No.\n"
    )
    assert problems(text) == ["x.yaml:15: q: leads nowhere: option 1 needs a next, as no node follows this one"]


def test_lesson_with_no_end():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1]\n"
        "        say: Hi\n"
        "        next: a\n"
    )
    assert problems(text) == ["x.yaml:7: lesson: the lesson has no end node"]


# --- questions ------------------------------------------------------------------------


def test_graded_question_without_a_correct_option():
    text = HEAD + (
        "      - id: q              # 11\n"
        "        covers: [C1]       # 12\n"
        "        ask: Which?        # 13\n"
        "        options:           # 14\n"
        "          - text: A\n"
        "            feedback: No.\n"
        "            next: b\n"
        "          - text: B\n"
        "            feedback: No.\n"
        "            next: b\n" + END
    )
    assert problems(text) == ["x.yaml:14: q: graded question has no correct option"]


def test_graded_question_without_a_correct_option_is_one_problem_not_its_loops():
    # Without a next, a wrong answer asks again: with no right answer there is no way on,
    # and b is never reached. Both follow from the one mistake, so only it is reported.
    text = HEAD + (
        "      - id: q              # 11\n"
        "        covers: [C1]\n"
        "        ask: Which?\n"
        "        options:           # 14\n"
        "          - text: A\n"
        "            feedback: No.\n"
        "          - text: B\n"
        "            feedback: No.\n"
        "      - id: b              # 19\n"
        "        end: Bye\n"
    )
    assert problems(text) == ["x.yaml:14: q: graded question has no correct option"]


def test_ungraded_question_marks_none_correct_and_options_differ():
    text = HEAD + (
        "      - id: q                  # 11\n"
        "        covers: [C1]           # 12\n"
        "        ask: Which?            # 13\n"
        "        graded: false          # 14\n"
        "        options:               # 15\n"
        "          - text: A            # 16\n"
        "            correct: true      # 17\n"
        "            misconception: M1  # 18\n"
        "            feedback: Yes.     # 19\n"
        "          - text: a            # 20\n"
        "            feedback: No.      # 21\n" + END
    )
    assert problems(text) == [
        "x.yaml:17: q: option 1 is marked correct in an ungraded question",
        "x.yaml:18: q: option 1 is correct but names a misconception",
        "x.yaml:20: q: option 2 repeats an earlier option's text",
    ]


def test_written_questions_have_a_model_answer_and_no_phrase_verdicts():
    text = HEAD + (
        "      - id: w              # 11\n"
        "        covers: [C1]       # 12\n"
        "        write: Why?        # 13\n"
        "        key_phrases: [x]   # 14\n"
        "        matched: Good.     # 15\n"
        "      - id: w2             # 16\n"
        "        write: Why?        # 17\n"
        "        feedback: Hmm.     # 18\n"
        "      - id: w3             # 19\n"
        "        write: Why?        # 20\n" + END
    )
    assert problems(text) == [
        "x.yaml:11: w: key_phrases, matched and unmatched are no longer used (a phrase match is no verdict "
        "on a written answer): give a model_answer and a checklist instead",
        "x.yaml:16: w2: a written question's feedback is now called model_answer",
        "x.yaml:19: w3: missing field 'model_answer'",
    ]


# --- Telegram's limits ----------------------------------------------------------------


def test_message_over_4096_characters():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1]   # 12\n"
        f"        say: {'x' * 4097}\n" + END
    )
    assert problems(text) == ["x.yaml:13: a: say is 4097 characters; Telegram allows 4096"]


def test_message_of_4096_characters_fits():
    text = HEAD + f"      - id: a\n        covers: [C1]\n        say: {'x' * 4096}\n" + END
    assert load_text(text, "x.yaml").lesson.nodes["a"].say == "x" * 4096


def test_option_over_100_characters():
    text = HEAD + (
        "      - id: q              # 11\n"
        "        covers: [C1]       # 12\n"
        "        ask: Which?        # 13\n"
        "        options:           # 14\n"
        "          - text: B\n"
        "            feedback: No.\n"
        f"          - text: {'y' * 101}\n"
        "            correct: true\n"
        "            feedback: Yes.\n" + END
    )
    assert problems(text) == ["x.yaml:17: q: option 2's text is 101 characters; Telegram allows 100"]


def test_question_with_its_options_over_4096_characters():
    text = HEAD + (
        "      - id: q              # 11\n"
        "        covers: [C1]       # 12\n"
        f"        ask: {'x' * 4090}\n"
        "        options:\n"
        "          - text: A\n"
        "            correct: true\n"
        "            feedback: Yes.\n"
        "          - text: B\n"
        "            feedback: No.\n" + END
    )
    assert problems(text) == ["x.yaml:13: q: the question with its options is 4102 characters; Telegram allows 4096"]


# --- coverage -------------------------------------------------------------------------


def test_coverage_and_argument_map():
    head = HEAD.replace("  covers: [C1]\n", "  covers: [C1]\n  argument_map:\n    C1: One.\n")  # +2 lines
    text = head + (
        "      - id: a          # 13\n"
        "        covers: [C2]   # 14\n"
        "        say: Hi\n" + END
    )
    assert problems(text) == [
        "x.yaml:6: lesson: the lesson claims to cover 'C1' but no node covers it",
        "x.yaml:14: a: 'C2' is not in the lesson's argument_map",
    ]


# --- all at once, and the bundled lesson ----------------------------------------------


def test_every_shape_problem_is_reported_at_once():
    text = HEAD + (
        "      - id: a          # 11\n"
        "        covers: [C1]   # 12\n"
        "        say: Hi        # 13\n"
        "        say: Hello     # 14\n"
        "        colour: red    # 15\n"
        "      - id: Q          # 16\n"
        "        covers: [c1]   # 17\n"
        "        ask: Which?    # 18\n"
        "        options:       # 19\n"
        "          - text: A    # 20\n"
        "            correct: true\n"
        "          - text: B\n"
        "            feedback: No.\n" + END
    )
    assert problems(text) == [
        "x.yaml:14: a: key 'say' is given twice",
        "x.yaml:15: a: unknown field 'colour'",
        "x.yaml:16: Q: 'id' must match ^[a-z0-9][a-z0-9_-]*$, got 'Q'",
        "x.yaml:17: Q: 'covers' must match ^[A-Z][0-9]*$, got 'c1'",
        "x.yaml:20: Q: missing field 'feedback'",
    ]


def test_every_graph_problem_is_reported_at_once():
    text = HEAD + (
        "      - id: a              # 11\n"
        "        covers: [C1]       # 12\n"
        "        say: Hi            # 13\n"
        "        next: nowhere      # 14\n"
        "      - id: q              # 15\n"
        "        ask: Which?        # 16\n"
        "        options:           # 17\n"
        f"          - text: {'y' * 101}\n"
        "            feedback: No.\n"
        "          - text: B\n"
        "            feedback: No.\n"
        "      - id: a              # 22\n" + END.replace("      - id: b\n", "")
    )
    assert problems(text) == [
        "x.yaml:14: a: no node 'nowhere' for next",
        "x.yaml:17: q: graded question has no correct option",
        "x.yaml:18: q: option 1's text is 101 characters; Telegram allows 100",
        "x.yaml:22: a: duplicate node id 'a' (first used in section 'main')",
    ]


def test_problems_of_several_files_are_reported_together(tmp_path):
    (tmp_path / "a.yaml").write_text(HEAD + "      - id: a\n        covers: [C1]\n        say: Hi\n        next: zz\n" + END)
    (tmp_path / "b.yaml").write_text("lesson: [\n")
    (tmp_path / "notes.txt").write_text("not a lesson")
    with pytest.raises(LessonError) as caught:
        load_all([tmp_path])
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'a.yaml'}:14: a: no node 'zz' for next",
        f"{tmp_path / 'b.yaml'}:2: lesson: YAML syntax error: expected the node content, but found '<stream end>'",
    ]


def test_unreadable_file_and_empty_folder(tmp_path):
    with pytest.raises(LessonError) as caught:
        load_file(tmp_path / "missing.yaml")
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'missing.yaml'}:1: lesson: cannot read file: No such file or directory"
    ]
    with pytest.raises(LessonError) as caught:
        load_all([tmp_path])
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path}:1: lesson: no dialogue files (*.yaml or *.yml) found"]


def test_bundled_core_lesson_validates(core_path):
    loaded = load_file(core_path)
    lesson = loaded.lesson
    assert lesson.id == "madman-core"
    assert lesson.start_id == "welcome"
    assert [s.id for s in lesson.sections] == ["setting", "madman", "backfire", "reflect"]
    assert len(loaded.content_hash) == 16

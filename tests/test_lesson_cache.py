"""Validated lessons kept between starts (bot.lesson_cache): the next start takes the
lesson from the cache, and nothing edited, damaged or foreign is ever taken for it."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot import lesson_cache
from bot import lesson_text as parsing  # the module; `lesson_text` is also a fixture here
from bot.cli import main
from bot.lesson_cache import LessonCache
from bot.loader import LessonError, load_all, load_file
from bot.settings import TOKEN_NAMES, Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def folder(tmp_path) -> Path:
    return tmp_path / "cache"


def test_the_second_load_comes_from_the_cache_and_equals_the_first(folder, monkeypatch):
    cache = LessonCache(folder)
    first = load_all([ROOT / "dialogues"], cache)
    assert sorted(first) == ["madman", "madman-core"]
    assert len(list(folder.glob("*.pickle"))) == 2
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # pickles: the folder is the owner's alone

    monkeypatch.setattr(parsing, "_parse", lambda text: pytest.fail("the file was parsed again"))
    second = load_all([ROOT / "dialogues"], cache)
    for lesson_id, loaded in first.items():
        again = second[lesson_id]
        assert again.lesson == loaded.lesson
        assert again.content_hash == loaded.content_hash
        assert again.path == loaded.path
        assert again.lines == loaded.lines


def test_a_lesson_from_the_cache_reports_where_it_is_now(folder, tmp_path, lesson_text, monkeypatch):
    cache = LessonCache(folder)
    first = tmp_path / "a.yaml"
    first.write_text(lesson_text())
    load_file(first, cache)
    moved = tmp_path / "elsewhere" / "b.yaml"
    moved.parent.mkdir()
    moved.write_text(lesson_text())
    monkeypatch.setattr(parsing, "_parse", lambda text: pytest.fail("the file was parsed again"))
    assert load_file(moved, cache).path == moved


def test_an_edited_file_is_read_afresh(folder, tmp_path, lesson_text):
    cache = LessonCache(folder)
    path = tmp_path / "tiny.yaml"
    path.write_text(lesson_text())
    assert load_file(path, cache).lesson.title == "A tiny lesson"
    path.write_text(lesson_text(("title: A tiny lesson", "title: A smaller lesson")))
    assert load_file(path, cache).lesson.title == "A smaller lesson"


def test_a_file_broken_after_it_was_cached_is_refused(folder, tmp_path, lesson_text):
    cache = LessonCache(folder)
    path = tmp_path / "tiny.yaml"
    path.write_text(lesson_text())
    load_file(path, cache)
    path.write_text(lesson_text(("next: poll", "next: pol")))
    with pytest.raises(LessonError) as caught:
        load_file(path, cache)
    assert [str(problem) for problem in caught.value.problems] == [f"{path}:29: q1: no node 'pol' for next"]
    assert len(list(folder.glob("*.pickle"))) == 1  # a broken file is never kept


@pytest.mark.parametrize(
    "content",
    [b"", b"not a pickle", b"\x80\x05K\x01.", b"\x80\x05\x95\x00"],
    ids=["empty", "text", "another object", "cut short"],
)
def test_a_damaged_entry_is_a_miss_and_is_written_again(folder, tmp_path, lesson_text, content):
    cache = LessonCache(folder)
    path = tmp_path / "tiny.yaml"
    path.write_text(lesson_text())
    expected = load_file(path, cache)
    (entry,) = folder.glob("*.pickle")
    entry.write_bytes(content)
    assert load_file(path, cache).lesson == expected.lesson
    assert load_file(path, LessonCache(folder)).lesson == expected.lesson
    assert entry.read_bytes() != content


def test_new_code_does_not_take_what_old_code_validated(folder, tmp_path, lesson_text, monkeypatch):
    cache = LessonCache(folder)
    path = tmp_path / "tiny.yaml"
    path.write_text(lesson_text())
    load_file(path, cache)
    monkeypatch.setattr(lesson_cache, "code_key", lambda: b"another release")
    parsed = []
    real_parse = parsing._parse
    monkeypatch.setattr(parsing, "_parse", lambda text: parsed.append(1) or real_parse(text))
    load_file(path, cache)
    assert parsed == [1]
    assert len(list(folder.glob("*.pickle"))) == 2


def test_without_the_source_to_read_nothing_is_cached(folder, tmp_path, lesson_text, monkeypatch):
    monkeypatch.setattr(lesson_cache, "__file__", str(tmp_path / "only-bytecode" / "lesson_cache.py"))
    lesson_cache.code_key.cache_clear()
    try:
        assert lesson_cache.code_key() is None
        path = tmp_path / "tiny.yaml"
        path.write_text(lesson_text())
        load_file(path, LessonCache(folder))
        assert not folder.exists()
    finally:
        monkeypatch.undo()
        lesson_cache.code_key.cache_clear()


def test_the_code_key_follows_the_package_source():
    key = lesson_cache.code_key()
    assert len(key) == 32 and key == lesson_cache.code_key()
    lesson_cache.code_key.cache_clear()
    assert lesson_cache.code_key() == key


def test_a_cache_folder_that_cannot_be_written_only_costs_time(tmp_path, lesson_text):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = LessonCache(blocker / "cache")  # a folder inside a file cannot be made
    path = tmp_path / "tiny.yaml"
    path.write_text(lesson_text())
    assert load_file(path, cache).lesson.id == "tiny"
    assert load_file(path, cache).lesson.id == "tiny"


def test_a_write_that_fails_leaves_nothing_behind(folder, tiny):
    cache = LessonCache(folder)
    unpicklable = dataclasses.replace(tiny, lines={("lesson",): lambda: 1})
    cache.put(b"tiny", unpicklable)
    assert list(folder.iterdir()) == []
    assert cache.get(b"tiny", tiny.path) is None


def test_only_the_newest_entries_are_kept(folder, tmp_path, lesson_text, monkeypatch):
    monkeypatch.setattr(lesson_cache, "KEPT", 3)
    cache = LessonCache(folder)
    path = tmp_path / "tiny.yaml"
    for n in range(5):
        path.write_text(lesson_text(("title: A tiny lesson", f"title: Version {n}")))
        load_file(path, cache)
        os.utime(next(iter(sorted(folder.glob("*.pickle"), key=lambda p: p.stat().st_mtime_ns))), (n, n))
    assert len(list(folder.glob("*.pickle"))) == 3
    assert not list(folder.glob(".*.part"))


def test_the_setting_defaults_to_the_user_cache_folder_and_can_be_turned_off(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("TUTORBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Settings.from_environment().cache_dir == tmp_path / "xdg" / "tutorbot"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Settings.from_environment().cache_dir == tmp_path / "home" / ".cache" / "tutorbot"
    monkeypatch.setenv("TUTORBOT_CACHE_DIR", "")
    assert Settings.from_environment().cache_dir is None
    monkeypatch.setenv("TUTORBOT_CACHE_DIR", str(tmp_path / "mine"))
    assert Settings.from_environment().cache_dir == tmp_path / "mine"


def test_play_keeps_the_lessons_and_check_never_uses_them(clean_environment, tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORBOT_CACHE_DIR", str(tmp_path / "kept"))
    runner = CliRunner()
    result = runner.invoke(main, ["lessons"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "kept").glob("*.pickle"))) == 2

    parsed = []
    real_parse = parsing._parse
    monkeypatch.setattr(parsing, "_parse", lambda text: parsed.append(1) or real_parse(text))
    played = runner.invoke(main, ["play", "--lesson", "madman-core", "--db", "t.db"], input="/quit\n")
    assert played.exit_code == 0, played.output
    assert "Part 1 of 4: The question the column asks" in played.stdout
    assert parsed == []
    checked = runner.invoke(main, ["check"])
    assert checked.exit_code == 0
    assert len(parsed) == 2  # check reads every file itself


def test_a_start_the_cache_serves_never_loads_the_yaml_reader(folder):
    """What keeping lessons buys a restarted bot: PyYAML and the text reader are not even
    imported (their memory and import time are the point), and the lessons are whole."""
    code = (
        "import sys; from pathlib import Path; from bot.lesson_cache import LessonCache; from bot.loader import load_all\n"
        f"lessons = load_all([Path({str(ROOT / 'dialogues')!r})], LessonCache(Path({str(folder)!r})))\n"
        "print(sorted(lessons), len(lessons['madman'].lesson.nodes) > 50, 'yaml' in sys.modules, 'bot.lesson_text' in sys.modules)"
    )
    run = lambda: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert run().split() == ["['madman',", "'madman-core']", "True", "True", "True"]  # a miss reads the files
    assert run().split() == ["['madman',", "'madman-core']", "True", "False", "False"]


def test_env_example_documents_every_setting():
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    for name in Settings.model_fields:
        names = set(TOKEN_NAMES) if name == "telegram_bot_token" else {f"TUTORBOT_{name.upper()}"}
        assert names & documented, f"{name} is not in .env.example"

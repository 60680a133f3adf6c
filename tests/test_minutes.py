"""Every place that tells a learner how long a lesson takes says what the estimate says,
and every count of questions is the count the score is out of."""

from __future__ import annotations

import re

from bot.engine import graded_questions
from bot.loader import load_all
from bot.validate import estimated_minutes
from tests.conftest import ROOT

LESSONS = load_all([ROOT / "dialogues"])


def test_the_readme_states_each_lessons_estimated_minutes():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for lesson_id, loaded in LESSONS.items():
        stated = re.search(rf"`{lesson_id}` — .*?about (\d+) minutes", readme, re.S)
        assert stated, f"the README does not say how long {lesson_id} takes"
        assert int(stated[1]) == estimated_minutes(loaded.lesson), lesson_id


def test_no_lesson_text_states_minutes_or_a_count_of_questions_of_its_own():
    for loaded in LESSONS.values():
        lesson = loaded.lesson
        texts = [lesson.lesson.description] + [node.text for node in lesson.nodes.values()]
        for text in texts:
            assert not re.search(r"\b\d+\s*(?:minutes|mins?)\b", text), text
            for count in re.findall(r"\b(\d+) (?:graded )?questions\b", text):
                assert int(count) == graded_questions(lesson), text

"""Instructor review in Telegram: /report, /review with feedback delivered to the learner,
/transcript, and who may see what."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from bot import access, reports
from bot.tutor import Tutor
from tests.report_data import ANN, BEN, REFLECTION, START, build
from tests.test_telegram_bot import Harness

INSTRUCTOR, ADMIN, STRANGER = 9500, 9501, 9502
GROUP = -100900
ANN_ID, BEN_ID = int(ANN[3:]), int(BEN[3:])


def harness(tmp_path: Path) -> Harness:
    store, _, _ = build(tmp_path / "bot.db")  # the known data set, then the bot on the same file
    store.close()
    h = Harness(tmp_path)
    h.settings.instructors = [INSTRUCTOR]
    h.telegram.next_update_id = h.telegram.next_message_id = 50_000
    return h


async def test_an_instructor_gets_the_report_and_its_files(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        [report] = await h.say(INSTRUCTOR, "/report")
        text = report["text"]
        assert "Learners: 4 started, 2 finished" in text
        # Ann 9 gaps of 30 s = 4.5 min, Ben 11 gaps = 5.5 min: the median is 5.0.
        assert "Median time to finish: 5 min 00 s;" in text and "mean score at the first try: 2.5 of 3" in text
        assert "• 1 of 2:" in text  # the remedied question: Ann right, Ben wrong at the first try
        assert "M1 (1)" in text and "Reflections waiting for review: 2" in text
        labels = [label for label, _ in h.telegram.buttons(report)]
        assert labels == ["CSV gradebook", "JSON Lines", "xAPI", "HTML report"]
        await h.tap(INSTRUCTOR, report, "CSV gradebook")
        document = h.telegram.last_bot_message(INSTRUCTOR)
        assert document["document"]["file_name"] == "tutorbot-all.csv"
        data = h.telegram.documents[(INSTRUCTOR, document["message_id"])]
        assert data.startswith(b"\xef\xbb\xbfname,")  # a BOM, so that Excel reads UTF-8
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        assert sorted(r["name"] for r in rows) == ["Ann Archer", "Ben Brown", "Cat Chen", "Dan Diaz"]
        for label, name, starts in (("HTML report", "tutorbot-all.html", "<!doctype html>"), ("xAPI", "tutorbot-all.xapi.json", "[")):
            await h.tap(INSTRUCTOR, report, label)
            document = h.telegram.last_bot_message(INSTRUCTOR)
            content = h.telegram.documents[(INSTRUCTOR, document["message_id"])].decode()
            assert document["document"]["file_name"] == name and content.lower().startswith(starts), content[:40]


async def test_who_may_see_what(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        # A stranger, and an instructor asking for a lesson that does not exist: the same refusal.
        [refused] = await h.say(STRANGER, "/report")
        assert refused["text"] == access.REFUSAL
        [refused] = await h.say(INSTRUCTOR, "/report nosuch")
        assert refused["text"] == access.REFUSAL
        [refused] = await h.say(STRANGER, "/review")
        assert refused["text"] == access.REFUSAL
        [refused] = await h.say(STRANGER, f"/transcript {ANN}")
        assert refused["text"] == access.REFUSAL
        [refused] = await h.say(STRANGER, "/transcript tg:424242")  # no such learner: the same words
        assert refused["text"] == access.REFUSAL
        # A group's admin sees the members of the lessons assigned in their group: here, Ann
        # only, and only what she did from when she joined (nothing, if she joined after it).
        number = h.store.assign(f"tg:{GROUP}", "Class", "madman-core", f"tg:{ADMIN}")
        h.store.join(number, ANN)
        h.telegram.admins[GROUP] = {ADMIN}
        [item] = await h.say(ADMIN, "/review")
        assert item["text"].startswith("No reflection is waiting")
        h.store.db.execute("UPDATE assignment_members SET joined_at = ?", [START.isoformat(timespec="milliseconds")])
        [report] = await h.say(ADMIN, "/report")
        assert "Learners: 1 started, 1 finished" in report["text"]
        [item] = await h.say(ADMIN, "/review")
        assert "Ann Archer" in item["text"] and REFLECTION[ANN] in item["text"]
        await h.say(ADMIN, f"/transcript {BEN}")
        assert h.telegram.last_bot_message(ADMIN)["text"] == access.REFUSAL
        # A learner gets their own transcript, and only theirs.
        await h.say(ANN_ID, "/transcript")
        document = h.telegram.last_bot_message(ANN_ID)
        content = h.telegram.documents[(ANN_ID, document["message_id"])].decode()
        assert REFLECTION[ANN] in content and REFLECTION[BEN] not in content
        assert "> " in content and "(after " in content


async def test_review_and_feedback_reach_the_learner_even_after_a_failure(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        [item] = await h.say(INSTRUCTOR, "/review")
        assert "Ann Archer" in item["text"] and REFLECTION[ANN] in item["text"] and "A model answer" in item["text"]
        [prompt] = await h.tap(INSTRUCTOR, item, "Reply with feedback")
        assert "Send your feedback to Ann Archer" in prompt["text"]
        h.telegram.inject("500", "sendMessage", chats=[ANN_ID])  # Telegram fails for Ann for a while
        replies = await h.say(INSTRUCTOR, "Good point; now say why the promise matters more than the threat.")
        assert "Sent to them, and recorded." in replies[0]["text"]
        assert "Ben Brown" in replies[1]["text"]  # the next one waiting
        row = h.store.db.execute("SELECT status, feedback FROM reviews WHERE status = 'answered'").fetchone()
        assert row[1].startswith("Good point")
        h.telegram.clear_faults()
        for _ in range(100):  # the outbox tries again
            if h.telegram.bot_messages(ANN_ID):
                break
            await asyncio.sleep(0.1)
        [feedback] = h.telegram.bot_messages(ANN_ID)
        assert "Feedback from your instructor" in feedback["text"] and "Good point" in feedback["text"]
        assert REFLECTION[ANN][:30] in feedback["text"]
        # Ben's: marked reviewed; then nothing waits.
        [done] = await h.tap(INSTRUCTOR, replies[1], "✓ Reviewed")
        assert done["text"].startswith("No reflection is waiting for review.")
        # A forgotten learner is in no report made afterwards.
        await h.say(ANN_ID, "/forget")
        await h.tap(ANN_ID, h.last(ANN_ID), "Yes, delete everything")
        [report] = await h.say(INSTRUCTOR, "/report")
        assert "Learners: 3 started, 1 finished" in report["text"]


async def test_a_second_reviewers_old_buttons_never_change_what_was_recorded(tmp_path: Path) -> None:
    other = INSTRUCTOR + 10
    async with harness(tmp_path) as h:
        h.settings.instructors = [INSTRUCTOR, other]
        [mine] = await h.say(INSTRUCTOR, "/review")
        [theirs] = await h.say(other, "/review")  # both look at Ann's reflection
        assert "Ann Archer" in mine["text"] and "Ann Archer" in theirs["text"]
        await h.tap(INSTRUCTOR, mine, "Reply with feedback")
        replies = await h.say(INSTRUCTOR, "Good point; now say why the promise matters more.")
        assert "Sent to them, and recorded." in replies[0]["text"]

        def ann_review() -> tuple:
            return h.store.db.execute(
                "SELECT r.status, r.feedback FROM reviews r JOIN events e ON e.id = r.event WHERE e.learner = ?", [ANN]
            ).fetchone()

        stale = dict(h.telegram.buttons(theirs))  # as on their screen, before any tap
        for label in ("Reply with feedback", "✓ Reviewed", "Skip"):
            notice, following = await h.tap(other, theirs, data=stale[label])
            assert "sent already, so nothing changed" in notice["text"], label
            assert "Ben Brown" in following["text"]  # what still waits
            assert ann_review() == ("answered", "Good point; now say why the promise matters more.")
        # Someone writing feedback keeps the reflection: another reviewer's tap changes nothing.
        ben = following
        await h.tap(other, ben, "Reply with feedback")
        notice, _ = await h.tap(INSTRUCTOR, replies[1], "✓ Reviewed")  # Ben's, shown after the feedback
        assert "Another reviewer is writing feedback on this one" in notice["text"]
        sent = await h.say(other, "Look at the promise half again.")
        assert "Sent to them, and recorded." in sent[0]["text"]
        row = h.store.db.execute(
            "SELECT r.status, r.reviewer FROM reviews r JOIN events e ON e.id = r.event WHERE e.learner = ?", [BEN]
        ).fetchone()
        assert row == ("answered", f"tg:{other}")


async def test_the_report_counts_people_not_attempts(tmp_path: Path) -> None:
    store, lessons, _ = build(tmp_path / "bot.db")
    # Ann does the lesson again, and a second time in a group: three attempts, one person.
    tutor = Tutor(store, lessons, seeds=lambda: 11)
    tutor.begin(ANN, ANN, "madman-core", restart=True)
    tutor.begin(ANN, f"tg:{GROUP}", "madman-core")
    [summary] = reports.summarize(store, lessons)
    assert (summary.learners, summary.finishers, summary.started, summary.finished) == (4, 2, 6, 2)
    assert summary.who() == "4 started, 2 finished (6 attempts, 2 finished: a restart or a group session is another)"
    store.close()


def test_a_question_of_several_lines_keeps_to_its_row_in_the_printed_report() -> None:
    ask = "Four aims or demands:\n\n• A: stop enriching\n• B: talk"
    assert reports.shorten(ask, 58) == "Four aims or demands: • A: stop enriching • B: talk"
    assert "\n" not in reports.shorten(ask * 3, 58) and len(reports.shorten(ask * 3, 58)) <= 58


async def test_feedback_given_is_in_the_learners_transcript(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        [item] = await h.say(INSTRUCTOR, "/review")
        await h.tap(INSTRUCTOR, item, "Reply with feedback")
        await h.say(INSTRUCTOR, "Good point; now say why the promise matters more than the threat.")
        lines = [reports.plain(line) for line in reports.transcript(h.store, h.tutor.lessons, ANN)]
        [given] = [n for n, line in enumerate(lines) if "Feedback from" in line]
        assert lines[given].endswith(f"📝 Feedback from Learner{INSTRUCTOR}: Good point; now say why the promise matters more than the threat.")
        assert given == len(lines) - 1  # given after all she did, so last
        assert any(REFLECTION[ANN] in line for line in lines[:given])


async def test_a_learner_named_by_their_telegram_id_alone(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        await h.say(INSTRUCTOR, f"/transcript {ANN_ID}")  # as the ids in TUTORBOT_INSTRUCTORS are written
        document = h.telegram.last_bot_message(INSTRUCTOR)
        content = h.telegram.documents[(INSTRUCTOR, document["message_id"])].decode()
        assert REFLECTION[ANN] in content and REFLECTION[BEN] not in content
        await h.say(BEN_ID, f"/transcript {BEN_ID}")  # their own
        assert "document" in h.telegram.last_bot_message(BEN_ID)
        [refused] = await h.say(BEN_ID, f"/transcript {ANN_ID}")  # and only theirs
        assert refused["text"] == access.REFUSAL

"""Self-paced group study: /assign in a group, each member's lesson in private, /standings."""

from __future__ import annotations

from pathlib import Path

from tests.core_lesson import answer, option_data, question_key
from tests.test_telegram_bot import Harness, play_core_lesson

GROUP = -100777
TEACHER, ANN, BEN, STRANGER, CAL = 9001, 9002, 9003, 9004, 9005


async def in_group(h: Harness, user: int, text: str) -> list[dict]:
    before = len(h.telegram.bot_messages(GROUP))
    await h.handled(h.telegram.send_text(user, text, group=GROUP))
    return h.telegram.bot_messages(GROUP)[before:]


def link_of(message: dict) -> str:
    [[button]] = message["reply_markup"]["inline_keyboard"]
    return button["url"]


async def test_an_admin_assigns_and_each_member_counts_for_the_group(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        [posted] = await in_group(h, TEACHER, "/assign madman-core")
        assert "is assigned to this group" in posted["text"]
        link = link_of(posted)
        assert link.startswith("https://t.me/argument_tutor_bot?start=as-")
        start = link.split("?start=")[1]

        # Ann follows the link: the lesson starts in her private chat, noted as the group's.
        replies = await h.say(ANN, f"/start {start}")
        assert "assigned in “Study group”" in replies[0]["text"]
        assert h.store.progress(f"tg:{ANN}", "madman-core", f"tg:{ANN}") is not None
        await play_core_lesson(h, ANN)  # /start again resumes; she goes through to the end
        await h.say(CAL, f"/start {start}")  # a second member finishes too
        await play_core_lesson(h, CAL)
        # Ben follows it and stops early.
        await h.say(BEN, f"/start {start}")
        await h.say(BEN, f"/start {start}")  # twice: still one member

        [standings] = await in_group(h, STRANGER, "/standings")
        text = standings["text"]
        assert "Standings" in text and "Madman theory" in text
        assert f"Learner{ANN}: ✅ finished" in text and f"Learner{CAL}: ✅ finished" in text
        assert f"Learner{BEN}: ▰" in text and "part 1 of" in text
        assert text.count(f"Learner{BEN}") == 1
        # Never anyone's answers or score.
        assert "Yielding" not in text and "result" not in text.lower()


async def test_only_leaders_assign_and_refusals_are_few(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        replies = []
        for _ in range(12):
            replies += await in_group(h, STRANGER, "/assign")
        assert replies and all(r["text"] == "Only the group's admins or instructors can do that." for r in replies)
        assert len(replies) == 1  # rationed: one per 5 seconds in a group
        assert h.store.db.execute("SELECT COUNT(*) FROM assignments").fetchone()[0] == 0
        [none] = await in_group(h, STRANGER, "/standings") or [None]
        assert none is None or "Nothing is assigned" in none["text"]


async def test_an_instructor_may_assign_in_any_group_and_a_bad_lesson_is_named(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.settings.instructors = [TEACHER]
        [refused] = await in_group(h, TEACHER, "/assign nosuch")
        assert "There is no lesson called “nosuch”" in refused["text"]
        [posted] = await in_group(h, TEACHER, "/assign")  # the default lesson
        assert "is assigned to this group" in posted["text"]


async def test_a_forged_or_unknown_assignment_link_is_just_a_start(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        for arg in ["as-999", "as-", "as-1x", "as-" + "9" * 40]:
            replies = await h.say(ANN, f"/start {arg}")
            assert "There is no lesson called" in replies[0]["text"], arg
        assert h.store.db.execute("SELECT COUNT(*) FROM assignment_members").fetchone()[0] == 0


async def test_forget_removes_a_member_from_the_standings(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        [posted] = await in_group(h, TEACHER, "/assign madman-core")
        await h.say(ANN, f"/start {link_of(posted).split('?start=')[1]}")
        ask = (await h.say(ANN, "/forget"))[0]
        await h.tap(ANN, ask, "Yes, delete everything")
        h.app.bot_data["services"].allowance.clear()
        [standings] = await in_group(h, TEACHER, "/standings")
        assert standings["text"] == "No one has started the lesson assigned here yet."


async def test_an_anonymous_admin_is_asked_to_use_their_own_account(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        message = h.telegram._incoming(1087968824, GROUP, text="/assign", entities=[{"type": "bot_command", "offset": 0, "length": 7}])
        message["sender_chat"] = {"id": GROUP, "type": "supergroup", "title": "Study group"}
        before = len(h.telegram.bot_messages(GROUP))
        await h.handled(h.telegram._push({"message": message}))
        [reply] = h.telegram.bot_messages(GROUP)[before:]
        assert "anonymous admin" in reply["text"] and "your own account" in reply["text"]
        assert h.store.db.execute("SELECT COUNT(*) FROM assignments").fetchone()[0] == 0


PRIVATE = "My own thought, long before any group: deterrence is a bluff."
FOR_GROUP = "For the class: a threat works only if the promise is believed too."


async def go_on(h: Harness, user: int, reflection: str, stop_after_writing: bool = False) -> None:
    """Go on in madman-core from where `user` is, every answer right, to its end (or to
    just after its written question)."""
    await h.say(user, "/start madman-core")
    for _ in range(40):
        step = h.last(user)
        labels = [label for label, _ in h.telegram.buttons(step)]
        if "🏁" in step["text"]:
            return
        if "Type your answer" in step["text"]:
            await h.say(user, reflection)
            if stop_after_writing:
                return
        elif labels == ["Continue ▸"]:
            await h.tap(user, step, "Continue ▸")
        elif "Done ▸" in labels:
            await h.tap(user, step, "☐ 1")
            await h.tap(user, h.telegram.message(user, step["message_id"]), "Done ▸")
        else:
            await h.tap(user, step, data=option_data(step, answer(question_key(step))))
    raise AssertionError("the lesson did not end")


async def admin_sees(h: Harness, admin: int, learner: int) -> str:
    """Everything a group's admin gets about `learner`: /review, /transcript and each export."""
    seen = [(await h.say(admin, "/review"))[0]["text"]]
    await h.say(admin, f"/transcript tg:{learner}")
    last = h.last(admin)
    seen.append(h.telegram.documents[(admin, last["message_id"])].decode() if "document" in last else last["text"])
    [report] = await h.say(admin, "/report")
    seen.append(report["text"])
    for label in [label for label, _ in h.telegram.buttons(report)]:
        await h.tap(admin, report, label)
        document = h.last(admin)
        seen.append(h.telegram.documents[(admin, document["message_id"])].decode("utf-8-sig"))
    return "\n".join(seen)


async def test_a_groups_admins_see_a_members_work_from_when_they_joined_only(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await play_core_lesson(h, ANN, reflection=PRIVATE)  # one to one, long before the group
        [posted] = await in_group(h, TEACHER, "/assign madman-core")
        start = link_of(posted).split("?start=")[1]
        assert "its admins will see your answers" in posted["text"]
        replies = await h.say(ANN, f"/start {start}")  # (a link forwarded to her: the same)
        note = replies[0]["text"]
        assert "assigned in “Study group”" in note
        assert "admins will see your answers and written reflections on this lesson from now on" in note
        seen = await admin_sees(h, TEACHER, ANN)
        assert PRIVATE not in seen and "No reflection is waiting" in seen and "No learner has started" in seen

        # She does the lesson again, for the group: that is what the admins see.
        ask = (await h.say(ANN, "/restart"))[0]
        await h.tap(ANN, ask, "Yes, start over")
        await play_core_lesson(h, ANN, reflection=FOR_GROUP)
        await h.say(ANN, f"/start {start}")  # following the link again changes nothing
        seen = await admin_sees(h, TEACHER, ANN)
        assert seen.count(FOR_GROUP) >= 5 and PRIVATE not in seen  # /review, /transcript, JSON Lines, xAPI, HTML
        assert "Learners: 1 started, 1 finished" in seen

        # She herself still sees both.
        await h.say(ANN, "/transcript")
        own = h.telegram.documents[(ANN, h.last(ANN)["message_id"])].decode()
        assert PRIVATE in own and FOR_GROUP in own


async def test_a_member_who_joins_midway_shows_the_admins_only_what_came_after(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await go_on(h, ANN, PRIVATE, stop_after_writing=True)  # then she stops, in private
        [posted] = await in_group(h, TEACHER, "/assign madman-core")
        start = link_of(posted).split("?start=")[1]
        await h.say(ANN, f"/start {start}")  # joining continues her lesson
        await go_on(h, ANN, FOR_GROUP)  # to the end (the written question is behind her)
        seen = await admin_sees(h, TEACHER, ANN)
        assert "Learners: 1 started, 1 finished" in seen
        assert PRIVATE not in seen  # not as a reflection, nor in a state in the JSON Lines

        # After /forget and joining again, the admins see only what she does from then on.
        ask = (await h.say(ANN, "/forget"))[0]
        await h.tap(ANN, ask, "Yes, delete everything")
        await go_on(h, ANN, PRIVATE, stop_after_writing=True)
        await h.say(ANN, f"/start {start}")
        seen = await admin_sees(h, TEACHER, ANN)
        assert PRIVATE not in seen and "No reflection is waiting" in seen

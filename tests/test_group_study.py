"""Live group study: a class goes through a lesson together in its Telegram group, paced
by its instructor, each member's answers recorded for that member."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot import engine, reports
from bot.telegram_bot import study
from tests.core_lesson import CORE, QUESTIONS, RIGHT, WRONG
from tests.fake_telegram import FakeTelegram
from tests.test_telegram_bot import Harness

GROUP = -100555
TEACHER, ANN, BEN, CAT, DAN, STRANGER = 9101, 9102, 9103, 9104, 9105, 9106


async def in_group(h: Harness, user: int, text: str, reply_to: int | None = None) -> list[dict]:
    """`user` sends `text` in the group; the bot's messages to the group that follow."""
    before = len(h.telegram.bot_messages(GROUP))
    await h.handled(h.telegram.send_text(user, text, group=GROUP, reply_to=reply_to))
    return h.telegram.bot_messages(GROUP)[before:]


async def press(h: Harness, user: int, message: dict, data: str) -> str | None:
    """`user` taps a button under a group message; what the bot told them alone."""
    update_id = h.telegram.press(user, message["message_id"], data, group=GROUP)
    query_id = h.telegram.queries[-1]
    await h.handled(update_id)
    answers = [p for m, p in h.telegram.calls if m == "answerCallbackQuery" and p["callback_query_id"] == query_id]
    assert len(answers) == 1, answers  # every tap is answered once, so no button keeps spinning
    return answers[0].get("text")


async def vote(h: Harness, user: int, poll_message: dict, option_text: str) -> None:
    poll = poll_message["poll"]
    position = [o["text"] for o in poll["options"]].index(option_text)
    await h.handled(h.telegram.vote(user, poll["id"], [position]))


def next_data(message: dict) -> str:
    return next(d for label, d in FakeTelegram.buttons(message) if label == study.NEXT)


def last_step(h: Harness) -> dict:
    """The group's latest message that carries the Next button."""
    return next(m for m in reversed(h.telegram.bot_messages(GROUP)) if study.NEXT in [b for b, _ in FakeTelegram.buttons(m)])


async def until_question(h: Harness) -> dict:
    """The teacher moves on until a question is open; its message (a poll, or buttons)."""
    for _ in range(20):
        step = last_step(h)
        if next_data(step).endswith(":open"):
            return step
        await in_group(h, TEACHER, "/next")
    raise AssertionError("no question came")


async def written_question(h: Harness) -> dict:
    """The teacher moves on to the group's first written question; that message, as a reply
    quotes it."""
    for _ in range(20):
        step = last_step(h)
        if "Reply to this message" in step["text"]:
            return {k: v for k, v in step.items() if k not in ("from_bot", "html")}
        await in_group(h, TEACHER, "/next")
    raise AssertionError("no written question came")


async def poll_question(h: Harness) -> tuple[dict, str]:
    """The teacher moves on to the next question asked as a poll: its message, and its key in `QUESTIONS`."""
    question = await until_question(h)
    return question, next(q for q, n in QUESTIONS.items() if n.ask == question["poll"]["question"])


async def test_a_class_goes_through_a_lesson_together(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await h.say(TEACHER, "/help")  # the teacher and Ben have talked to the bot before
        await h.say(BEN, "/help")

        posted = await in_group(h, TEACHER, "/study madman-core")
        assert "Group study: Madman theory" in posted[0]["text"] and "the group can see who voted for what" in posted[0]["text"]
        assert "Part 1 of" in posted[1]["text"] and study.NEXT in [b for b, _ in FakeTelegram.buttons(posted[1])]

        # Someone who does not lead is refused, and nothing moves.
        [refused] = await in_group(h, STRANGER, "/next")
        assert refused["text"] == "Only the group's admins or instructors can do that."
        assert await press(h, STRANGER, posted[1], next_data(posted[1])) == "Only the group's admins or instructors can do that."
        assert h.store.db.execute("SELECT node FROM study_sessions").fetchone()[0] == CORE.start_id

        question, key = await poll_question(h)
        assert question["poll"]["type"] == "quiz" and not question["poll"]["is_anonymous"]
        await vote(h, ANN, question, RIGHT[key])
        await vote(h, BEN, question, WRONG[key])
        await vote(h, BEN, question, RIGHT[key])  # a second vote changes nothing
        before_ben = len(h.telegram.bot_messages(BEN))

        closed = await in_group(h, TEACHER, "/next")
        [tally] = [m for m in closed if "answered" in m["text"]]
        assert "📊 2 answered" in tally["text"]
        assert f"{RIGHT[key][:40]}" in tally["text"] and "✅" in tally["text"]
        assert "Most chosen of the others" in tally["text"]
        assert h.telegram.message(GROUP, question["message_id"])["poll"]["is_closed"]
        link = next(d for label, d in FakeTelegram.buttons(tally) if d.startswith("https://"))
        assert link.startswith("https://t.me/argument_tutor_bot?start=gq-")
        # Ben, who had talked to the bot, gets his own explanation in private, unasked.
        await asyncio.sleep(1.5)  # bulk traffic goes out with the outbox's next round
        [remedy] = h.telegram.bot_messages(BEN)[before_ben:]
        assert f"Your answer:</b> {WRONG[key]}" in remedy["html"] and "The answer:" in remedy["text"]
        # Cat did not answer; the link tells her so, and gives the answer.
        [own, note] = await h.say(CAT, "/start " + link.split("?start=")[1])
        assert "You did not answer this one." in own["text"] and RIGHT[key] in own["text"]
        assert h.store.progress(f"tg:{CAT}", "madman-core", f"tg:{CAT}") is None  # her private lesson is untouched

        # Each member's answer is theirs, in their group progress.
        ann = h.store.progress(f"tg:{ANN}", "madman-core", f"tg:{GROUP}")
        ben = h.store.progress(f"tg:{BEN}", "madman-core", f"tg:{GROUP}")
        assert ann is not None and ann.state.score == 1 and ben is not None and ben.state.score == 0
        assert key in ben.state.missed
        assert h.store.progress(f"tg:{ANN}", "madman-core", f"tg:{ANN}") is None

        # Dan joins late and takes part from the current step.
        question, key2 = await poll_question(h)
        await vote(h, DAN, question, RIGHT[key2])
        assert h.store.progress(f"tg:{DAN}", "madman-core", f"tg:{GROUP}").state.score == 1

        # A written question is answered by replying to it.
        step = await written_question(h)
        nothing = await in_group(h, ANN, "Because a deal needs trust on both sides, which is gone.", reply_to=step["message_id"])
        assert nothing == []  # acknowledged with a reaction, not a message to everyone
        reactions = [(c, m, r if isinstance(r, list) else json.loads(r)) for c, m, r in h.telegram.reactions]
        assert reactions == [(GROUP, h.telegram.chats[GROUP][-1]["message_id"], [{"type": "emoji", "emoji": "✍"}])]
        answered = h.store.events(learner=f"tg:{ANN}", chat=f"tg:{GROUP}")
        assert answered[-1]["input"] == {"kind": "answer", "text": "Because a deal needs trust on both sides, which is gone."}

        # To the end: the group gets a summary without anyone's score; the teacher gets the scores.
        before_teacher = len(h.telegram.bot_messages(TEACHER))
        for _ in range(20):
            if "🏁" in h.telegram.last_bot_message(GROUP)["text"]:
                break
            await in_group(h, TEACHER, "/next")
        end = h.telegram.last_bot_message(GROUP)["text"]
        assert "3 took part" in end and "The hardest questions" in end
        assert f"Learner{ANN}" not in end
        await asyncio.sleep(1.5)
        [scores] = h.telegram.bot_messages(TEACHER)[before_teacher:]
        assert f"Learner{ANN}: 1" in scores["text"] and f"Learner{BEN}: 0" in scores["text"]
        assert f"Learner{DAN}: 1" in scores["text"]
        assert h.store.progress(f"tg:{ANN}", "madman-core", f"tg:{GROUP}").state.finished
        assert h.store.db.execute("SELECT state FROM study_sessions").fetchone()[0] == "finished"


async def test_button_questions_take_each_members_first_tap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(study.POLL_LIMITS, "option", 5)  # no option fits in a poll: buttons
    monkeypatch.setattr(study, "COUNT_EVERY", 0.0)
    async with Harness(tmp_path) as h:
        h.settings.instructors = [TEACHER]
        await in_group(h, TEACHER, "/study madman-core")
        question = await until_question(h)
        key = next(q for q, n in QUESTIONS.items() if n.ask in question["text"])
        options = {FakeTelegram.buttons(question)[i][1]: i for i in range(len(QUESTIONS[key].options))}
        by_text = {}
        for data in options:
            option = QUESTIONS[key].options[int(data.rsplit(":", 1)[1])]
            by_text[option.text] = data
        before = len(h.telegram.bot_messages(GROUP))
        assert (await press(h, ANN, question, by_text[RIGHT[key]])).startswith("Recorded:")
        assert "your first answer counts" in await press(h, ANN, question, by_text[WRONG[key]])
        assert (await press(h, BEN, question, by_text[WRONG[key]])).startswith("Recorded:")
        assert await press(h, CAT, question, by_text[RIGHT[key]][:-1] + "9") == "I don't recognise that button, so nothing changed."
        assert await press(h, CAT, question, "g:a:999:3:0") == "This question is closed, so nothing changed."
        assert await press(h, CAT, question, "a:madman-core:x:0") == "I don't recognise that button, so nothing changed."
        assert len(h.telegram.bot_messages(GROUP)) == before  # taps are acknowledged to the tapper only
        # The live count is an edit of the question itself.
        for _ in range(50):
            if "2 answered so far" in h.telegram.message(GROUP, question["message_id"])["text"]:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the live count never showed")
        rows = h.store.db.execute("SELECT learner, option FROM group_answers ORDER BY learner").fetchall()
        assert [r[0] for r in rows] == [f"tg:{ANN}", f"tg:{BEN}"]
        await in_group(h, TEACHER, "/next")
        assert await press(h, CAT, question, by_text[RIGHT[key]]) == "This question is closed, so nothing changed."
        assert FakeTelegram.buttons(h.telegram.message(GROUP, question["message_id"])) == []
        tally = h.telegram.last_bot_message(GROUP)["text"]
        assert "📊 2 answered" in tally


def session_row(h: Harness) -> tuple:
    return h.store.db.execute("SELECT id, node, phase, state FROM study_sessions").fetchone()


async def wait_until(check, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("waited in vain")
        await asyncio.sleep(0.05)


async def test_the_bot_moves_on_by_itself_pauses_resumes_and_goes_on_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "ADVANCE", (1, 3600))
    monkeypatch.setattr(study, "reading_seconds", lambda text: 0.3)
    monkeypatch.setattr(study, "AFTER_TALLY", 0.3)
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        [refused] = await in_group(h, TEACHER, "/study madman-core 5000")
        assert "between 1 and 3600" in refused["text"]
        await in_group(h, TEACHER, "/study madman-core 2")
        # Passages go by, and a question opens, with nobody pressing anything.
        await wait_until(lambda: session_row(h)[2] == "open")
        question = h.telegram.last_bot_message(GROUP)
        await vote(h, ANN, question, RIGHT[next(q for q, n in QUESTIONS.items() if n.ask == question["poll"]["question"])])
        [paused] = await in_group(h, TEACHER, "/pause")
        assert paused["text"].startswith("⏸ Paused")
        where = session_row(h)
        await asyncio.sleep(2.5)  # longer than the question stays open
        assert session_row(h) == where and not h.telegram.message(GROUP, question["message_id"])["poll"]["is_closed"]
        [note] = await in_group(h, TEACHER, "/next")
        assert "paused" in note["text"]
        await in_group(h, TEACHER, "/resume")
        await wait_until(lambda: h.telegram.message(GROUP, question["message_id"])["poll"]["is_closed"])
        assert any(m["text"].startswith("📊 1 answered") for m in h.telegram.bot_messages(GROUP))
        # A second /study while one is on is refused.
        [on] = await in_group(h, TEACHER, "/study madman-core")
        assert "A study session is on here already" in on["text"]
        await in_group(h, TEACHER, "/pause")
        session_id = session_row(h)[0]

    # The bot restarts: the session is where it was, and resuming goes on from there.
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        h.telegram.next_update_id = h.telegram.next_message_id = 5000  # a new fake Telegram: past the old ids
        assert session_row(h)[0] == session_id and session_row(h)[3] == "paused"
        await in_group(h, TEACHER, "/resume")
        before = session_row(h)[1]
        await wait_until(lambda: session_row(h)[1] != before)
        stopped = await in_group(h, TEACHER, "/stop")
        assert "The study session has ended" in stopped[-1]["text"] and "1 took part" in stopped[-1]["text"]
        assert session_row(h)[3] == "stopped"
        [nothing_on] = await in_group(h, TEACHER, "/next")
        assert nothing_on["text"].startswith("No study session is on here")


async def test_a_leader_picks_from_the_menu_and_others_cannot(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        [menu] = await in_group(h, TEACHER, "/study")
        assert "Which lesson" in menu["text"]
        data = dict(FakeTelegram.buttons(menu))["Madman theory: why threats need promises"]
        assert await press(h, STRANGER, menu, data) == "Only the group's admins or instructors can do that."
        assert session_row(h) is None
        await press(h, TEACHER, menu, data)
        assert session_row(h)[3] == "running"
        assert FakeTelegram.buttons(h.telegram.message(GROUP, menu["message_id"])) == []  # the menu is used up
        assert "Group study: Madman theory" in h.telegram.bot_messages(GROUP)[-2]["text"]
        # An anonymous admin (writing as the group) is asked to use their own account.
        message = h.telegram._incoming(
            1087968824, GROUP, text="/next", entities=[{"type": "bot_command", "offset": 0, "length": 5}],
            sender_chat={"id": GROUP, "type": "supergroup", "title": "Study group"},
        )
        before = len(h.telegram.bot_messages(GROUP))
        await h.handled(h.telegram._push({"message": message}))
        [asked] = h.telegram.bot_messages(GROUP)[before:]
        assert "from your own account" in asked["text"]
        # A new session after /stop has a new id: the old one's buttons are stale.
        old_step = last_step(h)
        await in_group(h, TEACHER, "/stop")
        first_id = session_row(h)[0]
        await in_group(h, TEACHER, "/study madman-core")
        assert session_row(h)[0] != first_id
        assert await press(h, TEACHER, old_step, next_data(old_step)) == "That step is over, so nothing changed."
        assert session_row(h)[1] == CORE.start_id
        # /help in the group says how group study works.
        [helped] = await in_group(h, STRANGER, "/help")
        assert "Studying in this group" in helped["text"] and "privacy mode" in helped["text"]


async def test_a_member_who_blocked_the_bot_does_not_stop_the_session(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await h.say(BEN, "/help")
        await in_group(h, TEACHER, "/study madman-core")
        question, key = await poll_question(h)
        await vote(h, BEN, question, WRONG[key])
        h.telegram.blocked.add(BEN)
        await in_group(h, TEACHER, "/next")  # closes: Ben's remedy cannot be sent
        await asyncio.sleep(1.5)
        row = h.store.db.execute("SELECT error FROM outbox WHERE chat_id = ? ORDER BY id DESC LIMIT 1", [BEN]).fetchone()
        assert row[0].startswith("blocked")
        moved = await in_group(h, TEACHER, "/next")
        assert moved and "Part" in moved[-1]["text"] or moved[-1].get("poll")


async def test_a_group_gets_at_most_20_messages_a_minute(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        s = h.app.bot_data["services"]
        with h.store.atomic():
            for number in range(25):
                s.outbox.add(GROUP, study.OutMessage(f"message {number}"))
        await s.outbox.flush(GROUP)
        assert [m["text"] for m in h.telegram.bot_messages(GROUP)] == [f"message {n}" for n in range(20)]
        assert s.outbox.group_wait(GROUP) > 55  # the rest wait for the minute to pass
        await asyncio.sleep(1.5)  # the outbox's own rounds hold them back too
        assert len(h.telegram.bot_messages(GROUP)) == 20
        with h.store.atomic():  # a private chat is not held back
            s.outbox.add(ANN, study.OutMessage("hello"))
        await s.outbox.flush(ANN)
        assert h.telegram.bot_messages(ANN)[-1]["text"] == "hello"


async def test_a_burst_of_300_members_answering_at_once(tmp_path: Path) -> None:
    members = list(range(20000, 20300))
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        talked = members[:90]
        for member in talked:  # these have talked to the bot before: their remedies come unasked
            await h.say(member, "/help")
        await in_group(h, TEACHER, "/study madman-core")
        question, key = await poll_question(h)
        group_calls = lambda: sum(  # noqa: E731
            1 for method, params in h.telegram.calls if str(params.get("chat_id")) == str(GROUP) and method != "getChatMember"
        )
        calls_before = group_calls()
        positions = [o["text"] for o in question["poll"]["options"]]
        ids = []
        started = asyncio.get_running_loop().time()
        for n, member in enumerate(members):  # all at once, and a few twice
            choice = WRONG[key] if n < 90 or n % 3 == 0 else RIGHT[key]
            ids.append(h.telegram.vote(member, question["poll"]["id"], [positions.index(choice)]))
            if n % 50 == 0:
                ids.append(h.telegram.vote(member, question["poll"]["id"], [positions.index(RIGHT[key])]))
        for update_id in ids:
            await h.handled(update_id, timeout=60)
        took = asyncio.get_running_loop().time() - started
        assert h.store.db.execute("SELECT COUNT(*), COUNT(DISTINCT learner) FROM group_answers").fetchone() == (300, 300)
        events = h.store.db.execute(
            "SELECT learner, COUNT(*) FROM events WHERE chat = ? AND node = ? AND input LIKE '%choose%' GROUP BY learner",
            [f"tg:{GROUP}", key],
        ).fetchall()
        assert len(events) == 300 and {count for _, count in events} == {1}
        assert group_calls() == calls_before  # a vote costs the group nothing

        closed = await in_group(h, TEACHER, "/next")
        assert any(m["text"].startswith("📊 300 answered") for m in closed)
        closed_at = asyncio.get_running_loop().time()
        moved = await in_group(h, TEACHER, "/next")  # the next step is not held up by the remedies
        assert moved
        next_after = asyncio.get_running_loop().time() - closed_at
        await wait_until(lambda: all(h.telegram.bot_messages(m)[-1]["text"].startswith("From the group study") for m in talked), 30)
        sent = sorted(h.telegram.arrived[(m, h.telegram.bot_messages(m)[-1]["message_id"])] for m in talked)
        busiest = max(sum(1 for t in sent if first <= t < first + 1) for first in sent)
        assert busiest <= 30  # the bot's overall limit: about 30 messages a second
        remedies_after = asyncio.get_running_loop().time() - closed_at
        assert group_calls() - calls_before <= 20  # the whole test is within a minute
        print(
            f"\n{len(ids)} votes from 300 members handled in {took:.2f} s; group_answers 300; "
            f"calls to the group during the test: {group_calls() - calls_before}; next step {next_after:.2f} s "
            f"after the close; {len(talked)} remedies in private, all sent {remedies_after:.2f} s after the close, "
            f"at most {busiest} in any second"
        )
        assert h.store.db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL").fetchone()[0] == 0


async def test_a_session_ends_when_the_bot_is_removed_from_the_group(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await in_group(h, TEACHER, "/study madman-core")
        h.telegram.blocked.add(GROUP)  # Telegram answers 403 for the group from now on
        await h.handled(h.telegram.send_text(TEACHER, "/next", group=GROUP))
        await wait_until(lambda: session_row(h)[3] == "stopped")
        assert h.store.db.execute("SELECT due_at FROM study_sessions").fetchone()[0] is None


SUPERGROUP = -1009990555


async def test_a_group_that_becomes_a_supergroup_goes_on_there(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await in_group(h, TEACHER, "/assign madman-core")
        await in_group(h, TEACHER, "/study madman-core")
        question, key = await poll_question(h)
        await vote(h, ANN, question, RIGHT[key])
        # An admin upgrades the group: Telegram says so in both chats, and the old id is dead.
        h.telegram.migrate(GROUP, SUPERGROUP, by=TEACHER)
        await h.handled(h.telegram.next_update_id - 1)
        assert session_row(h)[3] == "running"
        assert h.store.db.execute("SELECT chat, chat_id FROM study_sessions").fetchall() == [(f"tg:{SUPERGROUP}", SUPERGROUP)]
        assert h.store.db.execute("SELECT chat FROM assignments").fetchall() == [(f"tg:{SUPERGROUP}",)]
        assert h.store.progress(f"tg:{ANN}", "madman-core", f"tg:{SUPERGROUP}").state.score == 1
        # The leader goes on in the supergroup: the question closes there, with Ann's answer counted.
        before = len(h.telegram.bot_messages(SUPERGROUP))
        await h.handled(h.telegram.send_text(TEACHER, "/next", group=SUPERGROUP))
        [tally] = [m for m in h.telegram.bot_messages(SUPERGROUP)[before:] if "answered" in m["text"]]
        assert "📊 1 answered" in tally["text"]
        [standings] = await _said(h, TEACHER, "/standings", SUPERGROUP)
        assert standings["text"] == "No one has started the lesson assigned here yet."  # the assignment came along
        # Reports name the group by its new id, its history included.
        assert {e["chat"] for e in h.store.events(learner=f"tg:{ANN}")} == {f"tg:{SUPERGROUP}"}


async def test_a_reply_to_a_group_that_became_a_supergroup_follows_it(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await in_group(h, TEACHER, "/study madman-core")
        # The bot has not seen the service messages (yet): its next send tells it.
        h.telegram.migrate(GROUP, SUPERGROUP, by=TEACHER, tell=False)
        s = h.app.bot_data["services"]
        with h.store.atomic():
            s.outbox.add(GROUP, study.OutMessage("still here"))
        s.outbox.request(GROUP)
        await wait_until(lambda: any(m["text"] == "still here" for m in h.telegram.bot_messages(SUPERGROUP)))
        assert h.store.db.execute("SELECT chat_id FROM study_sessions").fetchone()[0] == SUPERGROUP
        assert not h.store.db.execute("SELECT 1 FROM outbox WHERE chat_id = ?", [GROUP]).fetchone()


async def _said(h: Harness, user: int, text: str, group: int) -> list[dict]:
    before = len(h.telegram.bot_messages(group))
    await h.handled(h.telegram.send_text(user, text, group=group))
    return h.telegram.bot_messages(group)[before:]


async def test_written_answers_by_reply_a_caption_counts_a_second_reply_is_told_and_other_bots_commands_are_left_alone(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await in_group(h, TEACHER, "/study madman-core")
        assert await in_group(h, ANN, "/next@some_other_bot") == []  # for another bot: not a word
        step = replied = await written_question(h)
        # Ann answers with a photo and a caption: the caption is her answer.
        photo = [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}]
        message = h.telegram._incoming(ANN, GROUP, photo=photo, caption="Trust must run both ways, or no deal holds.",
                                       reply_to_message=replied)
        await h.handled(h.telegram._push({"message": message}))
        events = h.store.events(learner=f"tg:{ANN}", chat=f"tg:{GROUP}")
        assert events[-1]["input"] == {"kind": "answer", "text": "Trust must run both ways, or no deal holds."}
        assert len(h.telegram.reactions) == 1
        # A second reply is not recorded, and she is told so rather than shown the ✍ again.
        [told] = await in_group(h, ANN, "And one more thought on the matter.", reply_to=step["message_id"])
        assert "only your first answer counts" in told["text"]
        assert len(h.telegram.reactions) == 1
        assert h.store.events(learner=f"tg:{ANN}", chat=f"tg:{GROUP}") == events


async def test_a_stopped_session_gives_the_leader_the_scores_so_far_or_the_group_says_how_to_get_them(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await in_group(h, TEACHER, "/study madman-core")
        question, key = await poll_question(h)
        await vote(h, ANN, question, RIGHT[key])
        ended = await in_group(h, TEACHER, "/stop")  # the teacher has no private chat with the bot
        assert "The study session has ended" in ended[-1]["text"]
        assert "they can start one (@argument_tutor_bot) and send /report" in ended[-1]["text"]
        assert h.telegram.bot_messages(TEACHER) == []

        await h.say(TEACHER, "/help")  # now the bot can write to them
        await in_group(h, TEACHER, "/study madman-core")
        question = await until_question(h)
        await vote(h, ANN, question, RIGHT[key])
        await vote(h, BEN, question, WRONG[key])
        before = len(h.telegram.bot_messages(TEACHER))
        ended = await in_group(h, TEACHER, "/stop")
        assert "send /report" not in ended[-1]["text"]
        await wait_until(lambda: len(h.telegram.bot_messages(TEACHER)) > before)
        [scores] = h.telegram.bot_messages(TEACHER)[before:]
        assert "so far (the session was stopped)" in scores["text"]
        assert f"Learner{ANN}: 1" in scores["text"] and f"Learner{BEN}: 0" in scores["text"]


async def test_a_tallys_link_still_explains_after_the_group_began_another_session(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await in_group(h, TEACHER, "/study madman-core")
        question, key = await poll_question(h)
        await vote(h, BEN, question, WRONG[key])
        [tally] = [m for m in await in_group(h, TEACHER, "/next") if "answered" in m["text"]]
        link = next(d for label, d in FakeTelegram.buttons(tally) if d.startswith("https://"))
        await in_group(h, TEACHER, "/stop")
        await in_group(h, TEACHER, "/study madman-core")  # the new session replaces the old one's row
        [own, _] = await h.say(BEN, "/start " + link.split("?start=")[1])
        assert f"Your answer:</b> {WRONG[key]}" in own["html"] and "The answer:" in own["text"]


TOPIC, OTHER_TOPIC = 77, 88


def topics_of(h: Harness, after: int = 0) -> list[int | None]:
    """The forum topic of each of the bot's messages to the group after number `after`."""
    return [m.get("message_thread_id") for m in h.telegram.bot_messages(GROUP)[after:]]


async def test_a_session_begun_in_a_forum_topic_stays_in_that_topic(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}

        # The teacher starts in a topic: the intro, steps, polls and tallies all go to it.
        await h.handled(h.telegram.send_text(TEACHER, "/study madman-core", group=GROUP, topic=TOPIC))
        question, key = await poll_question_in(h, TOPIC)
        await vote(h, ANN, question, WRONG[key])
        await h.handled(h.telegram.send_text(TEACHER, "/next", group=GROUP, topic=OTHER_TOPIC))  # from another topic
        assert any(m["text"].startswith("📊 1 answered") for m in h.telegram.bot_messages(GROUP))
        assert set(topics_of(h)) == {TOPIC}, topics_of(h)

        # A refusal answers where it was asked; a note about the session goes to the session's topic.
        seen = len(h.telegram.bot_messages(GROUP))
        await h.handled(h.telegram.send_text(STRANGER, "/next", group=GROUP, topic=OTHER_TOPIC))
        await h.handled(h.telegram.send_text(TEACHER, "/pause", group=GROUP, topic=OTHER_TOPIC))
        assert topics_of(h, seen) == [OTHER_TOPIC, TOPIC]

        # A session picked from /study's menu in a topic runs in that topic too.
        await h.handled(h.telegram.send_text(TEACHER, "/stop", group=GROUP, topic=TOPIC))
        seen = len(h.telegram.bot_messages(GROUP))
        await h.handled(h.telegram.send_text(TEACHER, "/study", group=GROUP, topic=OTHER_TOPIC))
        [menu] = h.telegram.bot_messages(GROUP)[seen:]
        await press(h, TEACHER, menu, FakeTelegram.buttons(menu)[0][1])
        assert len(topics_of(h, seen)) > 1 and set(topics_of(h, seen)) == {OTHER_TOPIC}


async def test_a_session_whose_topic_is_deleted_goes_on_in_the_general_topic(tmp_path: Path) -> None:
    """Telegram refuses a message to a deleted topic: the session's messages go to the
    General topic from then on, none is lost, and the leader's /next from there works."""
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await h.handled(h.telegram.send_text(TEACHER, "/study madman-core", group=GROUP, topic=TOPIC))
        seen = len(h.telegram.bot_messages(GROUP))
        h.telegram.deleted_topics.add((GROUP, TOPIC))
        await h.handled(h.telegram.send_text(TEACHER, "/next", group=GROUP))
        await asyncio.sleep(0.3)  # the refused send is made again, without its topic
        shown = h.telegram.bot_messages(GROUP)[seen:]
        assert shown and topics_of(h, seen) == [None] * len(shown)
        assert h.store.db.execute("SELECT COUNT(*) FROM outbox WHERE failed_at IS NOT NULL").fetchone()[0] == 0
        assert h.store.db.execute("SELECT thread FROM study_sessions").fetchone()[0] is None
        question, key = await poll_question(h)  # the session goes on, in General
        assert question.get("message_thread_id") is None


async def poll_question_in(h: Harness, topic: int) -> tuple[dict, str]:
    """As `poll_question`, the teacher sending /next in the forum topic `topic`."""
    for _ in range(20):
        step = last_step(h)
        if next_data(step).endswith(":open"):
            return step, next(q for q, n in QUESTIONS.items() if n.ask == step["poll"]["question"])
        await h.handled(h.telegram.send_text(TEACHER, "/next", group=GROUP, topic=topic))
    raise AssertionError("no question came")


async def test_a_reply_sent_as_a_chat_is_nobodys_answer(tmp_path: Path) -> None:
    """An anonymous admin (Telegram's GroupAnonymousBot, for every group) or a channel
    replying to a written question is no member: nothing is recorded for them."""
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await in_group(h, TEACHER, "/study madman-core")
        replied = await written_question(h)
        senders = [
            ({"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"},
             {"id": GROUP, "type": "supergroup", "title": "Study group"}),
            ({"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"},
             {"id": -1009990999, "type": "channel", "title": "A channel"}),
        ]
        for user, chat in senders:
            message = h.telegram._incoming(user["id"], GROUP, text="No one trusts a madman to keep his deals.",
                                           reply_to_message=replied, sender_chat=chat)
            message["from"] = user
            before = len(h.telegram.bot_messages(GROUP))
            await h.handled(h.telegram._push({"message": message}))
            if user["id"] == 1087968824:
                [told] = h.telegram.bot_messages(GROUP)[before:]
                assert told["text"] == study.AS_CHAT
        assert h.store.db.execute("SELECT * FROM group_answers").fetchall() == []
        assert h.store.db.execute("SELECT id FROM learners WHERE id != ?", [f"tg:{TEACHER}"]).fetchall() == []
        assert h.telegram.reactions == []


async def test_a_vote_cast_as_the_group_is_nobodys_answer(tmp_path: Path) -> None:
    """An anonymous admin votes in a question's poll as the group: Telegram names the chat,
    and a placeholder bot as the user. Nothing is recorded; a member's own vote still is."""
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await in_group(h, TEACHER, "/study madman-core")
        question, key = await poll_question(h)
        poll = question["poll"]
        position = [o["text"] for o in poll["options"]].index(WRONG[key])
        await h.handled(h.telegram.vote(TEACHER, poll["id"], [position], as_chat={"id": GROUP, "type": "supergroup", "title": "Study group"}))
        assert h.store.db.execute("SELECT learner FROM group_answers").fetchall() == []
        await vote(h, ANN, question, WRONG[key])
        assert [tuple(r) for r in h.store.db.execute("SELECT learner FROM group_answers")] == [(f"tg:{ANN}",)]


async def test_a_members_transcript_shows_what_the_group_saw_not_private_feedback(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await in_group(h, TEACHER, "/study madman-core")
        question, key = await poll_question(h)
        await vote(h, ANN, question, WRONG[key])
        lines = [line.text for line in reports.transcript(h.store, h.tutor.lessons, f"tg:{ANN}")]
        steps = engine.group_path(CORE)
        for node in steps[:steps.index(key) + 1]:  # every passage the group saw up to the question
            text = (getattr(CORE.nodes[node], "say", None) or CORE.nodes[node].ask).strip()[:40]
            assert any(text in line for line in lines), (node, lines)
        assert not any(line.startswith("(wrong)") for line in lines), lines  # the group saw no private feedback
        assert sum(CORE.nodes[key].ask in line for line in lines) == 1, lines  # nor the question asked again

"""Live group study: a class goes through a lesson together in its Telegram group, paced
by its instructor, each member's answers recorded for that member."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

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


async def test_a_class_goes_through_a_lesson_together(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.admins[GROUP] = {TEACHER}
        await h.say(TEACHER, "/help")  # the teacher and Ben have talked to the bot before
        await h.say(BEN, "/help")

        posted = await in_group(h, TEACHER, "/study madman-core")
        assert "Group study: Madman theory" in posted[0]["text"] and "never who" in posted[0]["text"]
        assert "Part 1 of" in posted[1]["text"] and study.NEXT in [b for b, _ in FakeTelegram.buttons(posted[1])]

        # Someone who does not lead is refused, and nothing moves.
        [refused] = await in_group(h, STRANGER, "/next")
        assert refused["text"] == "Only the group's admins or instructors can do that."
        assert await press(h, STRANGER, posted[1], next_data(posted[1])) == "Only the group's admins or instructors can do that."
        assert h.store.db.execute("SELECT node FROM study_sessions").fetchone()[0] == CORE.start_id

        question = await until_question(h)
        key = next(q for q, n in QUESTIONS.items() if n.ask == question["poll"]["question"])
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
        question = await until_question(h)
        key2 = next(q for q, n in QUESTIONS.items() if n.ask == question["poll"]["question"])
        await vote(h, DAN, question, RIGHT[key2])
        assert h.store.progress(f"tg:{DAN}", "madman-core", f"tg:{GROUP}").state.score == 1

        # A written question is answered by replying to it.
        for _ in range(20):
            step = last_step(h)
            if "Reply to this message" in step["text"]:
                break
            await in_group(h, TEACHER, "/next")
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

"""Replies as a learner sees them: the outbox sends what a crash or a failing Telegram held
back, in order; typed text counts only at a step the learner was shown; a stale
confirmation, a typed "²" and a button in a group are answered sensibly; every event
keeps the update that caused it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bot.telegram_bot.study import UNKNOWN_BUTTON
from tests.core_lesson import CORE, OPENING, START, question_key, text_of
from tests.test_telegram_bot import ALICE, Harness

GROUP = -100777


def bad_gateway(h: Harness, times: int) -> None:
    for _ in range(times):
        h.telegram.fail_next("sendMessage", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})


async def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_replies_held_back_by_a_crash_go_out_at_the_next_start_in_order(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    outbox = h.app.bot_data["services"].outbox
    from bot.telegram_bot.render import OutMessage

    with h.store.atomic():  # committed with an answer, then the process died before sending
        outbox.add(ALICE, OutMessage("first"))
        outbox.add(ALICE, OutMessage("second"))
    async with h:
        await wait_for(lambda: len(h.telegram.bot_messages(ALICE)) == 2)
        await h.say(ALICE, "/help")
        texts = [m["text"] for m in h.telegram.bot_messages(ALICE)]
        assert texts[:2] == ["first", "second"] and "How this works" in texts[2]
        assert h.store.db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0] == 0


async def test_a_send_that_keeps_failing_is_tried_again_later_and_nothing_overtakes_it(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        bad_gateway(h, 5)  # more than one send's own retries
        h.telegram.send_text(ALICE, "/start madman-core")
        await wait_for(lambda: len(h.telegram.bot_messages(ALICE)) >= 1, timeout=15)
        await h.say(ALICE, "/help")
        texts = [m["text"] for m in h.telegram.bot_messages(ALICE)]
        assert text_of(START) in texts[0] and "How this works" in texts[-1]


async def test_text_at_a_step_the_learner_never_saw_does_not_move_them_on(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        node = lambda: h.store.progress(f"tg:{ALICE}", "madman-core", f"tg:{ALICE}").state.node  # noqa: E731
        bad_gateway(h, 100)  # Telegram fails every send for a while
        h.telegram.press(ALICE, h.last(ALICE)["message_id"], h.telegram.buttons(h.last(ALICE))[0][1])
        second, third = OPENING[1], OPENING[2]  # a message the learner goes on to, and the step after it
        await wait_for(lambda: node() == second)  # recorded; its message cannot go out
        update_id = h.telegram.send_text(ALICE, "hello?")
        await asyncio.sleep(0.5)
        with h.telegram.lock:
            h.telegram.failures.clear()  # Telegram is back
        await h.handled(update_id, timeout=15)
        await wait_for(lambda: text_of(second) in h.last(ALICE)["text"], 15)
        assert node() == second  # "hello?" did not count as Continue
        assert [e["input"]["kind"] for e in h.events(ALICE)] == ["start", "continue"]
        # Once the step has arrived, text there goes on, as before.
        await wait_for(lambda: h.store.db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL").fetchone()[0] == 0, 15)
        await h.say(ALICE, "ok")
        assert node() == third


async def test_an_old_start_over_button_changes_nothing(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        ask = (await h.say(ALICE, "/restart"))[0]
        step = h.telegram.bot_messages(ALICE)[-2]
        await h.tap(ALICE, step, "Continue ▸")  # the learner moves on instead of answering
        await h.tap(ALICE, h.last(ALICE), "Continue ▸")
        replies = await h.tap(ALICE, ask, "Yes, start over")
        assert "you have moved on since, so nothing changed" in replies[0]["text"]
        assert h.store.progress(f"tg:{ALICE}", "madman-core", f"tg:{ALICE}").state.node == OPENING[2]
        # Asked again now, yes means yes.
        ask = (await h.say(ALICE, "/restart"))[0]
        replies = await h.tap(ALICE, ask, "Yes, start over")
        assert "Starting over" in replies[0]["text"]
        assert h.store.progress(f"tg:{ALICE}", "madman-core", f"tg:{ALICE}").state.node == START


async def first_question(h: Harness, user: int) -> dict:
    """Start the core lesson and go on to its first question; that question's message."""
    await h.say(user, "/start madman-core")
    for _ in OPENING[:-1]:
        await h.tap(user, h.last(user), "Continue ▸")
    question = h.last(user)
    assert question_key(question) == OPENING[-1]
    return question


async def test_digits_that_are_not_numbers_get_a_reply(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        question = await first_question(h, ALICE)
        buttons = h.telegram.buttons(question)  # in the order the learner sees the options
        for typed in ("²", "①", "99999999999999999999999"):
            h.app.bot_data["services"].allowance.clear()
            replies = await h.say(ALICE, typed)
            assert "not one of the options" in replies[0]["text"] or "does not answer" in replies[0]["text"], typed
        assert [e["input"]["kind"] for e in h.events(ALICE)][-1] == "continue"  # none of them was an answer
        # Full-width and Arabic-Indic digits are numbers: "２" picks the option shown second.
        replies = await h.say(ALICE, "２")
        seed = h.store.progress(f"tg:{ALICE}", "madman-core", f"tg:{ALICE}").state.seed
        second_shown = CORE.option_order(CORE.nodes[OPENING[-1]], seed)[1]  # its index in the file
        # The question was answered, right or wrong, the option echoed as a tap's is.
        echo = f"Your answer: {CORE.nodes[OPENING[-1]].options[second_shown].text}\n\n"
        assert replies[0]["text"].startswith(echo) and replies[0]["text"][len(echo):].startswith(("✅", "❌"))
        assert h.events(ALICE)[-1]["input"] == {"kind": "choose", "node": OPENING[-1], "option": second_shown}
        assert buttons[1][1].endswith(f":{second_shown}")  # the option the learner saw second


async def test_a_button_tapped_in_a_group_starts_nothing_there(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        data = h.telegram.buttons(h.last(ALICE))[0][1]
        message = {"message_id": 1, "date": 0, "chat": {"id": GROUP, "type": "supergroup", "title": "G"},
                   "from": {"id": 1, "is_bot": True, "first_name": "Tutor"}, "text": "x"}
        query = {"id": "g1", "from": {"id": ALICE, "is_bot": False, "first_name": "A"}, "message": message,
                 "chat_instance": "g", "data": "l:madman-core"}
        update_id = h.telegram._push({"callback_query": query})
        await h.handled(update_id)
        query2 = dict(query, id="g2", data=data)
        await h.handled(h.telegram._push({"callback_query": query2}))
        assert h.store.db.execute("SELECT COUNT(*) FROM progress WHERE chat = ?", [f"tg:{GROUP}"]).fetchone()[0] == 0
        assert h.telegram.bot_messages(GROUP) == []
        answers = [p for m, p in h.telegram.calls if m == "answerCallbackQuery" and p["callback_query_id"] in ("g1", "g2")]
        assert all(p.get("text") == UNKNOWN_BUTTON for p in answers) and len(answers) == 2
        assert h.store.progress(f"tg:{ALICE}", "madman-core", f"tg:{ALICE}").state.node == START


async def test_every_event_keeps_its_update_id(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        await h.tap(ALICE, h.last(ALICE), "Continue ▸")
        lessons = (await h.say(ALICE, "/lessons"))[0]
        await h.tap(ALICE, lessons, data=next(d for _, d in h.telegram.buttons(lessons)))
        ask = (await h.say(ALICE, "/restart"))[0]
        await h.tap(ALICE, ask, "Yes, start over")
        events = h.events(ALICE)
        assert [e["input"]["kind"] for e in events] == ["start", "continue", "start"]
        assert all(isinstance(e["update_id"], int) for e in events), json.dumps(events, default=str)


async def test_an_edit_that_keeps_failing_is_given_up_and_holds_nothing_back(tmp_path: Path, monkeypatch) -> None:
    from bot.telegram_bot import outbox as outbox_module

    monkeypatch.setattr(outbox_module, "RETRY_FIRST", 0.05)
    monkeypatch.setattr(outbox_module, "RETRY_MAX", 0.1)
    async with Harness(tmp_path) as h:
        h.app.bot_data["services"].sender.first_delay = 0.01
        await h.say(ALICE, "/start madman-core")
        first = h.last(ALICE)
        await h.tap(ALICE, first, "Continue ▸")
        await h.tap(ALICE, h.last(ALICE), "Continue ▸")
        for _ in range(100):  # taking the buttons off a tapped old message never works
            h.telegram.fail_next("editMessageReplyMarkup", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
        before = len(h.telegram.bot_messages(ALICE))
        h.telegram.press(ALICE, first["message_id"], h.telegram.buttons(first)[0][1])  # a stale tap: refused, buttons off
        await wait_for(lambda: len(h.telegram.bot_messages(ALICE)) > before, timeout=15)  # the refusal arrives
        row = h.store.db.execute("SELECT failed_at, error FROM outbox WHERE kind = 'edit'").fetchone()
        assert row[0] and row[1].startswith("gave up")


async def test_a_tap_on_a_message_whose_text_cannot_be_read_back_is_still_answered(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        question = await first_question(h, ALICE)
        data = next(d for _, d in h.telegram.buttons(question))
        forged = {k: v for k, v in question.items() if k not in ("from_bot", "html")}
        forged["text"] = "x\ud800"  # a lone surrogate: the text cannot be encoded to count entities
        query = {"id": "s1", "from": {"id": ALICE, "is_bot": False, "first_name": "A"}, "message": forged,
                 "chat_instance": "c", "data": data}
        update_id = h.telegram._push({"callback_query": query})
        await h.handled(update_id)
        failed = h.store.db.execute("SELECT failed_at FROM inbox WHERE update_id = ?", [update_id]).fetchone()[0]
        assert failed is None  # answered, not set aside
        assert [e["input"]["kind"] for e in h.events(ALICE)][-1] == "choose"

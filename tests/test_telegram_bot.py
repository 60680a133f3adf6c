"""The Telegram bot in process: the real python-telegram-bot Application and our polling
loop, with the network faked at python-telegram-bot's `BaseRequest` seam."""

from __future__ import annotations

import asyncio
import html
import io
import json
import logging
from pathlib import Path

from bot import logs
from bot.loader import load_all
from bot.settings import Settings
from bot.store import Store
from bot.telegram_bot.app import build_application, dispatcher_for, serve
from bot.telegram_bot.render import SEPARATOR
from bot.telegram_bot.services import services
from bot.tutor import Tutor
from tests.core_lesson import CORE as CORE_LESSON, FIRST, QUESTIONS, REMEDIED, RIGHT, START, WRONG, answer, option_data, question_key, text_of
from tests.fake_telegram import TOKEN, FakeRequest, FakeTelegram

DIALOGUES = Path(__file__).resolve().parent.parent / "dialogues"
CORE = DIALOGUES / "madman-core.yaml"
ALICE = 501
BOB = 502


class Harness:
    """A running bot and the fake Telegram it talks to."""

    def __init__(self, tmp_path: Path, lessons_path: Path = CORE):
        self.telegram = FakeTelegram()
        self.store = Store(tmp_path / "bot.db")
        self.settings = Settings(
            telegram_bot_token=TOKEN, database=tmp_path / "bot.db", dialogues=lessons_path, default_lesson="madman-core",
            rate_private=1000,  # scripted learners tap faster than people; the pace per person has its own test
        )
        self.tutor = Tutor(self.store, load_all([lessons_path]))
        self.app = build_application(self.settings, self.tutor, request=FakeRequest(self.telegram))
        self.stop = asyncio.Event()
        self.dispatcher = dispatcher_for(self.app)
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(serve(self.app, self.settings, self.stop, self.dispatcher))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)
        self.store.close()

    async def handled(self, update_id: int, timeout: float = 5.0) -> None:
        """Wait until the bot has handled `update_id` and sent what it sends."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            row = self.store.db.execute("SELECT handled_at, chat FROM inbox WHERE update_id = ?", [update_id]).fetchone()
            # A /forget scrubs its own update's chat: then wait for every chat's worker.
            busy = self.busy() if row and row[1] is None else row is not None and self.busy(row[1])
            if row and row[0] and not busy:
                return
            if self.task and self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        raise AssertionError(f"update {update_id} was not handled in {timeout} s")

    def busy(self, chat: str | None = None) -> bool:
        """Whether the chat (default: any) has an update being handled or replies asked for
        or being sent."""
        outbox = services(self.app).outbox
        if chat is None:
            return bool(self.dispatcher.workers or outbox.ready or outbox.bulk_ready or outbox.locks)
        return chat in self.dispatcher.workers or (chat.startswith("tg:") and outbox.busy(int(chat[3:])))

    async def say(self, user: int, text: str) -> list[dict]:
        before = len(self.telegram.bot_messages(user))
        await self.handled(self.telegram.send_text(user, text))
        return self.telegram.bot_messages(user)[before:]

    async def tap(self, user: int, message: dict, label: str | None = None, data: str | None = None) -> list[dict]:
        if data is None:
            data = next(d for text, d in self.telegram.buttons(message) if label is None or text == label)
        before = len(self.telegram.bot_messages(user))
        await self.handled(self.telegram.press(user, message["message_id"], data))
        return self.telegram.bot_messages(user)[before:]

    def last(self, user: int) -> dict:
        return self.telegram.last_bot_message(user)

    def events(self, user: int) -> list[dict]:
        return self.store.events(learner=f"tg:{user}")


def body(message: dict) -> str:
    """A step message without the feedback on top of it and without its first line (where
    the learner is, with or without the part's title)."""
    return message["text"].split(SEPARATOR + "\n", 1)[-1].split("\n", 1)[-1]


async def play_core_lesson(
    h: Harness, user: int, reflection: str = "Yielding is pointless if you cannot trust the other side to keep the deal."
) -> None:
    """Answer madman-core from /start to its end, one wrong answer included."""
    replies = await h.say(user, "/start madman-core")
    assert text_of(START) in replies[-1]["text"]  # the first step
    while True:
        step = h.last(user)
        labels = [label for label, _ in h.telegram.buttons(step)]
        if "🏁" in step["text"]:
            break
        if labels == ["Continue ▸"]:
            await h.tap(user, step, "Continue ▸")
        elif "Type your answer" in step["text"]:
            await h.say(user, reflection)
        elif "Done ▸" in labels:  # a self-check: mark the first point, then Done
            await h.tap(user, step, "☐ 1")
            await h.tap(user, h.telegram.message(user, step["message_id"]), "Done ▸")
        elif labels:
            key = question_key(step)
            first_time = not any(e["node"] == REMEDIED for e in h.events(user))
            await h.tap(user, step, data=option_data(step, answer(key, wrong=key == REMEDIED and first_time)))
        else:
            break


async def test_a_learner_completes_the_lesson(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await play_core_lesson(h, ALICE)
        end = h.last(ALICE)
        finish = next(n for n in CORE_LESSON.nodes.values() if n.kind == "end")
        assert f"🏁 {finish.end[:40]}" in end["text"]
        assert f"Your result: {len(QUESTIONS) - 1} of {len(QUESTIONS)} questions right at the first try." in end["text"]
        missed = next(o.misconception for o in QUESTIONS[REMEDIED].options if o.text == WRONG[REMEDIED])
        assert CORE_LESSON.lesson.argument_map[missed] in end["text"]
        assert h.telegram.buttons(end) == [(f"Look again: part {CORE_LESSON.part_of(REMEDIED)[0]}", f"v:madman-core:{CORE_LESSON.section_of[REMEDIED].id}")]
        progress = h.store.progress(f"tg:{ALICE}", "madman-core", f"tg:{ALICE}")
        assert progress is not None and progress.state.finished and progress.finished_at
        answers = [e for e in h.events(ALICE) if e["input"]["kind"] in ("choose", "answer")]
        assert len(answers) == len(QUESTIONS) + 2  # every question, one of them twice, and one reflection
        reflection = [e for e in answers if e["input"]["kind"] == "answer"][0]
        assert "keep the deal" in reflection["outcome"]["text"]
        # Every button press was answered, so no button kept spinning.
        presses = [c for c in h.telegram.calls if c[0] == "answerCallbackQuery"]
        assert len(presses) == len(h.telegram.answered_queries) > 0
        # The command menu was registered at start-up.
        assert [c["command"] for c in h.telegram.commands] == ["start", "lessons", "progress", "restart", "help", "transcript", "forget"]
        assert [c["command"] for c in h.telegram.scoped_commands["all_group_chats"]] == ["study", "next", "pause", "resume", "stop", "assign", "standings", "help"]


async def test_an_answer_gets_one_message_echoing_it_with_the_feedback_and_the_next_step(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        while h.telegram.buttons(h.last(ALICE))[0][0] == "Continue ▸":
            await h.tap(ALICE, h.last(ALICE), "Continue ▸")
        question = h.last(ALICE)
        assert question_key(question) == FIRST
        calls = len(h.telegram.calls)
        [reply] = await h.tap(ALICE, question, data=option_data(question, RIGHT[FIRST]))
        right = next(o for o in QUESTIONS[FIRST].options if o.correct)
        assert reply["text"].startswith(f"Your answer: {RIGHT[FIRST]}\n\n✅ {right.feedback[:30]}")
        assert f"{SEPARATOR}\n▰" in reply["text"] and h.telegram.buttons(reply)  # the next step, under it
        made = [method for method, _ in h.telegram.calls[calls:] if method not in ("getUpdates", "answerCallbackQuery")]
        assert made == ["sendMessage"]  # one Bot API call for the answer
        # The answered question keeps its buttons until one of them is tapped again: then
        # the tap is refused, and they go.
        assert h.telegram.buttons(h.telegram.message(ALICE, question["message_id"]))
        h.app.bot_data["services"].allowance.clear()
        await h.tap(ALICE, reply, h.telegram.buttons(reply)[0][0])  # on from the next step
        refused = await h.tap(ALICE, question, data=option_data(question, RIGHT[FIRST]))
        assert "earlier step, so nothing changed" in refused[0]["text"]
        assert h.telegram.buttons(h.telegram.message(ALICE, question["message_id"])) == []


async def test_stale_and_forged_buttons_change_nothing(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        first = h.last(ALICE)
        continue_data = h.telegram.buttons(first)[0][1]
        await h.tap(ALICE, first, "Continue ▸")
        current = h.last(ALICE)
        events_before = h.events(ALICE)
        # The Continue button again at once (a double tap, or the edit had not reached the
        # phone): nothing changes and nothing is sent.
        assert await h.tap(ALICE, first, data=continue_data) == []
        # The button of a step that is over, but not the last thing done: nothing changes,
        # and the learner is shown where they are.
        await h.tap(ALICE, current, "Continue ▸")
        current = h.last(ALICE)
        events_before = h.events(ALICE)
        replies = await h.tap(ALICE, first, data=continue_data)
        assert "earlier step, so nothing changed" in replies[0]["text"]
        assert body(current) == body(replies[-1])  # the step again (without its part heading)
        # Forged and garbled data.
        message = next(n.id for n in CORE_LESSON.nodes.values() if n.kind == "message")
        for data in [f"a:madman-core:{message}:7", "x" * 64, "a:madman-core:../../etc:1", "l:no-such-lesson", f"a:madman-core:{REMEDIED}:9"]:
            h.app.bot_data["services"].allowance.clear()  # as if a few seconds had passed
            replies = await h.tap(ALICE, current, data=data)
            assert "nothing changed" in replies[0]["text"] or "not one of the options" in replies[0]["text"]
            assert body(current) == body(replies[-1]), data
        assert h.events(ALICE) == events_before


async def test_typed_text_and_non_text_messages_get_a_hint(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        replies = await h.say(ALICE, "hello")
        assert "Send /start to begin" in replies[0]["text"]
        await h.say(ALICE, "/start madman-core")
        replies = await h.handled(h.telegram.send_sticker(ALICE)) or h.telegram.bot_messages(ALICE)[-1:]
        assert "I can only read text" in replies[0]["text"] and "Continue" in replies[0]["text"]
        # Typing at a message step goes on, as the Continue button would.
        replies = await h.say(ALICE, "ok")
        assert "how it works" not in replies[-1]["text"].lower()
        assert h.store.progress(f"tg:{ALICE}", "madman-core", f"tg:{ALICE}").state.node == "how-it-works"
        replies = await h.say(ALICE, "/nonsense")
        assert "don't know that command" in replies[0]["text"]


async def test_progress_restart_and_lessons(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        await h.tap(ALICE, h.last(ALICE), "Continue ▸")
        replies = await h.say(ALICE, "/progress")
        assert "part 1 of 4" in replies[0]["text"] and "Right at the first try: 0" in replies[0]["text"]
        replies = await h.say(ALICE, "/lessons")
        assert "in progress, part 1 of 4" in replies[0]["text"]
        ask = (await h.say(ALICE, "/restart"))[0]
        replies = await h.tap(ALICE, ask, "No, keep my place")
        second = CORE_LESSON.following[CORE_LESSON.start_id]
        assert h.store.progress(f"tg:{ALICE}", "madman-core", f"tg:{ALICE}").state.node == second
        ask = (await h.say(ALICE, "/restart"))[0]
        replies = await h.tap(ALICE, ask, "Yes, start over")
        assert "Welcome!" in replies[-1]["text"]
        assert h.store.progress(f"tg:{ALICE}", "madman-core", f"tg:{ALICE}").state.node == CORE_LESSON.start_id
        # /start later resumes where the learner is.
        await h.tap(ALICE, h.last(ALICE), "Continue ▸")
        replies = await h.say(ALICE, "/start")
        assert "Welcome back" in replies[0]["text"]
        assert CORE_LESSON.nodes[second].text[:40] in replies[-1]["text"]


async def test_forget_leaves_no_row_of_the_learner(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        await h.tap(ALICE, h.last(ALICE), "Continue ▸")
        await h.say(BOB, "/start madman-core")
        ask = (await h.say(ALICE, "/forget"))[0]
        replies = await h.tap(ALICE, ask, "Yes, delete everything")
        assert "everything stored about you is deleted" in replies[0]["text"]
        db = h.store.db
        for table in ("learners", "events", "progress", "inbox"):
            for row in db[table].rows:
                # Her ids, and her name as Telegram gave it, are nowhere (timestamps aside).
                stored = " ".join(str(v) for k, v in row.items() if not k.endswith("_at"))
                assert f"tg:{ALICE}" not in stored and f"Learner{ALICE}" not in stored, (table, row)
                assert f'"id": {ALICE}' not in stored, (table, row)
        assert h.store.events(learner=f"tg:{BOB}")  # others keep theirs


async def test_an_old_forget_question_deletes_nothing_learnt_since(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        old = (await h.say(ALICE, "/forget"))[0]
        stale = dict(h.telegram.buttons(old))["Yes, delete everything"]  # as on her screen
        await h.tap(ALICE, h.telegram.bot_messages(ALICE)[0], "Continue ▸")  # she goes on learning
        learnt = h.events(ALICE)
        [note, *_] = await h.tap(ALICE, old, "Yes, delete everything")
        assert "from earlier" in note["text"] and "nothing was deleted" in note["text"]
        assert h.events(ALICE) == learnt
        # Asked again and confirmed at once, it deletes; then she starts again, and the
        # first question's "yes", still on her screen, deletes nothing of the new start.
        await h.tap(ALICE, (await h.say(ALICE, "/forget"))[0], "Yes, delete everything")
        assert h.events(ALICE) == []
        await h.say(ALICE, "/start madman-core")
        again = h.events(ALICE)
        await h.tap(ALICE, old, data=stale)
        assert h.events(ALICE) == again


async def test_redelivered_update_is_handled_once(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        first = h.last(ALICE)
        update_id = h.telegram.press(ALICE, first["message_id"], h.telegram.buttons(first)[0][1])
        await h.handled(update_id)
        # Telegram sends the same update again (e.g. a confirmation got lost).
        with h.telegram.lock:
            h.telegram.queue.append(json.loads(json.dumps({"update_id": update_id, "callback_query": {
                "id": "again", "from": {"id": ALICE, "is_bot": False, "first_name": "A"}, "chat_instance": "c",
                "data": h.telegram.buttons(first)[0][1] if h.telegram.buttons(first) else "c:madman-core:welcome",
                "message": {k: v for k, v in first.items() if k not in ("from_bot", "html")}}})))
        await asyncio.sleep(0.3)
        continues = [e for e in h.events(ALICE) if e["input"]["kind"] == "continue"]
        assert len(continues) == 1
        assert [e["update_id"] for e in continues] == [update_id]


async def test_blocked_learner_is_recorded_not_fatal(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        h.telegram.blocked.add(ALICE)
        await h.handled(h.telegram.send_text(ALICE, "/progress"))
        row = h.store.db["learners"].get(f"tg:{ALICE}")
        assert row["blocked_at"]
        replies = await h.say(BOB, "/start madman-core")  # the bot carries on for others
        assert "Welcome!" in replies[-1]["text"]


async def test_retry_after_and_network_errors_are_retried(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.fail_next("sendMessage", 429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}})
        h.telegram.fail_next("sendMessage", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
        replies = await h.say(ALICE, "/help")
        assert "How this works" in replies[0]["text"]


async def test_token_never_appears_in_logs(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logs.setup("DEBUG", [TOKEN], stream)
    try:
        async with Harness(tmp_path) as h:
            h.telegram.fail_next("getUpdates", 502, {"ok": False, "error_code": 502, "description": f"Bad Gateway for /bot{TOKEN}/getUpdates"})
            await h.say(ALICE, "/start madman-core")
            logging.getLogger("test").error("failing with %s", f"https://api.telegram.org/bot{TOKEN}/sendMessage")
            try:
                raise RuntimeError(f"boom {TOKEN}")
            except RuntimeError:
                logging.getLogger("test").exception("traceback")
    finally:
        logging.getLogger().removeHandler(handler)
    output = stream.getvalue()
    assert "getUpdates" in output or "Bad Gateway" in output or "[redacted]" in output
    assert TOKEN not in output
    assert TOKEN.split(":")[1] not in output
    assert "[redacted]" in output


async def test_learners_texts_are_not_logged_at_info(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logs.setup("INFO", [TOKEN], stream)
    try:
        async with Harness(tmp_path) as h:
            await h.say(ALICE, "/start madman-core")
            await h.say(ALICE, "my secret diary entry")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "my secret diary entry" not in stream.getvalue()


async def test_one_flooding_learner_does_not_hold_up_another(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        first = h.last(ALICE)
        data = h.telegram.buttons(first)[0][1]
        flood = [h.telegram.press(ALICE, first["message_id"], data) for _ in range(40)]
        replies = await h.say(BOB, "/start madman-core")
        assert "Welcome!" in replies[-1]["text"]
        for update_id in flood:
            await h.handled(update_id, timeout=30)
        # Exactly one of the forty taps moved Alice on; the rest were stale.
        assert len([e for e in h.events(ALICE) if e["input"]["kind"] == "continue"]) == 1
        assert h.store.progress(f"tg:{ALICE}", "madman-core", f"tg:{ALICE}").state.node == "how-it-works"
        # The taps after the first repeat what was just accepted: nothing is sent for them.
        told = [m for m in h.telegram.bot_messages(ALICE) if "nothing changed" in m["text"]]
        assert told == []
        assert len(h.telegram.answered_queries) == 40  # yet every tap was answered


async def test_deep_link_to_an_unknown_lesson_lists_the_lessons(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        [listing] = await h.say(ALICE, "/start no-such-lesson")  # one message: the note, then the lessons
        assert listing["text"].startswith("There is no lesson called “no-such-lesson”.\n\nLessons")
        assert "Madman theory: why threats need promises" in listing["text"] and "not started" in listing["text"]
        replies = await h.tap(ALICE, listing, "Madman theory: why threats need promises")
        assert "Welcome!" in replies[-1]["text"]


async def test_the_bot_shows_typing_while_a_reply_is_slow(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")  # a quick reply: no "typing…" (it would cost a call)
        await asyncio.sleep(1.2)
        assert not [p for m, p in h.telegram.calls if m == "sendChatAction"]
        h.telegram.delays["sendMessage"] = 1.5  # Telegram is slow to take the reply
        assert await h.say(ALICE, "/start")  # "Welcome back", 1.5 s late
        actions = [p for m, p in h.telegram.calls if m == "sendChatAction"]
        assert actions and actions[0]["action"] == "typing" and int(actions[0]["chat_id"]) == ALICE


async def test_a_group_is_told_the_group_commands(tmp_path: Path) -> None:
    group = -100200
    async with Harness(tmp_path) as h:
        await h.handled(h.telegram.send_text(ALICE, "/start", group=group))
        reply = h.telegram.last_bot_message(group)
        assert "In a group I know /study" in reply["text"] and "@argument_tutor_bot" in reply["text"]
        await h.handled(h.telegram.send_text(ALICE, "just chatting", group=group))
        assert h.telegram.last_bot_message(group) == reply  # ordinary group talk is left alone
        assert h.store.events() == []


async def test_a_too_short_reflection_is_asked_again(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        for _ in range(10):
            step = h.last(ALICE)
            if "Type your answer" in step["text"]:
                break
            if [label for label, _ in h.telegram.buttons(step)] == ["Continue ▸"]:
                await h.tap(ALICE, step, "Continue ▸")
            else:
                await h.tap(ALICE, step, data=option_data(step, RIGHT[question_key(step)]))
        replies = await h.say(ALICE, "trust")
        assert "Could you say a little more? Please write at least 8 words." in replies[0]["text"]
        assert "Type your answer" in replies[-1]["text"]
        assert not [e for e in h.events(ALICE) if e["input"]["kind"] == "answer"]


async def test_the_bot_waits_for_the_bot_api_at_start_up(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.telegram.fail_next("getMe", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
    async with h:
        replies = await h.say(ALICE, "/start madman-core")
        assert "Welcome!" in replies[-1]["text"]
    assert [m for m, _ in h.telegram.calls[:2]] == ["getMe", "getMe"]


async def test_a_stop_while_the_bot_api_cannot_be_reached_is_logged(tmp_path: Path, caplog) -> None:
    h = Harness(tmp_path)
    for _ in range(5):
        h.telegram.fail_next("getMe", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
    with caplog.at_level(logging.INFO, logger="bot.telegram_bot.app"):
        async with h:
            await asyncio.sleep(0.2)
    assert "connecting to the Bot API failed" in caplog.text
    assert caplog.records[-1].getMessage() == "bot stopped before the Bot API could be reached"


async def test_a_failed_getupdates_is_retried_not_fatal(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        h.telegram.fail_next("getUpdates", 409, {"ok": False, "error_code": 409, "description": "Conflict: terminated by other getUpdates request"})
        replies = await h.say(ALICE, "/start madman-core")
        assert "Welcome!" in replies[-1]["text"]


async def test_a_handled_update_keeps_only_its_id(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start madman-core")
        await h.say(ALICE, "a private remark")
        payloads = [row["payload"] for row in h.store.db["inbox"].rows]
        assert payloads == ["{}", "{}"]


async def test_after_the_end_the_learner_is_told_what_next(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await play_core_lesson(h, ALICE)
        end = h.last(ALICE)
        replies = await h.say(ALICE, "/start")  # the result again, and what next
        assert replies[0]["text"].startswith("You have finished this lesson.")
        assert "🏁" in replies[0]["text"] and replies[0]["text"].endswith(end["text"].split("🏁", 1)[1])
        assert h.telegram.buttons(replies[0]) == h.telegram.buttons(end)  # the parts to look at again
        assert len(replies) == 1  # (the end says what next itself)
        replies = await h.say(ALICE, "more please")
        assert replies[-1]["text"].endswith("/lessons shows the other lessons; /restart goes through this one again.")


async def test_a_long_reply_full_of_characters_html_escapes_reaches_the_learner_whole(tmp_path: Path) -> None:
    """Each `"`, `&`, `<` is several characters of HTML but one of text (the end of the full
    lesson recalls several of the learner's answers): the reply goes out in pieces Telegram
    takes, no tag cut, and not cut at all where its text fits."""
    from bot.telegram_bot.render import OutMessage

    answer = html.escape('"&<> trust "&<> deal ' * 190)  # 4,000 characters of text, 13,000 of HTML
    async with Harness(tmp_path) as h:
        s = h.app.bot_data["services"]
        with h.store.atomic():
            s.outbox.add(ALICE, OutMessage(f"<b>You wrote:</b>\n<i>{answer}</i>"))
            s.outbox.add(ALICE, OutMessage(f"<b>Again:</b>\n<i>{answer}</i>\n<i>{answer}</i>", buttons=((("Look again", "x"),),)))
        await s.outbox.flush(ALICE)
        sent = h.telegram.bot_messages(ALICE)
        assert [len(m["text"]) <= 4096 for m in sent] == [True] * 3  # the first whole, the second in two
        assert sent[0]["text"] == "You wrote:\n" + html.unescape(answer)
        assert h.telegram.buttons(sent[-1]) == [("Look again", "x")]
        assert all(m["html"].count("<i>") == m["html"].count("</i>") for m in sent)
        assert h.store.db.execute("SELECT COUNT(*) FROM outbox WHERE failed_at IS NOT NULL").fetchone()[0] == 0


async def test_a_button_of_a_lesson_forgotten_says_it_is_old_and_shows_where_the_learner_is(tmp_path: Path) -> None:
    async with Harness(tmp_path, lessons_path=CORE.parent) as h:  # both lessons
        await h.say(ALICE, "/start madman")
        old, old_data = next((m, d) for m in h.telegram.bot_messages(ALICE) for _, d in h.telegram.buttons(m)
                             if d.startswith("c:madman:"))
        await h.tap(ALICE, (await h.say(ALICE, "/forget"))[0], "Yes, delete everything")
        await h.say(ALICE, "/start madman-core")
        replies = await h.tap(ALICE, old, data=old_data)
        assert "That button belongs to an earlier step" in replies[0]["text"]
        assert text_of(START) in replies[-1]["text"]  # where she is in madman-core
        assert h.events(ALICE)[-1]["lesson"] == "madman-core" and len(h.events(ALICE)) == 1


async def test_an_option_typed_by_its_number_is_echoed_as_a_tap_is(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.say(ALICE, "/start MADMAN-CORE")
        assert h.events(ALICE)[0]["lesson"] == "madman-core"  # the lesson id in any case
        while not h.telegram.buttons(h.last(ALICE)) or h.telegram.buttons(h.last(ALICE))[0][0] == "Continue ▸":
            await h.tap(ALICE, h.last(ALICE), "Continue ▸")
        question = h.last(ALICE)
        key = question_key(question)
        position = next(i for i, (_, data) in enumerate(h.telegram.buttons(question), 1)
                        if data == option_data(question, answer(key)))
        [reply] = await h.say(ALICE, f" {position} ")
        assert reply["text"].startswith(f"Your answer: {answer(key)}"), reply["text"][:80]


async def test_replies_left_waiting_at_a_stop_are_logged_and_go_out_at_the_next_start(tmp_path: Path, caplog) -> None:
    async with Harness(tmp_path) as h:
        for _ in range(20):  # Telegram fails every send until the stop
            h.telegram.fail_next("sendMessage", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
        await h.handled(h.telegram.send_text(ALICE, "/start madman-core"))
        assert h.telegram.bot_messages(ALICE) == []
    with caplog.at_level(logging.INFO, logger="bot.telegram_bot.outbox"):
        async with Harness(tmp_path) as h:
            for _ in range(50):
                if h.telegram.bot_messages(ALICE):
                    break
                await asyncio.sleep(0.05)
            assert "Welcome!" in h.telegram.bot_messages(ALICE)[0]["text"]
    assert "outbox: 1 message(s) left waiting at the last stop go out first" in caplog.text

"""The lesson's second round in Telegram: shuffled options, quotes, self-checks, second looks.

A small lesson (the tiny lesson of conftest, with a quote and a self-check) runs on the real
python-telegram-bot stack against the fake Bot API, as in test_telegram_bot."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import tiny_text
from tests.core_lesson import option_data
from tests.test_telegram_bot import Harness

ANN, BEN = 601, 602
RIGHT = "No one trusts the madman to keep a deal."
M1 = "The threats stop being believed."
LESSON = tiny_text(
    (
        "        say: Acting unpredictable can backfire.\n",
        "        quote:\n          text: The madman shtick isn't working for Trump.\n          paragraph: 14\n"
        "        say: Acting unpredictable can backfire.\n",
    ),
    (
        "        model_answer: Yielding only pays if the deal is kept.\n",
        "        model_answer: Yielding only pays if the deal is kept.\n"
        "        checklist: [It names the promise., It says what yielding gains.]\n",
    ),
)


def lesson_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(LESSON, encoding="utf-8")
    return path


async def to_question(h: Harness, user: int) -> dict:
    await h.say(user, "/start tiny")
    await h.tap(user, h.last(user), "Continue ▸")
    await h.tap(user, h.last(user), "Continue ▸")
    return h.last(user)


def labels(h: Harness, message: dict) -> list[str]:
    return [label for label, _ in h.telegram.buttons(message)]


def listed(message: dict) -> list[str]:
    """The options a question lists with numbers (too long for buttons), in the order shown."""
    lines = [line.partition(". ") for line in message["text"].splitlines()]
    return [text for number, _, text in lines if number.isdigit() and text]


async def choose(h: Harness, user: int, question: dict, option: str) -> list[dict]:
    return await h.tap(user, question, data=option_data(question, option))


async def test_each_learner_sees_their_own_order_and_every_button_names_its_option(tmp_path: Path) -> None:
    async with Harness(tmp_path, lesson_file(tmp_path)) as h:
        orders = set()
        for user in range(700, 716):
            question = await to_question(h, user)
            orders.add(tuple(listed(question)))
            assert option_data(question, RIGHT) == "a:tiny:q1:1"  # the option's identity, wherever it sits
            replies = await choose(h, user, question, RIGHT)
            assert replies[0]["text"].startswith(f"Your answer: {RIGHT}\n\n✅ Right.")
        assert len(orders) > 2
        # The order is the learner's own for good: shown again, it is the same.
        question = await to_question(h, ANN)
        again = (await h.say(ANN, "/start"))[-1]
        assert listed(again) == listed(question)


async def test_a_typed_number_picks_the_option_shown_at_that_number(tmp_path: Path) -> None:
    async with Harness(tmp_path, lesson_file(tmp_path)) as h:
        question = await to_question(h, ANN)
        number = listed(question).index(RIGHT) + 1
        replies = await h.say(ANN, str(number))
        assert replies[0]["text"].startswith(f"Your answer: {RIGHT}\n\n✅ Right.")  # echoed, as a tap is


async def test_steps_show_progress_and_the_column_is_quoted(tmp_path: Path) -> None:
    async with Harness(tmp_path, lesson_file(tmp_path)) as h:
        first = (await h.say(ANN, "/start tiny"))[-1]
        assert first["html"].startswith("▰▱▱ <b>Part 1 of 3: Getting started</b>\n\nHello.")
        claim = (await h.tap(ANN, first, "Continue ▸"))[-1]
        assert claim["html"].startswith(
            "▰▰▱ <b>Part 2 of 3: Why it backfires</b>\n\n"
            "<blockquote>The madman shtick isn&#x27;t working for Trump.</blockquote>\n"
            "<i>— Andreas Kluth, paragraph 14</i>\n\nActing unpredictable can backfire."
        )
        question = (await h.tap(ANN, claim, "Continue ▸"))[-1]
        assert question["text"].startswith("▰▰▱ part 2 of 3\n\nWhy does it backfire?")


async def test_a_shared_remedy_returns_and_a_second_miss_shows_the_answer(tmp_path: Path) -> None:
    async with Harness(tmp_path, lesson_file(tmp_path)) as h:
        question = await to_question(h, ANN)
        replies = await choose(h, ANN, question, M1)
        assert "❌ A common reading" in replies[0]["text"] and "The column is about promises." in replies[-1]["text"]
        again = (await h.tap(ANN, replies[-1], "Continue ▸"))[-1]
        assert "Why does it backfire?" in again["text"]
        replies = await choose(h, ANN, again, M1)
        assert f"➡️ The answer is: {RIGHT}" in replies[0]["text"]
        assert "Do you find this convincing?" in replies[-1]["text"]
        assert h.events(ANN)[-1]["outcome"]["revealed"] is True


async def test_a_self_check_toggles_in_place_and_done_records_the_points(tmp_path: Path) -> None:
    async with Harness(tmp_path, lesson_file(tmp_path)) as h:
        question = await to_question(h, ANN)
        poll = (await choose(h, ANN, question, RIGHT))[-1]
        await h.tap(ANN, poll, "No")
        replies = await h.say(ANN, "They would never keep the deal.")
        assert "Thank you: your answer is saved, and an instructor may read it." in replies[0]["text"]
        assert "📝 A model answer:\nYielding only pays if the deal is kept." in replies[0]["text"]
        check = replies[-1]
        assert "1. It names the promise.\n2. It says what yielding gains." in check["text"]
        assert labels(h, check) == ["☐ 1", "☐ 2", "Done ▸"]
        events = len(h.events(ANN))
        assert await h.tap(ANN, check, "☐ 2") == []  # a toggle edits the buttons; nothing is sent
        check = h.telegram.message(ANN, check["message_id"])
        assert labels(h, check) == ["☐ 1", "☑ 2", "Done ▸"]
        assert len(h.events(ANN)) == events  # and nothing is recorded until Done
        stale_done = dict(h.telegram.buttons(check))["Done ▸"]
        await h.tap(ANN, check, "☐ 1")
        check = h.telegram.message(ANN, check["message_id"])
        assert labels(h, check) == ["☑ 1", "☑ 2", "Done ▸"]
        replies = await h.tap(ANN, check, "Done ▸")
        assert h.events(ANN)[-1]["outcome"] == {"covered": [0, 1], "of": 2}
        [end] = replies  # one message: the points echoed, then the end
        assert end["text"].startswith("Your answer makes: 1, 2")
        assert "You were asked: Why does trust matter here?\nYou said: They would never keep the deal." in end["text"]
        # An older Done of the same self-check changes nothing.
        events = len(h.events(ANN))
        await h.tap(ANN, check, data=stale_done)
        assert len(h.events(ANN)) == events


async def test_the_end_offers_a_second_look_at_the_parts_missed(tmp_path: Path) -> None:
    async with Harness(tmp_path, lesson_file(tmp_path)) as h:
        question = await to_question(h, BEN)
        remedy = (await choose(h, BEN, question, "Nobody cares."))[-1]
        poll = (await choose(h, BEN, remedy, RIGHT))[-1]
        await h.tap(BEN, poll, "Yes")
        check = (await h.say(BEN, "They would never keep the deal."))[-1]
        end = (await h.tap(BEN, check, "Done ▸"))[-1]
        assert "Worth another look:\n• Part 2: Why it backfires" in end["text"]
        assert labels(h, end) == ["Look again: part 2"]
        replies = await h.tap(BEN, end, "Look again: part 2")
        assert replies[-1]["text"].startswith("▰▰▱ Part 2 of 3: Why it backfires")
        assert h.store.progress(f"tg:{BEN}", "tiny", f"tg:{BEN}").state.node == "claim"
        # Tapped twice at once, it does nothing more; tapped later mid-lesson, the old end's
        # button moves nobody.
        assert await h.tap(BEN, end, "Look again: part 2") == []
        await h.tap(BEN, replies[-1], h.telegram.buttons(replies[-1])[0][0])
        node = h.store.progress(f"tg:{BEN}", "tiny", f"tg:{BEN}").state.node
        replies = await h.tap(BEN, end, "Look again: part 2")
        assert "earlier step, so nothing changed" in replies[0]["text"]
        assert h.store.progress(f"tg:{BEN}", "tiny", f"tg:{BEN}").state.node == node

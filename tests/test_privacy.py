"""Privacy: after /forget no byte of the learner (ids, name, texts) is left in the database
file or its WAL, and the bot token is never stored."""

from __future__ import annotations

import asyncio
from pathlib import Path


from tests.fake_telegram import TOKEN
from tests.test_telegram_bot import BOB, Harness, play_core_lesson

CAROL = 982341  # an id that no timestamp or other learner's data contains
REFLECTION = "Quixotic zeppelins: no deal is worth making with a partner who breaks deals."


def stored_bytes(path: Path) -> bytes:
    """The database file with its WAL and shared-memory files, as they are on disk now."""
    return b"".join(Path(f"{path}{suffix}").read_bytes() for suffix in ("", "-wal", "-shm") if Path(f"{path}{suffix}").exists())


def traces_of(user: int, data: bytes) -> list[bytes]:
    marks = [f"tg:{user}".encode(), f"Learner{user}".encode(), str(user).encode(), REFLECTION.encode()]
    return [mark for mark in marks if mark in data]


async def test_forget_leaves_no_byte_of_the_learner_in_the_file_or_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with Harness(tmp_path) as h:
        await play_core_lesson(h, CAROL, REFLECTION)  # her name, ids and a written reflection are stored
        await play_core_lesson(h, BOB)
        assert traces_of(CAROL, stored_bytes(path))  # the check can see her before
        ask = (await h.say(CAROL, "/forget"))[0]
        replies = await h.tap(CAROL, ask, "Yes, delete everything")
        assert "everything stored about you is deleted" in replies[0]["text"]
        await asyncio.sleep(0.2)  # the confirmation is sent, then its outbox row deleted too
        assert traces_of(CAROL, stored_bytes(path)) == []  # while the bot runs
        replies = await h.say(BOB, "/progress")  # others go on
        assert "Finished." in replies[0]["text"]
        assert traces_of(CAROL, stored_bytes(path)) == []
    assert traces_of(CAROL, stored_bytes(path)) == []  # and after it stopped


async def test_the_token_is_never_stored(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await play_core_lesson(h, BOB)
    data = stored_bytes(tmp_path / "bot.db")
    assert TOKEN.encode() not in data and TOKEN.split(":")[1].encode() not in data


async def test_forget_leaves_no_byte_after_a_long_reflection_and_another_learner(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    long_reflection = REFLECTION + " " + " ".join(["Quixotic zeppelins drift over the negotiating table."] * 20)
    async with Harness(tmp_path) as h:
        await play_core_lesson(h, CAROL, long_reflection)
        await play_core_lesson(h, BOB)
        ask = (await h.say(CAROL, "/forget"))[0]
        await h.tap(CAROL, ask, "Yes, delete everything")
        await asyncio.sleep(0.2)
        assert traces_of(CAROL, stored_bytes(path)) == []


async def test_forget_leaves_no_byte_in_messages_sent_to_others(tmp_path: Path) -> None:
    # An instructor was shown her reflection for review, and a group's leader her score:
    # those messages name her, and lose their text when she is forgotten.
    from tests.test_group_study import GROUP, TEACHER, in_group, last_step, vote

    path = tmp_path / "bot.db"
    instructor = 9500
    async with Harness(tmp_path) as h:
        h.settings.instructors = [instructor]
        h.telegram.admins[GROUP] = {TEACHER}
        await play_core_lesson(h, CAROL, REFLECTION)
        [item] = await h.say(instructor, "/review")
        assert f"Learner{CAROL}" in item["text"] and REFLECTION in item["text"]
        await h.say(TEACHER, "/help")
        await in_group(h, TEACHER, "/study madman-core")
        for _ in range(30):
            step = h.telegram.last_bot_message(GROUP)
            if "🏁" in step["text"]:
                break
            if "poll" in last_step(h):
                await vote(h, CAROL, last_step(h), last_step(h)["poll"]["options"][0]["text"])
            await in_group(h, TEACHER, "/next")
        await asyncio.sleep(1.5)  # the leader's scores go out with the outbox's next round
        assert f"Learner{CAROL}: " in h.telegram.last_bot_message(TEACHER)["text"]
        ask = (await h.say(CAROL, "/forget"))[0]
        await h.tap(CAROL, ask, "Yes, delete everything")
        await asyncio.sleep(0.2)
        assert traces_of(CAROL, stored_bytes(path)) == []

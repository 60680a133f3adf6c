"""Telegram and the network misbehaving while learners go through madman-core.

For each kind of fault (429 with retry_after, 500, 502, a dropped connection, a malformed
answer, a slow answer that Telegram carried out but answered too late) a share of the
calls fails: sends, edits, button answers, getUpdates, and getMe, deleteWebhook and
setMyCommands at start-up. Every learner must still finish, every answer must be recorded
exactly once, every reply must end up sent, and the bot must keep running. A learner who
blocks the bot (403) is marked blocked with their progress kept, and nobody else notices.

The outbox's timings are shortened (retry after 0.2 s instead of 2 s, looked at every
0.1 s instead of every second, the sender's first network retry after 50 ms) so that the
tests are quick; the logic is the bot's own. Run with `-s` to see the figures.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
from pathlib import Path

import pytest

from bot import logs
from bot.telegram_bot import outbox as outbox_module
from bot.telegram_bot.app import services
from bot.telegram_bot.outbox import Outbox
from tests.core_lesson import OPENING, START, text_of
from tests.fake_telegram import TOKEN
from tests.test_bot_process import Learner, is_step
from tests.test_telegram_bot import Harness

SENDS = ("sendMessage", "editMessageText", "answerCallbackQuery")
START_UP = ("getMe", "deleteWebhook", "setMyCommands")
FAULTS = {
    # kind: (share of the sends, edits and button answers it hits, share of getUpdates calls)
    "429": (0.1, 0.05),
    "500": (0.2, 0.05),
    "502": (0.2, 0.05),
    "drop": (0.2, 0.05),
    "malformed": (0.2, 0.05),
    "slow": (0.2, 0.05),
}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox tries a failed send again after 0.2 s (doubling up to 1 s), not 2 s."""
    monkeypatch.setattr(outbox_module, "RETRY_FIRST", 0.2)
    monkeypatch.setattr(outbox_module, "RETRY_MAX", 1.0)


def quicken(h: Harness) -> None:
    """Shorter outbox and sender waits (the same logic, test-sized timings)."""
    s = services(h.app)
    s.sender.first_delay = 0.05
    s.outbox.run = functools.partial(Outbox.run, s.outbox, every=0.1)  # type: ignore[method-assign]


def waiting_rows(h: Harness, chat_id: int) -> int:
    return h.store.db.execute(
        "SELECT COUNT(*) FROM outbox WHERE chat_id = ? AND sent_at IS NULL AND failed_at IS NULL", [chat_id]
    ).fetchone()[0]


def handled(h: Harness, update_id: int) -> bool:
    row = h.store.db.execute("SELECT handled_at FROM inbox WHERE update_id = ?", [update_id]).fetchone()
    return bool(row and row[0])


def blocked(h: Harness, user: int) -> bool:
    row = h.store.db.execute("SELECT blocked_at FROM learners WHERE id = ?", [f"tg:{user}"]).fetchone()
    return bool(row and row[0])


async def settle(h: Harness, learner: Learner, update_id: int, timeout: float = 20.0) -> bool:
    """Wait until the bot has handled the learner's update and sent all it queued for them;
    then the step on screen is the last step message that arrived. False if none came."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if h.task is not None and h.task.done():
            h.task.result()
        if handled(h, update_id) and waiting_rows(h, learner.user) == 0:
            steps = [m for m in h.telegram.bot_messages(learner.user)[learner.seen:] if is_step(m)]
            if steps:
                learner.step = steps[-1]  # a step sent twice: the later copy
                return True
            if blocked(h, learner.user):
                return False
        await asyncio.sleep(0.01)
    return False


async def step(h: Harness, learner: Learner) -> None:
    """The learner acts on the step on screen and waits for the next one."""
    learner.act()
    update_id = h.telegram.next_update_id - 1
    assert await settle(h, learner, update_id), f"learner {learner.user} got no reply to update {update_id}"


async def go_through(h: Harness, learner: Learner, limit: int = 40) -> None:
    """The learner answers step after step, to the end of the lesson."""
    for _ in range(limit):
        await step(h, learner)
        if learner.done:
            return
    raise AssertionError(f"learner {learner.user} did not finish in {limit} steps")


def recorded_answers(h: Harness, user: int) -> list[int]:
    return [e["update_id"] for e in h.events(user) if e["input"]["kind"] in ("continue", "choose", "answer", "check")]


def outbox_states(h: Harness) -> dict[int, dict[str, int]]:
    """Per chat: how many rows were sent, failed (by error) or still wait."""
    states: dict[int, dict[str, int]] = {}
    for chat_id, sent_at, failed_at, error in h.store.db.execute(
        "SELECT chat_id, sent_at, failed_at, error FROM outbox"
    ).fetchall():
        key = "sent" if sent_at else (f"failed: {(error or '').split(':')[0]}" if failed_at else "waiting")
        states.setdefault(chat_id, {}).setdefault(key, 0)
        states[chat_id][key] += 1
    return states


def duplicates(h: Harness, user: int) -> int:
    """Messages the learner sees beyond the send rows the outbox marked sent (each row once)."""
    sent_rows = h.store.db.execute(
        "SELECT COUNT(*) FROM outbox WHERE chat_id = ? AND kind = 'send' AND sent_at IS NOT NULL", [user]
    ).fetchone()[0]
    return len(h.telegram.bot_messages(user)) - sent_rows


async def scenario(kind: str, tmp_path: Path) -> str:
    """Four learners through madman-core while `kind` hits a share of the calls; a summary."""
    tmp_path.mkdir()
    share, polls = FAULTS.get(kind, (0.0, 0.0))
    h = Harness(tmp_path)
    quicken(h)
    telegram = h.telegram
    if kind != "none":
        # At start-up: the first getMe, deleteWebhook and setMyCommands each fail once.
        start_up = [telegram.inject(kind, method, count=1, seed=i) for i, method in enumerate(START_UP)]
        on_sends = telegram.inject(kind, SENDS, share=share, seed=11)
        on_polls = telegram.inject(kind, "getUpdates", share=polls, count=3, seed=12)
    learners = [Learner(telegram, 9100 + i, wrong_first=i % 2 == 0) for i in range(4)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with h:
        await asyncio.gather(*(go_through(h, learner) for learner in learners))
        took = loop.time() - started
        assert not h.task.done()  # the bot still runs
        # The faults are over: the bot serves a newcomer at once.
        telegram.clear_faults()
        newcomer = Learner(telegram, 9199, wrong_first=False)
        newcomer.act()
        assert await settle(h, newcomer, telegram.next_update_id - 1, timeout=5)
        assert text_of(START) in newcomer.step["text"]
        summary = check(h, kind, learners)
    if kind == "none":
        return f"[faults none] {len(learners)} learners finished in {took:.1f} s; {summary}"
    assert [len(f.hits) for f in start_up] == [1, 1, 1]
    assert [m for m, _ in telegram.calls].count("getMe") >= 2  # start-up waited for the Bot API
    assert [c["command"] for c in telegram.commands][:1] == ["start"]  # the menu got registered in the end
    assert on_sends.hits and on_polls.hits
    return (
        f"[faults {kind}] {len(learners)} learners finished in {took:.1f} s; faults hit "
        f"{len(on_sends.hits)} sends/edits/button answers ({', '.join(f'{m} {on_sends.hits.count(m)}' for m in SENDS)}), "
        f"{len(on_polls.hits)} getUpdates, 3 at start-up; {summary}"
    )


def check(h: Harness, kind: str, learners: list[Learner]) -> str:
    """Everybody finished, each answer recorded once, every reply sent; a summary of the rest."""
    telegram = h.telegram
    for learner in learners:
        assert learner.done, learner.user
        assert sorted(recorded_answers(h, learner.user)) == sorted(learner.answers), learner.user  # each once
        progress = h.store.progress(f"tg:{learner.user}", "madman-core", f"tg:{learner.user}")
        assert progress is not None and progress.state.finished
    states = outbox_states(h)
    assert all(set(s) == {"sent"} for s in states.values()), states  # every reply went out
    assert h.store.db.execute("SELECT COUNT(*) FROM inbox WHERE handled_at IS NULL OR failed_at IS NOT NULL").fetchone()[0] == 0
    copies = sum(duplicates(h, learner.user) for learner in learners)
    if kind in ("none", "429", "500", "502", "drop"):  # refused before Telegram acted: nothing can go out twice
        assert copies == 0
    unanswered = set(telegram.queries) - telegram.answered_queries
    return (
        f"duplicate messages {copies} of {sum(len(telegram.bot_messages(u.user)) for u in learners)} shown; "
        f"{len(unanswered)} of {len(telegram.queries)} taps never answered (button left spinning)"
    )


async def test_learners_finish_while_telegram_fails(tmp_path: Path) -> None:
    """Each kind of fault in a bot of its own; the bots run side by side (to keep the test short)."""
    kinds = ["none", *FAULTS]
    results = await asyncio.gather(*(scenario(kind, tmp_path / kind) for kind in kinds), return_exceptions=True)
    failed = {kind: result for kind, result in zip(kinds, results) if isinstance(result, BaseException)}
    for result in results:
        if not isinstance(result, BaseException):
            print("\n" + result, end="")
    if failed:
        kind, error = next(iter(failed.items()))
        raise AssertionError(f"failed under: {', '.join(failed)}; first, {kind}: {error!r}") from error


async def test_a_learner_who_blocks_the_bot_is_marked_and_nobody_else_notices(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    quicken(h)
    telegram = h.telegram
    others = [Learner(telegram, 9200 + i, wrong_first=i == 0) for i in range(3)]
    quitter = Learner(telegram, 9210, wrong_first=True)
    telegram.inject("500", SENDS, share=0.1, seed=3)  # a little trouble besides

    async def quit_midway() -> None:
        for _ in OPENING[:-1]:  # /start, then Continue: the last message before the first question on screen
            await step(h, quitter)
        quitter.act()  # taps Continue, then blocks the bot before the reply comes
        telegram.blocked.add(quitter.user)
        update_id = telegram.next_update_id - 1
        assert not await settle(h, quitter, update_id, timeout=10)

    async with h:
        await asyncio.gather(quit_midway(), *(go_through(h, learner) for learner in others))
        assert not h.task.done()
        assert blocked(h, quitter.user)
        # Later the learner unblocks the bot and comes back: where they were.
        telegram.blocked.discard(quitter.user)
        quitter.seen = len(telegram.bot_messages(quitter.user))
        telegram.send_text(quitter.user, "/start")
        assert await settle(h, quitter, telegram.next_update_id - 1, timeout=5)
        assert "Welcome back" in telegram.bot_messages(quitter.user)[quitter.seen]["text"]
        assert not blocked(h, quitter.user)
        check_blocked(h, quitter, others)


def check_blocked(h: Harness, quitter: Learner, others: list[Learner]) -> None:
    for learner in others:
        assert learner.done
        assert sorted(recorded_answers(h, learner.user)) == sorted(learner.answers)
    # The blocked learner's answers, the last one included, were kept; so was their place.
    assert sorted(recorded_answers(h, quitter.user)) == sorted(quitter.answers)
    progress = h.store.progress(f"tg:{quitter.user}", "madman-core", f"tg:{quitter.user}")
    assert progress is not None and progress.state.node == OPENING[-1]
    states = outbox_states(h)
    blocked_rows = states.pop(quitter.user)
    assert set(blocked_rows) == {"sent", "failed: blocked"}, blocked_rows
    assert all(set(s) == {"sent"} for s in states.values()), states
    failed_elsewhere = h.store.db.execute(
        "SELECT COUNT(*) FROM outbox WHERE failed_at IS NOT NULL AND chat_id != ?", [quitter.user]
    ).fetchone()[0]
    assert failed_elsewhere == 0
    print(f"\n[faults 403] blocked chat rows {blocked_rows}; others all sent")


async def test_one_failure_of_set_my_commands_or_delete_webhook_does_not_stop_the_bot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path)
    h.telegram.inject("500", "setMyCommands", count=1)
    h.telegram.inject("500", "deleteWebhook", count=1)
    with caplog.at_level(logging.WARNING):
        async with h:
            replies = await h.say(9300, "/start madman-core")
            assert text_of(START) in replies[-1]["text"]
            for _ in range(300):
                if h.telegram.commands and h.telegram.scoped_commands:
                    break
                await asyncio.sleep(0.01)
            assert not h.task.done()
    calls = [m for m, _ in h.telegram.calls]
    # The failed call is made again: the default menu twice, the groups' menu once.
    assert calls.count("setMyCommands") == 3 and calls.count("deleteWebhook") == 2
    assert [c["command"] for c in h.telegram.commands][0] == "start"
    said = " | ".join(r.getMessage() for r in caplog.records)
    assert "setMyCommands failed" in said and "deleteWebhook failed" in said
    assert not any(r.levelno >= logging.ERROR for r in caplog.records), said


async def test_a_429_logs_a_warning_not_an_error_with_a_traceback(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logs.setup("INFO", [TOKEN], stream)
    try:
        h = Harness(tmp_path)
        h.telegram.inject("429", "sendMessage", count=2)
        async with h:
            replies = await h.say(9400, "/help")
            assert "How this works" in replies[0]["text"]
    finally:
        logging.getLogger().removeHandler(handler)
    output = stream.getvalue()
    assert "Telegram asks to wait" in output and " WARNING " in output
    assert "Rate limit hit" not in output
    assert "Traceback" not in output and " ERROR " not in output, output


async def test_an_answer_that_is_not_json_is_logged_without_its_body(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logs.setup("INFO", [TOKEN], stream)
    try:
        h = Harness(tmp_path)
        async with h:
            await h.say(9500, "/start madman-core")  # her name is in what getUpdates returns
            fault = h.telegram.inject("malformed", "getUpdates", count=2)
            replies = await h.say(9501, "/help")
            assert "How this works" in replies[0]["text"]
            # (The call in flight when the fault was set may have brought /help: the next ones fail.)
            for _ in range(100):
                if len(fault.hits) == 2:
                    break
                await asyncio.sleep(0.1)
            assert len(fault.hits) == 2
            assert "How this works" in (await h.say(9501, "/help"))[0]["text"]  # and the bot goes on
    finally:
        logging.getLogger().removeHandler(handler)
    output = stream.getvalue()
    assert "the Bot API sent an answer that is not JSON" in output
    assert "{not json" not in output and "Can not load invalid JSON data" not in output, output


async def test_a_second_poller_on_the_token_is_named_and_waited_out(tmp_path: Path, caplog) -> None:
    h = Harness(tmp_path)
    conflict = {"ok": False, "error_code": 409, "description": "Conflict: terminated by other getUpdates request"}
    h.telegram.fail_next("getUpdates", 409, conflict)
    with caplog.at_level(logging.WARNING):
        async with h:
            replies = await h.say(9600, "/help")  # served once the other poller is gone
            assert "How this works" in replies[0]["text"]
    assert "another process is fetching updates with this bot's token" in caplog.text

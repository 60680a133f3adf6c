"""Telegram's limits as the outbox keeps them: a person gets a short burst, then about one
message a second; the settings name Telegram's values; "off" is for benchmarks only."""

from __future__ import annotations

from pathlib import Path

from bot.settings import Settings
from bot.store import Store
from bot.telegram_bot.outbox import PRIVATE_BURST, Outbox


async def test_a_person_gets_a_burst_then_one_message_a_second(tmp_path: Path) -> None:
    outbox = Outbox(Store(tmp_path / "bot.db"), sender=None, private_per_second=1.0)  # type: ignore[arg-type]
    waits = [outbox.private_wait(42) for _ in range(PRIVATE_BURST + 2)]
    assert waits[:PRIVATE_BURST] == [0.0] * PRIVATE_BURST
    assert 0.9 < waits[PRIVATE_BURST] <= 1.0 and 1.9 < waits[PRIVATE_BURST + 1] <= 2.0  # queued one a second
    assert outbox.private_wait(43) == 0.0  # another person is not held up
    assert outbox.private_wait(-100123) == 0.0  # a group has its own limit (20 a minute)
    unlimited = Outbox(Store(tmp_path / "other.db"), sender=None, private_per_second=None)  # type: ignore[arg-type]
    assert [unlimited.private_wait(42) for _ in range(10)] == [0.0] * 10


def test_the_limits_default_to_telegrams(monkeypatch) -> None:
    for name in ("TUTORBOT_RATE_LIMIT", "TUTORBOT_RATE_OVERALL", "TUTORBOT_RATE_GROUP", "TUTORBOT_RATE_PRIVATE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_environment(env_file=None)
    assert (settings.rate_limit, settings.rate_overall, settings.rate_group, settings.rate_private) == ("telegram", 30.0, 20, 1.0)
    monkeypatch.setenv("TUTORBOT_RATE_OVERALL", "100")  # a bot with paid broadcasts
    assert Settings.from_environment(env_file=None).rate_overall == 100.0


def test_handled_updates_are_forgotten_after_the_retention_period(tmp_path: Path) -> None:
    from bot.telegram_bot.inbox import Inbox

    store = Store(tmp_path / "bot.db")
    rows = [(1, "2026-01-01T00:00:00.000+00:00", "h", None), (2, "2026-01-01T00:00:00.000+00:00", None, None),
            (3, "2026-01-01T00:00:00.000+00:00", "h", "set aside"), (4, "2026-01-01T00:00:00.000+00:00", "h", None),
            (5, "2026-03-01T00:00:00.000+00:00", "h", None)]
    with store.atomic():
        for update_id, received, handled, failed in rows:
            store.db.execute(
                "INSERT INTO inbox (update_id, payload, received_at, handled_at, failed_at) VALUES (?, '{}', ?, ?, ?)",
                [update_id, received, handled, failed],
            )
        first = Inbox(store).prune("2026-02-01T00:00:00.000+00:00", limit=1)  # a batch at a time, oldest first
        removed = first + Inbox(store).prune("2026-02-01T00:00:00.000+00:00")
    left = [row[0] for row in store.db.execute("SELECT update_id FROM inbox ORDER BY update_id")]
    # 1 and 4 go; 2 waits to be handled, 3 was set aside, 5 is recent (and the newest id).
    assert first == 1 and removed == 2 and left == [2, 3, 5]
    assert Inbox(store).next_offset() == 6


async def test_sent_replies_keep_their_step_and_lose_their_text_after_the_retention_period(tmp_path: Path, caplog) -> None:
    import asyncio
    import logging
    from datetime import datetime, timezone

    from bot.telegram_bot.app import watch_database
    from bot.telegram_bot.outbox import trim_sent

    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    store = Store(tmp_path / "bot.db", clock=lambda: now)
    old, recent = "2026-01-01T00:00:00.000+00:00", "2026-02-28T12:00:00.000+00:00"
    rows = [  # id: kind, sent_at, failed_at
        (1, "send", old, None), (2, "edit", old, None), (3, "send", None, None), (4, "send", None, old),
        (5, "poll", old, None), (6, "send", recent, None), (7, "send", old, None), (8, "send", None, recent),
    ]
    with store.atomic():
        for row_id, kind, sent, failed in rows:
            store.db.execute(
                "INSERT INTO outbox (id, chat, chat_id, kind, body, step, created_at, sent_at, failed_at, message_id) "
                "VALUES (?, 'tg:5', 5, ?, ?, 'madman:q1', ?, ?, ?, ?)",
                [row_id, kind, f'{{"text": "you said: secret {row_id}", "message_id": 1}}', old, sent, failed, row_id if sent else None],
            )
    before = "2026-02-27T00:00:00.000+00:00"
    with store.atomic():
        assert trim_sent(store, before, limit=1) == 1  # a batch at a time, oldest first
    assert "secret 1\"" not in store.db.execute("SELECT body FROM outbox WHERE id = 1").fetchone()[0]
    with store.atomic():
        assert trim_sent(store, before) == 3  # the other sent ones, then the one given up on
        assert trim_sent(store, before) == 0

    def bodies() -> dict[int, str]:
        return dict(store.db.execute("SELECT id, body FROM outbox ORDER BY id").fetchall())

    # Sent messages and polls, and a reply given up on, lose their text; an edit (read by
    # `Outbox.edited`), a reply waiting, and one sent or given up on within the period keep theirs.
    assert [row_id for row_id, body in bodies().items() if "secret" not in body] == [1, 4, 5, 7]
    assert Outbox(store, sender=None).message_of(5, "madman:q1") == 7  # type: ignore[arg-type]

    # The bot does it by itself, once an hour (a new database: the first round is at the start).
    other = Store(tmp_path / "other.db", clock=lambda: now)
    with other.atomic():
        other.db.execute(
            "INSERT INTO outbox (chat, chat_id, kind, body, created_at, sent_at) VALUES ('tg:5', 5, 'send', '{\"text\": \"x\"}', ?, ?)",
            [old, old],
        )
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(watch_database(other, stop, every=0.01, sent_text_hours=48))
        await asyncio.sleep(0.2)
        stop.set()
        await task
    assert other.db.execute("SELECT body FROM outbox").fetchone()[0] == "{}"
    assert "dropped the text of 1 message(s) sent or given up on over 48 hours ago" in caplog.text

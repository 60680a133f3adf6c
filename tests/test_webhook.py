"""Webhook mode: the secret is checked, and an update is stored before Telegram gets its 200."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx

from bot.loader import load_all
from bot.settings import Settings
from bot.store import Store
from bot.telegram_bot.app import build_application, serve
from bot.tutor import Tutor
from tests.fake_telegram import TOKEN, FakeRequest, FakeTelegram

CORE = Path(__file__).resolve().parent.parent / "dialogues" / "madman-core.yaml"
SECRET = "webhook-secret_123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_update(update_id: int, user: int) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 0,
            "from": {"id": user, "is_bot": False, "first_name": "W"},
            "chat": {"id": user, "type": "private", "first_name": "W"},
            "text": "/start madman-core",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_webhook_checks_the_secret_and_stores_before_answering(tmp_path: Path) -> None:
    telegram = FakeTelegram()
    port = free_port()
    settings = Settings(
        telegram_bot_token=TOKEN,
        database=tmp_path / "bot.db",
        dialogues=CORE,
        mode="webhook",
        webhook_url="https://tutor.example/telegram",
        webhook_secret=SECRET,
        webhook_listen="127.0.0.1",
        webhook_port=port,
    )
    store = Store(settings.database)
    app = build_application(settings, Tutor(store, load_all([CORE])), request=FakeRequest(telegram))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, settings, stop))
    url = f"http://127.0.0.1:{port}/telegram"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):  # wait for the server to listen
                try:
                    await client.post(url, json={})
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.02)
            wrong = await client.post(url, json=start_update(1, 42), headers={"X-Telegram-Bot-Api-Secret-Token": "guess"})
            missing = await client.post(url, json=start_update(2, 42))
            assert wrong.status_code == missing.status_code == 403
            assert store.db["inbox"].count == 0

            ok = await client.post(url, json=start_update(3, 42), headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
            assert ok.status_code == 200
            assert [r["update_id"] for r in store.db["inbox"].rows] == [3]  # stored by the time of the 200

            again = await client.post(url, json=start_update(3, 42), headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
            assert again.status_code == 200  # a redelivery is acknowledged, and not handled twice
            garbled = await client.post(url, content=b"not json", headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
            assert garbled.status_code == 400
        for _ in range(200):
            if telegram.bot_messages(42):
                break
            await asyncio.sleep(0.02)
        assert "Welcome!" in telegram.last_bot_message(42)["text"]
        assert len([m for m in telegram.bot_messages(42) if "Welcome!" in m["text"]]) == 1
        registered = [p for m, p in telegram.calls if m == "setWebhook"]
        assert registered and registered[0]["url"] == settings.webhook_url and registered[0]["secret_token"] == SECRET
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        store.close()

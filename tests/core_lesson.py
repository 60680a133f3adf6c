"""Answers to the bundled core lesson (madman-core), for tests that play it through Telegram."""

from __future__ import annotations

from tests.fake_telegram import FakeTelegram

RIGHT = {
    "According to the theory": "It frightens opponents into giving in.",
    "does the madman theory backfire": "The opponent no longer trusts the madman to keep any deal, so yielding gains nothing.",
    "True or false": "False",
}
WRONG = {
    "According to the theory": "It makes allies trust the leader more.",
    "does the madman theory backfire": "The opponent stops believing the madman's threats.",
    "True or false": "True",
}


def question_key(message: dict) -> str:
    """Which of the core lesson's questions a message asks."""
    return next(key for key in RIGHT if key in message["text"])


def option_data(message: dict, option_text: str) -> str:
    """The button data for the option `option_text`: on its own button, or its number's."""
    buttons = FakeTelegram.buttons(message)
    for label, data in buttons:
        if label == option_text:
            return data
    for line in message["text"].splitlines():
        number, _, text = line.partition(". ")
        if text == option_text:
            return dict(buttons)[number]
    raise AssertionError(f"no option {option_text!r} in {message['text']!r}")

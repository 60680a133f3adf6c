"""Logging that never shows a secret.

httpx logs every request URL at INFO, and a Bot API URL contains the token, so httpx and
httpcore are kept at WARNING. As a second guard, every formatted line (tracebacks
included) has the configured secrets and anything shaped like a bot token replaced.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import TextIO

TOKEN_SHAPE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}\b")
REDACTED = "[redacted]"


class RetryAfterNoise(logging.Filter):
    """Drops python-telegram-bot's ERROR-with-traceback for a 429 its `AIORateLimiter` does
    not retry (`max_retries=0`): the bot's own code retries it and logs a WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Rate limit hit after maximum of")


class NoRawBodies(logging.Filter):
    """Keeps python-telegram-bot from logging a Bot API answer it could not parse: for a
    garbled getUpdates answer that is other learners' messages. The error itself still
    reaches the bot's code, which logs it without the body."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Can not load invalid JSON data"):
            record.msg, record.args, record.exc_info, record.exc_text = "the Bot API sent an answer that is not JSON", (), None, None
        return True


class RedactingFormatter(logging.Formatter):
    """A formatter that removes secrets from the finished line."""

    def __init__(self, fmt: str, secrets: Iterable[str] = ()):
        super().__init__(fmt)
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return TOKEN_SHAPE.sub(REDACTED, text)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def setup(level: str = "INFO", secrets: Iterable[str] = (), stream: TextIO | None = None) -> logging.Handler:
    """Log to stderr (or `stream`) at `level`, redacted; returns the handler it installed."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name, kind in (("telegram.ext.AIORateLimiter", RetryAfterNoise), ("telegram.request.BaseRequest", NoRawBodies)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
    return handler

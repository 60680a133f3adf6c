"""The Telegram front end: one-to-one learning over the Bot API."""

import os

# Opt in to python-telegram-bot's coming `RetryAfter.retry_after` as a timedelta (the code
# here reads either form), so that no deprecation warning reaches the logs.
os.environ.setdefault("PTB_TIMEDELTA", "1")

"""The `tutorbot` command's start-up, with Python's cyclic garbage collector paused.

Importing the bot, pydantic and python-telegram-bot makes some 90,000 objects that live as
long as the process, and almost none of them garbage. With the collector on, it walks them
again and again while they are made (a hundred-odd young collections and a full one), a
sixth of the time to the first poll. So `main` pauses it while the program sets up; once
set up, `settled` moves what exists into the collector's permanent generation
(`gc.freeze`), which later collections skip, and turns it on again.
"""

from __future__ import annotations

import gc

_paused = False


def settled() -> None:
    """Start-up is over: collect again from here on. Does nothing unless `main` paused the
    collector (the library used from tests or other code is never affected), so a command
    may call it as soon as it has loaded what it keeps."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()  # what start-up made stays: don't walk it in every full collection
        gc.enable()


def main() -> None:
    """The `tutorbot` console command."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True
    try:
        from bot.cli import main as cli

        cli()
    finally:
        settled()

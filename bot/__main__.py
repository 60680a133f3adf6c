"""`python -m bot` is the `tutorbot` command."""

from bot.cli import main

main()

"""`python -m bot` is the `tutorbot` command."""

from bot.startup import main

main()

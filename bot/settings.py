"""Settings from the environment or a `.env` file (pydantic-settings).

Every setting is documented in `.env.example`. The token is a `SecretStr`, so it prints
as `**********` wherever settings are shown or logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated


def bundled_dialogues() -> Path:
    """The lessons shipped with the program.

    pyproject.toml ships the repository's `dialogues/` folder as the package data
    `bot/lessons/`; in a checkout (or an editable install) it is that folder itself.
    """
    package = Path(__file__).resolve().parent
    installed = package / "lessons"
    return installed if installed.is_dir() else package.parent / "dialogues"


BUNDLED_DIALOGUES = bundled_dialogues()


def default_dialogues() -> Path:
    """`dialogues/` in the working directory, else the lessons shipped with the program."""
    here = Path("dialogues")
    return here if here.is_dir() else BUNDLED_DIALOGUES


def default_cache_dir() -> Path | None:
    """`$XDG_CACHE_HOME/tutorbot`, else `~/.cache/tutorbot` (None without a home)."""
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base) / "tutorbot"
    try:
        return Path.home() / ".cache" / "tutorbot"
    except RuntimeError:  # no home directory to be found
        return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUTORBOT_", env_file=".env", extra="ignore")

    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "TUTORBOT_TELEGRAM_BOT_TOKEN")
    )
    database: Path = Path("tutorbot.db")
    dialogues: Path = Field(default_factory=default_dialogues)
    default_lesson: str = "madman"
    cache_dir: Path | None = Field(default_factory=default_cache_dir)  # validated lessons (bot.lesson_cache)
    instructors: Annotated[list[int], NoDecode] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: SecretStr | None = None
    bot_api_base_url: str = "https://api.telegram.org/bot"
    bot_api_file_url: str = "https://api.telegram.org/file/bot"
    # Telegram's limits for a bot (a bot with paid broadcasts may go higher); "off" is a
    # benchmark switch, not a production setting.
    rate_limit: Literal["telegram", "off"] = "telegram"
    rate_overall: float = Field(default=30.0, gt=0)  # messages a second, all chats together
    rate_group: int = Field(default=20, gt=0)  # messages a minute in one group
    rate_private: float = Field(default=1.0, gt=0)  # messages a second to one person (bursts of a few pass)
    inbox_retention_hours: float = Field(default=48.0, ge=24)  # handled updates' ids kept this long
    sent_text_retention_hours: float = Field(default=48.0, ge=1)  # sent replies' text kept this long

    @field_validator("telegram_bot_token", "webhook_secret", "webhook_url", "cache_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `TELEGRAM_BOT_TOKEN=` (set but empty, as in .env.example) means not set; so for the
        # others (an empty TUTORBOT_CACHE_DIR: no cache).
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("instructors", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(" ", "").split(",") if part]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

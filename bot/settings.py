"""Settings from the environment or a `.env` file.

Every setting is documented in `.env.example`: the field `name` is read from
`TUTORBOT_NAME` (any case), the token also from `TELEGRAM_BOT_TOKEN`; the environment
wins over `.env` (read with python-dotenv), and pydantic checks the values. That is what
pydantic-settings would do; the bot does it itself because pydantic-settings' import
(its command-line, cloud and file sources among it) costs every start 25 ms and 1.3 MiB.

The token is a `SecretStr`, so it prints as `**********` wherever settings are shown or
logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

PREFIX = "TUTORBOT_"
TOKEN_NAMES = ("TELEGRAM_BOT_TOKEN", "TUTORBOT_TELEGRAM_BOT_TOKEN")  # the first one set counts
SECRETS = ("telegram_bot_token", "webhook_secret")  # never shown, not even in an error


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


class SettingsError(Exception):
    """Settings that cannot be used; the message names each variable and what is wrong."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=False)

    telegram_bot_token: SecretStr | None = None
    database: Path = Path("tutorbot.db")
    dialogues: Path = Field(default_factory=default_dialogues)
    default_lesson: str = "madman"
    cache_dir: Path | None = Field(default_factory=default_cache_dir)  # validated lessons (bot.lesson_cache)
    instructors: list[int] = Field(default_factory=list)
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

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> Settings:
        """The settings `environ` (default: the process's) and `env_file` (if it exists) give;
        raise `SettingsError` naming every variable that is wrong."""
        environment = {name.upper(): value for name, value in (os.environ if environ is None else environ).items()}
        in_file = _variables(env_file)
        given: dict[str, str] = {}
        named: dict[str, str] = {}  # field -> the variable it came from, for the error
        for name in cls.model_fields:
            candidates = TOKEN_NAMES if name == "telegram_bot_token" else (PREFIX + name.upper(),)
            for values, where in ((environment, ""), (in_file, f" (in {env_file})")):
                found = next((variable for variable in candidates if variable in values), None)
                if found is not None:
                    given[name], named[name] = values[found], found + where
                    break
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else ""
                value = "" if field in SECRETS else f" (it is {given.get(field, '')!r})"
                problems.append(f"{named.get(field, field)}: {error['msg']}{value}")
            raise SettingsError("; ".join(problems)) from None


def _variables(env_file: Path | None) -> dict[str, str]:
    """The variables `env_file` sets, names in upper case (none if there is no such file)."""
    if env_file is None or not env_file.exists():
        return {}
    from dotenv import dotenv_values

    try:
        with env_file.open(encoding="utf-8") as stream:  # opened here: dotenv skips what it cannot open
            found = dotenv_values(stream=stream)
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{env_file}: cannot be read ({exc})") from None
    return {name.upper(): value for name, value in found.items() if value is not None}

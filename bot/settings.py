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
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

PREFIX = "TUTORBOT_"
TOKEN_NAMES = ("TELEGRAM_BOT_TOKEN", "TUTORBOT_TELEGRAM_BOT_TOKEN")  # the first one set counts
SECRETS = ("telegram_bot_token", "webhook_secret")  # never shown, not even in an error
KEEP_EMPTY = ("cache_dir",)  # an empty TUTORBOT_CACHE_DIR means "no cache"; any other empty setting, its default
WEBHOOK_PORTS = (443, 80, 88, 8443)  # the ports Telegram posts webhooks to
TELEGRAM_API = "https://api.telegram.org"
MAX_RATE = 1_000_000  # any rate above is no limit at all (and a huge one overflows SQLite's integers)
MAX_HOURS = 10 * 365 * 24  # ten years; past about 2,000 years a date before now cannot even be written


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


def _url_port(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:  # not a number, or not 0-65535
        raise ValueError("the URL's port should be a number from 1 to 65535") from None


class SettingsError(Exception):
    """Settings that cannot be used; the message names each variable and what is wrong."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=False)

    telegram_bot_token: SecretStr | None = None
    database: Path = Path("tutorbot.db")
    dialogues: Path = Field(default_factory=default_dialogues)
    default_lesson: str = "madman"
    cache_dir: Path | None = Field(default_factory=default_cache_dir)  # validated lessons (bot.lesson_cache)
    instructors: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list)  # Telegram user ids
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    mode: Literal["polling", "webhook"] = "polling"
    bot_api_base_url: str = TELEGRAM_API + "/bot"  # before webhook_url, whose check depends on it
    bot_api_file_url: str = TELEGRAM_API + "/file/bot"
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret: SecretStr | None = None
    # Telegram's limits for a bot (a bot with paid broadcasts may go higher); "off" is a
    # benchmark switch, not a production setting. Every number is finite and bounded: an
    # endless or huge one would fail only later, in the middle of running.
    rate_limit: Literal["telegram", "off"] = "telegram"
    # Messages a second, all chats together; at least 1, as the limiter cannot send one at a lower rate.
    rate_overall: float = Field(default=30.0, ge=1, le=MAX_RATE, allow_inf_nan=False)
    rate_group: int = Field(default=20, gt=0, le=MAX_RATE)  # messages a minute in one group
    # Messages a second to one person (bursts of a few pass).
    rate_private: float = Field(default=1.0, ge=0.001, le=MAX_RATE, allow_inf_nan=False)
    # Handled updates' ids, and sent replies' text, kept this long.
    inbox_retention_hours: float = Field(default=48.0, ge=24, le=MAX_HOURS, allow_inf_nan=False)
    sent_text_retention_hours: float = Field(default=48.0, ge=1, le=MAX_HOURS, allow_inf_nan=False)

    @field_validator("telegram_bot_token", "webhook_secret", "webhook_url", "cache_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `TELEGRAM_BOT_TOKEN=` (set but empty, as in .env.example) means not set; so for the
        # others (an empty TUTORBOT_CACHE_DIR: no cache).
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        # The token is part of every request's URL: a space, line break or other character
        # pasted with it would make every request fail (and be retried for ever), so it is
        # refused at start. Spaces around it, as a copy and paste leaves them, are dropped.
        if value is None:
            return value
        token = value.get_secret_value().strip()
        if not re.fullmatch(r"[0-9]+:[A-Za-z0-9_-]+", token):
            raise ValueError("a token from @BotFather looks like 123456789:AAE... (digits, a colon, then letters, digits, _ and -)")
        return SecretStr(token)

    @field_validator("bot_api_base_url", "bot_api_file_url")
    @classmethod
    def _http(cls, value: str) -> str:
        _url_port(value)
        url = urlsplit(value)
        if url.scheme.lower() not in ("http", "https") or not url.hostname:
            raise ValueError("should be an http:// or https:// URL, e.g. https://api.telegram.org/bot")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _https(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        port = _url_port(value)
        url = urlsplit(value)
        scheme, host = url.scheme.lower(), url.hostname
        # Telegram's own servers post only over HTTPS to these ports; a Bot API server run
        # locally posts anywhere, HTTP included.
        own_server = urlsplit(info.data.get("bot_api_base_url", TELEGRAM_API)).hostname != urlsplit(TELEGRAM_API).hostname
        if own_server:
            if scheme not in ("http", "https") or not host:
                raise ValueError("should be an http:// or https:// URL")
        elif scheme != "https" or not host:
            raise ValueError("Telegram posts only to an https:// URL, e.g. https://bot.example.org/telegram")
        elif (443 if port is None else port) not in WEBHOOK_PORTS:
            raise ValueError(f"Telegram posts only to the ports {', '.join(map(str, WEBHOOK_PORTS))}")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("Telegram accepts 1-256 characters of A-Z a-z 0-9 _ - only")
        return value

    @field_validator("instructors", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            # Commas or spaces between ids: "11 22" is two people, never the id 1122.
            parts = [part for part in re.split(r"[,\s]+", value) if part]
            for part in parts:
                if not re.fullmatch(r"-?[0-9]+", part):
                    raise ValueError(
                        f"give Telegram user ids, which are numbers, separated by commas or spaces: {part!r} is not one "
                        "(a @username will not do)"
                    )
            return [int(part) for part in parts]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("mode", "rate_limit", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> Settings:
        """The settings `environ` (default: the process's) and `env_file` (if it exists) give;
        raise `SettingsError` naming every variable that is wrong."""
        environment = {name.upper(): value for name, value in (os.environ if environ is None else environ).items()}
        known = {*TOKEN_NAMES, *(PREFIX + name.upper() for name in cls.model_fields)}
        in_file = _variables(env_file, known)
        given: dict[str, str] = {}
        named: dict[str, str] = {}  # field -> the variable it came from, for the error
        for name in cls.model_fields:
            candidates = TOKEN_NAMES if name == "telegram_bot_token" else (PREFIX + name.upper(),)
            for values, where in ((environment, ""), (in_file, f" (in {env_file})")):
                found = next((variable for variable in candidates if variable in values), None)
                if found is not None:
                    given[name], named[name] = values[found], found + where
                    break
            if isinstance(given.get(name), str) and not given[name].strip() and name not in KEEP_EMPTY:
                del given[name]  # `TUTORBOT_DATABASE=`: set but empty means the default
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else ""
                value = "" if field in SECRETS else f" (it is {given.get(field, '')!r})"
                problems.append(f"{named.get(field, field)}: {error['msg'].removeprefix('Value error, ')}{value}")
            raise SettingsError("; ".join(problems)) from None


def _variables(env_file: Path | None, known: set[str] = frozenset()) -> dict[str, str]:
    """The variables `env_file` sets, names in upper case (none if there is no such file).

    A line python-dotenv cannot parse is an error `FILE:LINE: cannot be read` (dotenv itself
    would only warn and skip it, so the setting would be silently missing); the line is
    never shown, as it may hold the token. So is a TUTORBOT_ name that is not in `known`
    (a misspelt setting would be silently left at its default)."""
    if env_file is None or not env_file.exists():
        return {}
    import io

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        if not env_file.is_file():  # a folder, or a FIFO whose reading would wait for ever
            raise OSError(0, "not a regular file")
        text = env_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{env_file}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise SettingsError(f"{env_file}:{binding.original.line}: cannot be read (write it as NAME=value)")
        name = (binding.key or "").upper()
        if known and name.startswith(PREFIX) and name not in known:
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.85)
            hint = f" (did you mean {close[0]}?)" if close else " (see .env.example)"
            raise SettingsError(f"{env_file}:{binding.original.line}: {name} is not a tutorbot setting{hint}")
    found = dotenv_values(stream=io.StringIO(text))
    return {name.upper(): value for name, value in found.items() if value is not None}

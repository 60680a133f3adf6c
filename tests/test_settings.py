"""Settings as a user gives them: the environment, a `.env` file, or both; and the clear
error (never the token) when one is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.settings import Settings, SettingsError

TOKEN = "123456:AAE-secret-token-value"


def settings(tmp_path: Path, environ: dict[str, str], env_text: str | None = None) -> Settings:
    env_file = tmp_path / ".env"
    if env_text is not None:
        env_file.write_text(env_text)
    return Settings.from_environment(environ, env_file)


def test_nothing_set_gives_the_defaults(tmp_path):
    got = settings(tmp_path, {})
    assert got.telegram_bot_token is None
    assert (got.database, got.default_lesson, got.mode, got.log_level) == (Path("tutorbot.db"), "madman", "polling", "INFO")
    assert (got.rate_limit, got.rate_overall, got.rate_group, got.rate_private) == ("telegram", 30.0, 20, 1.0)
    assert got.instructors == []


def test_a_dotenv_file_is_read_and_the_environment_wins(tmp_path):
    env_text = (
        "# a comment\n"
        f"TELEGRAM_BOT_TOKEN={TOKEN}\n"
        "export TUTORBOT_DATABASE='/srv/tutor/progress.db'\n"
        'TUTORBOT_INSTRUCTORS="11, 22,33"\n'
        "TUTORBOT_RATE_GROUP=15\n"
        "SOMETHING_ELSE=ignored\n"
    )
    got = settings(tmp_path, {"TUTORBOT_RATE_GROUP": "10"}, env_text)
    assert got.telegram_bot_token is not None and got.telegram_bot_token.get_secret_value() == TOKEN
    assert got.database == Path("/srv/tutor/progress.db")
    assert got.instructors == [11, 22, 33]
    assert got.rate_group == 10  # the environment over .env


def test_names_are_read_in_any_case_and_the_token_under_either_name(tmp_path):
    got = settings(tmp_path, {"tutorbot_log_level": "debug", "TUTORBOT_TELEGRAM_BOT_TOKEN": TOKEN})
    assert got.log_level == "DEBUG"
    assert got.telegram_bot_token.get_secret_value() == TOKEN
    both = settings(tmp_path, {"TELEGRAM_BOT_TOKEN": "1:first", "TUTORBOT_TELEGRAM_BOT_TOKEN": "2:second"})
    assert both.telegram_bot_token.get_secret_value() == "1:first"
    # The environment wins over .env whichever of the two names each uses.
    mixed = settings(tmp_path, {"TUTORBOT_TELEGRAM_BOT_TOKEN": "3:environment"}, "TELEGRAM_BOT_TOKEN=4:file\n")
    assert mixed.telegram_bot_token.get_secret_value() == "3:environment"


@pytest.mark.parametrize("name", ["TELEGRAM_BOT_TOKEN", "TUTORBOT_WEBHOOK_URL", "TUTORBOT_WEBHOOK_SECRET", "TUTORBOT_CACHE_DIR"])
def test_an_empty_value_means_not_set(tmp_path, name):
    got = settings(tmp_path, {name: "  "})
    field = name.removeprefix("TUTORBOT_").lower()
    assert getattr(got, field) is None


@pytest.mark.parametrize("value", ["11 22", "11, 22", " 11 ,\t22 ", "11\n22"])
def test_instructors_apart_by_spaces_are_never_run_together(tmp_path, value):
    assert settings(tmp_path, {"TUTORBOT_INSTRUCTORS": value}).instructors == [11, 22]


@pytest.mark.parametrize("pasted", [f"{TOKEN}\n", f" {TOKEN} ", f"\t{TOKEN}"])
def test_spaces_around_the_token_are_dropped(tmp_path, pasted):
    assert settings(tmp_path, {"TELEGRAM_BOT_TOKEN": pasted}).telegram_bot_token.get_secret_value() == TOKEN


@pytest.mark.parametrize("token", ["123456:AAE-secret\ntoken", "123456:AAE secret", "123456:AAE/secret", "AAE-secret-token"])
def test_a_token_that_cannot_work_is_refused_at_start_without_being_shown(tmp_path, token):
    """It goes into every request's URL: with a line break in it every request would fail
    and be retried for ever."""
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN: .*looks like 123456789:") as caught:
        settings(tmp_path, {"TELEGRAM_BOT_TOKEN": token})
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("TUTORBOT_RATE_OVERALL", "0", "TUTORBOT_RATE_OVERALL: Input should be greater than or equal to 1 (it is '0')"),
        ("TUTORBOT_RATE_GROUP", "twenty", "TUTORBOT_RATE_GROUP: Input should be a valid integer"),
        ("TUTORBOT_MODE", "push", "TUTORBOT_MODE: Input should be 'polling' or 'webhook' (it is 'push')"),
        ("TUTORBOT_INSTRUCTORS", "12,ann", "TUTORBOT_INSTRUCTORS: give Telegram user ids, which are numbers, separated by commas or spaces: 'ann' is not one"),
        ("TUTORBOT_INSTRUCTORS", "@alice", "TUTORBOT_INSTRUCTORS: give Telegram user ids, which are numbers, separated by commas or spaces: '@alice' is not one (a @username will not do)"),
        ("TUTORBOT_INBOX_RETENTION_HOURS", "2", "TUTORBOT_INBOX_RETENTION_HOURS: Input should be greater than or equal to 24"),
    ],
)
def test_a_wrong_value_is_named_by_its_variable(tmp_path, variable, value, said):
    with pytest.raises(SettingsError) as caught:
        settings(tmp_path, {variable: value})
    assert said in str(caught.value)


def test_every_wrong_value_is_named_at_once_and_no_secret_is_shown(tmp_path):
    with pytest.raises(SettingsError) as caught:
        settings(tmp_path, {"TUTORBOT_WEBHOOK_PORT": "http", "TUTORBOT_LOG_LEVEL": "loud", "TUTORBOT_WEBHOOK_SECRET": ["x"]})  # type: ignore[dict-item]
    message = str(caught.value)
    assert "TUTORBOT_WEBHOOK_PORT" in message and "TUTORBOT_LOG_LEVEL" in message and "TUTORBOT_WEBHOOK_SECRET" in message
    assert "['x']" not in message


def test_a_dotenv_that_cannot_be_read_is_a_clear_error(tmp_path):
    (tmp_path / ".env").mkdir()
    with pytest.raises(SettingsError, match=r"\.env: cannot be read"):
        Settings.from_environment({}, tmp_path / ".env")
    (tmp_path / "latin.env").write_bytes(b"TUTORBOT_DEFAULT_LESSON=caf\xe9\n")
    with pytest.raises(SettingsError, match=r"latin\.env: cannot be read"):
        Settings.from_environment({}, tmp_path / "latin.env")


def test_the_command_says_which_setting_is_wrong_and_exits_1(clean_environment, tmp_path):
    (tmp_path / ".env").write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nTUTORBOT_RATE_PRIVATE=-1\n")
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 1
    assert "bad setting: TUTORBOT_RATE_PRIVATE (in .env): Input should be greater than or equal to 0.001 (it is '-1')" in result.output
    assert TOKEN not in result.output and "Traceback" not in result.output


def test_the_command_reads_dotenv_in_the_working_folder(clean_environment, tmp_path):
    (tmp_path / ".env").write_text("TUTORBOT_DEFAULT_LESSON=madman-core\nTUTORBOT_DATABASE=kept.db\n")
    result = CliRunner().invoke(main, ["play"], input="/quit\n")
    assert result.exit_code == 0, result.output
    assert "Part 1 of 4: The question the column asks" in result.output  # madman-core's first part
    assert (tmp_path / "kept.db").exists()


# --- settings that can never work are refused at start ------------------------------------

NEVER_WORK = [
    # A port outside 1-65535.
    ("TUTORBOT_WEBHOOK_PORT", "99999", "less than or equal to 65535"),
    ("TUTORBOT_WEBHOOK_PORT", "65536", "less than or equal to 65535"),
    ("TUTORBOT_WEBHOOK_PORT", "0", "greater than or equal to 1"),
    ("TUTORBOT_WEBHOOK_PORT", "-443", "greater than or equal to 1"),
    # A secret Telegram refuses: 1-256 of A-Z a-z 0-9 _ - only.
    ("TUTORBOT_WEBHOOK_SECRET", "has space", "1-256 characters of A-Z a-z 0-9 _ -"),
    ("TUTORBOT_WEBHOOK_SECRET", "dot.ted", "1-256 characters of A-Z a-z 0-9 _ -"),
    ("TUTORBOT_WEBHOOK_SECRET", "gehëim", "1-256 characters of A-Z a-z 0-9 _ -"),
    ("TUTORBOT_WEBHOOK_SECRET", "x" * 257, "1-256 characters of A-Z a-z 0-9 _ -"),
    # A webhook URL Telegram does not post to.
    ("TUTORBOT_WEBHOOK_URL", "http://bot.example.org/telegram", "https://"),
    ("TUTORBOT_WEBHOOK_URL", "bot.example.org/telegram", "https://"),
    ("TUTORBOT_WEBHOOK_URL", "https:///telegram", "https://"),
    ("TUTORBOT_WEBHOOK_URL", "https://bot.example.org:8080/telegram", "ports 443, 80, 88, 8443"),
    ("TUTORBOT_WEBHOOK_URL", "https://bot.example.org:99999/telegram", "port should be a number from 1 to 65535"),
    # A Bot API server that is not an http(s) URL.
    ("TUTORBOT_BOT_API_BASE_URL", "ftp://api.example.org/bot", "http:// or https:// URL"),
    ("TUTORBOT_BOT_API_BASE_URL", "localhost:8081/bot", "http:// or https:// URL"),
    ("TUTORBOT_BOT_API_BASE_URL", "http://localhost:port/bot", "port should be a number"),
    ("TUTORBOT_BOT_API_FILE_URL", "api.telegram.org/file/bot", "http:// or https:// URL"),
    # Numbers: not finite, absurdly large, or too small to work.
    *[(name, value, "finite number")
      for name in ("TUTORBOT_RATE_OVERALL", "TUTORBOT_RATE_PRIVATE", "TUTORBOT_INBOX_RETENTION_HOURS",
                   "TUTORBOT_SENT_TEXT_RETENTION_HOURS")
      for value in ("inf", "-inf", "nan", "1e400")],
    ("TUTORBOT_INBOX_RETENTION_HOURS", "1e12", "less than or equal to 87600"),
    ("TUTORBOT_SENT_TEXT_RETENTION_HOURS", "1e9", "less than or equal to 87600"),
    ("TUTORBOT_SENT_TEXT_RETENTION_HOURS", "0", "greater than or equal to 1"),
    ("TUTORBOT_RATE_OVERALL", "0.5", "greater than or equal to 1"),  # the limiter cannot send at all below 1 a second
    ("TUTORBOT_RATE_OVERALL", "1e30", "less than or equal to 1000000"),
    ("TUTORBOT_RATE_GROUP", "0", "greater than 0"),
    ("TUTORBOT_RATE_GROUP", "1" + "0" * 30, "less than or equal to 1000000"),
    ("TUTORBOT_RATE_GROUP", "inf", "valid integer"),
    ("TUTORBOT_RATE_PRIVATE", "0", "greater than or equal to 0.001"),
    ("TUTORBOT_INSTRUCTORS", "11,-5", "greater than 0"),
    ("TUTORBOT_INSTRUCTORS", "0", "greater than 0"),
]


@pytest.mark.parametrize(("variable", "value", "said"), NEVER_WORK)
def test_a_setting_that_can_never_work_is_refused_at_start(clean_environment, variable, value, said):
    environment = {"TELEGRAM_BOT_TOKEN": TOKEN, "TUTORBOT_MODE": "webhook", "TUTORBOT_WEBHOOK_URL": "https://a.example/h",
                   "TUTORBOT_WEBHOOK_SECRET": "s3cret_-", variable: value}
    result = CliRunner().invoke(main, ["run"], env=environment)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: bad setting: {variable}: ") and said in lines[0], result.output
    assert TOKEN not in result.output and "Traceback" not in result.output
    if variable == "TUTORBOT_WEBHOOK_SECRET":
        assert value not in result.output


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TUTORBOT_WEBHOOK_URL", "https://bot.example.org/telegram"),
        ("TUTORBOT_WEBHOOK_URL", "https://bot.example.org:8443/telegram"),
        ("TUTORBOT_WEBHOOK_URL", "HTTPS://bot.example.org:88/"),
        ("TUTORBOT_WEBHOOK_SECRET", "A-z_0-9"),
        ("TUTORBOT_WEBHOOK_SECRET", "x" * 256),
        ("TUTORBOT_WEBHOOK_PORT", "1"),
        ("TUTORBOT_WEBHOOK_PORT", "65535"),
        ("TUTORBOT_BOT_API_BASE_URL", "http://127.0.0.1:8081/bot"),  # a Bot API server of one's own
        ("TUTORBOT_RATE_OVERALL", "1"),
        ("TUTORBOT_RATE_PRIVATE", "1000"),
        ("TUTORBOT_INBOX_RETENTION_HOURS", "87600"),
    ],
)
def test_settings_at_the_edge_of_what_works_are_accepted(tmp_path, variable, value):
    settings(tmp_path, {variable: value})


def test_a_bot_api_server_of_ones_own_may_post_to_any_url(tmp_path):
    """A Bot API server run locally posts webhooks over HTTP and to any port; Telegram's does not."""
    own = {"TUTORBOT_BOT_API_BASE_URL": "http://127.0.0.1:8081/bot", "TUTORBOT_WEBHOOK_URL": "http://127.0.0.1:9000/h"}
    assert settings(tmp_path, own).webhook_url == "http://127.0.0.1:9000/h"
    with pytest.raises(SettingsError, match="TUTORBOT_WEBHOOK_URL: .*https://"):
        settings(tmp_path, {"TUTORBOT_WEBHOOK_URL": "http://127.0.0.1:9000/h"})
    with pytest.raises(SettingsError, match="TUTORBOT_WEBHOOK_URL: .*http:// or https:// URL"):
        settings(tmp_path, own | {"TUTORBOT_WEBHOOK_URL": "ftp://127.0.0.1/h"})


@pytest.mark.parametrize("blank", ["", "   "])
def test_an_empty_setting_means_its_default(tmp_path, blank):
    defaults = Settings()
    for field in Settings.model_fields:
        name = "TELEGRAM_BOT_TOKEN" if field == "telegram_bot_token" else "TUTORBOT_" + field.upper()
        got = settings(tmp_path, {name: blank})
        if field == "cache_dir":
            assert got.cache_dir is None  # documented: empty means no cache
        else:
            assert getattr(got, field) == getattr(defaults, field), name
    # In .env too, and whichever the variable.
    got = settings(tmp_path, {}, "TUTORBOT_DATABASE=\nTUTORBOT_WEBHOOK_PORT=\nTUTORBOT_LOG_LEVEL=''\n")
    assert (got.database, got.webhook_port, got.log_level) == (Path("tutorbot.db"), 8443, "INFO")


def test_an_empty_database_setting_uses_tutorbot_db(clean_environment, tmp_path):
    result = CliRunner().invoke(main, ["play", "--lesson", "madman-core"], input="/quit\n", env={"TUTORBOT_DATABASE": ""})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tutorbot.db").exists()


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("TUTORBOT_MODE", "WEBHOOK", "mode", "webhook"),
        ("TUTORBOT_MODE", " Polling ", "mode", "polling"),
        ("TUTORBOT_RATE_LIMIT", "OFF", "rate_limit", "off"),
        ("TUTORBOT_RATE_LIMIT", "Telegram", "rate_limit", "telegram"),
        ("TUTORBOT_LOG_LEVEL", "Warning", "log_level", "WARNING"),
    ],
)
def test_a_choice_setting_is_read_in_any_case(tmp_path, variable, value, field, expected):
    assert getattr(settings(tmp_path, {variable: value}), field) == expected


# --- a .env line that cannot be read ----------------------------------------------------------


@pytest.mark.parametrize(
    ("broken", "line"),
    [
        ('TUTORBOT_DATABASE="unterminated\n', 2),
        ("TUTORBOT_DATABASE progress.db\n", 2),
        (f"TELEGRAM_BOT_TOKEN '{TOKEN}'\n", 2),  # the token's own line: still never shown
        (f"TELEGRAM_BOT_TOKEN='{TOKEN}\n", 2),
    ],
)
def test_a_broken_dotenv_line_is_an_error_naming_its_line(clean_environment, tmp_path, broken, line):
    (tmp_path / ".env").write_text(f"# settings\n{broken}TUTORBOT_LOG_LEVEL=DEBUG\n")
    result = CliRunner().invoke(main, ["lessons"], env={"TELEGRAM_BOT_TOKEN": TOKEN})
    assert result.exit_code == 1, result.output
    assert result.output.strip() == f"Error: bad setting: .env:{line}: cannot be read (write it as NAME=value)"
    assert TOKEN not in result.output and "could not parse" not in result.output


def test_a_misspelt_setting_in_dotenv_is_an_error_naming_its_line(clean_environment, tmp_path):
    (tmp_path / ".env").write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nTUTORBOT_DATABSE=progress.db\n")
    result = CliRunner().invoke(main, ["lessons"])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        "Error: bad setting: .env:2: TUTORBOT_DATABSE is not a tutorbot setting (did you mean TUTORBOT_DATABASE?)"
    )
    (tmp_path / ".env").write_text("tutorbot_frobnicate_widgets=on\n")
    with pytest.raises(SettingsError, match=r"\.env:1: TUTORBOT_FROBNICATE_WIDGETS is not a tutorbot setting \(see \.env\.example\)"):
        Settings.from_environment({}, tmp_path / ".env")
    (tmp_path / ".env").write_text("OTHER_TOOL=1\nTUTORBOT_WEBHOOK_PORT=88\n")  # another program's variables are its own
    assert Settings.from_environment({}, tmp_path / ".env").webhook_port == 88


def test_a_dotenv_that_is_a_fifo_is_an_error_not_a_wait(tmp_path):
    os.mkfifo(tmp_path / ".env")
    with pytest.raises(SettingsError, match=r"\.env: cannot be read \(not a regular file\)"):
        Settings.from_environment({}, tmp_path / ".env")

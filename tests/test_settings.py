"""Settings as a user gives them: the environment, a `.env` file, or both; and the clear
error (never the token) when one is wrong."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("TUTORBOT_RATE_OVERALL", "0", "TUTORBOT_RATE_OVERALL: Input should be greater than 0 (it is '0')"),
        ("TUTORBOT_RATE_GROUP", "twenty", "TUTORBOT_RATE_GROUP: Input should be a valid integer"),
        ("TUTORBOT_MODE", "push", "TUTORBOT_MODE: Input should be 'polling' or 'webhook' (it is 'push')"),
        ("TUTORBOT_INSTRUCTORS", "12,ann", "TUTORBOT_INSTRUCTORS: Value error, invalid literal for int()"),
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
    assert "bad setting: TUTORBOT_RATE_PRIVATE (in .env): Input should be greater than 0 (it is '-1')" in result.output
    assert TOKEN not in result.output and "Traceback" not in result.output


def test_the_command_reads_dotenv_in_the_working_folder(clean_environment, tmp_path):
    (tmp_path / ".env").write_text("TUTORBOT_DEFAULT_LESSON=madman-core\nTUTORBOT_DATABASE=kept.db\n")
    result = CliRunner().invoke(main, ["play"], input="/quit\n")
    assert result.exit_code == 0, result.output
    assert "Part 1 of 4: The question the column asks" in result.output  # madman-core's first part
    assert (tmp_path / "kept.db").exists()

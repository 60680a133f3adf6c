"""Installing tutorbot as a normal package, not from the checkout.

The wheel must hold every module of every subpackage and the lessons from `dialogues/`
(as `bot/lessons/`), and the installed `tutorbot`, run where there is no `dialogues/`
folder, must find those lessons and import the Telegram front end.

The wheel is installed without dependencies into a fresh venv that borrows this test
venv's site-packages through a path line in a `.pth` file. A path line only extends
sys.path: the `.pth` files in that folder, among them the editable install's finder,
are not run, so `bot` can only come from the wheel (asserted below).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "bot", "dialogues"]
LESSONS = sorted(p.name for p in (ROOT / "dialogues").glob("*.yaml"))
MODULES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "bot").rglob("*.py"))


def run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUTORBOT_", "PYTHON"))}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources: no build/ folder in the checkout, none stale."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    result = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)], cwd=source)
    output = result.stdout + result.stderr
    if result.returncode != 0 and "No matching distribution found for setuptools" in output:
        pytest.skip(f"cannot build: the build backend (setuptools) cannot be fetched here:\n{output}")
    assert result.returncode == 0, output
    (built,) = out.glob("tutorbot-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; returns its bin folder."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=False)
    bin_dir = home / "bin"
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = run([str(bin_dir / "python"), "-c", where], cwd=home)
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib.stdout.strip()) / "borrowed_test_venv.pth").write_text("".join(f"{p}\n" for p in sorted(borrowed)))
    argv = [sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q", "--no-deps", str(wheel)]
    result = run(argv, cwd=home)
    assert result.returncode == 0, result.stdout + result.stderr
    return bin_dir


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working directory with no dialogues/ folder, no .env and no checkout."""
    assert not (tmp_path / "dialogues").exists()
    return tmp_path


def test_the_wheel_holds_every_module_and_the_lessons(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bot/telegram_bot/app.py" in names
    assert {f"bot/lessons/{lesson}" for lesson in LESSONS} <= names
    assert set(MODULES) <= names
    assert not any("__pycache__" in name for name in names)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, elsewhere):
    code = "import bot, bot.telegram_bot.app; print(bot.__file__)"
    result = run([str(installed / "python"), "-c", code], cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(installed.parent)


def test_the_installed_command_finds_the_bundled_lessons(installed, elsewhere):
    lessons = run([str(installed / "tutorbot"), "lessons"], cwd=elsewhere)
    assert lessons.returncode == 0, lessons.stdout + lessons.stderr
    ids = [line.split(":")[0] for line in lessons.stdout.splitlines() if not line.startswith(" ")]
    assert sorted(ids) == ["madman", "madman-core"]

    check = run([str(installed / "tutorbot"), "check"], cwd=elsewhere)
    assert check.returncode == 0, check.stdout + check.stderr
    files = {line.split(": ")[0]: line.split(": ")[1] for line in check.stdout.splitlines()}
    assert sorted(files.values()) == ["madman", "madman-core"]
    assert all(Path(file).is_relative_to(installed.parent) for file in files)

#!/usr/bin/env python3
"""Set up cts-desktop in a local virtual environment, then run the application or the tests.

    python bootstrap.py run  [-- ARGS for cts-desktop]
    python bootstrap.py test [-- ARGS for pytest]

This file must run on any Python 3.8+ (it may be started by an older system Python), because
it is the one step a fresh machine takes: it finds a Python >= 3.12 (the running one, one on
PATH, one installed under pyenv, or the Windows ``py`` launcher), creates ``.venv`` with it,
installs the project (only when pyproject.toml changed), and runs the command.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
MIN_VERSION = (3, 12)
IS_WINDOWS = os.name == "nt"


def say(message: str) -> None:
    print(f"[bootstrap] {message}", flush=True)


def fail(message: str) -> None:
    print(f"[bootstrap] error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def python_version(command: list[str]) -> tuple[int, int] | None:
    """The (major, minor) of a Python command, or None when it does not run."""
    try:
        out = subprocess.run(
            [*command, "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.fullmatch(r"(\d+) (\d+)", out.stdout.strip())
    if out.returncode != 0 or not match:
        return None
    return int(match.group(1)), int(match.group(2))


def pyenv_candidates() -> list[list[str]]:
    """Pythons installed under pyenv, newest first (their shims fail unless selected, so use real paths)."""
    pyenv = shutil.which("pyenv")
    roots = []
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            roots.append(Path(out.stdout.strip()))
    roots.append(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")))
    found: list[tuple[tuple[int, ...], Path]] = []
    for root in roots:
        versions = root / "versions"
        if not versions.is_dir():
            continue
        for entry in versions.iterdir():
            match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", entry.name)
            exe = entry / ("python.exe" if IS_WINDOWS else "bin/python3")
            if match and exe.exists():
                found.append((tuple(int(g) for g in match.groups()), exe))
    found.sort(reverse=True)
    return [[str(exe)] for _, exe in found]


def find_python() -> list[str]:
    if sys.version_info[:2] >= MIN_VERSION:
        return [sys.executable]
    chosen = os.environ.get("CTS_PYTHON")
    if chosen:
        version = python_version([chosen])
        if version is None or version < MIN_VERSION:
            fail(f"CTS_PYTHON={chosen} is not a working Python 3.12 or newer")
        return [chosen]
    candidates: list[list[str]] = []
    for name in ("python3.14", "python3.13", "python3.12", "python3", "python"):
        path = shutil.which(name)
        if path:
            candidates.append([path])
    candidates.extend(pyenv_candidates())
    if IS_WINDOWS and shutil.which("py"):
        candidates.extend([["py", "-3.14"], ["py", "-3.13"], ["py", "-3.12"]])
    usable = []
    for command in candidates:
        version = python_version(command)
        if version and version >= MIN_VERSION:
            usable.append((version, command))
    if usable:
        # The oldest supported minor version first: it is the one the project is tested on.
        return min(usable, key=lambda found: found[0])[1]
    fail(
        "Python 3.12 or newer is required and none was found. Install it (python.org, your package "
        "manager, or 'pyenv install 3.12'), or point CTS_PYTHON at it, then run this command again."
    )
    raise AssertionError("unreachable")


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if IS_WINDOWS else "bin/python")


def ensure_venv(extras: str) -> Path:
    """Create .venv with Python >= 3.12 and install the project; skip the install when nothing changed."""
    python = venv_python()
    version = python_version([str(python)]) if python.exists() else None
    if version is None or version < MIN_VERSION:
        if VENV.exists():
            say(f"recreating {VENV} (it does not hold a working Python >= 3.12)")
            shutil.rmtree(VENV)
        base = find_python()
        say(f"creating {VENV} with {' '.join(base)}")
        subprocess.run([*base, "-m", "venv", str(VENV)], check=True)
    fingerprint = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / ".cts-install-stamp"
    if stamp.exists() and stamp.read_text().strip() == fingerprint:
        return python
    say(f"installing cts-desktop{extras} and its dependencies")
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "--quiet", "-e", f"{ROOT}{extras}"], check=True)
    stamp.write_text(fingerprint)
    return python


def run_app(args: list[str]) -> int:
    python = ensure_venv("")
    return subprocess.run([str(python), "-m", "cts_desktop", *args], check=False).returncode


def keyring_session(command: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Wrap a command in a private D-Bus session with an unlocked GNOME Keyring (Linux only).

    The keyring tests run against a real Secret Service backend; HOME and the XDG directories
    point at a throwaway folder so a developer's own keyring is never touched.
    """
    if not sys.platform.startswith("linux"):
        return command, env
    if not (shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon")):
        say("gnome-keyring or dbus not installed: keyring tests will be skipped (CI installs them)")
        return command, env
    home = Path(tempfile.mkdtemp(prefix="cts-keyring-"))
    (home / "run").mkdir(mode=0o700)
    env = dict(env, HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_RUNTIME_DIR=str(home / "run"))
    script = 'printf %s cts | gnome-keyring-daemon --unlock --components=secrets >/dev/null; exec "$@"'
    return ["dbus-run-session", "--", "sh", "-c", script, "sh", *command], env


def run_tests(args: list[str]) -> int:
    python = str(ensure_venv("[dev]"))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONDONTWRITEBYTECODE="1")
    checks = [
        ("ruff check", [python, "-m", "ruff", "check", "."]),
        ("ruff format --check", [python, "-m", "ruff", "format", "--check", "."]),
        ("mypy", [python, "-m", "mypy"]),
    ]
    for name, command in checks:
        say(name)
        if subprocess.run(command, cwd=ROOT, env=env, check=False).returncode != 0:
            say(f"{name} failed")
            return 1
    command, env = keyring_session([python, "-m", "pytest", *args], env)
    say("pytest")
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__)
        return 2
    rest = argv[1:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    return run_app(rest) if argv[0] == "run" else run_tests(rest)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

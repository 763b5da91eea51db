"""Where the application keeps its files.

``CTS_DESKTOP_HOME`` wins over platformdirs so that tests, CI and portable installs never
touch a real user's data directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "cts-desktop"
HOME_ENV = "CTS_DESKTOP_HOME"


@dataclass(frozen=True, slots=True)
class AppPaths:
    """Every file location the application writes to, derived from one home directory."""

    home: Path

    @property
    def database_file(self) -> Path:
        return self.home / "cts-desktop.db"

    @property
    def bootstrap_file(self) -> Path:
        """Settings needed before the database can be opened (the database URL itself)."""
        return self.home / "bootstrap.json"

    @property
    def layout_file(self) -> Path:
        return self.home / "layout.ini"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def backups_dir(self) -> Path:
        return self.home / "backups"

    def ensure(self) -> AppPaths:
        """Create the directories; owner-only permissions because the database holds trading history."""
        for directory in (self.home, self.logs_dir, self.backups_dir):
            directory.mkdir(parents=True, exist_ok=True)
            if os.name == "posix":
                directory.chmod(0o700)
        return self


def resolve_paths(env: Mapping[str, str] | None = None) -> AppPaths:
    """Home directory from ``CTS_DESKTOP_HOME``, else the platform's user-data directory."""
    environ = os.environ if env is None else env
    override = environ.get(HOME_ENV, "").strip()
    if override:
        return AppPaths(Path(override).expanduser().resolve())
    return AppPaths(Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)))

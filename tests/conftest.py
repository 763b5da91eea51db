"""Shared fixtures: every test gets its own application home, so no test touches real user data."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """UI tests run on a qasync loop over the real QApplication (pytest-qt has no qasync support)."""
    if "tests/ui" in Path(str(item.fspath)).as_posix() or item.get_closest_marker("qasync"):
        import qasync
        from PySide6.QtWidgets import QApplication

        def qasync_loop() -> asyncio.AbstractEventLoop:
            app = QApplication.instance() or QApplication([])
            return qasync.QEventLoop(app)

        return {"qasync": qasync_loop}
    return {"asyncio": asyncio.new_event_loop}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "qasync: run this asyncio test on a qasync loop")


@pytest.fixture(autouse=True)
def cts_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated ``CTS_DESKTOP_HOME`` (and no inherited database URL) for every test."""
    home = tmp_path / "cts-home"
    monkeypatch.setenv("CTS_DESKTOP_HOME", str(home))
    monkeypatch.delenv("CTS_DESKTOP_DB", raising=False)
    yield home


@pytest.fixture
def real_keyring() -> Any:
    """The machine's real OS keyring backend (Secret Service in CI); skipped where none exists.

    CI sets ``CTS_REQUIRE_KEYRING=1`` so a missing backend fails instead of silently skipping.
    """
    import keyring

    from cts_desktop.redaction import Redactor
    from cts_desktop.storage.secrets import SecretStore

    backend = keyring.get_keyring()
    status = SecretStore(Redactor(), backend).status()
    if not status.available:
        if os.environ.get("CTS_REQUIRE_KEYRING") == "1":
            pytest.fail(f"CTS_REQUIRE_KEYRING=1 but no secure keyring backend: {status.error}")
        pytest.skip(f"no secure keyring backend on this machine ({status.backend})")
    return backend

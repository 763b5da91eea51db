"""The one signal path of the window and the headless run: the first SIGTERM asks for the graceful
shutdown, and removing the handlers restores the default behaviour. (The forced exit on a second
signal is tested on real processes in tests/test_headless.py.)"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from cts_desktop.shutdown_signals import install_shutdown_signals
from tests.helpers import wait_for


@pytest.mark.asyncio
async def test_the_first_sigterm_asks_for_the_graceful_shutdown_once() -> None:
    asked: list[str] = []
    remove = install_shutdown_signals(lambda: asked.append("stop"), logging.getLogger("test"))
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_for(lambda: asked == ["stop"])
    finally:
        remove()
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler)
    await asyncio.sleep(0)
    assert asked == ["stop"]

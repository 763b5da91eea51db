"""SIGINT/SIGTERM → one graceful shutdown; a second signal forces the exit. Shared by the window
and the headless run, so both behave the same (and both restore what they replaced).

``loop.add_signal_handler`` wakes the loop through its self-pipe, so the handler runs on the loop
even while Qt idles. Where it is unavailable (Windows), Python's own handler is used; it only
runs when the interpreter gets control, which ``keep_alive`` (the window's short no-op timer) gives.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_shutdown_signals(
    on_first: Callable[[], None],
    log: logging.Logger,
    *,
    keep_alive: Callable[[], Callable[[], None]] | None = None,
) -> Callable[[], None]:
    """Call ``on_first`` on the first signal, exit with 128 + signal on the second; returns the
    function that removes the handlers again."""
    loop = asyncio.get_running_loop()
    received = 0

    def on_signal(signum: int) -> None:
        nonlocal received
        received += 1
        name = signal.Signals(signum).name
        if received > 1:
            print(f"cts-desktop: second {name}: forcing the exit", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        log.warning("%s received: shutting down gracefully (a second signal forces the exit)", name)
        on_first()

    try:
        for sig in SIGNALS:
            loop.add_signal_handler(sig, on_signal, int(sig))
    except (NotImplementedError, RuntimeError, ValueError):
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
        for sig in SIGNALS:
            signal.signal(sig, lambda signum, _frame: loop.call_soon_threadsafe(on_signal, signum))
        stop_keep_alive = keep_alive() if keep_alive is not None else (lambda: None)

        def restore_python_handlers() -> None:
            stop_keep_alive()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore_python_handlers

    def remove_loop_handlers() -> None:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)

    return remove_loop_handlers

"""Run engine coroutines from Qt slots on the qasync loop without losing them or their errors.

A Qt slot cannot ``await``; a bare ``asyncio.ensure_future`` in a slot is a trap twice over: the
loop keeps only a weak reference to the task (it can be garbage-collected mid-flight), and an
exception inside it surfaces, if ever, as "Task exception was never retrieved" long after the
user clicked. :class:`TaskRunner` keeps every task it started until it ends, and hands each
failure to a callback (typically a red label in the panel) as well as to the log.

Awaiting inside the slot instead (``QDialog.exec``, ``qtbot.waitUntil``) would start a nested
event loop, which qasync forbids (PITFALLS "qasync and Qt").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

type ErrorHandler = Callable[[BaseException], None]


class TaskRunner:
    """Starts coroutines as tasks on the running loop, keeps them referenced, reports failures.

    One runner per widget; ``cancel_all()`` when the widget goes away (the window closes), so
    no task later touches a deleted Qt object.
    """

    def __init__(self, owner: str, on_error: ErrorHandler | None = None) -> None:
        self._owner = owner
        self._on_error = on_error
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def busy(self) -> bool:
        """True while a task started here has not finished."""
        return bool(self._tasks)

    def start(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str | None = None,
        on_error: ErrorHandler | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> asyncio.Task[Any] | None:
        """Schedule ``coro``; ``on_error`` (or the runner's default) receives an exception it raised.

        ``on_done`` runs after the task ended in any way (success, failure, cancellation): the
        place to re-enable a button. Returns None, after reporting the failure, when no loop runs
        (a synchronous test, or the loop has already stopped during shutdown).
        """
        label = name or getattr(coro, "__qualname__", "task")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError as exc:
            coro.close()  # never awaited: close it, or Python warns "coroutine was never awaited"
            error = RuntimeError(f"{self._owner}: cannot run {label}: no asyncio event loop is running")
            error.__cause__ = exc
            self._report(error, on_error)
            if on_done is not None:
                on_done()
            return None
        task = loop.create_task(coro, name=f"{self._owner}: {label}")
        self._tasks.add(task)

        def finished(done: asyncio.Task[Any]) -> None:
            self._tasks.discard(done)
            try:
                if not done.cancelled() and (error := done.exception()) is not None:
                    self._report(error, on_error)
            finally:
                if on_done is not None:
                    try:
                        on_done()
                    except Exception:
                        log.exception("%s: completion handler of %s failed", self._owner, label)

        task.add_done_callback(finished)
        return task

    def cancel_all(self) -> None:
        """Cancel every task still running (the owner is closing)."""
        for task in list(self._tasks):
            task.cancel()

    async def wait_idle(self) -> None:
        """Wait until every task started so far has ended (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _report(self, error: BaseException, on_error: ErrorHandler | None) -> None:
        handler = on_error or self._on_error
        log.error("%s: background task failed: %s", self._owner, error, exc_info=error)
        if handler is None:
            return
        try:
            handler(error)
        except Exception:
            log.exception("%s: error handler failed", self._owner)

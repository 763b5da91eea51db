"""A logging handler that feeds the Logs dock.

Records can be logged from any thread (ccxt callbacks, executor threads, the asyncio loop), but
widgets may only be touched on the GUI thread. The handler therefore turns each record into an
immutable :class:`LogEntry` in the logging thread — after the handler's filters ran, so the
secret-redaction filter the composition root attaches has already rewritten it — and hands it to
the GUI thread through a queued Qt signal.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QCoreApplication, QObject, Signal, SignalInstance, Slot


@dataclass(frozen=True, slots=True)
class LogEntry:
    """What the Logs dock shows of a record: plain data, safe to pass between threads."""

    created: float
    levelno: int
    level: str
    logger: str
    message: str


class _Relay(QObject):
    """Lives on the GUI thread; ``_posted`` is connected to a slot of this object, so an emission
    from another thread is queued and ``entry_logged`` is always emitted on the GUI thread, whatever
    kind of callable (slot, lambda, function) listens to it."""

    entry_logged = Signal(object)
    _posted = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        app = QCoreApplication.instance()
        if app is not None:
            self.moveToThread(app.thread())  # a handler built on a worker thread still delivers to the GUI
        self._posted.connect(self._deliver)

    def post(self, entry: LogEntry) -> None:
        """Callable from any thread."""
        self._posted.emit(entry)

    @Slot(object)
    def _deliver(self, entry: object) -> None:
        self.entry_logged.emit(entry)


class QtLogHandler(logging.Handler):
    """Forwards filtered records to the GUI thread as :class:`LogEntry` objects.

    Keeps the last ``backlog`` entries so a Logs dock created after logging started (the window is
    built after the database is opened) still shows the start-up messages. It never raises into the
    logging call: a failing filter drops the record (its text may be the secret the filter was meant
    to hide) and reports that fact instead.
    """

    def __init__(self, level: int = logging.NOTSET, *, backlog: int = 1000) -> None:
        super().__init__(level)
        self._relay = _Relay()
        self._backlog: deque[LogEntry] = deque(maxlen=max(0, backlog))
        self._formatter = logging.Formatter("%(message)s")

    @property
    def entry_logged(self) -> SignalInstance:
        """Emitted on the GUI thread with each :class:`LogEntry`."""
        return self._relay.entry_logged

    def attach(self, slot: Callable[[LogEntry], None]) -> list[LogEntry]:
        """Connect ``slot`` and return the backlog, atomically: no entry is lost or seen twice."""
        self.acquire()
        try:
            self._relay.entry_logged.connect(slot)
            return list(self._backlog)
        finally:
            self.release()

    def detach(self, slot: Callable[[LogEntry], None]) -> None:
        """Disconnect ``slot``; harmless if it was never connected or Qt already dropped it."""
        with contextlib.suppress(RuntimeError, TypeError):
            self._relay.entry_logged.disconnect(slot)

    def handle(self, record: logging.LogRecord) -> bool:
        """Run the filters, then :meth:`emit`; a raising filter must not let the record through."""
        try:
            return bool(super().handle(record))
        except Exception as exc:  # only a filter can raise here: emit() swallows its own errors
            self._publish(
                LogEntry(
                    created=record.created,
                    levelno=logging.ERROR,
                    level="ERROR",
                    logger=__name__,
                    message=f"a log record from {record.name} was dropped: its filter raised "
                    f"{type(exc).__name__}",
                )
            )
            return False

    def emit(self, record: logging.LogRecord) -> None:
        """Called by :meth:`handle` under the handler lock, after the filters."""
        try:
            message = self._formatter.format(record)  # message plus exception text, if any
            entry = LogEntry(record.created, record.levelno, record.levelname, record.name, message)
        except Exception:
            self.handleError(record)  # the record already passed the (redacting) filters
            return
        self._publish(entry)

    def _publish(self, entry: LogEntry) -> None:
        self.acquire()  # re-entrant: emit() already holds it; the filter-failure path does not
        try:
            self._backlog.append(entry)
            self._relay.post(entry)
        except RuntimeError:
            pass  # the relay's C++ object is gone (application exit): nothing left to show it
        finally:
            self.release()

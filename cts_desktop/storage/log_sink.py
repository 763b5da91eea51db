"""Copies log records into the ``system_log`` table without ever blocking the caller.

Logging calls come from the event loop, executors and the keyring thread; a synchronous
database write there would stall the UI. So ``emit`` only appends to a bounded buffer and an
asyncio task writes the buffer in one batched insert per interval (and once more at shutdown).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
import threading
from datetime import UTC, datetime

from cts_desktop.storage.repositories.system_log import LogEntry, SystemLogRepository

DEFAULT_FLUSH_SECONDS = 1.0
DEFAULT_BUFFER = 20_000


class DatabaseLogHandler(logging.Handler):
    def __init__(
        self,
        repository: SystemLogRepository,
        *,
        level: int = logging.INFO,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        max_buffer: int = DEFAULT_BUFFER,
    ) -> None:
        super().__init__(level)
        self._repository = repository
        self._flush_seconds = flush_seconds
        self._buffer: collections.deque[LogEntry] = collections.deque(maxlen=max_buffer)
        self._buffer_lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()
        self.dropped = 0
        self.written = 0
        self.failed_batches = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("sqlalchemy", "aiosqlite", "asyncpg")):
            return  # our own writes would feed themselves
        try:
            entry = LogEntry(
                at=datetime.fromtimestamp(record.created, UTC),
                level=record.levelname,
                logger=record.name,
                message=self.format(record) if self.formatter else record.getMessage(),
                connection_id=getattr(record, "connection_id", None),
            )
        except Exception:
            self.handleError(record)
            return
        with self._buffer_lock:
            if len(self._buffer) == self._buffer.maxlen:
                self.dropped += 1
            self._buffer.append(entry)

    def start(self) -> None:
        """Begin periodic flushing on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="system-log-flush")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush_async()

    async def flush_async(self) -> None:
        async with self._writing:
            with self._buffer_lock:
                batch = list(self._buffer)
                self._buffer.clear()
            if not batch:
                return
            try:
                await self._repository.write_batch(batch)
                self.written += len(batch)
            except Exception as exc:  # the log file still has these records; never recurse into logging
                self.failed_batches += 1
                print(
                    f"cts-desktop: could not write {len(batch)} log records to the database: "
                    f"{type(exc).__name__}",
                    file=sys.stderr,
                )

    async def aclose(self) -> None:
        """Stop the flusher and write whatever is still buffered."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush_async()
        self.close()

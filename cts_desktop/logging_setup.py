"""Process-wide logging: a rotating file, the console, and the redaction filter on every handler.

ccxt's logger is held at INFO because at DEBUG it writes API keys and signed URLs even when
``verbose`` is off (PITFALLS.md); the redaction filter is the second line of defence.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from dataclasses import dataclass, field

from cts_desktop.paths import AppPaths
from cts_desktop.redaction import RedactingFilter, Redactor, attach_filter

LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
NOISY_LOGGERS = {"ccxt": logging.INFO, "ccxt.base.exchange": logging.INFO, "asyncio": logging.WARNING}
LOG_FILE_BYTES = 5 * 1024 * 1024
LOG_FILE_BACKUPS = 5


@dataclass(slots=True)
class LoggingHandles:
    """What ``configure_logging`` installed, so it can be extended (UI, database) and removed."""

    redaction_filter: RedactingFilter
    handlers: list[logging.Handler] = field(default_factory=list)

    def add(self, handler: logging.Handler) -> None:
        """Attach another handler to the root logger, always behind the redaction filter."""
        attach_filter([handler], self.redaction_filter)
        logging.getLogger().addHandler(handler)
        self.handlers.append(handler)

    def close(self) -> None:
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        self.handlers.clear()


def configure_logging(
    paths: AppPaths,
    redactor: Redactor,
    *,
    level: int = logging.INFO,
    console: bool = True,
) -> LoggingHandles:
    root = logging.getLogger()
    root.setLevel(level)
    for name, minimum in NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(max(minimum, level))
    handles = LoggingHandles(RedactingFilter(redactor))
    formatter = logging.Formatter(LOG_FORMAT)
    paths.logs_dir.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(
        paths.logs_dir / "cts-desktop.log",
        maxBytes=LOG_FILE_BYTES,
        backupCount=LOG_FILE_BACKUPS,
        encoding="utf-8",
    )
    file_handler.setFormatter(formatter)
    handles.add(file_handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        handles.add(stream)
    # Handlers someone else installed earlier (pytest's capture, a host application) get it too.
    attach_filter(root.handlers, handles.redaction_filter)
    return handles

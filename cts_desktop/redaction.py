"""Keeps API keys, secrets, passphrases and signatures out of logs, exception texts and exports.

ccxt logs request headers (``X-MBX-APIKEY``) and signed URLs at DEBUG even without
``verbose``, and its exception texts contain the signed URL (PITFALLS.md). So redaction works
two ways at once: every secret value the application has seen is replaced wherever it appears,
and well-known credential fields are masked by pattern even when the value was never registered
(a key typed into a dialog but not saved yet, a signature computed by ccxt).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

MASK = "***"
# Shorter values would redact ordinary words and numbers; real API credentials are far longer.
MIN_SECRET_LENGTH = 6

_CREDENTIAL_FIELD = (
    r"x-mbx-apikey|x-bapi-api-key|x-bapi-sign|x-bx-apikey|ok-access-key|ok-access-sign|"
    r"ok-access-passphrase|access-key|access-sign|api[-_]?key|api[-_]?secret|secret[-_]?key|"
    r"secret|passphrase|password|passwd|signature|authorization|x-api-key|listenkey|sign"
)
# field = value, field: value, "field": "value", 'field': 'value', field=value& (query strings)
_FIELD_PATTERN = re.compile(
    rf"(?i)(?<![A-Za-z0-9])([\"']?(?:{_CREDENTIAL_FIELD})[\"']?\s*[:=]\s*[\"']?)"
    r"(?!\*\*\*)([^\s\"'&,;}\]\)]+)"
)
# "Bearer <token>" style authorization values
_BEARER_PATTERN = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=-]{8,})")


class Redactor:
    """Replaces known secret values and credential-looking fields in any text.

    Thread-safe: logging handlers may run on worker threads (executors, the keyring thread).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def register(self, *values: str | None) -> None:
        """Remember secret values so they are masked wherever they later appear."""
        fresh = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
        if not fresh:
            return
        with self._lock:
            merged = set(self._secrets) | fresh
            # Longest first, so a secret that contains another is masked whole.
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def forget(self, *values: str | None) -> None:
        with self._lock:
            self._secrets = tuple(s for s in self._secrets if s not in values)

    def redact(self, text: str) -> str:
        if not text:
            return text
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _BEARER_PATTERN.sub(lambda m: m.group(1) + MASK, text)
        return _FIELD_PATTERN.sub(lambda m: m.group(1) + MASK, text)

    def redact_exception(self, exc: BaseException) -> str:
        """A one-line, secret-free description of an exception, for dialogs, logs and the database."""
        return self.redact(f"{type(exc).__name__}: {exc}")


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so every handler downstream sees only redacted text.

    The message, the formatted traceback and the stack are rendered here and the raw
    ``args``/``exc_info`` are dropped, so no later formatter can re-render the original values.
    """

    _formatter = logging.Formatter()

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record or leak its args
            message = f"{record.msg!s} (unformattable arguments)"
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info:
            record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


def attach_filter(handlers: Iterable[logging.Handler], redaction_filter: RedactingFilter) -> None:
    """Add the one redaction filter to each handler that does not have it yet."""
    for handler in handlers:
        if redaction_filter not in handler.filters:
            handler.addFilter(redaction_filter)

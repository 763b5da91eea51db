"""Our own error kinds for everything a venue can answer, each with a message a trader understands.

The engine decides on retries by ``kind`` alone (never by parsing ccxt's text), and the UI shows
``message``; ``detail`` keeps the exchange's original text, already redacted of secrets.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    NETWORK = "network"  # timeout, connection reset: retry with backoff
    RATE_LIMITED = "rate_limited"  # 429 / DDoS protection: back off longer
    AUTHENTICATION = "authentication"  # wrong key, secret, passphrase, signature or clock
    PERMISSION = "permission"  # key valid but not allowed (trading off, IP not whitelisted)
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_ORDER = "invalid_order"  # size, price, precision, reduce-only, duplicate id
    ORDER_NOT_FOUND = "order_not_found"
    BAD_SYMBOL = "bad_symbol"
    EXCHANGE_DOWN = "exchange_down"  # 5xx, maintenance
    NOT_SUPPORTED = "not_supported"  # the venue has no such call / connector
    UNKNOWN = "unknown"


RETRYABLE_KINDS = frozenset({ErrorKind.NETWORK, ErrorKind.RATE_LIMITED, ErrorKind.EXCHANGE_DOWN})

_ADVICE: dict[ErrorKind, str] = {
    ErrorKind.NETWORK: "The exchange did not answer in time or the connection dropped. "
    "cts-desktop retries automatically; check your internet connection if it persists.",
    ErrorKind.RATE_LIMITED: "The exchange is limiting requests from this key or IP address. "
    "cts-desktop slows down and retries; reduce the number of symbols if it persists.",
    ErrorKind.AUTHENTICATION: "The exchange rejected the API credentials. Check the API key, secret "
    "(and passphrase for OKX) in the connection settings, that the key belongs to the same "
    "environment (testnet or live), and that this computer's clock is correct.",
    ErrorKind.PERMISSION: "The API key is valid but not allowed to do this. Enable the needed "
    "permission (reading, trading, futures) or the IP whitelist on the exchange's API page.",
    ErrorKind.INSUFFICIENT_FUNDS: "The account does not have enough free balance for this order.",
    ErrorKind.INVALID_ORDER: "The exchange refused the order's parameters (size, price, precision or "
    "limits). Check the symbol's minimum size and step.",
    ErrorKind.ORDER_NOT_FOUND: "The exchange does not know this order (it may have been filled or "
    "cancelled already, or never arrived).",
    ErrorKind.BAD_SYMBOL: "The exchange does not list this symbol for this account type.",
    ErrorKind.EXCHANGE_DOWN: "The exchange is unavailable or under maintenance. cts-desktop retries "
    "automatically.",
    ErrorKind.NOT_SUPPORTED: "This exchange does not support the operation.",
    ErrorKind.UNKNOWN: "The exchange returned an unexpected error.",
}


class ExchangeError(Exception):
    """A venue failure in our terms. ``str(error)`` is safe to show and to log."""

    kind: ErrorKind = ErrorKind.UNKNOWN

    def __init__(self, exchange: str, message: str | None = None, *, detail: str = "") -> None:
        self.exchange = exchange
        self.message = message or _ADVICE[self.kind]
        self.detail = detail
        super().__init__(self.describe())

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def describe(self) -> str:
        text = f"{self.exchange}: {self.message}"
        return f"{text} (exchange said: {self.detail})" if self.detail else text


class NetworkError(ExchangeError):
    kind = ErrorKind.NETWORK


class RateLimitedError(ExchangeError):
    kind = ErrorKind.RATE_LIMITED


class AuthenticationError(ExchangeError):
    kind = ErrorKind.AUTHENTICATION


class PermissionDeniedError(ExchangeError):
    kind = ErrorKind.PERMISSION


class InsufficientFundsError(ExchangeError):
    kind = ErrorKind.INSUFFICIENT_FUNDS


class InvalidOrderError(ExchangeError):
    kind = ErrorKind.INVALID_ORDER


class OrderNotFoundError(ExchangeError):
    kind = ErrorKind.ORDER_NOT_FOUND


class BadSymbolError(ExchangeError):
    kind = ErrorKind.BAD_SYMBOL


class ExchangeDownError(ExchangeError):
    kind = ErrorKind.EXCHANGE_DOWN


class NotSupportedError(ExchangeError):
    kind = ErrorKind.NOT_SUPPORTED


class UnknownExchangeError(ExchangeError):
    kind = ErrorKind.UNKNOWN


ERROR_CLASSES: dict[ErrorKind, type[ExchangeError]] = {
    cls.kind: cls
    for cls in (
        NetworkError,
        RateLimitedError,
        AuthenticationError,
        PermissionDeniedError,
        InsufficientFundsError,
        InvalidOrderError,
        OrderNotFoundError,
        BadSymbolError,
        ExchangeDownError,
        NotSupportedError,
        UnknownExchangeError,
    )
}

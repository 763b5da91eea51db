"""ccxt's exception hierarchy → our error kinds, with secret-free texts.

The engine decides on retries by our ``ErrorKind`` alone, so this is the one place that knows
ccxt's classes. The exchange's own words are kept in ``detail`` for support, but only after
three cleanups, because ccxt puts the signed request URL (query string, timestamp, signature)
and sometimes the request body into its exception texts:

1. every URL loses its query string and fragment;
2. the Redactor masks registered secrets and credential-looking fields (``signature=…``);
3. the text is cut to a readable length (an HTML maintenance page can be 50 kB).

ccxt is imported lazily (it costs 0.5–4.5 s), so importing this module stays cheap.
"""

from __future__ import annotations

import re
import socket
from typing import Any

from cts_desktop.exchanges.errors import (
    AuthenticationError,
    BadSymbolError,
    ExchangeDownError,
    ExchangeError,
    InsufficientFundsError,
    InvalidOrderError,
    NetworkError,
    NotSupportedError,
    OrderNotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnknownExchangeError,
)
from cts_desktop.redaction import Redactor

MAX_DETAIL_LENGTH = 500

CLOCK_SKEW_MESSAGE = (
    "The exchange rejected the request's timestamp: this computer's clock differs from the "
    "exchange's. Synchronise the system clock (enable automatic time) and try again."
)
MALFORMED_RESPONSE_MESSAGE = (
    "The exchange's answer could not be read (not valid JSON: a truncated transfer, a proxy or "
    "an error page). cts-desktop retries automatically; an order sent meanwhile is looked up by "
    "its client order id before anything is re-sent."
)
UNEXPECTED_RESPONSE_MESSAGE = "The exchange answered in a form cts-desktop does not understand."

# Venue codes and phrases that mean "your clock is off", whatever ccxt class they arrived as
# (Binance spot maps -1021 to BadRequest, futures to InvalidNonce).
_CLOCK_MARKERS = re.compile(
    r"-1021\b|recv_?window|timestamp for this request|server timestamp|timestamp mismatch|"
    r"\"retCode\":\s*10002\b|timestamp.{0,40}\b(?:expired|outside|ahead|behind)\b",
    re.IGNORECASE,
)
# ccxt's HTTP status errors read "<id> <METHOD> <url> <status> <reason> <body>"; some venues
# status maps (OKX) file 429 under ExchangeNotAvailable, but it is a rate limit.
_HTTP_429 = re.compile(r"\s429\s")
_URL_QUERY = re.compile(r"(?P<base>\b[a-z][a-z0-9+.-]*://[^\s?#\"'<>]+)[?#][^\s\"'<>]*", re.IGNORECASE)
# A bare signed query fragment outside a URL ("…&timestamp=1&signature=abc")
_SIGNED_QUERY = re.compile(r"[^\s\"'<>?]*(?:signature|sign)=[^\s\"'<>]*", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def clean_detail(text: str, redactor: Redactor) -> str:
    """The exchange's message without query strings, signatures or secrets, on one short line."""
    text = _URL_QUERY.sub(lambda m: m.group("base"), text)
    text = _SIGNED_QUERY.sub("[signed parameters removed]", text)
    text = redactor.redact(text)
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > MAX_DETAIL_LENGTH:
        text = text[: MAX_DETAIL_LENGTH - 1] + "…"
    return text


def _ccxt_errors() -> Any:
    import ccxt  # lazy: see the module docstring

    return ccxt


def _is_connection_failure(exc: BaseException) -> bool:
    """ccxt reports DNS failures and refused or reset connections as ExchangeNotAvailable.

    For the trader these are network trouble (most often on their side), not a venue outage,
    so they become NetworkError with the "check your internet connection" advice.
    """
    import aiohttp  # a dependency of ccxt, so already imported when a ccxt error exists

    cause = exc.__cause__
    return isinstance(cause, socket.gaierror | aiohttp.ClientConnectionError)


def map_ccxt_error(exc: BaseException, exchange: str, redactor: Redactor) -> ExchangeError:
    """Translate any exception raised around a ccxt call into one of our ExchangeError kinds.

    ``exchange`` is our venue name for the message. Nothing of ``exc`` reaches the result except
    its cleaned text (see :func:`clean_detail`); callers raise the result outside their
    ``except`` block so the original (with its signed URL) is not even chained.
    """
    if isinstance(exc, ExchangeError):
        return exc
    detail = clean_detail(str(exc), redactor)
    ccxt = _ccxt_errors()

    if isinstance(exc, ccxt.BaseError):
        return _map_ccxt(exc, ccxt, exchange, detail)
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since Python 3.11
        return NetworkError(
            exchange,
            "The exchange did not answer in time. cts-desktop retries automatically; check your "
            "internet connection if it persists.",
            detail=detail or "timeout",
        )
    import aiohttp

    if isinstance(exc, ConnectionError | socket.gaierror | aiohttp.ClientError):
        return NetworkError(exchange, detail=detail or type(exc).__name__)
    return UnknownExchangeError(
        exchange,
        UNEXPECTED_RESPONSE_MESSAGE,
        detail=f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__,
    )


def _map_ccxt(exc: BaseException, ccxt: Any, exchange: str, detail: str) -> ExchangeError:
    # Order matters: ccxt's classes nest (OrderNotFound ⊂ InvalidOrder, OnMaintenance ⊂
    # ExchangeNotAvailable ⊂ NetworkError, PermissionDenied ⊂ AuthenticationError).
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection) or (
        isinstance(exc, ccxt.ExchangeNotAvailable) and _HTTP_429.search(detail)
    ):
        return RateLimitedError(exchange, detail=detail)
    if isinstance(exc, ccxt.OnMaintenance):
        return ExchangeDownError(
            exchange,
            "The exchange is under maintenance. cts-desktop retries automatically.",
            detail=detail,
        )
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        if _is_connection_failure(exc):
            return NetworkError(
                exchange,
                "Could not connect to the exchange (the connection failed or dropped). cts-desktop "
                "retries automatically; check your internet connection if it persists.",
                detail=detail,
            )
        return ExchangeDownError(exchange, detail=detail)
    if isinstance(exc, ccxt.ChecksumError):  # an order book stream out of sync: resubscribe
        return NetworkError(exchange, "The exchange's data stream went out of sync.", detail=detail)
    if isinstance(exc, ccxt.InvalidNonce) or _CLOCK_MARKERS.search(detail):
        return AuthenticationError(exchange, CLOCK_SKEW_MESSAGE, detail=detail)
    if isinstance(exc, ccxt.RequestTimeout):
        return NetworkError(
            exchange,
            "The exchange did not answer in time. cts-desktop retries automatically; check your "
            "internet connection if it persists.",
            detail=detail,
        )
    if isinstance(exc, ccxt.BadResponse):  # NullResponse included: empty or unreadable answer
        return NetworkError(exchange, MALFORMED_RESPONSE_MESSAGE, detail=detail)
    if isinstance(exc, ccxt.CancelPending):
        return NetworkError(
            exchange,
            "The exchange is still cancelling this order; its final state follows shortly.",
            detail=detail,
        )
    if isinstance(exc, ccxt.NetworkError):
        return NetworkError(exchange, detail=detail)
    if isinstance(exc, ccxt.AccountSuspended):
        return PermissionDeniedError(
            exchange,
            "The exchange has suspended or restricted this account. Check the account on the "
            "exchange's website.",
            detail=detail,
        )
    if isinstance(exc, ccxt.PermissionDenied):
        return PermissionDeniedError(exchange, detail=detail)
    if isinstance(exc, ccxt.AuthenticationError):
        return AuthenticationError(exchange, detail=detail)
    if isinstance(exc, ccxt.RestrictedLocation):
        return PermissionDeniedError(
            exchange, "The exchange does not serve this account from your location.", detail=detail
        )
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientFundsError(exchange, detail=detail)
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFoundError(exchange, detail=detail)
    if isinstance(exc, ccxt.DuplicateOrderId):
        return InvalidOrderError(
            exchange,
            "The exchange already has an order with this client order id; look it up instead of "
            "sending it again.",
            detail=detail,
        )
    if isinstance(exc, ccxt.InvalidOrder):
        return InvalidOrderError(exchange, detail=detail)
    if isinstance(exc, ccxt.MarketClosed):
        return InvalidOrderError(exchange, "The market is closed for trading right now.", detail=detail)
    if isinstance(exc, ccxt.BadSymbol):
        return BadSymbolError(exchange, detail=detail)
    if isinstance(exc, ccxt.NotSupported):
        return NotSupportedError(exchange, detail=detail)
    if isinstance(exc, ccxt.ExchangeClosedByUser):
        return UnknownExchangeError(exchange, "The connection to the exchange was closed.", detail=detail)
    return UnknownExchangeError(exchange, detail=f"{type(exc).__name__}: {detail}")

"""Faults injected under ccxt's real error handling come out as our error kinds, without secrets.

The fake session (tests/exchanges/fake_http.py) raises transport exceptions where aiohttp would
and answers with error statuses and bodies; ccxt then runs its own ``handle_errors`` and HTTP
status mapping, and CcxtExchange translates the result. Every test also checks that no API
key, secret or passphrase appears in the error's text, in its ``detail`` or in any log record
our code produced (the application's own redaction filter on log handlers is tested elsewhere).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import ccxt
import pytest

from cts_desktop.domain.market import ApiType, MarginMode, OrderRequest, OrderSide, OrderType
from cts_desktop.exchanges.ccxt_errors import CLOCK_SKEW_MESSAGE, clean_detail, map_ccxt_error
from cts_desktop.exchanges.ccxt_exchange import CcxtExchange
from cts_desktop.exchanges.errors import (
    AuthenticationError,
    BadSymbolError,
    ErrorKind,
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
from tests.exchanges.conftest import SECRETS, TEST_API_KEY, TEST_API_SECRET, MakeExchange
from tests.exchanges.fake_http import FakeHttpSession, FakeResponse

P, S, U = ApiType.PERPETUAL_FUTURES, ApiType.SPOT, ApiType.UNIFIED
VENUES = [("binance", P), ("bybit", U), ("okx", P), ("bingx", P)]


def assert_clean(error: ExchangeError, caplog: pytest.LogCaptureFixture) -> None:
    """No secret in the error's texts or in any captured record; no signed query in ``detail``."""
    texts = [str(error), error.detail, error.message, repr(error.args)]
    texts += [record.getMessage() for record in caplog.records]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret leaked into {text!r}"
    assert "signature=" not in error.detail and "timestamp=" not in error.detail
    assert error.__cause__ is None and error.__context__ is None  # ccxt's text is not even chained


async def raised_by(call: Callable[[], Awaitable[Any]]) -> ExchangeError:
    with pytest.raises(ExchangeError) as info:
        await call()
    return info.value


def _order(symbol: str = "LTC/USDT") -> OrderRequest:
    return OrderRequest(symbol, OrderSide.BUY, OrderType.LIMIT, 0.1, "cts-test-0001", price=50.0)


@pytest.fixture(autouse=True)
def _debug_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


# ---------------------------------------------------------------------------------------------
# Transport and HTTP faults, on every venue.


@pytest.mark.asyncio
@pytest.mark.parametrize(("exchange", "api_type"), VENUES)
async def test_timeout_is_a_network_error(
    make_exchange: MakeExchange, caplog: pytest.LogCaptureFixture, exchange: str, api_type: ApiType
) -> None:
    # asyncio.TimeoutError, what aiohttp raises, is the builtin TimeoutError since Python 3.11.
    venue = make_exchange(exchange, api_type, FakeHttpSession([TimeoutError()]))
    error = await raised_by(venue.fetch_balance)
    assert isinstance(error, NetworkError) and error.retryable
    assert "did not answer in time" in error.message
    assert_clean(error, caplog)


@pytest.mark.asyncio
@pytest.mark.parametrize(("exchange", "api_type"), VENUES)
async def test_dropped_connection_is_a_network_error(
    make_exchange: MakeExchange, caplog: pytest.LogCaptureFixture, exchange: str, api_type: ApiType
) -> None:
    """ccxt calls it ExchangeNotAvailable; for the trader it is a connection problem."""
    fault = aiohttp.ClientConnectionError("Connection reset by peer")
    venue = make_exchange(exchange, api_type, FakeHttpSession([fault]))
    error = await raised_by(venue.fetch_balance)
    assert isinstance(error, NetworkError) and error.retryable
    assert "Could not connect" in error.message
    assert_clean(error, caplog)


@pytest.mark.asyncio
@pytest.mark.parametrize(("exchange", "api_type"), VENUES)
async def test_http_429_is_rate_limited(
    make_exchange: MakeExchange, caplog: pytest.LogCaptureFixture, exchange: str, api_type: ApiType
) -> None:
    # The plain answer of a gateway or WAF limit; venue-specific JSON codes are tested below.
    answer = FakeResponse(
        429, "Too Many Requests", headers={"Content-Type": "text/plain", "Retry-After": "1"}
    )
    venue = make_exchange(exchange, api_type, FakeHttpSession([answer]))
    error = await raised_by(venue.fetch_balance)
    assert isinstance(error, RateLimitedError) and error.retryable
    assert "limiting requests" in error.message
    assert_clean(error, caplog)


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize(("exchange", "api_type"), VENUES)
async def test_http_5xx_is_exchange_down(
    make_exchange: MakeExchange,
    caplog: pytest.LogCaptureFixture,
    exchange: str,
    api_type: ApiType,
    status: int,
) -> None:
    page = f"<html><body><h1>{status}</h1>Service temporarily unavailable</body></html>"
    session = FakeHttpSession([FakeResponse(status, page, headers={"Content-Type": "text/html"})])
    venue = make_exchange(exchange, api_type, session)
    error = await raised_by(venue.fetch_balance)
    assert isinstance(error, ExchangeDownError) and error.retryable
    assert "unavailable or under maintenance" in error.message
    assert_clean(error, caplog)


@pytest.mark.asyncio
@pytest.mark.parametrize("body", ['{"balances": [{"asset": "USDT", "fr', "<html>captive portal</html>", ""])
@pytest.mark.parametrize(("exchange", "api_type"), VENUES)
async def test_malformed_body_is_a_network_error(
    make_exchange: MakeExchange, caplog: pytest.LogCaptureFixture, exchange: str, api_type: ApiType, body: str
) -> None:
    """A 200 answer that is not JSON: NetworkError, on purpose.

    ccxt itself does not fail here: its parsers read the text as "no data", so fetch_balance()
    would return an empty balance, which looks like an empty account. The usual causes (a
    truncated transfer, a proxy or captive portal, a CDN error page) are transient transport
    problems, so the error is retryable; an order whose answer was garbled is looked up by its
    client order id before anything is re-sent (PITFALLS.md).
    """
    session = FakeHttpSession([FakeResponse(200, body, headers={"Content-Type": "text/html"})])
    venue = make_exchange(exchange, api_type, session)
    error = await raised_by(venue.fetch_balance)
    assert isinstance(error, NetworkError) and error.retryable
    assert "could not be read (not valid JSON" in error.message
    assert_clean(error, caplog)


@pytest.mark.asyncio
async def test_malformed_answer_to_an_order_is_not_taken_for_an_order(make_exchange: MakeExchange) -> None:
    session = FakeHttpSession([FakeResponse(200, "<html>502 Bad Gateway</html>")])
    venue = make_exchange("binance", S, session)
    with pytest.raises(NetworkError):
        await venue.create_order(_order())


# ---------------------------------------------------------------------------------------------
# Binance's own error codes (through ccxt's per-URL error maps).


@pytest.mark.asyncio
async def test_binance_insufficient_balance(
    make_exchange: MakeExchange, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"code": -2010, "msg": "Account has insufficient balance for requested action."}
    session = FakeHttpSession([FakeResponse(400, body)])
    venue = make_exchange("binance", S, session)
    error = await raised_by(lambda: venue.create_order(_order()))
    assert isinstance(error, InsufficientFundsError) and not error.retryable
    assert "not have enough free balance" in error.message
    assert "insufficient balance" in error.detail
    assert_clean(error, caplog)


@pytest.mark.asyncio
@pytest.mark.parametrize(("api_type", "symbol"), [(S, "LTC/USDT"), (P, "BTC/USDT:USDT")])
async def test_binance_order_does_not_exist(
    make_exchange: MakeExchange, caplog: pytest.LogCaptureFixture, api_type: ApiType, symbol: str
) -> None:
    session = FakeHttpSession(default=FakeResponse(400, {"code": -2013, "msg": "Order does not exist."}))
    venue = make_exchange("binance", api_type, session)
    error = await raised_by(lambda: venue.fetch_order("12345", symbol))
    assert isinstance(error, OrderNotFoundError)
    assert "does not know this order" in error.message
    assert_clean(error, caplog)


@pytest.mark.asyncio
@pytest.mark.parametrize("api_type", [S, P])
async def test_binance_timestamp_outside_recv_window_blames_the_clock(
    make_exchange: MakeExchange, caplog: pytest.LogCaptureFixture, api_type: ApiType
) -> None:
    """Binance futures map -1021 to InvalidNonce, spot to BadRequest: both become a clock message."""
    body = {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
    venue = make_exchange("binance", api_type, FakeHttpSession([FakeResponse(400, body)]))
    error = await raised_by(venue.fetch_balance)
    assert isinstance(error, AuthenticationError)
    assert error.message == CLOCK_SKEW_MESSAGE and "clock" in str(error)
    assert_clean(error, caplog)


@pytest.mark.asyncio
async def test_binance_invalid_api_key(make_exchange: MakeExchange, caplog: pytest.LogCaptureFixture) -> None:
    # Some venues echo the key they rejected: the Redactor must mask it in what we keep.
    body = {"code": -2015, "msg": f"Invalid API-key {TEST_API_KEY}, IP, or permissions for action."}
    venue = make_exchange("binance", P, FakeHttpSession([FakeResponse(401, body)]))
    error = await raised_by(venue.fetch_balance)
    assert isinstance(error, AuthenticationError) and not error.retryable
    assert "rejected the API credentials" in error.message
    assert "Invalid API-key ***" in error.detail
    assert_clean(error, caplog)


@pytest.mark.asyncio
async def test_other_venues_error_codes(
    make_exchange: MakeExchange, caplog: pytest.LogCaptureFixture
) -> None:
    cases: list[tuple[str, ApiType, Any, type[ExchangeError]]] = [
        ("bybit", U, {"retCode": 10003, "retMsg": "API key is invalid.", "result": {}}, AuthenticationError),
        (
            "bybit",
            U,
            {
                "retCode": 10002,
                "retMsg": "invalid request, please check your server timestamp or recv_window param",
            },
            AuthenticationError,
        ),
        (
            "okx",
            P,
            {"code": "51008", "msg": "Order failed. Insufficient USDT balance in account.", "data": []},
            None,
        ),
        ("okx", P, {"code": "50113", "msg": "Invalid Sign", "data": []}, AuthenticationError),
        ("okx", P, {"code": "50011", "msg": "Too Many Requests", "data": []}, RateLimitedError),
        ("bybit", U, {"retCode": 10006, "retMsg": "Too many visits!", "result": {}}, RateLimitedError),
        ("bingx", P, {"code": 100413, "msg": "Incorrect apiKey", "data": {}}, AuthenticationError),
    ]
    for exchange, api_type, body, expected in cases:
        venue = make_exchange(exchange, api_type, FakeHttpSession(default=FakeResponse(200, body)))
        if expected is None:  # OKX rejects orders per item with sCode inside a 200 answer
            order = OrderRequest("BTC/USDT:USDT", OrderSide.BUY, OrderType.MARKET, 1.0, "cts-test-0002")
            error = await raised_by(lambda v=venue, o=order: v.create_order(o))
            assert isinstance(error, InsufficientFundsError | InvalidOrderError), error
        else:
            error = await raised_by(venue.fetch_balance)
            assert isinstance(error, expected), (exchange, error)
        if "timestamp" in str(body):
            assert error.message == CLOCK_SKEW_MESSAGE
        assert_clean(error, caplog)


# ---------------------------------------------------------------------------------------------
# Redaction when ccxt's own logger is forced to DEBUG.


@pytest.mark.asyncio
async def test_our_texts_stay_clean_with_ccxt_logging_at_debug(
    make_exchange: MakeExchange, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"code": -2015, "msg": f"Invalid API-key {TEST_API_KEY}, IP, or permissions for action."}
    venue = make_exchange("binance", P, FakeHttpSession([FakeResponse(401, body)]))
    ccxt_logger = logging.getLogger("ccxt.base.exchange")
    previous = ccxt_logger.level
    ccxt_logger.setLevel(logging.DEBUG)  # what the constructor prevents; forced here on purpose
    try:
        error = await raised_by(venue.fetch_balance)
    finally:
        ccxt_logger.setLevel(previous)
    ccxt_records = [r for r in caplog.records if r.name.startswith("ccxt")]
    ours = [r for r in caplog.records if r.name.startswith("cts_desktop")]
    # The leak PITFALLS.md warns about is real: ccxt's own DEBUG record carries the API key…
    assert any(TEST_API_KEY in r.getMessage() for r in ccxt_records)
    # …so everything we produce must be clean by itself.
    assert ours, "CcxtExchange logged nothing about the failure"
    for record in ours:
        for secret in SECRETS:
            assert secret not in record.getMessage()
    for text in (str(error), error.detail):
        for secret in SECRETS:
            assert secret not in text
    assert "signature=" not in str(error)


@pytest.mark.asyncio
async def test_constructor_holds_ccxt_logger_at_info(make_exchange: MakeExchange) -> None:
    ccxt_logger = logging.getLogger("ccxt.base.exchange")
    previous = ccxt_logger.level
    ccxt_logger.setLevel(logging.NOTSET)
    try:
        make_exchange("bybit", U, FakeHttpSession())
        assert ccxt_logger.getEffectiveLevel() >= logging.INFO
    finally:
        ccxt_logger.setLevel(previous)


def test_credentials_are_registered_with_the_redactor() -> None:
    from cts_desktop.storage.secrets import Credentials

    redactor = Redactor()
    CcxtExchange(
        "okx",
        credentials=Credentials(TEST_API_KEY, TEST_API_SECRET, "TESTPASS-42-passphrase"),
        redactor=redactor,
        use_websocket=False,
    )
    text = f"key {TEST_API_KEY} secret {TEST_API_SECRET} pass TESTPASS-42-passphrase"
    assert redactor.redact(text) == "key *** secret *** pass ***"


# ---------------------------------------------------------------------------------------------
# "Already set" answers of set_* are success; real refusals are not.


@pytest.mark.asyncio
async def test_no_change_answers_are_success(make_exchange: MakeExchange) -> None:
    binance = make_exchange(
        "binance",
        P,
        FakeHttpSession(
            [
                FakeResponse(400, {"code": -4046, "msg": "No need to change margin type."}),
                FakeResponse(400, {"code": -4059, "msg": "No need to change position side."}),
            ]
        ),
    )
    await binance.set_margin_mode("BTC/USDT:USDT", MarginMode.CROSS)
    await binance.set_position_mode(True)

    bybit = make_exchange(
        "bybit",
        U,
        FakeHttpSession([FakeResponse(200, {"retCode": 110043, "retMsg": "leverage not modified"})]),
    )
    await bybit.set_leverage("BTC/USDT:USDT", 10)

    refused = make_exchange(
        "binance",
        P,
        FakeHttpSession([FakeResponse(400, {"code": -4028, "msg": "Leverage 300 is not valid"})]),
    )
    with pytest.raises(ExchangeError) as info:
        await refused.set_leverage("BTC/USDT:USDT", 300)
    assert info.value.kind is not ErrorKind.NETWORK


@pytest.mark.asyncio
async def test_settings_calls_send_what_each_venue_needs(make_exchange: MakeExchange) -> None:
    ok = {"code": "0", "msg": "", "data": [{"lever": "5", "mgnMode": "isolated", "instId": "BTC-USDT-SWAP"}]}
    okx_session = FakeHttpSession(default=FakeResponse(200, ok))
    okx = make_exchange("okx", P, okx_session)
    await okx.set_leverage("BTC/USDT:USDT", 5)
    await okx.set_margin_mode("BTC/USDT:USDT", MarginMode.ISOLATED)
    leverage, margin = (r.all_params() for r in okx_session.requests)
    assert str(leverage["lever"]) == "5" and leverage["mgnMode"] == "cross"
    assert str(margin["lever"]) == "5" and margin["mgnMode"] == "isolated"  # OKX needs both in one call

    bingx_answers = [
        FakeResponse(200, {"code": 0, "msg": "", "data": {"dualSidePosition": "true"}}),
        FakeResponse(200, {"code": 0, "msg": "", "data": {"leverage": 7, "symbol": "LTC-USDT"}}),
        FakeResponse(200, {"code": 0, "msg": "", "data": {"leverage": 7, "symbol": "LTC-USDT"}}),
    ]
    bingx_session = FakeHttpSession(bingx_answers)
    bingx = make_exchange("bingx", P, bingx_session)
    await bingx.set_leverage("LTC/USDT:USDT", 7)
    sides = [r.query.get("side") for r in bingx_session.requests[1:]]
    assert sides == ["LONG", "SHORT"]  # hedge mode: BingX sets each side's leverage


@pytest.mark.asyncio
async def test_spot_connections_refuse_contract_settings(make_exchange: MakeExchange) -> None:
    venue = make_exchange("binance", S, FakeHttpSession())
    with pytest.raises(NotSupportedError, match="spot connection"):
        await venue.set_leverage("BTC/USDT", 5)
    with pytest.raises(NotSupportedError):
        await venue.set_position_mode(True)


# ---------------------------------------------------------------------------------------------
# map_ccxt_error itself: every ccxt class we name, and the text cleanup.

_URL = "https://fapi.binance.com/fapi/v2/account?timestamp=1700000000000&recvWindow=5000&signature=ab12cd34"

MAPPING = [
    (ccxt.RequestTimeout(f"binance GET {_URL}"), NetworkError),
    (ccxt.NetworkError("socket closed"), NetworkError),
    (ccxt.RateLimitExceeded("slow down"), RateLimitedError),
    (ccxt.DDoSProtection("binance 418 I'm a teapot"), RateLimitedError),
    (ccxt.ExchangeNotAvailable("binance 503 Service Unavailable"), ExchangeDownError),
    (ccxt.OnMaintenance("System is under maintenance."), ExchangeDownError),
    (ccxt.InvalidNonce("nonce too small"), AuthenticationError),
    (ccxt.AuthenticationError("invalid signature"), AuthenticationError),
    (ccxt.PermissionDenied("no futures permission"), PermissionDeniedError),
    (ccxt.AccountSuspended("account banned"), PermissionDeniedError),
    (ccxt.InsufficientFunds("margin is insufficient"), InsufficientFundsError),
    (ccxt.OrderNotFound("unknown order"), OrderNotFoundError),
    (ccxt.InvalidOrder("qty precision"), InvalidOrderError),
    (ccxt.DuplicateOrderId("duplicate clOrdId"), InvalidOrderError),
    (ccxt.BadSymbol("binance does not have market symbol FOO/BAR"), BadSymbolError),
    (ccxt.NotSupported("fetchFoo() is not supported yet"), NotSupportedError),
    (ccxt.BadResponse("empty response"), NetworkError),
    (ccxt.ExchangeError("something odd"), UnknownExchangeError),
    (TimeoutError("read timeout"), NetworkError),  # asyncio.TimeoutError is TimeoutError
    (ConnectionResetError("reset"), NetworkError),
    (KeyError("inverse"), UnknownExchangeError),
]


@pytest.mark.parametrize(("exc", "expected"), MAPPING, ids=lambda v: type(v).__name__)
def test_map_ccxt_error(exc: BaseException, expected: type[ExchangeError]) -> None:
    error = map_ccxt_error(exc, "binance", Redactor())
    assert type(error) is expected
    assert error.exchange == "binance" and str(error).startswith("binance: ")
    if isinstance(exc, ccxt.InvalidNonce):
        assert error.message == CLOCK_SKEW_MESSAGE


def test_map_ccxt_error_passes_our_errors_through() -> None:
    ours = OrderNotFoundError("okx")
    assert map_ccxt_error(ours, "okx", Redactor()) is ours


def test_detail_loses_query_strings_signatures_and_secrets() -> None:
    redactor = Redactor()
    redactor.register(TEST_API_KEY, TEST_API_SECRET)
    text = (
        f"binance POST {_URL} 400 Bad Request "
        f'{{"code":-1022,"msg":"Signature for this request is not valid."}} apiKey={TEST_API_KEY} '
        f"body=symbol=BTCUSDT&timestamp=1&signature=deadbeef secret {TEST_API_SECRET}"
    )
    detail = clean_detail(text, redactor)
    assert "https://fapi.binance.com/fapi/v2/account " in detail
    assert "?" not in detail and "ab12cd34" not in detail and "deadbeef" not in detail
    assert TEST_API_KEY not in detail and TEST_API_SECRET not in detail
    assert "Signature for this request is not valid." in detail
    long = clean_detail("x" * 5000, redactor)
    assert len(long) <= 500 and long.endswith("…")

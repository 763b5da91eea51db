"""The exchange catalog, and CcxtExchange built offline from it for every exchange and API type.

Offline means ccxt's real classes with the static markets installed by ``set_markets`` and a fake
session that records what would have gone over the wire, so the testnet switches are checked
on real request URLs and headers.
"""

from __future__ import annotations

import contextlib

import pytest

from cts_desktop.domain.market import ApiType, MarginMode, MarketInfo, MarketType, PositionMode
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.catalog import (
    DEFAULT_RATE_LIMITS,
    EXCHANGES,
    RateLimits,
    TestnetMethod,
    UnknownExchangeIdError,
    UnsupportedApiTypeError,
    get_spec,
    is_live_capable,
    rate_limits_for,
    supported_exchanges,
)
from cts_desktop.exchanges.ccxt_exchange import CcxtExchange
from cts_desktop.exchanges.errors import BadSymbolError, ExchangeError, NotSupportedError
from cts_desktop.redaction import Redactor
from tests.exchanges.conftest import MakeExchange
from tests.exchanges.fake_http import FakeHttpSession, FakeResponse

SUPPORTED = ["bybit", "bingx", "binance", "okx"]


# ---------------------------------------------------------------------------------------------
# The catalog itself.


def test_catalog_lists_the_six_connector_exchanges_and_the_built_in_simulated_market() -> None:
    assert set(EXCHANGES) == {"bybit", "bingx", "binance", "okx", "pionex", "orangex", "simulated"}
    assert [s.id for s in supported_exchanges()] == SUPPORTED  # what a user can connect through ccxt
    assert [s.id for s in EXCHANGES.values() if s.builtin] == ["simulated"]


def test_the_simulated_market_can_never_trade_live_and_needs_no_key() -> None:
    simulated = get_spec("simulated")
    assert simulated.supported and simulated.builtin
    assert not simulated.live_capable and not simulated.needs_credentials
    assert simulated.api_types == {} and not simulated.has_testnet  # no ccxt behind it
    assert simulated.template is not None and simulated.template.name == "Simulated market"
    assert [e for e, s in EXCHANGES.items() if not s.live_capable] == ["simulated"]
    assert [e for e in EXCHANGES if is_live_capable(e)] == SUPPORTED  # unsupported ones cannot either
    assert not is_live_capable("kraken")
    with pytest.raises(NotSupportedError, match="does not offer the API type"):
        CcxtExchange("simulated", api_type=ApiType.SPOT, redactor=Redactor(), session=FakeHttpSession())


@pytest.mark.parametrize(
    ("exchange_id", "name", "issue"),
    [("pionex", "Pionex", "ccxt issue #18847"), ("orangex", "OrangeX", "ccxt issue #27905")],
)
def test_pionex_and_orangex_say_not_supported_yet(exchange_id: str, name: str, issue: str) -> None:
    spec = get_spec(exchange_id)
    assert not spec.supported and spec.api_types == {}
    assert spec.unsupported_reason is not None
    assert spec.unsupported_reason.startswith("not supported yet: ")
    assert f"{name} is not available in ccxt" in spec.unsupported_reason and issue in spec.unsupported_reason
    with pytest.raises(UnsupportedApiTypeError, match=f"{name} is not supported yet"):
        spec.variant(ApiType.PERPETUAL_FUTURES)
    with pytest.raises(NotSupportedError, match="not supported yet") as info:
        CcxtExchange(exchange_id, redactor=Redactor(), session=FakeHttpSession())
    assert info.value.exchange == exchange_id and issue in str(info.value)


def test_unknown_ids_get_a_clear_error() -> None:
    with pytest.raises(
        UnknownExchangeIdError, match="unknown exchange 'kraken'; known exchanges: binance, bingx"
    ):
        get_spec("kraken")
    assert get_spec("  Binance ") is EXCHANGES["binance"]
    with pytest.raises(NotSupportedError, match="unknown exchange 'kraken'"):
        CcxtExchange("kraken", redactor=Redactor())


def test_ccxt_ids_per_api_type() -> None:
    assert get_spec("binance").ccxt_id(ApiType.SPOT) == "binance"
    assert get_spec("binance").ccxt_id(ApiType.PERPETUAL_FUTURES) == "binanceusdm"
    assert get_spec("bybit").ccxt_id(ApiType.UNIFIED) == "bybit"
    assert get_spec("bybit").variant(ApiType.UNIFIED).options["defaultType"] == "swap"
    assert get_spec("bybit").variant(ApiType.UNIFIED).options["enableUnifiedAccount"] is True
    assert get_spec("bybit").variant(ApiType.PERPETUAL_FUTURES).default_type == "swap"
    assert get_spec("okx").ccxt_id(ApiType.PERPETUAL_FUTURES) == "okx"
    assert get_spec("bingx").ccxt_id(ApiType.PERPETUAL_FUTURES) == "bingx"
    with pytest.raises(UnsupportedApiTypeError, match="does not offer the API type 'unified'"):
        get_spec("binance").variant(ApiType.UNIFIED)


def test_testnet_methods_follow_each_venues_quirks() -> None:
    assert get_spec("binance").testnet(ApiType.PERPETUAL_FUTURES).method is TestnetMethod.DEMO_TRADING
    assert get_spec("bybit").testnet(ApiType.UNIFIED).method is TestnetMethod.SANDBOX
    okx = get_spec("okx").testnet(ApiType.PERPETUAL_FUTURES)
    assert okx.method is TestnetMethod.SANDBOX and "x-simulated-trading: 1" in okx.note
    bingx_swap = get_spec("bingx").testnet(ApiType.PERPETUAL_FUTURES)
    bingx_spot = get_spec("bingx").testnet(ApiType.SPOT)
    assert bingx_swap.available and "perpetual futures only" in bingx_swap.note
    assert not bingx_spot.available and "perpetual futures only" in bingx_spot.note
    assert all(spec.has_testnet for spec in supported_exchanges())


def test_passphrase_leverage_rate_limits_and_templates_follow_domain_section_5() -> None:
    assert [e for e, s in EXCHANGES.items() if s.requires_passphrase] == ["okx"]
    assert {e: s.max_leverage for e, s in EXCHANGES.items()} == {
        "bybit": 125,
        "bingx": 150,
        "binance": 125,
        "okx": 125,
        "pionex": 100,
        "orangex": 125,
        "simulated": 100,
    }
    assert rate_limits_for("bybit") == RateLimits(10, 120, 5)
    assert rate_limits_for("bingx") == RateLimits(5, 100, 3)
    assert rate_limits_for("binance") == RateLimits(10, 1200, 10)
    assert rate_limits_for("okx") == RateLimits(20, 600, 10)
    assert rate_limits_for("pionex") == rate_limits_for("orangex") == RateLimits(5, 100, 3)
    assert rate_limits_for("gateio") == DEFAULT_RATE_LIMITS == RateLimits(5, 100, 3)
    assert DEFAULT_RATE_LIMITS.recheck_ms == 100

    templates = {e: s.template for e, s in EXCHANGES.items()}
    assert {e: (t.name, t.api_type, t.max_leverage, t.is_testnet) for e, t in templates.items() if t} == {
        "bybit": ("Bybit X03", ApiType.UNIFIED, 125, True),
        "bingx": ("BingX X01", ApiType.PERPETUAL_FUTURES, 150, False),
        "pionex": ("Pionex", ApiType.PERPETUAL_FUTURES, 100, False),
        "orangex": ("OrangeX", ApiType.PERPETUAL_FUTURES, 125, False),
        "binance": ("Binance", ApiType.PERPETUAL_FUTURES, 125, True),
        "okx": ("OKX", ApiType.PERPETUAL_FUTURES, 125, True),
        "simulated": ("Simulated market", ApiType.SPOT, 100, False),
    }
    for template in templates.values():
        assert template is not None
        assert template.margin_mode is MarginMode.CROSS and template.position_mode is PositionMode.HEDGE
        assert template.pf_minimum == 0.6 and template.trailing and template.block and not template.dca
    for spec in supported_exchanges():  # the template's API type is one the venue offers
        assert spec.template is not None and spec.template.api_type in spec.api_types


def test_importing_the_catalog_does_not_import_ccxt() -> None:
    import subprocess
    import sys

    code = (
        "import sys, cts_desktop.exchanges.catalog, cts_desktop.exchanges.ccxt_exchange, "
        "cts_desktop.exchanges.ccxt_errors, cts_desktop.exchanges.ccxt_parse; "
        "print(any(m == 'ccxt' or m.startswith('ccxt.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# CcxtExchange built offline for every supported exchange and API type.

BUILDS = [
    pytest.param(exchange_id, api_type, id=f"{exchange_id}-{api_type.value}")
    for exchange_id in SUPPORTED
    for api_type in EXCHANGES[exchange_id].api_types
]


@pytest.mark.asyncio
@pytest.mark.usefixtures("ccxt_static")
@pytest.mark.parametrize(("exchange_id", "api_type"), BUILDS)
async def test_builds_offline_for_each_api_type(
    make_exchange: MakeExchange, exchange_id: str, api_type: ApiType
) -> None:
    session = FakeHttpSession()
    venue = make_exchange(exchange_id, api_type, session)
    assert isinstance(venue, Exchange)
    assert venue.name == exchange_id and venue.api_type is api_type
    assert venue.ccxt_id == EXCHANGES[exchange_id].ccxt_id(api_type)
    assert venue.ccxt_client.options["defaultType"] == EXCHANGES[exchange_id].variant(api_type).default_type
    assert venue.ccxt_client.enableRateLimit is False

    markets = await venue.load_markets()
    assert session.requests == []  # the markets were installed, not downloaded
    assert markets and all(isinstance(m, MarketInfo) for m in markets.values())
    kinds = {m.type for m in markets.values()}
    if api_type is ApiType.SPOT:
        assert kinds == {MarketType.SPOT}
    elif api_type is ApiType.PERPETUAL_FUTURES:
        assert kinds == {MarketType.SWAP} and all(m.linear for m in markets.values())
    else:
        assert kinds == {MarketType.SPOT, MarketType.SWAP}

    symbol = "BTC/USDT" if api_type is ApiType.SPOT else "BTC/USDT:USDT"
    btc = venue.market(symbol)
    assert (btc.base, btc.quote) == ("BTC", "USDT")
    assert btc.price_step is not None and 0 < btc.price_step < 1
    assert btc.amount_step is not None and 0 < btc.amount_step < 1
    with pytest.raises(BadSymbolError, match="not listed"):
        venue.market("NOPE/USDT")


@pytest.mark.asyncio
@pytest.mark.usefixtures("ccxt_static")
async def test_market_rules_come_from_the_markets_file(make_exchange: MakeExchange) -> None:
    venue = make_exchange("okx", ApiType.PERPETUAL_FUTURES, FakeHttpSession())
    btc = venue.market("BTC/USDT:USDT")
    assert btc == MarketInfo(
        symbol="BTC/USDT:USDT",
        base="BTC",
        quote="USDT",
        type=MarketType.SWAP,
        price_step=0.1,
        amount_step=0.1,
        min_amount=0.1,
        min_cost=btc.min_cost,
        contract_size=0.01,
        max_leverage=btc.max_leverage,
        maker_fee=btc.maker_fee,
        taker_fee=btc.taker_fee,
        linear=True,
        active=True,
    )
    assert btc.max_leverage == 100  # as the markets file records it


def test_market_before_load_is_a_bad_symbol_error() -> None:
    venue = CcxtExchange("bybit", api_type=ApiType.UNIFIED, redactor=Redactor(), use_websocket=False)
    with pytest.raises(BadSymbolError, match="not loaded"):
        venue.market("BTC/USDT:USDT")


# ---------------------------------------------------------------------------------------------
# Testnet switches, checked on the requests ccxt really builds.


@pytest.mark.asyncio
@pytest.mark.usefixtures("ccxt_static")
@pytest.mark.parametrize(
    ("exchange_id", "api_type", "host", "header"),
    [
        pytest.param(
            "binance", ApiType.PERPETUAL_FUTURES, "demo-fapi.binance.com", None, id="binance-futures-demo"
        ),
        pytest.param("binance", ApiType.SPOT, "demo-api.binance.com", None, id="binance-spot-demo"),
        pytest.param("bybit", ApiType.UNIFIED, "api-testnet.bybit.com", None, id="bybit-testnet"),
        pytest.param(
            "okx", ApiType.PERPETUAL_FUTURES, "www.okx.com", ("x-simulated-trading", "1"), id="okx-demo"
        ),
        pytest.param("bingx", ApiType.PERPETUAL_FUTURES, "open-api-vst.bingx.com", None, id="bingx-vst"),
    ],
)
async def test_testnet_switch_reaches_the_test_environment(
    make_exchange: MakeExchange,
    exchange_id: str,
    api_type: ApiType,
    host: str,
    header: tuple[str, str] | None,
) -> None:
    session = FakeHttpSession(default=FakeResponse(200, {}))
    venue = make_exchange(exchange_id, api_type, session, testnet=True)
    assert venue.testnet
    with contextlib.suppress(ExchangeError):  # an empty answer may not parse; the request matters
        await venue.fetch_balance()
    assert session.requests
    for request in session.requests:
        assert request.host == host
        if header is not None:
            assert request.header(header[0]) == header[1]

    live = FakeHttpSession(default=FakeResponse(200, {}))
    venue = make_exchange(exchange_id, api_type, live)
    with contextlib.suppress(ExchangeError):
        await venue.fetch_balance()
    assert live.requests and all(r.host != host or header for r in live.requests)
    assert all(r.header("x-simulated-trading") is None for r in live.requests)


def test_testnet_where_there_is_none_says_why() -> None:
    with pytest.raises(NotSupportedError, match=r"no testnet.*perpetual futures only"):
        CcxtExchange(
            "bingx", api_type=ApiType.SPOT, testnet=True, redactor=Redactor(), session=FakeHttpSession()
        )


# ---------------------------------------------------------------------------------------------
# Streaming and capabilities.


@pytest.mark.asyncio
async def test_streaming_needs_ccxt_pro_and_the_websocket_switch() -> None:
    streaming = CcxtExchange(
        "bybit", api_type=ApiType.UNIFIED, redactor=Redactor(), session=FakeHttpSession()
    )
    polling = CcxtExchange(
        "bybit", api_type=ApiType.UNIFIED, redactor=Redactor(), session=FakeHttpSession(), use_websocket=False
    )
    try:
        assert streaming.supports_streaming and "websocket" in streaming.capabilities()
        assert not polling.supports_streaming and "websocket" not in polling.capabilities()
        for call in (
            lambda: polling.watch_ticker("BTC/USDT:USDT"),
            lambda: polling.watch_ohlcv("BTC/USDT:USDT"),
            lambda: polling.watch_orders(),
        ):
            with pytest.raises(NotSupportedError, match="polled over REST"):
                await call()
    finally:
        await streaming.close()
        await polling.close()


def test_capabilities_per_api_type() -> None:
    def caps(exchange_id: str, api_type: ApiType) -> list[str]:
        # No session and no request: ccxt opens none, so there is nothing to close.
        venue = CcxtExchange(exchange_id, api_type=api_type, redactor=Redactor(), use_websocket=False)
        return venue.capabilities()

    assert caps("bybit", ApiType.UNIFIED) == [
        "unified",
        "spot",
        "perpetual_futures",
        "leverage",
        "hedge_mode",
        "cross_margin",
        "isolated_margin",
        "trailing",
        "attached_tp_sl",
        "testnet",
    ]
    binance = caps("binance", ApiType.PERPETUAL_FUTURES)
    assert {"perpetual_futures", "leverage", "hedge_mode", "cross_margin", "trailing"} <= set(binance)
    assert "attached_tp_sl" not in binance and "spot" not in binance
    assert caps("bingx", ApiType.SPOT) == ["spot", "trailing", "attached_tp_sl"]


@pytest.mark.asyncio
@pytest.mark.usefixtures("ccxt_static")
async def test_stream_failures_are_our_errors(make_exchange: MakeExchange) -> None:
    """The stream supervisor (elsewhere) reconnects; here a failed websocket is just a NetworkError."""
    from cts_desktop.exchanges.errors import NetworkError

    session = FakeHttpSession()
    venue = make_exchange("bybit", ApiType.UNIFIED, session, use_websocket=True)
    assert venue.supports_streaming
    with pytest.raises(NetworkError, match="no websocket"):
        await venue.watch_ticker("BTC/USDT:USDT")
    assert session.websocket_urls == ["wss://stream.bybit.com/v5/public/linear"]


@pytest.mark.asyncio
async def test_timeout_and_rate_limiter_reach_ccxt() -> None:
    session = FakeHttpSession([FakeResponse(200, {"serverTime": 1_700_000_000_000})])
    venue = CcxtExchange(
        "binance",
        redactor=Redactor(),
        session=session,
        timeout_ms=2500,
        enable_rate_limit=False,
        use_websocket=False,
    )
    default = CcxtExchange("binance", redactor=Redactor(), use_websocket=False)
    try:
        assert await venue.fetch_server_time() == 1_700_000_000_000
        assert session.last.timeout.total == 2.5  # aiohttp's per-request timeout, in seconds
        assert venue.ccxt_client.enableRateLimit is False
        assert default.ccxt_client.enableRateLimit is True and default.ccxt_client.timeout == 10_000
    finally:
        await venue.close()
        await default.close()

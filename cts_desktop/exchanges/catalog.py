"""What cts-desktop knows about each exchange: ccxt ids, testnet switches, limits and templates.

One table instead of ``if exchange == ...`` scattered through the code: the connection dialog
lists the exchanges and greys out the unsupported ones with their reason, the ccxt venue reads
the ccxt id and the testnet switch for the connection's API type, and the rate limiter and the
predefined templates read DOMAIN §5 from here. Importing this module does not import ccxt.

One entry is not an exchange: ``simulated``, the seeded simulated market built into the app. It
is here so the connection rules apply to it like to any venue (it is marked paper-only and
key-less, so the live switch and the credentials are refused for it by the same code that checks
every other exchange), and so the application has a connection whose engine runs with no
account and no network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from cts_desktop.domain.market import ApiType, MarginMode, PositionMode


class TestnetMethod(StrEnum):
    """How ccxt reaches an exchange's test environment (PITFALLS.md, sandbox quirks)."""

    __test__ = False  # not a pytest test class, despite the name

    NONE = "none"
    SANDBOX = "sandbox"  # ccxt ``set_sandbox_mode(True)``
    DEMO_TRADING = "demo_trading"  # ccxt ``enable_demo_trading(True)``


@dataclass(frozen=True, slots=True)
class TestnetSupport:
    """Whether and how one API type of an exchange has a test environment, said in plain words."""

    __test__ = False

    method: TestnetMethod
    note: str

    @property
    def available(self) -> bool:
        return self.method is not TestnetMethod.NONE


@dataclass(frozen=True, slots=True)
class ApiVariant:
    """How one of our API types maps onto ccxt for one exchange.

    ``default_type`` is ccxt's ``defaultType`` option ('spot' or 'swap'), so an unqualified call
    (fetch_balance, fetch_open_orders without a symbol) goes to the right account. ``options``
    are further ccxt options for this variant.
    """

    ccxt_id: str
    default_type: str
    testnet: TestnetSupport
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class RateLimits:
    """DOMAIN §5 request budget per exchange: per second, per minute and concurrent requests.

    ccxt's own leaky bucket (its ``rateLimit`` per instance) runs underneath; these are our
    application-wide limits across every connection to the same exchange.
    """

    per_second: int
    per_minute: int
    concurrent: int
    recheck_ms: int = 100  # DOMAIN §5: the limiter queue re-checks every 100 ms


@dataclass(frozen=True, slots=True)
class PredefinedTemplate:
    """A DOMAIN §5 predefined connection template. All are USDT perpetual, cross and hedge."""

    name: str
    api_type: ApiType
    max_leverage: int
    is_testnet: bool  # the §5 "Testnet" column
    margin_mode: MarginMode = MarginMode.CROSS
    position_mode: PositionMode = PositionMode.HEDGE
    pf_minimum: float = 0.6  # base, main and real; live and preset
    trailing: bool = True
    block: bool = True
    dca: bool = False


class UnknownExchangeIdError(LookupError):
    """An exchange id that is not in the catalog (a typo, or a database row from elsewhere)."""


class UnsupportedApiTypeError(ValueError):
    """The exchange is known but cannot trade this API type (or is not supported at all)."""


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    id: str
    display_name: str
    supported: bool
    unsupported_reason: str | None
    api_types: Mapping[ApiType, ApiVariant]
    requires_passphrase: bool
    max_leverage: int
    rate_limits: RateLimits
    template: PredefinedTemplate | None
    # The exchange's own parameter for looking an order up by our client order id; ccxt maps a
    # unified ``clientOrderId`` on create, but lookups need the venue's name.
    client_order_id_param: str | None = None
    # False for a venue that can never trade real money (the built-in simulated market): the
    # connection rules refuse its live switch, whatever else is configured.
    live_capable: bool = True
    # False when the venue works without an API key (the simulated market has no account).
    needs_credentials: bool = True
    # A market built into cts-desktop rather than an exchange reached through ccxt: its one
    # connection is created on first start, it is not offered in the "add connection" dialog,
    # and its data comes from the seeded simulated market, so it runs with no account and no
    # network.
    builtin: bool = False

    @property
    def supported_api_types(self) -> tuple[ApiType, ...]:
        return tuple(self.api_types)

    def variant(self, api_type: ApiType) -> ApiVariant:
        """The ccxt mapping of ``api_type``; raises UnsupportedApiTypeError with a readable reason."""
        if not self.supported:
            raise UnsupportedApiTypeError(f"{self.display_name} is {self.unsupported_reason}")
        try:
            return self.api_types[api_type]
        except KeyError:
            offered = ", ".join(t.value for t in self.api_types)
            raise UnsupportedApiTypeError(
                f"{self.display_name} does not offer the API type '{api_type.value}' in cts-desktop "
                f"(available: {offered})"
            ) from None

    def ccxt_id(self, api_type: ApiType) -> str:
        return self.variant(api_type).ccxt_id

    def testnet(self, api_type: ApiType) -> TestnetSupport:
        return self.variant(api_type).testnet

    @property
    def has_testnet(self) -> bool:
        """True when at least one API type has a test environment."""
        return any(v.testnet.available for v in self.api_types.values())


DEFAULT_RATE_LIMITS = RateLimits(per_second=5, per_minute=100, concurrent=3)  # §5 "Other"

_NO_TESTNET = TestnetMethod.NONE


def _variant(ccxt_id: str, default_type: str, method: TestnetMethod, note: str, **options: Any) -> ApiVariant:
    return ApiVariant(
        ccxt_id=ccxt_id,
        default_type=default_type,
        testnet=TestnetSupport(method, note),
        options=MappingProxyType({"defaultType": default_type, **options}),
    )


_BINANCE_DEMO = (
    "Binance demo trading (keys from demo.binance.com): Binance's futures testnet refuses "
    "ccxt's sandbox mode for private calls, so cts-desktop uses demo trading for spot and futures."
)
_BYBIT_TESTNET = "Bybit testnet (api-testnet.bybit.com; keys from testnet.bybit.com)."
_OKX_DEMO = (
    "OKX demo trading: the same URL with the header 'x-simulated-trading: 1' (keys created in "
    "OKX's demo trading mode)."
)
_BINGX_VST = "BingX's sandbox uses virtual USDT (VST) and covers perpetual futures only."

EXCHANGES: dict[str, ExchangeSpec] = {
    "bybit": ExchangeSpec(
        id="bybit",
        display_name="Bybit",
        supported=True,
        unsupported_reason=None,
        api_types=MappingProxyType(
            {
                # Bybit's unified trading account holds spot and USDT perpetuals; telling ccxt so
                # spares the two account-type probes it would otherwise make first.
                ApiType.UNIFIED: _variant(
                    "bybit",
                    "swap",
                    TestnetMethod.SANDBOX,
                    _BYBIT_TESTNET,
                    enableUnifiedAccount=True,
                    enableUnifiedMargin=False,
                ),
                ApiType.PERPETUAL_FUTURES: _variant("bybit", "swap", TestnetMethod.SANDBOX, _BYBIT_TESTNET),
                ApiType.SPOT: _variant("bybit", "spot", TestnetMethod.SANDBOX, _BYBIT_TESTNET),
            }
        ),
        requires_passphrase=False,
        max_leverage=125,
        rate_limits=RateLimits(10, 120, 5),
        template=PredefinedTemplate("Bybit X03", ApiType.UNIFIED, 125, is_testnet=True),
        client_order_id_param="orderLinkId",
    ),
    "bingx": ExchangeSpec(
        id="bingx",
        display_name="BingX",
        supported=True,
        unsupported_reason=None,
        api_types=MappingProxyType(
            {
                ApiType.PERPETUAL_FUTURES: _variant("bingx", "swap", TestnetMethod.SANDBOX, _BINGX_VST),
                ApiType.SPOT: _variant(
                    "bingx", "spot", _NO_TESTNET, "No testnet for BingX spot: " + _BINGX_VST
                ),
            }
        ),
        requires_passphrase=False,
        max_leverage=150,
        rate_limits=RateLimits(5, 100, 3),
        template=PredefinedTemplate("BingX X01", ApiType.PERPETUAL_FUTURES, 150, is_testnet=False),
        client_order_id_param="clientOrderID",
    ),
    "binance": ExchangeSpec(
        id="binance",
        display_name="Binance",
        supported=True,
        unsupported_reason=None,
        api_types=MappingProxyType(
            {
                # USDⓈ-M futures are a separate ccxt class with their own URLs and error maps.
                # Open orders of all symbols cost more request weight on Binance, so ccxt refuses
                # them unless told; reconciliation after a restart needs exactly that call.
                ApiType.PERPETUAL_FUTURES: _variant(
                    "binanceusdm",
                    "swap",
                    TestnetMethod.DEMO_TRADING,
                    _BINANCE_DEMO,
                    warnOnFetchOpenOrdersWithoutSymbol=False,
                ),
                ApiType.SPOT: _variant(
                    "binance",
                    "spot",
                    TestnetMethod.DEMO_TRADING,
                    _BINANCE_DEMO,
                    warnOnFetchOpenOrdersWithoutSymbol=False,
                ),
            }
        ),
        requires_passphrase=False,
        max_leverage=125,
        rate_limits=RateLimits(10, 1200, 10),
        template=PredefinedTemplate("Binance", ApiType.PERPETUAL_FUTURES, 125, is_testnet=True),
        client_order_id_param="origClientOrderId",
    ),
    "okx": ExchangeSpec(
        id="okx",
        display_name="OKX",
        supported=True,
        unsupported_reason=None,
        api_types=MappingProxyType(
            {
                ApiType.PERPETUAL_FUTURES: _variant("okx", "swap", TestnetMethod.SANDBOX, _OKX_DEMO),
                ApiType.SPOT: _variant("okx", "spot", TestnetMethod.SANDBOX, _OKX_DEMO),
            }
        ),
        requires_passphrase=True,
        max_leverage=125,
        rate_limits=RateLimits(20, 600, 10),
        template=PredefinedTemplate("OKX", ApiType.PERPETUAL_FUTURES, 125, is_testnet=True),
        client_order_id_param="clOrdId",
    ),
    "simulated": ExchangeSpec(
        id="simulated",
        display_name="Simulated market",
        supported=True,
        unsupported_reason=None,
        # No ccxt variant: the venue is the seeded SimulatedExchange, wrapped by the paper venue.
        api_types=MappingProxyType({}),
        requires_passphrase=False,
        max_leverage=100,
        rate_limits=DEFAULT_RATE_LIMITS,
        template=PredefinedTemplate("Simulated market", ApiType.SPOT, 100, is_testnet=False),
        live_capable=False,
        needs_credentials=False,
        builtin=True,
    ),
    "pionex": ExchangeSpec(
        id="pionex",
        display_name="Pionex",
        supported=False,
        unsupported_reason="not supported yet: Pionex is not available in ccxt (ccxt issue #18847)",
        api_types=MappingProxyType({}),
        requires_passphrase=False,
        max_leverage=100,
        rate_limits=RateLimits(5, 100, 3),
        template=PredefinedTemplate("Pionex", ApiType.PERPETUAL_FUTURES, 100, is_testnet=False),
    ),
    "orangex": ExchangeSpec(
        id="orangex",
        display_name="OrangeX",
        supported=False,
        unsupported_reason=(
            "not supported yet: OrangeX is not available in ccxt (the request, ccxt issue #27905, was closed)"
        ),
        api_types=MappingProxyType({}),
        requires_passphrase=False,
        max_leverage=125,
        rate_limits=RateLimits(5, 100, 3),
        template=PredefinedTemplate("OrangeX", ApiType.PERPETUAL_FUTURES, 125, is_testnet=False),
    ),
}


def get_spec(exchange_id: str) -> ExchangeSpec:
    """The catalog entry for ``exchange_id`` (case and surrounding spaces ignored).

    Raises UnknownExchangeIdError naming the known ids, so a bad database row or a typo in a
    command line says what would have been accepted.
    """
    key = exchange_id.strip().lower()
    try:
        return EXCHANGES[key]
    except KeyError:
        known = ", ".join(sorted(EXCHANGES))
        raise UnknownExchangeIdError(f"unknown exchange '{exchange_id}'; known exchanges: {known}") from None


def supported_exchanges() -> list[ExchangeSpec]:
    """The exchanges a user can connect to through ccxt (the built-in simulated market is not one)."""
    return [spec for spec in EXCHANGES.values() if spec.supported and not spec.builtin]


def is_live_capable(exchange_id: str) -> bool:
    """False for the built-in simulated market and for anything not in the catalog."""
    spec = EXCHANGES.get(exchange_id.strip().lower())
    return spec is not None and spec.supported and spec.live_capable


def rate_limits_for(exchange_id: str) -> RateLimits:
    """§5 limits for a catalogued exchange, the "Other" row for anything else."""
    spec = EXCHANGES.get(exchange_id.strip().lower())
    return spec.rate_limits if spec is not None else DEFAULT_RATE_LIMITS

"""'Test connection': a readable, timestamped log a trader can send to support, and a stored result.

Each step is timed and explained, a failure names the step and the exchange's (redacted)
answer, and the whole test gives up cleanly after 30 s. A key that can withdraw funds gets a
loud warning: a trading application never needs that permission.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar, runtime_checkable

from cts_desktop.domain.market import ApiType, Balance
from cts_desktop.engine.connections import ConnectionService
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.errors import ErrorKind, ExchangeError
from cts_desktop.storage.repositories.connections import ConnectionRecord
from cts_desktop.storage.secrets import Credentials, KeyringUnavailableError

log = logging.getLogger(__name__)

OVERALL_TIMEOUT_S = 30.0
MIN_CONNECT_INTERVAL_S = 0.2  # DOMAIN §6 connection defaults: minimum connect interval 200 ms
CLOCK_SKEW_WARNING_MS = 1000
WITHDRAW_WARNING = (
    "WARNING: THIS API KEY CAN WITHDRAW FUNDS. cts-desktop never needs that permission; "
    "create a key with reading and trading permission only and replace this one."
)

T = TypeVar("T")


@runtime_checkable
class ProbeableExchange(Protocol):
    """Optional extras a venue may offer for the connection test (the ccxt venue does)."""

    async def key_can_withdraw(self) -> bool | None: ...

    def capabilities(self) -> list[str]: ...

    async def clock_skew_ms(self) -> int: ...


@dataclass(slots=True)
class ConnectionTestResult:
    success: bool
    started_at: datetime
    duration_s: float
    lines: list[str] = field(default_factory=list)
    btc_price: float | None = None
    balances: dict[str, Balance] = field(default_factory=dict)
    quote_balance: float | None = None
    capabilities: list[str] = field(default_factory=list)
    can_withdraw: bool | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None

    @property
    def log_text(self) -> str:
        return "\n".join(self.lines)

    @property
    def status(self) -> str:
        return "success" if self.success else "failed"


class _Log:
    def __init__(self, result: ConnectionTestResult, clock: Callable[[], float]) -> None:
        self._result = result
        self._clock = clock

    def line(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        self._result.lines.append(f"{stamp} UTC  {text}")

    async def step(self, name: str, call: Callable[[], Awaitable[T]]) -> T:
        started = self._clock()
        try:
            value = await call()
        except ExchangeError as exc:
            self.line(f"{name}: FAILED after {self._ms(started)} ms: {exc}")
            raise
        self.line(f"{name}: ok ({self._ms(started)} ms)")
        return value

    def _ms(self, started: float) -> int:
        return round((self._clock() - started) * 1000)


def _btc_symbol(markets: set[str], api_type: str) -> str | None:
    preferred = ["BTC/USDT", "BTC/USDT:USDT"]
    if api_type != ApiType.SPOT.value:
        preferred.reverse()
    return next((symbol for symbol in preferred if symbol in markets), None)


async def run_connection_test(
    record: ConnectionRecord,
    exchange: Exchange,
    *,
    authenticated: bool = True,
    overall_timeout_s: float = OVERALL_TIMEOUT_S,
    min_connect_interval_s: float = MIN_CONNECT_INTERVAL_S,
    clock: Callable[[], float] = time.perf_counter,
) -> ConnectionTestResult:
    """Run the steps against ``exchange`` (already built with the connection's credentials).

    Without credentials (``authenticated=False``) only the public steps run, and the log says so.
    """
    started = clock()
    result = ConnectionTestResult(success=False, started_at=datetime.now(UTC), duration_s=0.0)
    out = _Log(result, clock)
    out.line(f"start: testing connection '{record.name}' on {record.exchange}")
    out.line(
        f"API type: {record.api_type}; method: {record.connection_method}; "
        f"testnet: {'yes' if record.is_testnet else 'no'}; "
        f"minimum connect interval: {round(min_connect_interval_s * 1000)} ms"
    )
    try:
        async with asyncio.timeout(overall_timeout_s):
            await asyncio.sleep(min_connect_interval_s)
            await _steps(record, exchange, result, out, authenticated=authenticated)
        result.success = True
    except TimeoutError:
        result.error = f"the test did not finish within {overall_timeout_s:g} s"
        result.error_kind = ErrorKind.NETWORK
        out.line(f"FAILED: {result.error}; the exchange may be slow or unreachable, try again later")
    except ExchangeError as exc:
        result.error = exc.describe()
        result.error_kind = exc.kind
    finally:
        result.duration_s = clock() - started
    if result.success:
        balance = f"{result.quote_balance:,.2f} USDT" if result.quote_balance is not None else "no USDT"
        out.line(f"successful in {result.duration_s:.2f} s; balance {balance}")
    else:
        out.line(f"connection test failed after {result.duration_s:.2f} s")
    return result


async def _steps(
    record: ConnectionRecord,
    exchange: Exchange,
    result: ConnectionTestResult,
    out: _Log,
    *,
    authenticated: bool,
) -> None:
    markets = await out.step("load markets", lambda: exchange.load_markets())
    out.line(f"  {len(markets)} markets")
    probe = exchange if isinstance(exchange, ProbeableExchange) else None
    if probe is not None:
        skew = await out.step("server time", probe.clock_skew_ms)
        out.line(f"  clock difference to the exchange: {skew:+d} ms")
        if abs(skew) > CLOCK_SKEW_WARNING_MS:
            out.line(
                "  WARNING: this computer's clock is off; signed requests may be rejected. Sync the clock."
            )
    symbol = _btc_symbol(set(markets), record.api_type)
    if symbol is None:
        out.line("BTC price: skipped (no BTC/USDT market on this account type)")
    else:
        ticker = await out.step(f"BTC price ({symbol})", lambda: exchange.fetch_ticker(symbol))
        result.btc_price = ticker.last
        out.line(f"  last {ticker.last:,.2f}")
    if not authenticated:
        out.line("balances: skipped: no API key is stored for this connection (only public data was tested)")
        return
    balances = await out.step("balances", exchange.fetch_balance)
    result.balances = {asset: b for asset, b in balances.items() if b.total or b.free or b.used}
    for asset, item in sorted(result.balances.items()):
        out.line(f"  {asset}: free {item.free:,.8g}, used {item.used:,.8g}, total {item.total:,.8g}")
    if not result.balances:
        out.line("  the account holds no assets")
    usdt = balances.get("USDT")
    result.quote_balance = usdt.total if usdt is not None else None
    if probe is not None:
        result.capabilities = probe.capabilities()
        out.line(f"capabilities: {', '.join(result.capabilities) or 'none reported'}")
        result.can_withdraw = await out.step("withdrawal permission", probe.key_can_withdraw)
        if result.can_withdraw:
            out.line(WITHDRAW_WARNING)
        elif result.can_withdraw is None:
            out.line("  withdrawal permission: unknown (this exchange offers no way to ask)")
        else:
            out.line("  withdrawal permission: off (good)")


class ConnectionTester:
    """Builds the venue with the stored credentials, runs the test and stores the result.

    Never stores a secret: the log holds only what the exchange answered, already redacted.
    """

    def __init__(
        self,
        service: ConnectionService,
        exchange_factory: Callable[[ConnectionRecord, Credentials | None], Exchange],
    ) -> None:
        self._service = service
        self._factory = exchange_factory

    async def test(self, connection_id: str) -> ConnectionTestResult:
        record = await self._service.get(connection_id)
        try:
            credentials = await self._service.credentials(connection_id)
        except KeyringUnavailableError:
            credentials = None  # no keyring: the public steps still tell whether the exchange answers
        exchange = self._factory(record, credentials)
        try:
            result = await run_connection_test(record, exchange, authenticated=credentials is not None)
        finally:
            await exchange.close()
        await self._service.record_test_result(
            connection_id,
            status=result.status,
            at=result.started_at,
            balance=result.quote_balance,
            log_text=result.log_text,
            capabilities=result.capabilities,
        )
        log.info("connection test of %s: %s", record.name, result.status)
        return result

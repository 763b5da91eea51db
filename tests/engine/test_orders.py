"""OrderExecutor end to end with real parts: the real paper venue (persisted on the test's SQLite
file, over the seeded simulated market, prices driven with ``on_price``) and real ccxt code behind
the fake HTTP session (tests/exchanges/fake_http.py) for timeouts, 429, 5xx and Binance's codes.

The only stand-in is fault injection around the real paper venue (``FaultyPaper``): a response
lost after the venue took the order, a request that never left, or a "crash" (an exception the
executor does not handle, like a killed process) before or after the venue got the order.

Numbers: BTC/USDT is a linear perpetual of the simulated market (tick 0.1, min cost 5 USDT,
maker 0.02 %, taker 0.055 %); the paper account starts with 10,000 USDT at 10× and, unless a test
says otherwise, 0 slippage so fills happen exactly at the prices the test sets.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import (
    ApiType,
    Balance,
    MarketType,
    OrderRequest,
    OrderSide,
    OrderSnapshot,
    OrderType,
    PositionSide,
    VenueOrderStatus,
)
from cts_desktop.domain.orders import OrderIntent, OrderStatus, RiskDecision
from cts_desktop.engine.events import EventBus, OrderRefused, OrdersChanged, PositionsChanged
from cts_desktop.engine.orders import (
    OrderExecutor,
    OrderRefusedError,
    apply_snapshot,
    is_child_client_id,
    new_client_order_id,
    parent_client_id,
)
from cts_desktop.exchanges.backoff import BackoffPolicy, Jitter
from cts_desktop.exchanges.ccxt_exchange import CcxtExchange
from cts_desktop.exchanges.clock import ManualClock
from cts_desktop.exchanges.errors import ExchangeDownError, NetworkError, RateLimitedError
from cts_desktop.exchanges.paper import AccountSettings, PaperExchange
from cts_desktop.exchanges.simulated import SimulatedExchange
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories import ConnectionRepository
from cts_desktop.storage.repositories.orders import OrderRecord, OrderRepository
from cts_desktop.storage.repositories.paper import PaperRepository
from cts_desktop.storage.secrets import Credentials
from tests.exchanges.conftest import (
    SECRETS,
    TEST_API_KEY,
    TEST_API_SECRET,
    load_currencies,
    normalized_markets,
    require_static,
)
from tests.exchanges.fake_http import FakeHttpSession, FakeResponse, RecordedRequest

SYMBOL = "BTC/USDT"
T0 = 1_740_000_000_000
ACCOUNT = "paper-test"


# --------------------------------------------------------------------------- the test bench


class SimulatedCrash(BaseException):
    """The process dying at this point: nothing of ours catches it, nothing after it runs."""


class Clock:
    """Milliseconds that move 5 ms per reading, so every latency is measurable and exact."""

    def __init__(self, start: int = T0, step: int = 5) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> int:
        self.now += self.step
        return self.now


class FaultyPaper(PaperExchange):
    """The real paper venue with scripted faults around ``create_order`` and the client-id lookup.

    ``create_faults`` items: "timeout-before" (the request never left), "timeout-after" (the venue
    took it, the answer was lost), "crash-before", "crash-after", "rate-limited", "down-before",
    "down-after", or None (no fault). ``lookup_faults`` items: "timeout" or None.
    ``fetch_hooks`` run (once each) after the venue answered a ``fetch_order`` and before the
    answer reaches the caller: something else happening while the answer is on its way.
    ``balance_fetches`` counts ``fetch_balance`` requests.
    """

    def __init__(self, *args: Any, attach: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attach = attach
        self.create_faults: list[str | None] = []
        self.lookup_faults: list[str | None] = []
        self.created: list[str] = []
        self.lookups: list[str] = []
        self.fetch_hooks: list[Callable[[], Awaitable[None]]] = []
        self.balance_fetches = 0

    @property
    def supports_attached_tp_sl(self) -> bool:
        return self.attach

    async def create_order(self, request: OrderRequest) -> OrderSnapshot:
        self.created.append(request.client_order_id)
        fault = self.create_faults.pop(0) if self.create_faults else None
        if fault == "timeout-before":
            raise NetworkError(self.name, "The exchange did not answer in time.")
        if fault == "rate-limited":
            raise RateLimitedError(self.name)
        if fault == "down-before":
            raise ExchangeDownError(self.name)
        if fault == "crash-before":
            raise SimulatedCrash
        snapshot = await super().create_order(request)
        if fault == "timeout-after":
            raise NetworkError(self.name, "The exchange did not answer in time.")
        if fault == "down-after":
            raise ExchangeDownError(self.name)
        if fault == "crash-after":
            raise SimulatedCrash
        return snapshot

    async def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> OrderSnapshot:
        self.lookups.append(client_order_id)
        fault = self.lookup_faults.pop(0) if self.lookup_faults else None
        if fault == "timeout":
            raise NetworkError(self.name, "The exchange did not answer in time.")
        return await super().fetch_order_by_client_id(client_order_id, symbol)

    async def fetch_order(self, order_id: str, symbol: str) -> OrderSnapshot:
        snapshot = await super().fetch_order(order_id, symbol)
        while self.fetch_hooks:
            await self.fetch_hooks.pop(0)()
        return snapshot

    async def fetch_balance(self) -> dict[str, Balance]:
        self.balance_fetches += 1
        return await super().fetch_balance()


async def allow(intent: OrderIntent) -> RiskDecision:
    return RiskDecision.ok()


@dataclass
class Bench:
    """One connection trading on a paper account stored in ``path``; ``restart`` is a new process."""

    path: Path
    account: AccountSettings
    attach: bool
    market_type: MarketType = MarketType.SWAP
    db: Database = field(init=False)
    repo: OrderRepository = field(init=False)
    paper: FaultyPaper = field(init=False)
    market: SimulatedExchange = field(init=False)
    clock: Clock = field(default_factory=Clock)
    connection_id: str = ""
    sleeps: list[float] = field(default_factory=list)

    async def open(self) -> None:
        self.db = await Database.open(str(self.path))
        if not self.connection_id:
            self.connection_id = (
                await ConnectionRepository(self.db).create(name="Paper", exchange="bybit")
            ).id
        self.repo = OrderRepository(self.db)
        self.market = SimulatedExchange(ManualClock(T0), market_type=self.market_type)
        self.paper = FaultyPaper(
            self.market,
            PaperRepository(self.db),
            account_id=ACCOUNT,
            create_if_missing=dataclasses.replace(self.account, connection_id=self.connection_id),
            clock=self.clock,
            attach=self.attach,
        )

    async def restart(self) -> None:
        """The application stopped (or died) and starts again on the same file and account."""
        await self.db.close()
        await self.open()

    async def close(self) -> None:
        await self.paper.close()
        await self.db.close()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def executor(self, risk_check: Callable[..., Any] = allow, **kwargs: Any) -> OrderExecutor:
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("sleep", self.sleep)
        kwargs.setdefault("hedge_mode", True)
        return OrderExecutor(self.connection_id, self.paper, self.repo, risk_check, **kwargs)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock() / 1000, UTC)

    async def price(self, price: float, volume: float | None = None) -> None:
        self.clock.now += 1000
        await self.paper.on_price(SYMBOL, price, self.clock.now, volume)

    def intent(self, side: OrderSide = OrderSide.BUY, amount: float = 0.1, **extra: Any) -> OrderIntent:
        values: dict[str, Any] = {
            "connection_id": self.connection_id,
            "symbol": SYMBOL,
            "side": side,
            "type": OrderType.MARKET,
            "amount": amount,
            "reference_price": 60_000.0,
            "mode": TradingMode.PAPER,
            "leverage": 10.0,
        }
        values.update(extra)
        return OrderIntent(**values)

    async def stored(self, client_order_id: str) -> OrderRecord:
        record = await self.repo.get_by_client_id(client_order_id)
        assert record is not None
        return record

    async def venue_orders(self) -> list[OrderSnapshot]:
        return await self.paper.fetch_orders(SYMBOL)

    async def venue_contracts(self, side: PositionSide = PositionSide.LONG) -> float:
        return sum(p.contracts for p in await self.paper.fetch_positions([SYMBOL]) if p.side is side)

    async def local_contracts(self, side: PositionSide = PositionSide.LONG) -> float:
        return sum(p.quantity for p in await self.repo.open_positions(self.connection_id) if p.side is side)


ACCOUNT_SETTINGS = AccountSettings(starting_balance=10_000.0, slippage_bps=0.0, default_leverage=10.0)


@asynccontextmanager
async def bench(
    tmp_path: Path, *, attach: bool = True, market_type: MarketType = MarketType.SWAP, **account: Any
) -> AsyncIterator[Bench]:
    test_bench = Bench(
        tmp_path / "cts.db", dataclasses.replace(ACCOUNT_SETTINGS, **account), attach, market_type
    )
    await test_bench.open()
    await test_bench.price(60_000.0)
    try:
        yield test_bench
    finally:
        await test_bench.close()


# --------------------------------------------------------------------------- client order ids


def test_client_order_ids_suit_every_exchange_and_do_not_repeat() -> None:
    ids = {new_client_order_id("cts", T0) for _ in range(2000)}
    assert len(ids) == 2000
    # The format: prefix + 9 time digits + 12 random characters; 3 + 21 = 24 with the default
    # prefix, 8 + 21 = 29 at most (the longest prefix) and so within OKX's 32 alphanumerics
    # starting with a letter (Binance/Bybit: ≤ 36 of [A-Za-z0-9_-]).
    longest = new_client_order_id("abcdefgh", 2**62)
    assert len(longest) == 29
    for cid in list(ids)[:50]:
        assert len(cid) == 24 and cid.isalnum() and cid[0].isalpha()
        assert cid == cid.lower()
    assert longest.isalnum() and longest == longest.lower()
    assert new_client_order_id("cts", T0).startswith("cts")
    with pytest.raises(ValueError, match="prefix"):
        new_client_order_id("1bad", T0)
    with pytest.raises(ValueError, match="prefix"):
        new_client_order_id("toolongprefix", T0)
    assert is_child_client_id("cts123:tp", "cts123")
    assert not is_child_client_id("cts1234", "cts123") and not is_child_client_id("cts123", "cts123")
    assert not is_child_client_id("cts1234:tp", "cts123")
    # The paper venue's children are "<parent>:tp" / "<parent>:sl" (exchanges/paper.py).
    assert parent_client_id("cts123:tp") == "cts123" == parent_client_id("cts123:sl")
    assert parent_client_id("cts123") is None and parent_client_id(None) is None
    assert parent_client_id(":tp") is None and parent_client_id("") is None


# --------------------------------------------------------------------------- the normal path


@pytest.mark.asyncio
async def test_a_market_order_fills_and_records_latency_slippage_fees_and_the_position(
    tmp_path: Path,
) -> None:
    async with bench(tmp_path, slippage_bps=10.0) as b:
        events = EventBus()
        seen: list[object] = []
        events.subscribe(OrdersChanged, seen.append)
        events.subscribe(PositionsChanged, seen.append)
        view = await b.executor(events=events).submit(b.intent(reason="entry of set 7"))

        assert view.status is OrderStatus.FILLED and view.filled == 0.1
        # 60,000 × (1 + 10 bps) = 60,060: 10 bps worse than the intent's reference.
        assert view.average_price == 60_060.0 and view.exchange_order_id is not None
        record = await b.stored(view.client_order_id)
        assert record.slippage_bps == pytest.approx(10.0)
        assert record.ack_latency_ms is not None and record.ack_latency_ms > 0
        assert record.fill_latency_ms == record.ack_latency_ms  # a market order fills on arrival
        assert (record.reason, record.actor, record.position_side) == (
            "entry of set 7",
            "system",
            PositionSide.LONG,
        )
        (fill,) = await b.repo.fills(record.id)
        # Taker fee 0.055 % of 6,006 = 3.3033.
        assert (fill.amount, fill.price) == (0.1, 60_060.0) and fill.fee == pytest.approx(3.3033)
        (position,) = await b.repo.open_positions(b.connection_id)
        assert (position.side, position.quantity, position.entry_price) == (PositionSide.LONG, 0.1, 60_060.0)
        assert position.fees == pytest.approx(3.3033) and position.leverage == 10.0
        assert await b.venue_contracts() == 0.1
        assert b.paper.created == [view.client_order_id] and b.sleeps == []
        assert any(isinstance(e, PositionsChanged) for e in seen) and any(
            isinstance(e, OrdersChanged) for e in seen
        )


@pytest.mark.asyncio
async def test_a_risk_refusal_stores_and_sends_nothing_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def refuse(intent: OrderIntent) -> RiskDecision:
        return RiskDecision.refuse(
            "max_position_size", "the order is too large", notional=6_000.0, limit=5_000.0
        )

    async with bench(tmp_path) as b:
        events = EventBus()
        refusals: list[OrderRefused] = []
        events.subscribe(OrderRefused, refusals.append)
        caplog.set_level(logging.WARNING, "cts_desktop.engine.orders")
        with pytest.raises(OrderRefusedError) as info:
            await b.executor(refuse, events=events).submit(b.intent())
        assert info.value.decision.rule == "max_position_size"
        assert "notional=6000" in str(info.value) and "limit=5000" in str(info.value)
        assert await b.repo.list_orders(b.connection_id) == []
        assert b.paper.created == [] and await b.venue_orders() == []
        assert [r.decision.rule for r in refusals] == ["max_position_size"]
        assert any("max_position_size" in r.getMessage() and "6000" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_venue_rejections_are_stored_with_the_venues_reason_and_not_retried(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        executor = b.executor()
        too_big = await executor.submit(b.intent(amount=20.0))  # 1.2 M notional at 10×: 120,000 margin
        assert too_big.status is OrderStatus.REJECTED
        assert too_big.reject_reason is not None and "margin" in too_big.reject_reason
        assert "only 10000 is free" in too_big.reject_reason

        too_small = await executor.submit(b.intent(amount=0.00005))  # 3 USDT < the 5 USDT minimum
        assert too_small.status is OrderStatus.REJECTED
        assert too_small.reject_reason is not None and "below the minimum" in too_small.reject_reason

        assert b.paper.created == [too_big.client_order_id, too_small.client_order_id]
        assert b.paper.lookups == [] and b.sleeps == []
        assert await b.repo.open_positions(b.connection_id) == [] and await b.venue_orders() == []


# --------------------------------------------------------------------------- timeouts and retries


@pytest.mark.asyncio
async def test_a_timeout_after_the_venue_took_the_order_is_resolved_by_lookup_not_resent(
    tmp_path: Path,
) -> None:
    async with bench(tmp_path) as b:
        b.paper.create_faults = ["timeout-after"]
        view = await b.executor().submit(b.intent())
        assert view.status is OrderStatus.FILLED
        assert b.paper.created == [view.client_order_id]  # sent once
        assert b.paper.lookups == [view.client_order_id] and len(b.sleeps) == 1
        (venue_order,) = await b.venue_orders()
        assert (
            venue_order.client_order_id == view.client_order_id and venue_order.id == view.exchange_order_id
        )
        assert await b.venue_contracts() == await b.local_contracts() == 0.1


@pytest.mark.asyncio
async def test_a_timeout_before_the_venue_got_it_is_resent_with_the_same_client_id(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        b.paper.create_faults = ["timeout-before"]
        view = await b.executor().submit(b.intent())
        assert view.status is OrderStatus.FILLED
        assert b.paper.created == [view.client_order_id, view.client_order_id]
        assert b.paper.lookups == [view.client_order_id]  # looked before resending
        assert len(await b.venue_orders()) == 1
        assert await b.venue_contracts() == await b.local_contracts() == 0.1


@pytest.mark.asyncio
async def test_5xx_may_have_placed_the_order_so_it_is_looked_up_too(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        b.paper.create_faults = ["down-after"]
        view = await b.executor().submit(b.intent())
        assert view.status is OrderStatus.FILLED
        assert b.paper.created == [view.client_order_id] and len(await b.venue_orders()) == 1


@pytest.mark.asyncio
async def test_rate_limits_are_retried_with_backoff_without_lookups_then_fail(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        policy = BackoffPolicy(base_s=1.0, factor=2.0, cap_s=30.0, max_attempts=3, jitter=Jitter.NONE)
        executor = b.executor(retry_policy=policy)
        b.paper.create_faults = ["rate-limited", "rate-limited"]
        view = await executor.submit(b.intent())
        assert view.status is OrderStatus.FILLED
        # Waits 1 s then 2 s, doubled after a rate limit: 2 s and 4 s.
        assert b.sleeps == [2.0, 4.0] and b.paper.lookups == []

        b.sleeps.clear()
        b.paper.create_faults = ["rate-limited"] * 3
        failed = await executor.submit(b.intent())
        assert failed.status is OrderStatus.FAILED
        assert failed.reject_reason is not None and "gave up after 3 attempts" in failed.reject_reason
        assert b.paper.created.count(failed.client_order_id) == 3 and b.paper.lookups == []
        assert len(await b.venue_orders()) == 1


@pytest.mark.asyncio
async def test_when_the_lookup_fails_too_the_order_stays_pending_and_is_never_resent_blind(
    tmp_path: Path,
) -> None:
    async with bench(tmp_path) as b:
        b.paper.create_faults = ["timeout-after"]
        b.paper.lookup_faults = ["timeout"]
        view = await b.executor().submit(b.intent())
        assert view.status is OrderStatus.PENDING_CREATE
        assert b.paper.created == [view.client_order_id]
        (pending,) = await b.repo.pending_orders(b.connection_id)
        assert pending.client_order_id == view.client_order_id


@pytest.mark.asyncio
async def test_the_last_attempts_timeout_is_looked_up_before_declaring_failure(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        b.paper.create_faults = ["timeout-before", "timeout-before", "timeout-after"]
        view = await b.executor().submit(b.intent())
        assert view.status is OrderStatus.FILLED  # the third one arrived: adopted, not failed
        assert b.paper.created == [view.client_order_id] * 3 and len(await b.venue_orders()) == 1

        b.paper.create_faults = ["timeout-before"] * 3
        failed = await b.executor().submit(b.intent())
        assert failed.status is OrderStatus.FAILED and len(await b.venue_orders()) == 1


# --------------------------------------------------------------------------- partial fills, cancel


@pytest.mark.asyncio
async def test_partial_fill_then_fill(tmp_path: Path) -> None:
    async with bench(tmp_path, partial_fill_ratio=0.5) as b:
        executor = b.executor()
        view = await executor.submit(b.intent(type=OrderType.LIMIT, price=59_900.0))
        assert view.status is OrderStatus.OPEN and await b.repo.open_positions(b.connection_id) == []

        await b.price(59_800.0)  # trades through 59,900: half of the order fills at the limit
        (changed,) = await executor.refresh_open()
        assert (changed.status, changed.filled) == (OrderStatus.PARTIALLY_FILLED, 0.05)
        assert await b.local_contracts() == 0.05 == await b.venue_contracts()
        assert await executor.refresh_open() == []  # nothing new

        await b.price(59_850.0)
        (changed,) = await executor.refresh_open()
        assert (changed.status, changed.filled, changed.average_price) == (OrderStatus.FILLED, 0.1, 59_900.0)
        record = await b.stored(view.client_order_id)
        assert [f.amount for f in await b.repo.fills(record.id)] == [0.05, 0.05]
        assert record.fill_latency_ms is not None and record.fill_latency_ms > record.ack_latency_ms  # type: ignore[operator]
        # Bought 100 below the reference 60,000: negative slippage, better for us.
        assert record.slippage_bps == pytest.approx(-100 / 60_000 * 10_000)
        (position,) = await b.repo.open_positions(b.connection_id)
        assert (position.quantity, position.entry_price) == (0.1, 59_900.0)
        assert position.fees == pytest.approx(2 * 0.05 * 59_900 * 0.0002)  # maker fees


@pytest.mark.asyncio
async def test_cancel_a_resting_order_and_cancel_after_a_partial_fill(tmp_path: Path) -> None:
    async with bench(tmp_path, partial_fill_ratio=0.5) as b:
        executor = b.executor()
        resting = await executor.submit(b.intent(type=OrderType.LIMIT, price=59_000.0))
        cancelled = await executor.cancel(resting.client_order_id)
        assert (cancelled.status, cancelled.filled) == (OrderStatus.CANCELLED, 0.0)
        assert (await b.paper.fetch_balance())["USDT"].used == 0.0  # the venue released the margin

        partial = await executor.submit(b.intent(type=OrderType.LIMIT, price=59_900.0))
        await b.price(59_800.0)
        cancelled = await executor.cancel(partial.client_order_id)
        assert (cancelled.status, cancelled.filled) == (OrderStatus.CANCELLED, 0.05)
        assert await b.local_contracts() == 0.05 == await b.venue_contracts()
        # Cancelling a final order changes nothing.
        assert (await executor.cancel(partial.client_order_id)).status is OrderStatus.CANCELLED


@pytest.mark.asyncio
async def test_a_cancel_racing_a_fill_ends_filled_not_cancelled(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        executor = b.executor()
        view = await executor.submit(b.intent(type=OrderType.LIMIT, price=59_900.0))
        await b.price(59_800.0)  # fills on the venue; we have not polled yet
        assert (await b.stored(view.client_order_id)).status is OrderStatus.OPEN
        result = await executor.cancel(view.client_order_id)
        assert (result.status, result.filled) == (OrderStatus.FILLED, 0.1)
        assert await b.local_contracts() == 0.1 == await b.venue_contracts()


@pytest.mark.asyncio
async def test_a_stale_venue_answer_never_undoes_a_fill(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        view = await b.executor().submit(b.intent())
        record = await b.stored(view.client_order_id)
        assert view.exchange_order_id is not None
        stale = OrderSnapshot(
            view.exchange_order_id,
            view.client_order_id,
            SYMBOL,
            OrderSide.BUY,
            OrderType.MARKET,
            VenueOrderStatus.OPEN,
            0.1,
            0.0,
        )
        change = await apply_snapshot(b.repo, record, stale, at=record.updated_at, acknowledged=True)
        assert (
            change.after.status is OrderStatus.FILLED and change.after.filled == 0.1 and change.fill is None
        )


# --------------------------------------------------------------------------- TP/SL


@pytest.mark.asyncio
async def test_attached_take_profit_closes_the_position_and_the_stop_is_cancelled(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        executor = b.executor()
        entry = await executor.submit(b.intent(take_profit=61_000.0, stop_loss=59_000.0))
        assert entry.status is OrderStatus.FILLED
        record = await b.stored(entry.client_order_id)
        assert record.tp_sl_mode == "attached"
        children = {c.type: c for c in await b.repo.children(record.id)}
        assert set(children) == {OrderType.TAKE_PROFIT, OrderType.STOP_LOSS}
        assert {c.client_order_id for c in children.values()} == {
            f"{entry.client_order_id}:tp",
            f"{entry.client_order_id}:sl",
        }
        assert all(c.status is OrderStatus.OPEN and c.reduce_only for c in children.values())
        assert b.paper.created == [entry.client_order_id]  # the venue created the children

        await b.price(61_000.0)
        await executor.refresh_open()
        tp = await b.stored(children[OrderType.TAKE_PROFIT].client_order_id)
        sl = await b.stored(children[OrderType.STOP_LOSS].client_order_id)
        assert (tp.status, tp.filled, tp.average_price) == (OrderStatus.FILLED, 0.1, 61_000.0)
        assert sl.status is OrderStatus.CANCELLED
        assert await b.repo.open_positions(b.connection_id) == [] and await b.venue_contracts() == 0.0
        position = await b.repo.get_position(tp.real_position_id or "")
        assert position is not None and position.realized_pnl == pytest.approx(
            100.0
        )  # (61,000 − 60,000) × 0.1


@pytest.mark.asyncio
async def test_attached_children_of_a_partly_filled_entry_follow_the_venues_resizing(tmp_path: Path) -> None:
    async with bench(tmp_path, partial_fill_ratio=0.5) as b:
        executor = b.executor()
        entry = await executor.submit(
            b.intent(type=OrderType.LIMIT, price=59_900.0, take_profit=61_000.0, stop_loss=59_000.0)
        )
        await b.price(59_800.0)  # half fills: the venue creates TP and SL for 0.05
        await executor.refresh_open()
        record = await b.stored(entry.client_order_id)
        assert [c.amount for c in await b.repo.children(record.id)] == [0.05, 0.05]
        await b.price(59_850.0)  # the rest fills: the venue resizes both to 0.1
        await executor.refresh_open()
        assert [c.amount for c in await b.repo.children(record.id)] == [0.1, 0.1]
        await b.price(58_900.0)
        await executor.refresh_open()
        statuses = {c.type: c.status for c in await b.repo.children(record.id)}
        assert statuses == {
            OrderType.STOP_LOSS: OrderStatus.FILLED,
            OrderType.TAKE_PROFIT: OrderStatus.CANCELLED,
        }
        assert await b.repo.open_positions(b.connection_id) == [] and await b.venue_contracts() == 0.0


@pytest.mark.asyncio
async def test_engine_managed_stop_loss_when_the_venue_cannot_attach(tmp_path: Path) -> None:
    async with bench(tmp_path, attach=False) as b:
        executor = b.executor()
        entry = await executor.submit(b.intent(take_profit=61_000.0, stop_loss=59_000.0))
        record = await b.stored(entry.client_order_id)
        assert record.tp_sl_mode == "engine"
        children = {c.type: c for c in await b.repo.children(record.id)}
        assert set(children) == {OrderType.TAKE_PROFIT, OrderType.STOP_LOSS}
        for child in children.values():
            assert child.status is OrderStatus.OPEN and child.reduce_only and child.amount == 0.1
            assert child.side is OrderSide.SELL and child.real_position_id == record.real_position_id
        assert children[OrderType.STOP_LOSS].stop_price == 59_000.0
        assert len(b.paper.created) == 3  # entry, then our separate TP and SL

        await b.price(58_990.0)
        await executor.refresh_open()
        sl = await b.stored(children[OrderType.STOP_LOSS].client_order_id)
        tp = await b.stored(children[OrderType.TAKE_PROFIT].client_order_id)
        assert sl.status is OrderStatus.FILLED and tp.status is OrderStatus.CANCELLED
        assert await b.repo.open_positions(b.connection_id) == [] and await b.venue_contracts() == 0.0
        assert [o for o in await b.paper.fetch_open_orders(SYMBOL)] == []
        # The stop fills at the tick that triggered it, 58,990: 10 worse than its level.
        assert sl.average_price == 58_990.0 and sl.slippage_bps == pytest.approx(10 / 59_000 * 10_000)


# --------------------------------------------------------------------------- emergency stop


@pytest.mark.asyncio
async def test_cancel_all_and_flatten_positions(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        executor = b.executor()
        await executor.submit(b.intent())  # long 0.1
        await executor.submit(b.intent(OrderSide.SELL, 0.2))  # short 0.2 (hedge mode)
        resting = await executor.submit(b.intent(type=OrderType.LIMIT, price=55_000.0))
        assert await b.venue_contracts(PositionSide.SHORT) == 0.2

        (cancelled,) = await executor.cancel_all()
        assert (
            cancelled.client_order_id == resting.client_order_id and cancelled.status is OrderStatus.CANCELLED
        )

        await b.price(59_000.0)
        closes = await executor.flatten_positions()
        assert [v.status for v in closes] == [OrderStatus.FILLED, OrderStatus.FILLED]
        assert await b.repo.open_positions(b.connection_id) == []
        assert (
            await b.venue_contracts(PositionSide.LONG) == 0.0 == await b.venue_contracts(PositionSide.SHORT)
        )
        closed = [
            await b.repo.get_position((await b.stored(v.client_order_id)).real_position_id or "")
            for v in closes
        ]
        # Long 0.1 from 60,000 sold at 59,000: −100; short 0.2 from 60,000 bought at 59,000: +200.
        assert sorted(p.realized_pnl for p in closed if p is not None) == pytest.approx([-100.0, 200.0])


# --------------------------------------------------------------------------- real ccxt, fake network


BINANCE_ORDER = {
    "orderId": 283194212,
    "symbol": "BTCUSDT",
    "status": "NEW",
    "clientOrderId": "",
    "price": "60000.0",
    "avgPrice": "0.00",
    "origQty": "0.010",
    "executedQty": "0.000",
    "cumQty": "0.000",
    "cumQuote": "0.00000",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "reduceOnly": False,
    "closePosition": False,
    "side": "BUY",
    "positionSide": "BOTH",
    "stopPrice": "0.0",
    "workingType": "CONTRACT_PRICE",
    "priceProtect": False,
    "origType": "LIMIT",
    "updateTime": 1712738460000,
}
NOT_FOUND = FakeResponse(400, {"code": -2013, "msg": "Order does not exist."})
INSUFFICIENT = FakeResponse(
    400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}
)


class BinanceScript:
    """Answers ccxt's Binance futures requests: POSTs (creates) and GETs (lookups) from two queues.

    An answer is a FakeResponse, an exception, or "ack" (the order echoed back with the client id
    the request carried, as Binance does)."""

    def __init__(self, posts: list[Any], gets: list[Any], get_default: Any = NOT_FOUND) -> None:
        self.posts = posts
        self.gets = gets
        self.get_default = get_default
        self.sent_ids: list[str] = []
        self.looked_up: list[str] = []

    def __call__(self, request: RecordedRequest) -> FakeResponse | BaseException:
        params = request.all_params()
        if request.method == "POST":
            self.sent_ids.append(params["newClientOrderId"])
            answer = self.posts.pop(0)
            cid = params["newClientOrderId"]
        else:
            # A client-id lookup asks the order book, then the trigger ("algo") book.
            cid = params.get("origClientOrderId") or params.get("clientAlgoId") or ""
            self.looked_up.append(cid or params.get("orderId", ""))
            answer = self.gets.pop(0) if self.gets else self.get_default
        if answer == "ack":
            return FakeResponse(200, BINANCE_ORDER | {"clientOrderId": cid})
        assert isinstance(answer, FakeResponse | BaseException)
        return answer


@asynccontextmanager
async def binance(
    tmp_path: Path, script: BinanceScript
) -> AsyncIterator[tuple[OrderExecutor, OrderRepository, str]]:
    require_static()
    venue = CcxtExchange(
        "binance",
        api_type=ApiType.PERPETUAL_FUTURES,
        credentials=Credentials(TEST_API_KEY, TEST_API_SECRET, None),
        redactor=Redactor(),
        session=FakeHttpSession(script),
        enable_rate_limit=False,
        markets=normalized_markets("binance"),
        currencies=load_currencies("binance"),
        use_websocket=False,
    )
    db = await Database.open(str(tmp_path / "live.db"))
    try:
        connection_id = (await ConnectionRepository(db).create(name="Binance", exchange="binance")).id
        repo = OrderRepository(db)
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        executor = OrderExecutor(connection_id, venue, repo, allow, clock=Clock(), sleep=sleep)
        yield executor, repo, connection_id
    finally:
        await venue.close()
        await db.close()


def live_intent(connection_id: str) -> OrderIntent:
    return OrderIntent(
        connection_id=connection_id,
        symbol="BTC/USDT:USDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        amount=0.01,
        price=60_000.0,
        reference_price=60_050.0,
        mode=TradingMode.LIVE,
    )


@pytest.mark.asyncio
async def test_binance_insufficient_funds_is_rejected_with_the_exchanges_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    script = BinanceScript([INSUFFICIENT], [])
    async with binance(tmp_path, script) as (executor, repo, connection_id):
        view = await executor.submit(live_intent(connection_id))
        assert view.status is OrderStatus.REJECTED
        assert view.reject_reason is not None and "insufficient balance" in view.reject_reason
        assert len(script.sent_ids) == 1 and script.looked_up == []
        record = await repo.get(view.id)
        assert record is not None and record.mode is TradingMode.LIVE
    for text in [view.reject_reason, *(r.getMessage() for r in caplog.records)]:
        assert not any(secret in text for secret in SECRETS)


@pytest.mark.asyncio
async def test_binance_timeout_then_not_found_then_resend_with_the_same_client_id(tmp_path: Path) -> None:
    script = BinanceScript([TimeoutError(), "ack"], [])
    async with binance(tmp_path, script) as (executor, _repo, connection_id):
        view = await executor.submit(live_intent(connection_id))
        assert view.status is OrderStatus.OPEN and view.exchange_order_id == "283194212"
        assert script.sent_ids == [view.client_order_id, view.client_order_id]
        assert script.looked_up and set(script.looked_up) == {view.client_order_id}


@pytest.mark.asyncio
async def test_binance_timeout_then_the_lookup_finds_the_order(tmp_path: Path) -> None:
    script = BinanceScript([TimeoutError()], ["ack"])
    async with binance(tmp_path, script) as (executor, repo, connection_id):
        view = await executor.submit(live_intent(connection_id))
        assert view.status is OrderStatus.OPEN and view.exchange_order_id == "283194212"
        assert len(script.sent_ids) == 1 and script.looked_up == [view.client_order_id]
        record = await repo.get(view.id)
        assert record is not None and record.acknowledged_at is not None


@pytest.mark.asyncio
async def test_binance_429_and_503(tmp_path: Path) -> None:
    too_many = FakeResponse(429, "Too Many Requests", headers={"Content-Type": "text/plain"})
    unavailable = FakeResponse(503, "Service Unavailable", headers={"Content-Type": "text/plain"})
    script = BinanceScript([too_many, unavailable, "ack"], [NOT_FOUND, NOT_FOUND])
    async with binance(tmp_path, script) as (executor, _repo, connection_id):
        view = await executor.submit(live_intent(connection_id))
        assert view.status is OrderStatus.OPEN
        assert script.sent_ids == [view.client_order_id] * 3
        # No lookup after the 429 (refused unprocessed); one after the 503 (status unknown). One
        # client-id lookup is two GETs on Binance futures (the order book, then the algo book):
        # a lookup after the 429 too would make it four.
        assert script.looked_up == [view.client_order_id] * 2


@pytest.mark.asyncio
async def test_binance_timeout_with_a_failing_lookup_leaves_the_order_pending(tmp_path: Path) -> None:
    script = BinanceScript([TimeoutError()], [TimeoutError()])
    async with binance(tmp_path, script) as (executor, repo, connection_id):
        view = await executor.submit(live_intent(connection_id))
        assert view.status is OrderStatus.PENDING_CREATE and len(script.sent_ids) == 1
        assert [o.id for o in await repo.pending_orders(connection_id)] == [view.id]


@pytest.mark.asyncio
async def test_binance_not_found_three_times_in_a_row_marks_the_order_lost(tmp_path: Path) -> None:
    script = BinanceScript(["ack"], [], get_default=NOT_FOUND)
    async with binance(tmp_path, script) as (executor, repo, connection_id):
        view = await executor.submit(live_intent(connection_id))
        assert view.status is OrderStatus.OPEN
        assert await executor.refresh_open() == []
        assert await executor.refresh_open() == []
        assert (await repo.get(view.id)).status is OrderStatus.OPEN  # type: ignore[union-attr]
        (lost,) = await executor.refresh_open()
        assert lost.status is OrderStatus.LOST
        assert lost.reject_reason == "the venue answered 'not found' 3 times in a row"
        assert await executor.refresh_open() == []  # a lost order is not polled any more

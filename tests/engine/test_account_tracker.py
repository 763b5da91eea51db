"""Day-start and peak equity survive a restart and roll at 00:00 UTC (real SQLite, real paper venue)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import MarketType, OrderRequest, OrderSide, OrderType, PositionSnapshot
from cts_desktop.engine.account_tracker import AccountTracker, utc_day
from cts_desktop.exchanges.clock import ManualClock
from cts_desktop.exchanges.paper import AccountSettings, PaperExchange
from cts_desktop.exchanges.simulated import SimulatedExchange
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories import ConnectionRepository
from cts_desktop.storage.repositories.account_marks import AccountMarksRepository
from cts_desktop.storage.repositories.paper import PaperRepository

DAY1 = 1_763_683_200_000  # 2025-11-21T00:00:00Z
HOUR = 3_600_000


class CentiBitcoinContracts(SimulatedExchange):
    """The simulated perpetuals with 0.01 BTC per contract (OKX's BTC-USDT-SWAP, for instance)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._markets = {
            symbol: dataclasses.replace(market, contract_size=0.01, amount_step=1.0, min_amount=1.0)
            for symbol, market in self._markets.items()
        }


class NoNotionalPaper(PaperExchange):
    """The real paper venue answering like an exchange whose position rows state no notional
    (ccxt then leaves ``notional`` None): contracts, entry and mark price only."""

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[PositionSnapshot]:
        return [dataclasses.replace(p, notional=None) for p in await super().fetch_positions(symbols)]


def test_utc_day_changes_exactly_at_midnight() -> None:
    assert (utc_day(DAY1 - 1), utc_day(DAY1)) == ("2025-11-20", "2025-11-21")


@pytest.mark.asyncio
async def test_marks_follow_equity_roll_daily_and_survive_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "cts.db")
    now = [DAY1 + HOUR]

    async def open_tracker() -> tuple[Database, PaperExchange, AccountTracker]:
        db = await Database.open(path)
        records = await ConnectionRepository(db).list()
        record = records[0] if records else await ConnectionRepository(db).create(name="P", exchange="bybit")
        paper = PaperExchange(
            SimulatedExchange(ManualClock(DAY1), market_type=MarketType.SWAP),
            PaperRepository(db),
            account_id="acct",
            create_if_missing=AccountSettings(
                starting_balance=10_000.0, slippage_bps=0.0, default_leverage=10.0, connection_id=record.id
            ),
            clock=lambda: now[0],
        )
        tracker = AccountTracker(
            record.id, TradingMode.PAPER, paper, AccountMarksRepository(db), clock=lambda: now[0]
        )
        return db, paper, tracker

    db, paper, tracker = await open_tracker()
    await paper.on_price("BTC/USDT", 60_000.0, now[0])
    first = await tracker.refresh()
    assert (first.equity, first.day_start_equity, first.peak_equity) == (10_000.0, 10_000.0, 10_000.0)
    await paper.create_order(OrderRequest("BTC/USDT", OrderSide.BUY, OrderType.MARKET, 1.0, "e1"))
    await paper.on_price("BTC/USDT", 59_000.0, now[0])  # −1,000 unrealised, minus the entry fee
    assert await tracker.refresh(max_age_s=60.0) is first  # read a moment ago: no new request
    down = await tracker.refresh()
    assert down.equity < 9_000.0 and down.day_start_equity == 10_000.0 and down.peak_equity == 10_000.0
    assert down.open_positions == 1 and down.position_notional["BTC/USDT"] > 0
    await paper.close()
    await db.close()

    db, paper, tracker = await open_tracker()  # a restart later the same day keeps the day start
    await paper.on_price("BTC/USDT", 59_000.0, now[0])
    again = await tracker.refresh()
    assert again.day_start_equity == 10_000.0 and again.peak_equity == 10_000.0
    now[0] = DAY1 + 24 * HOUR + 1  # the next UTC day starts from the current equity; the peak stays
    rolled = await tracker.refresh()
    assert rolled.day_start_equity == pytest.approx(again.equity) and rolled.peak_equity == 10_000.0
    await paper.close()
    await db.close()


@pytest.mark.asyncio
async def test_an_unreadable_account_is_unknown_not_empty(tmp_path: Path) -> None:
    db = await Database.open(str(tmp_path / "cts.db"))
    record = await ConnectionRepository(db).create(name="P", exchange="bybit")
    paper = PaperExchange(
        SimulatedExchange(ManualClock(DAY1), market_type=MarketType.SWAP),
        PaperRepository(db),
        account_id="acct",
        create_if_missing=AccountSettings(starting_balance=10_000.0, connection_id=record.id),
    )
    tracker = AccountTracker(record.id, TradingMode.PAPER, paper, AccountMarksRepository(db), quote="EUR")
    state = await tracker.refresh()
    assert math.isnan(state.equity) and math.isnan(state.free_balance)
    await paper.close()
    await db.close()


@pytest.mark.asyncio
async def test_a_position_without_a_notional_is_valued_with_its_contract_size(tmp_path: Path) -> None:
    db = await Database.open(str(tmp_path / "cts.db"))
    record = await ConnectionRepository(db).create(name="P", exchange="okx")
    paper = NoNotionalPaper(
        CentiBitcoinContracts(ManualClock(DAY1), market_type=MarketType.SWAP),
        PaperRepository(db),
        account_id="acct",
        create_if_missing=AccountSettings(
            starting_balance=10_000.0, slippage_bps=0.0, default_leverage=10.0, connection_id=record.id
        ),
        clock=lambda: DAY1,
    )
    try:
        await paper.on_price("BTC/USDT", 60_000.0, DAY1)
        await paper.create_order(OrderRequest("BTC/USDT", OrderSide.BUY, OrderType.MARKET, 10.0, "e1"))
        (position,) = await paper.fetch_positions()
        assert (position.contracts, position.notional) == (10.0, None)
        tracker = AccountTracker(record.id, TradingMode.PAPER, paper, AccountMarksRepository(db))
        state = await tracker.refresh()
        # 10 contracts of 0.01 BTC at 60,000: 6,000 USDT (not 600,000), what the venue itself says.
        (stated,) = await PaperExchange.fetch_positions(paper)
        assert state.position_notional == {"BTC/USDT": pytest.approx(6_000.0)}
        assert stated.notional == pytest.approx(6_000.0)
    finally:
        await paper.close()
        await db.close()

"""The account values the risk gate and the circuit breakers measure (``risk.AccountState``).

Equity is read from the venue (balance of the quote asset plus unrealised PnL); the day-start
and peak equity are kept in the database (``account_marks``), because a restart during a bad day
must not reset the daily loss limit or the drawdown. A new UTC day starts a new day mark; the
peak only ever rises (a user who wants to start over resets it explicitly with :meth:`reset_peak`).

An account that cannot be read gives an ``AccountState`` whose equity is NaN: the gate's
``account`` rule then refuses every new order with that reason, instead of trading on a guess.

A position's notional is the venue's when it states one, else contracts × contract size × mark
(or entry) price: ``PositionSnapshot.contracts`` counts contracts, as ccxt's ``contracts`` does,
and one contract of a linear market is ``MarketInfo.contract_size`` of the base (0.01 BTC on OKX's
BTC-USDT-SWAP, for instance): the same notional the risk gate computes for an intent.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import PositionSnapshot
from cts_desktop.engine.orders import market_or_load
from cts_desktop.engine.risk import AccountState, equity_of
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.clock import SystemClock
from cts_desktop.exchanges.errors import ExchangeError
from cts_desktop.storage.repositories.account_marks import AccountMarkRecord, AccountMarksRepository

log = logging.getLogger(__name__)

UNKNOWN = float("nan")


def utc_day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).strftime("%Y-%m-%d")


class AccountTracker:
    """One connection's account as the risk rules see it, refreshed on demand."""

    def __init__(
        self,
        connection_id: str,
        mode: TradingMode,
        venue: Exchange,
        marks: AccountMarksRepository,
        *,
        quote: str = "USDT",
        clock: Callable[[], int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connection_id = connection_id
        self._mode = mode
        self._venue = venue
        self._marks = marks
        self._quote = quote
        self._clock = clock or SystemClock().now_ms
        self._monotonic = monotonic
        self._read_at = -math.inf
        self._mark: AccountMarkRecord | None = None
        self._loaded = False
        self.last: AccountState | None = None

    async def refresh(self, *, max_age_s: float = 0.0) -> AccountState:
        """Read balance and positions, roll the day and peak marks, and return the state; with
        ``max_age_s``, a state read at most that long ago is returned without asking the venue."""
        if max_age_s > 0 and self.last is not None and self._monotonic() - self._read_at <= max_age_s:
            return self.last
        self._read_at = self._monotonic()
        balances = await self._venue.fetch_balance()
        positions = [p for p in await self._venue.fetch_positions() if p.contracts > 0]
        balance = balances.get(self._quote)
        equity = equity_of(balance, positions)
        notional: dict[str, float] = {}
        for position in positions:
            value = await self._notional(position)
            notional[position.symbol] = notional.get(position.symbol, 0.0) + abs(value)
        if equity is None or balance is None:
            state = AccountState(UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, open_positions=len(positions))
            self.last = state
            return state
        mark = await self._roll(equity)
        state = AccountState(
            equity=equity,
            free_balance=balance.free,
            day_start_equity=mark.day_start_equity,
            peak_equity=mark.peak_equity,
            open_positions=len(positions),
            position_notional=notional,
        )
        self.last = state
        return state

    async def _notional(self, position: PositionSnapshot) -> float:
        """The venue's notional, else contracts × contract size × mark (or entry) price; a market
        the venue cannot describe counts one contract as one unit (logged)."""
        if position.notional is not None:
            return position.notional
        try:
            market = await market_or_load(self._venue, position.symbol)
        except ExchangeError as error:
            log.warning("%s: no market rules for %s: %s", self._connection_id, position.symbol, error)
            market = None
        if market is None:
            log.warning(
                "%s: %s: notional counted at 1 unit per contract", self._connection_id, position.symbol
            )
        contract_size = market.contract_size if market is not None else 1.0
        price = position.mark_price or position.entry_price
        return position.contracts * contract_size * price

    async def reset_peak(self) -> None:
        """Start measuring the drawdown from the current equity (an explicit user decision)."""
        state = await self.refresh()
        if math.isfinite(state.equity) and self._mark is not None:
            self._mark = AccountMarkRecord(
                self._connection_id, self._mode, self._mark.day, self._mark.day_start_equity, state.equity
            )
            await self._marks.save(self._mark)
            log.info("%s: drawdown peak reset to %.2f %s", self._connection_id, state.equity, self._quote)

    async def _roll(self, equity: float) -> AccountMarkRecord:
        if not self._loaded:
            self._mark = await self._marks.get(self._connection_id, self._mode)
            self._loaded = True
        day = utc_day(self._clock())
        old = self._mark
        if old is None:
            new = AccountMarkRecord(self._connection_id, self._mode, day, equity, equity)
        elif old.day != day:
            new = AccountMarkRecord(
                self._connection_id, self._mode, day, equity, max(old.peak_equity, equity)
            )
        elif equity > old.peak_equity:
            new = AccountMarkRecord(self._connection_id, self._mode, day, old.day_start_equity, equity)
        else:
            return old
        self._mark = new
        await self._marks.save(new)
        return new

"""The paper venue: a simulated exchange account on top of any market-data venue.

``PaperExchange`` implements the whole :class:`~cts_desktop.exchanges.base.Exchange` protocol.
Market data (markets, tickers, candles, streams) comes from the wrapped venue unchanged: the
simulated market, a replay, or a real exchange's public data. Trading is simulated against an
account whose state (balances, orders, fills, positions, leverage settings) lives in the
database through :class:`~cts_desktop.storage.repositories.paper.PaperRepository`, so a
restart continues where the last run stopped: paper trading is a dry run of live trading, and a
dry run that forgets its positions on restart teaches nothing.

How events flow:

* Every price the engine (or the market bus) sees is passed to :meth:`PaperExchange.on_price`;
  :meth:`watch_ticker` does it too before returning. Each price runs the matching of that
  symbol's open orders (``paper_matching`` holds the rules) and writes everything it changed in
  one transaction; memory is updated only after the commit, so a failed write changes nothing.
* Orders behave like a real venue's, errors included: a refused order raises (insufficient
  funds, size or step, unknown symbol, duplicate client id) and leaves no trace; an accepted
  order gets an id, may fill at once (market, marketable limit), and otherwise rests until a
  price fills, triggers or expires it.

Simplifications (stated so nobody mistakes them for exchange behaviour): fees are charged in
the quote currency, also on spot buys; only linear contracts are simulated; there is no
liquidation or funding; cross and isolated margin both lock the initial margin per position;
stop orders are stop-market (a stop-limit is refused); a client order id stays taken after its
order ended (the database keeps them unique per account), where exchanges only check open
orders.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from cts_desktop.domain.market import (
    Balance,
    Candle,
    Fill,
    MarginMode,
    MarketInfo,
    MarketType,
    OrderRequest,
    OrderSide,
    OrderSnapshot,
    OrderType,
    PositionMode,
    PositionSide,
    PositionSnapshot,
    Ticker,
    TimeInForce,
    VenueOrderStatus,
)
from cts_desktop.exchanges import paper_matching as pm
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.errors import (
    BadSymbolError,
    ExchangeDownError,
    InsufficientFundsError,
    InvalidOrderError,
    NotSupportedError,
    OrderNotFoundError,
    UnknownExchangeError,
)
from cts_desktop.storage.models import new_id
from cts_desktop.storage.repositories.paper import (
    PaperAccountRecord,
    PaperAccountState,
    PaperBalanceRecord,
    PaperChanges,
    PaperFillRecord,
    PaperOrderRecord,
    PaperPositionRecord,
    PaperRepository,
    PaperSymbolSettingRecord,
    PositionKey,
    new_account_record,
)

log = logging.getLogger(__name__)

VENUE_NAME: Final = "paper"
DEFAULT_ACCOUNT_ID: Final = "paper-default"
MAX_CLIENT_ORDER_ID_LENGTH: Final = 64
"""Longer ids are refused, as exchanges do (Binance 36, Bybit 36, OKX 32); the children of an
entry with attached TP/SL use the entry's id plus ``:tp`` / ``:sl``."""
WATCH_BUFFER_SIZE: Final = 1000
"""Order updates kept per ``watch_orders`` subscription between two calls (ccxt.pro keeps 1000)."""

_STOP_TYPES: Final = frozenset({OrderType.STOP_LOSS, OrderType.TAKE_PROFIT})
_DERIVATIVES: Final = frozenset({MarketType.SWAP, MarketType.FUTURE})
_EPSILON: Final = 1e-9  # quote/base units: tolerance of float sums in balance checks


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """How a new paper account starts and how its orders are matched.

    Fees left at None use the market's rates (``MarketInfo.maker_fee`` / ``taker_fee``), then
    ``paper_matching.DEFAULT_*_FEE``. Slippage applies to taker fills of market orders, marketable
    limits and triggered stops: ``slippage_bps`` plus ``volume_impact_bps`` per 100 % of the
    tick's volume taken, capped at ``max_slippage_bps``. A resting limit order fills at most
    ``partial_fill_ratio`` of its amount per price tick, and (when ticks carry a volume and
    ``volume_share`` is set) at most that share of the tick's volume.
    """

    starting_balance: float = 10_000.0
    quote: str = "USDT"
    name: str = "Paper"
    position_mode: PositionMode = PositionMode.HEDGE
    margin_mode: MarginMode = MarginMode.CROSS
    maker_fee: float | None = None
    taker_fee: float | None = None
    slippage_bps: float = 5.0
    max_slippage_bps: float = 50.0
    volume_impact_bps: float = 0.0
    partial_fill_ratio: float = 1.0
    volume_share: float | None = None
    default_leverage: float = 1.0
    connection_id: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.starting_balance) and self.starting_balance >= 0):
            problems.append(f"starting_balance must be ≥ 0, not {self.starting_balance}")
        if not self.quote:
            problems.append("quote must name a currency")
        for name in ("slippage_bps", "max_slippage_bps", "volume_impact_bps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be ≥ 0, not {value}")
        if not 0 < self.partial_fill_ratio <= 1:
            problems.append(f"partial_fill_ratio must be in (0, 1], not {self.partial_fill_ratio}")
        if self.volume_share is not None and not 0 < self.volume_share <= 1:
            problems.append(f"volume_share must be in (0, 1], not {self.volume_share}")
        if not self.default_leverage >= 1:
            problems.append(f"default_leverage must be ≥ 1, not {self.default_leverage}")
        for name in ("maker_fee", "taker_fee"):
            rate = getattr(self, name)
            if rate is not None and not -0.01 < rate < 0.1:
                problems.append(f"{name} is a fraction (0.0005 = 0.05 %), not {rate}")
        if problems:
            raise ValueError("invalid paper account settings: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class _Tick:
    price: float
    ts_ms: int
    volume: float | None


class _Refused(Exception):
    """A fill the account cannot pay for; placement turns it into InsufficientFundsError,
    matching into a rejected order."""


class _Book:
    """The account's live state. Replaced as a whole after each commit, never edited in place
    outside a transaction's private copy."""

    __slots__ = ("account", "balances", "orders", "positions", "settings")

    def __init__(
        self,
        account: PaperAccountRecord,
        balances: dict[str, PaperBalanceRecord],
        orders: dict[str, PaperOrderRecord],
        positions: dict[PositionKey, PaperPositionRecord],
        settings: dict[str, PaperSymbolSettingRecord],
    ) -> None:
        self.account = account
        self.balances = balances
        self.orders = orders  # open orders only, oldest first
        self.positions = positions
        self.settings = settings

    @classmethod
    def from_state(cls, state: PaperAccountState) -> _Book:
        return cls(
            state.account,
            dict(state.balances),
            {order.id: order for order in state.open_orders},
            {(p.symbol, p.side): p for p in state.positions},
            dict(state.symbol_settings),
        )

    def copy(self) -> _Book:
        # Records are frozen: copying the dicts is enough to isolate a transaction.
        return _Book(
            self.account, dict(self.balances), dict(self.orders), dict(self.positions), dict(self.settings)
        )


class _Txn:
    """A private copy of the book plus the list of what changed, for one event."""

    def __init__(self, book: _Book, now_ms: int) -> None:
        self.book = book
        self.now_ms = now_ms
        self.changes = PaperChanges()
        self.new_children: list[str] = []

    def balance(self, asset: str) -> PaperBalanceRecord:
        return self.book.balances.get(asset) or PaperBalanceRecord(asset, 0.0, 0.0)

    def put_balance(self, balance: PaperBalanceRecord) -> None:
        used = 0.0 if abs(balance.used) < _EPSILON else balance.used
        balance = replace(balance, used=used)
        self.book.balances[balance.asset] = balance
        self.changes.balances[balance.asset] = balance

    def move(self, asset: str, free: float = 0.0, used: float = 0.0) -> None:
        current = self.balance(asset)
        self.put_balance(replace(current, free=current.free + free, used=current.used + used))

    def put_order(self, order: PaperOrderRecord) -> PaperOrderRecord:
        self.changes.orders[order.id] = order
        if order.is_open:
            self.book.orders[order.id] = order
        else:
            self.book.orders.pop(order.id, None)
        return order

    def put_position(self, key: PositionKey, position: PaperPositionRecord | None) -> None:
        if position is None:
            self.book.positions.pop(key, None)
        else:
            self.book.positions[key] = position
        self.changes.positions[key] = position

    def put_setting(self, setting: PaperSymbolSettingRecord) -> None:
        self.book.settings[setting.symbol] = setting
        self.changes.symbol_settings[setting.symbol] = setting


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PaperExchange:
    """A simulated account trading on ``data_venue``'s prices (see the module docstring).

    ``account_id`` names the persisted account; when it does not exist yet it is created from
    ``create_if_missing`` (without settings a missing account is an error, so a typo never
    silently starts an empty account). ``clock`` gives order timestamps in UTC milliseconds;
    fills triggered by a price carry that price's timestamp.
    """

    def __init__(
        self,
        data_venue: Exchange,
        repository: PaperRepository,
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        create_if_missing: AccountSettings | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._data = data_venue
        self._repository = repository
        self._account_id = account_id
        self._create_settings = create_if_missing
        self._clock = clock or _wall_clock_ms
        self._book: _Book | None = None
        self._load_lock = asyncio.Lock()
        self._lock = asyncio.Lock()  # one state change at a time
        self._ticks: dict[str, _Tick] = {}
        self._watchers: dict[str | None, deque[OrderSnapshot]] = {}
        self._watch_event = asyncio.Event()
        self._closed = False

    # ----------------------------------------------------------------------- identity

    @property
    def name(self) -> str:
        return VENUE_NAME

    @property
    def supports_streaming(self) -> bool:
        return self._data.supports_streaming

    @property
    def supports_attached_tp_sl(self) -> bool:
        """Orders may carry take-profit/stop-loss: they become reduce-only child orders (client ids
        ``<entry id>:tp`` / ``:sl``) on the entry's first fill, like CcxtExchange's capability."""
        return True

    @property
    def account_id(self) -> str:
        return self._account_id

    @property
    def data_venue(self) -> Exchange:
        return self._data

    async def load(self) -> PaperAccountRecord:
        """Load (or create) the account now; every other call does it on first use."""
        return (await self._ready()).account

    async def _ready(self) -> _Book:
        if self._closed:
            raise ExchangeDownError(self.name, "the paper venue is closed")
        if self._book is not None:
            return self._book
        async with self._load_lock:
            if self._book is None:
                self._book = _Book.from_state(await self._load_or_create())
        return self._book

    async def _load_or_create(self) -> PaperAccountState:
        try:
            state = await self._repository.load_account(self._account_id)
            if state is None:
                settings = self._create_settings
                if settings is None:
                    raise UnknownExchangeError(
                        self.name,
                        f"there is no paper account {self._account_id!r}; create it first "
                        "(pass create_if_missing=AccountSettings(...))",
                    )
                account = new_account_record(
                    id=self._account_id,
                    connection_id=settings.connection_id,
                    name=settings.name,
                    quote=settings.quote,
                    starting_balance=settings.starting_balance,
                    position_mode=settings.position_mode,
                    margin_mode=settings.margin_mode,
                    maker_fee=settings.maker_fee,
                    taker_fee=settings.taker_fee,
                    slippage_bps=settings.slippage_bps,
                    max_slippage_bps=settings.max_slippage_bps,
                    volume_impact_bps=settings.volume_impact_bps,
                    partial_fill_ratio=settings.partial_fill_ratio,
                    volume_share=settings.volume_share,
                    default_leverage=settings.default_leverage,
                )
                opening = PaperBalanceRecord(settings.quote, settings.starting_balance, 0.0)
                await self._repository.create_account(account, [opening])
                log.info("created paper account %s with %s %s", account.id, opening.free, opening.asset)
                state = await self._repository.load_account(self._account_id)
                if state is None:  # pragma: no cover - just written
                    raise UnknownExchangeError(self.name, "the new paper account could not be read back")
        except SQLAlchemyError as exc:
            raise UnknownExchangeError(
                self.name, "the paper account could not be loaded from the database", detail=str(exc)
            ) from exc
        return state

    # ----------------------------------------------------------------------- market data

    async def load_markets(self, *, reload: bool = False) -> dict[str, MarketInfo]:
        return await self._data.load_markets(reload=reload)

    def market(self, symbol: str) -> MarketInfo:
        return self._data.market(symbol)

    async def _market(self, symbol: str) -> MarketInfo:
        """The market's rules, loading the data venue's markets once if it has none yet."""
        try:
            return self._data.market(symbol)
        except BadSymbolError:
            await self._data.load_markets()
            return self._data.market(symbol)

    async def fetch_server_time(self) -> int:
        return await self._data.fetch_server_time()

    async def fetch_ticker(self, symbol: str) -> Ticker:
        return await self._data.fetch_ticker(symbol)

    async def fetch_tickers(self, symbols: list[str] | None = None) -> dict[str, Ticker]:
        return await self._data.fetch_tickers(symbols)

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since_ms: int | None = None, limit: int | None = None
    ) -> list[Candle]:
        return await self._data.fetch_ohlcv(symbol, timeframe, since_ms, limit)

    async def watch_ticker(self, symbol: str) -> Ticker:
        """The data venue's next ticker, after it has been matched against the open orders."""
        ticker = await self._data.watch_ticker(symbol)
        await self.on_price(symbol, ticker.last, ticker.timestamp_ms)
        return ticker

    async def watch_ohlcv(self, symbol: str, timeframe: str = "1m") -> list[Candle]:
        return await self._data.watch_ohlcv(symbol, timeframe)

    # ----------------------------------------------------------------------- prices

    def last_price(self, symbol: str) -> float | None:
        """The latest price matched for ``symbol`` (the mark price of its positions)."""
        tick = self._ticks.get(symbol)
        return tick.price if tick is not None else None

    async def on_price(self, symbol: str, price: float, ts_ms: int, volume: float | None = None) -> None:
        """Feed one traded price (with the volume traded at it, if known) and match on it.

        Non-positive or non-finite prices are ignored with a warning: one bad tick from a feed
        must not fill every stop on the book.
        """
        if not (math.isfinite(price) and price > 0):
            log.warning("paper: ignoring invalid price %r for %s", price, symbol)
            return
        if volume is not None and not (math.isfinite(volume) and volume >= 0):
            volume = None
        await self._ready()
        async with self._lock:
            await self._on_price_locked(symbol, _Tick(price, ts_ms, volume))

    async def on_candle(self, symbol: str, candle: Candle) -> None:
        """Feed a candle as four prices: open, the nearer extreme, the farther one, close.

        The open comes first, so a stop gapped over by the open fills there. The path between
        is unknown; visiting the extreme nearer the open first is the usual assumption. Each
        of the four prices carries a quarter of the candle's volume.
        """
        if candle.close >= candle.open:
            path = (candle.open, candle.low, candle.high, candle.close)
        else:
            path = (candle.open, candle.high, candle.low, candle.close)
        share = max(candle.volume, 0.0) / 4  # a candle without trades lets no limit order fill
        for price in path:
            await self.on_price(symbol, price, candle.ts_ms, share)

    async def _on_price_locked(self, symbol: str, tick: _Tick) -> None:
        self._ticks[symbol] = tick
        book = self._book
        assert book is not None
        if not any(order.symbol == symbol for order in book.orders.values()):
            return
        market = await self._market(symbol)
        txn = _Txn(book.copy(), tick.ts_ms)
        self._match(txn, market, tick)
        await self._commit(txn)

    async def _tick_for(self, symbol: str) -> _Tick:
        """The latest price, or the data venue's ticker when none has been seen yet."""
        tick = self._ticks.get(symbol)
        if tick is None:
            ticker = await self._data.fetch_ticker(symbol)
            await self._on_price_locked(symbol, _Tick(ticker.last, ticker.timestamp_ms, None))
            tick = self._ticks[symbol]
        return tick

    # ----------------------------------------------------------------------- account reads

    async def fetch_balance(self) -> dict[str, Balance]:
        book = await self._ready()
        return {
            asset: Balance(asset=asset, free=b.free, used=b.used, total=b.total)
            for asset, b in sorted(book.balances.items())
        }

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[PositionSnapshot]:
        book = await self._ready()
        wanted = set(symbols) if symbols else None
        snapshots = []
        for (symbol, _side), position in sorted(book.positions.items()):
            if wanted is not None and symbol not in wanted:
                continue
            contract_size = (await self._market(symbol)).contract_size
            mark = self.last_price(symbol)
            unrealized = (
                pm.position_pnl(position.side, position.entry_price, mark, position.contracts, contract_size)
                if mark is not None
                else None
            )
            snapshots.append(
                PositionSnapshot(
                    symbol=symbol,
                    side=position.side,
                    contracts=position.contracts,
                    entry_price=position.entry_price,
                    mark_price=mark,
                    leverage=position.leverage,
                    margin_mode=position.margin_mode,
                    unrealized_pnl=unrealized,
                    realized_pnl=position.realized_pnl,
                    notional=pm.trade_value(mark or position.entry_price, position.contracts, contract_size),
                    extra={"margin": position.margin},
                )
            )
        return snapshots

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        book = await self._ready()
        orders = [o for o in book.orders.values() if symbol is None or o.symbol == symbol]
        return [_snapshot(order) for order in sorted(orders, key=lambda o: o.created_ms)]

    async def fetch_order(self, order_id: str, symbol: str) -> OrderSnapshot:
        order = await self._find(order_id=order_id, symbol=symbol)
        if order is None:
            raise OrderNotFoundError(self.name, f"there is no paper order {order_id} for {symbol}")
        return _snapshot(order)

    async def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> OrderSnapshot:
        order = await self._find(client_order_id=client_order_id, symbol=symbol)
        if order is None:
            raise OrderNotFoundError(
                self.name, f"there is no paper order with client id {client_order_id!r} for {symbol}"
            )
        return _snapshot(order)

    async def fetch_orders(self, symbol: str | None = None, limit: int | None = None) -> list[OrderSnapshot]:
        """Open and final orders, newest first (the history tab)."""
        await self._ready()
        records = await self._read(self._repository.list_orders(self._account_id, symbol=symbol, limit=limit))
        return [_snapshot(record) for record in records]

    async def fetch_fills(
        self, symbol: str | None = None, *, since_ms: int | None = None, limit: int | None = None
    ) -> list[Fill]:
        """Executions, oldest first."""
        await self._ready()
        records = await self._read(
            self._repository.list_fills(self._account_id, symbol=symbol, since_ms=since_ms, limit=limit)
        )
        return [
            Fill(
                id=str(f.id),
                order_id=f.order_id,
                symbol=f.symbol,
                side=f.side,
                price=f.price,
                amount=f.amount,
                fee=f.fee,
                fee_currency=f.fee_currency,
                timestamp_ms=f.ts_ms,
                maker=f.maker,
            )
            for f in records
        ]

    async def watch_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        """The order updates since the previous call for the same ``symbol`` filter (the first
        call subscribes and waits for the next update), like ccxt.pro with ``newUpdates``."""
        await self._ready()
        buffer = self._watchers.setdefault(symbol, deque(maxlen=WATCH_BUFFER_SIZE))
        while not buffer:
            event = self._watch_event
            await event.wait()
            if self._closed:
                raise ExchangeDownError(self.name, "the paper venue is closed")
        updates = list(buffer)
        buffer.clear()
        return updates

    async def _find(
        self, *, symbol: str, order_id: str | None = None, client_order_id: str | None = None
    ) -> PaperOrderRecord | None:
        book = await self._ready()
        found: PaperOrderRecord | None = None
        for order in book.orders.values():
            if order.id == order_id or (
                client_order_id is not None and order.client_order_id == client_order_id
            ):
                found = order
                break
        if found is None:
            if order_id is not None:
                found = await self._read(self._repository.get_order(self._account_id, order_id))
            elif client_order_id is not None:
                found = await self._read(
                    self._repository.get_order_by_client_id(self._account_id, client_order_id)
                )
        if found is None or found.symbol != symbol:
            return None
        return found

    async def _read[T](self, query: Awaitable[T]) -> T:
        """Await a repository read, in the venue's error vocabulary."""
        try:
            return await query
        except SQLAlchemyError as exc:
            raise UnknownExchangeError(
                self.name, "the paper account could not be read from the database", detail=str(exc)
            ) from exc

    # ----------------------------------------------------------------------- orders

    async def create_order(self, request: OrderRequest) -> OrderSnapshot:
        await self._ready()
        market = await self._market(request.symbol)
        self._validate_static(request, market)
        async with self._lock:
            tick = await self._tick_for(request.symbol)
            book = self._book
            assert book is not None
            await self._check_client_id(book, request)
            txn = _Txn(book.copy(), self._clock())
            order = self._new_order(txn, request, market, tick)
            try:
                order = self._place(txn, order, market, tick)
            except _Refused as refused:
                raise InsufficientFundsError(self.name, str(refused)) from None
            if txn.new_children:
                self._match(txn, market, tick, only=set(txn.new_children))
            await self._commit(txn)
        return _snapshot(txn.changes.orders[order.id])

    async def cancel_order(self, order_id: str, symbol: str) -> OrderSnapshot:
        await self._ready()
        await self._market(symbol)  # loads the data venue's markets after a restart
        async with self._lock:
            book = self._book
            assert book is not None
            order = book.orders.get(order_id)
            if order is None or order.symbol != symbol:
                final = await self._find(order_id=order_id, symbol=symbol)
                if final is None:
                    raise OrderNotFoundError(self.name, f"there is no paper order {order_id} for {symbol}")
                raise OrderNotFoundError(
                    self.name, f"paper order {order_id} is already {final.status.value}; nothing to cancel"
                )
            txn = _Txn(book.copy(), self._clock())
            cancelled = self._finish(txn, order, VenueOrderStatus.CANCELLED, None)
            await self._commit(txn)
        return _snapshot(cancelled)

    # ----------------------------------------------------------------------- account settings

    async def set_leverage(self, symbol: str, leverage: float) -> None:
        """Leverage for ``symbol``; open positions are re-margined at once (the extra margin
        must be free), open orders keep what they reserved."""
        await self._ready()
        market = await self._market(symbol)
        if market.type not in _DERIVATIVES:
            raise NotSupportedError(self.name, f"{symbol} is a spot market; leverage applies to derivatives")
        maximum = market.max_leverage or pm.DEFAULT_MAX_LEVERAGE
        if not (math.isfinite(leverage) and 1 <= leverage <= maximum):
            raise InvalidOrderError(
                self.name, f"leverage {leverage:.12g} for {symbol} must be between 1 and {maximum:.12g}"
            )
        async with self._lock:
            book = self._book
            assert book is not None
            txn = _Txn(book.copy(), self._clock())
            txn.put_setting(replace(self._setting(book, market), leverage=float(leverage)))
            quote = market.quote
            for key, position in list(book.positions.items()):
                if key[0] != symbol:
                    continue
                moved = pm.remargin(_state(position), leverage, market.contract_size)
                delta = moved.margin - position.margin
                if txn.balance(quote).free - delta < -_EPSILON:
                    raise InsufficientFundsError(
                        self.name,
                        f"leverage {leverage:.12g} needs {delta:.8g} {quote} more margin for the "
                        f"{key[1].value} {symbol} position, but {txn.balance(quote).free:.8g} is free",
                    )
                txn.move(quote, free=-delta, used=delta)
                txn.put_position(key, _record(symbol, moved))
            await self._commit(txn)

    async def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        """Refused while ``symbol`` has a position or an open order, as exchanges do."""
        await self._ready()
        market = await self._market(symbol)
        if market.type not in _DERIVATIVES:
            raise NotSupportedError(
                self.name, f"{symbol} is a spot market; margin mode applies to derivatives"
            )
        mode = MarginMode(mode)
        async with self._lock:
            book = self._book
            assert book is not None
            setting = self._setting(book, market)
            if setting.margin_mode is mode:
                return
            if any(key[0] == symbol for key in book.positions) or any(
                order.symbol == symbol for order in book.orders.values()
            ):
                raise InvalidOrderError(
                    self.name,
                    f"cannot change the margin mode of {symbol} to {mode.value} while it has a position "
                    "or open orders; close them first",
                )
            txn = _Txn(book.copy(), self._clock())
            txn.put_setting(replace(setting, margin_mode=mode))
            await self._commit(txn)

    async def set_position_mode(self, hedged: bool) -> None:
        """Hedge or one-way; refused while any position or order is open, as exchanges do."""
        await self._ready()
        mode = PositionMode.HEDGE if hedged else PositionMode.ONE_WAY
        async with self._lock:
            book = self._book
            assert book is not None
            if book.account.position_mode is mode:
                return
            if book.positions or book.orders:
                raise InvalidOrderError(
                    self.name,
                    f"cannot switch to {mode.value} mode with {len(book.positions)} open position(s) and "
                    f"{len(book.orders)} open order(s); close them first",
                )
            txn = _Txn(book.copy(), self._clock())
            txn.book.account = replace(book.account, position_mode=mode)
            txn.changes.account = txn.book.account
            await self._commit(txn)

    async def close(self) -> None:
        """Stop serving; waiting ``watch_orders`` calls raise. The data venue is not closed: it
        belongs to whoever built it (it is often shared with the market bus)."""
        self._closed = True
        self._watch_event.set()

    # ----------------------------------------------------------------------- validation

    def _validate_static(self, request: OrderRequest, market: MarketInfo) -> None:
        """The checks an exchange makes on the request alone, before looking at the account."""
        symbol = request.symbol

        def refuse(message: str) -> InvalidOrderError:
            return InvalidOrderError(self.name, f"{symbol}: {message}")

        if not market.active:
            raise refuse("the market is not active")
        derivative = market.type in _DERIVATIVES
        if derivative and not market.linear:
            raise NotSupportedError(
                self.name, f"{symbol}: inverse contracts are not simulated by the paper venue"
            )
        cid = request.client_order_id
        if not cid or len(cid) > MAX_CLIENT_ORDER_ID_LENGTH:
            raise refuse(
                f"client order id must have 1 to {MAX_CLIENT_ORDER_ID_LENGTH} characters, not {len(cid)}"
            )
        amount = request.amount
        if not (math.isfinite(amount) and amount > 0):
            raise refuse(f"amount must be positive, not {amount}")
        if market.min_amount is not None and amount < market.min_amount - _EPSILON * market.min_amount:
            raise refuse(f"amount {amount:.12g} is below the minimum order size {market.min_amount:.12g}")
        if market.amount_step and not pm.is_on_step(amount, market.amount_step):
            low, high = pm.nearest_steps(amount, market.amount_step)
            raise refuse(
                f"amount {amount:.12g} is not a multiple of the lot step {market.amount_step:.12g} "
                f"(nearest valid: {low:.12g} or {high:.12g})"
            )

        kind = request.type
        if kind is OrderType.LIMIT:
            if request.price is None:
                raise refuse("a limit order needs a price")
            if request.stop_price is not None:
                raise refuse("stop_price belongs to stop_loss/take_profit orders, not to a limit order")
        elif kind in _STOP_TYPES:
            if request.stop_price is None:
                raise refuse(f"a {kind.value} order needs a stop_price")
            if request.price is not None:
                raise NotSupportedError(
                    self.name,
                    f"{symbol}: stop-limit orders are not simulated; send {kind.value} without a price",
                )
            if request.time_in_force is not TimeInForce.GTC:
                raise refuse(f"a {kind.value} order rests until triggered: time in force must be GTC")
        elif request.stop_price is not None:
            raise refuse("stop_price belongs to stop_loss/take_profit orders, not to a market order")

        prices = {
            "price": request.price if kind is OrderType.LIMIT else None,
            "stop_price": request.stop_price,
            "take_profit": request.take_profit,
            "stop_loss": request.stop_loss,
        }
        for label, value in prices.items():
            if value is None:
                continue
            if not (math.isfinite(value) and value > 0):
                raise refuse(f"{label} must be positive, not {value}")
            if market.price_step and not pm.is_on_step(value, market.price_step):
                low, high = pm.nearest_steps(value, market.price_step)
                raise refuse(
                    f"{label} {value:.12g} is not a multiple of the tick size {market.price_step:.12g} "
                    f"(nearest valid: {low:.12g} or {high:.12g})"
                )

        attached = request.take_profit is not None or request.stop_loss is not None
        if not derivative:
            if request.reduce_only:
                raise refuse("reduce-only applies to derivatives, not to a spot market")
            if request.position_side is not None:
                raise refuse("position_side applies to derivatives, not to a spot market")
            if attached and request.side is OrderSide.SELL:
                raise refuse("take-profit/stop-loss can only be attached to a spot buy")
        if attached and request.reduce_only:
            raise refuse("take-profit/stop-loss can only be attached to an order that opens a position")

    async def _check_client_id(self, book: _Book, request: OrderRequest) -> None:
        wanted = {request.client_order_id}
        if request.take_profit is not None:
            wanted.add(_child_client_id(request.client_order_id, OrderType.TAKE_PROFIT))
        if request.stop_loss is not None:
            wanted.add(_child_client_id(request.client_order_id, OrderType.STOP_LOSS))
        for order in book.orders.values():
            if order.client_order_id in wanted:
                raise InvalidOrderError(
                    self.name,
                    f"client order id {order.client_order_id!r} is already used by open order {order.id}",
                )
        for cid in sorted(wanted):
            used = await self._read(self._repository.get_order_by_client_id(self._account_id, cid))
            if used is not None:
                raise InvalidOrderError(
                    self.name,
                    f"client order id {cid!r} was already used by order {used.id} ({used.status.value})",
                )

    def _new_order(
        self, txn: _Txn, request: OrderRequest, market: MarketInfo, tick: _Tick
    ) -> PaperOrderRecord:
        """The order record, after the checks that depend on the account's positions."""
        symbol = request.symbol
        book = txn.book
        derivative = market.type in _DERIVATIVES
        reference = (
            request.price
            if request.type is OrderType.LIMIT
            else request.stop_price
            if request.type in _STOP_TYPES
            else tick.price
        )
        assert reference is not None

        def refuse(message: str) -> InvalidOrderError:
            return InvalidOrderError(self.name, f"{symbol}: {message}")

        if market.min_cost is not None:
            cost = pm.trade_value(reference, request.amount, market.contract_size)
            if cost < market.min_cost:
                raise refuse(
                    f"order value {cost:.8g} {market.quote} is below the minimum {market.min_cost:.12g} "
                    f"({request.amount:.12g} × {reference:.12g})"
                )
        if request.type in _STOP_TYPES:
            assert request.stop_price is not None
            if pm.stop_triggered(request.type, request.side, request.stop_price, tick.price):
                raise refuse(
                    f"{request.type.value} {request.side.value} at {request.stop_price:.12g} would trigger "
                    f"immediately (last price {tick.price:.12g})"
                )
        if request.take_profit is not None or request.stop_loss is not None:
            up = request.side is OrderSide.BUY
            tp, sl = request.take_profit, request.stop_loss
            if tp is not None and (tp <= reference if up else tp >= reference):
                raise refuse(
                    f"take-profit {tp:.12g} must be {'above' if up else 'below'} the entry price "
                    f"{reference:.12g}"
                )
            if sl is not None and (sl >= reference if up else sl <= reference):
                raise refuse(
                    f"stop-loss {sl:.12g} must be {'below' if up else 'above'} the entry price "
                    f"{reference:.12g}"
                )

        position_side: PositionSide | None = None
        reduce_only = request.reduce_only
        leverage: float | None = None
        if derivative:
            leverage = self._setting(book, market).leverage
            mode = book.account.position_mode
            if mode is PositionMode.HEDGE:
                position_side = request.position_side or (
                    (PositionSide.SHORT if request.side is OrderSide.BUY else PositionSide.LONG)
                    if request.reduce_only
                    else pm.opening_side(request.side)
                )
                reducing = pm.closes(request.side, position_side)
                if request.reduce_only and not reducing:
                    raise refuse(
                        f"a reduce-only {request.side.value} cannot reduce the {position_side.value} position"
                    )
                if reducing and (request.take_profit is not None or request.stop_loss is not None):
                    raise refuse(
                        "take-profit/stop-loss can only be attached to an order that opens a position"
                    )
                reduce_only = reducing
                target = position_side
            else:
                if request.position_side is not None:
                    raise refuse(
                        "position_side is only accepted in hedge mode; this paper account is one-way"
                    )
                target = PositionSide.SHORT if request.side is OrderSide.BUY else PositionSide.LONG
            if reduce_only:
                held = book.positions.get((symbol, target))
                if held is None or held.contracts <= 0:
                    raise refuse(
                        f"reduce-only order would not reduce anything: there is no {target.value} position"
                    )

        now = txn.now_ms
        return PaperOrderRecord(
            id=new_id(),
            client_order_id=request.client_order_id,
            symbol=symbol,
            side=request.side,
            type=request.type,
            status=VenueOrderStatus.OPEN,
            amount=request.amount,
            filled=0.0,
            price=request.price if request.type is OrderType.LIMIT else None,
            stop_price=request.stop_price,
            average=None,
            fee=0.0,
            fee_currency=market.quote,
            reduce_only=reduce_only,
            position_side=position_side,
            time_in_force=request.time_in_force,
            leverage=leverage,
            take_profit=request.take_profit,
            stop_loss=request.stop_loss,
            reserved=0.0,
            reject_reason=None,
            created_ms=now,
            updated_ms=now,
        )

    # ----------------------------------------------------------------------- placement

    def _place(self, txn: _Txn, order: PaperOrderRecord, market: MarketInfo, tick: _Tick) -> PaperOrderRecord:
        """Record a new order and do what it does on arrival; raises _Refused when the account
        cannot pay for it (the transaction is then discarded)."""
        txn.put_order(order)
        account = txn.book.account
        if order.type is OrderType.MARKET:
            qty = self._executable(txn, order, order.amount, market)
            if qty <= 0:  # pragma: no cover - the reduce-only check at validation prevents it
                return self._finish(txn, order, VenueOrderStatus.CANCELLED, "nothing to reduce")
            price = self._taker_price(order.side, tick.price, qty, tick.volume, market, account)
            order = self._fill(txn, order, qty, price, maker=False, ts_ms=txn.now_ms, market=market)
            if order.is_open:
                order = self._finish(
                    txn, order, VenueOrderStatus.CANCELLED, f"only {qty:.12g} could reduce the position"
                )
            return order

        if order.type is OrderType.LIMIT:
            assert order.price is not None
            tif = order.time_in_force
            if pm.limit_marketable(order.side, order.price, tick.price):
                liquidity = pm.tick_liquidity(tick.volume, account.volume_share)
                qty = pm.fillable_amount(
                    order.remaining, order.amount, account.partial_fill_ratio, liquidity, market.amount_step
                )
                qty = self._executable(txn, order, qty, market)
                if tif is TimeInForce.FOK and qty < order.amount:
                    return self._finish(
                        txn,
                        order,
                        VenueOrderStatus.CANCELLED,
                        f"fill-or-kill: only {qty:.12g} of {order.amount:.12g} could fill at once",
                    )
                if qty > 0:
                    taker = self._taker_price(order.side, tick.price, qty, tick.volume, market, account)
                    price = (
                        min(taker, order.price) if order.side is OrderSide.BUY else max(taker, order.price)
                    )
                    order = self._fill(txn, order, qty, price, maker=False, ts_ms=txn.now_ms, market=market)
                if not order.is_open:
                    return order
                if tif is TimeInForce.IOC:
                    return self._finish(
                        txn,
                        order,
                        VenueOrderStatus.CANCELLED,
                        f"immediate-or-cancel: {order.remaining:.12g} unfilled was cancelled",
                    )
            elif tif is not TimeInForce.GTC:
                return self._finish(
                    txn,
                    order,
                    VenueOrderStatus.CANCELLED,
                    f"{tif.value}: the limit {order.price:.12g} did not cross the market ({tick.price:.12g})",
                )
        return self._reserve(txn, order, market)

    def _taker_price(
        self,
        side: OrderSide,
        price: float,
        qty: float,
        volume: float | None,
        market: MarketInfo,
        account: PaperAccountRecord,
    ) -> float:
        bps = pm.slippage_bps(
            account.slippage_bps,
            account.max_slippage_bps,
            impact_bps=account.volume_impact_bps,
            amount=qty,
            volume=volume,
        )
        return pm.slipped_price(price, side, bps, market.price_step)

    def _reserve(self, txn: _Txn, order: PaperOrderRecord, market: MarketInfo) -> PaperOrderRecord:
        """Lock what a resting order may need: margin for the part that would open a position,
        quote (value + taker fee) for a spot buy, base for a spot sell. Raises _Refused when it
        is not free: the order is then refused, as an exchange refuses it."""
        account = txn.book.account
        asset, amount = self._reservation(txn, order, market, account)
        if amount <= 0:
            return order
        free = txn.balance(asset).free
        if free + _EPSILON < amount:
            raise _Refused(
                f"{order.symbol}: the order needs {amount:.8g} {asset} but only {free:.8g} is free "
                f"({order.remaining:.12g} × {order.price or order.stop_price:.12g})"
            )
        txn.move(asset, free=-amount, used=amount)
        return txn.put_order(replace(order, reserved=order.reserved + amount))

    def _reservation(
        self, txn: _Txn, order: PaperOrderRecord, market: MarketInfo, account: PaperAccountRecord
    ) -> tuple[str, float]:
        reference = order.price if order.price is not None else order.stop_price
        assert reference is not None
        if market.type in _DERIVATIVES:
            if order.reduce_only:
                return market.quote, 0.0
            opening = order.remaining
            if account.position_mode is PositionMode.ONE_WAY:
                opposite = PositionSide.SHORT if order.side is OrderSide.BUY else PositionSide.LONG
                held = txn.book.positions.get((order.symbol, opposite))
                opening = max(0.0, opening - (held.contracts if held is not None else 0.0))
            leverage = order.leverage or self._setting(txn.book, market).leverage
            return market.quote, pm.initial_margin(reference, opening, leverage, market.contract_size)
        if order.side is OrderSide.SELL:
            return market.base, 0.0 if order.parent_id is not None else order.remaining
        if order.type in _STOP_TYPES:
            reference *= 1 + account.max_slippage_bps / 10_000
        rate = pm.fee_rate(market, maker=False, taker_override=account.taker_fee)
        return market.quote, pm.trade_value(reference, order.remaining) * (1 + max(rate, 0.0))

    # ----------------------------------------------------------------------- matching

    def _match(self, txn: _Txn, market: MarketInfo, tick: _Tick, only: set[str] | None = None) -> None:
        """Run one price against the symbol's open orders: stops first (they become market
        orders), then limits by price priority, each limited by the tick's liquidity. Children
        created by these fills are matched against the same price before returning."""
        account = txn.book.account
        symbol = market.symbol
        candidates = [
            o for o in txn.book.orders.values() if o.symbol == symbol and (only is None or o.id in only)
        ]
        candidates.sort(key=lambda o: o.created_ms)
        stops = [o for o in candidates if o.type in _STOP_TYPES]
        limits = [o for o in candidates if o.type is OrderType.LIMIT]
        limits.sort(key=lambda o: -(o.price or 0.0) if o.side is OrderSide.BUY else (o.price or 0.0))
        first_child = len(txn.new_children)

        for original in stops:
            order = txn.book.orders.get(original.id)
            if order is None or order.stop_price is None:
                continue
            if not pm.stop_triggered(order.type, order.side, order.stop_price, tick.price):
                continue
            qty = self._executable(txn, order, order.remaining, market)
            if qty <= 0:
                self._finish(
                    txn, order, VenueOrderStatus.CANCELLED, "triggered with no position left to reduce"
                )
                continue
            bps = pm.slippage_bps(
                account.slippage_bps,
                account.max_slippage_bps,
                impact_bps=account.volume_impact_bps,
                amount=qty,
                volume=tick.volume,
            )
            price = pm.stop_fill_price(tick.price, order.side, bps, market.price_step)
            after = self._fill_or_reject(txn, order, qty, price, maker=False, tick=tick, market=market)
            if after is not None and after.is_open:
                # A triggered stop is a market order: what could not execute now never will.
                self._finish(
                    txn, after, VenueOrderStatus.CANCELLED, f"only {qty:.12g} could execute when triggered"
                )

        liquidity = pm.tick_liquidity(tick.volume, account.volume_share)
        for original in limits:
            order = txn.book.orders.get(original.id)
            if order is None or order.price is None:
                continue
            if not pm.limit_traded_through(order.side, order.price, tick.price):
                continue
            if liquidity is not None and liquidity <= 0:
                break
            qty = pm.fillable_amount(
                order.remaining, order.amount, account.partial_fill_ratio, liquidity, market.amount_step
            )
            if qty <= 0:
                continue
            executable = self._executable(txn, order, qty, market)
            if executable <= 0:
                self._finish(txn, order, VenueOrderStatus.CANCELLED, "no position left to reduce")
                continue
            self._fill_or_reject(txn, order, executable, order.price, maker=True, tick=tick, market=market)
            if liquidity is not None:
                liquidity -= executable

        created = txn.new_children[first_child:]
        if created:
            self._match(txn, market, tick, only=set(created))

    def _fill_or_reject(
        self,
        txn: _Txn,
        order: PaperOrderRecord,
        qty: float,
        price: float,
        *,
        maker: bool,
        tick: _Tick,
        market: MarketInfo,
    ) -> PaperOrderRecord | None:
        """Fill, or end the order when the account cannot pay for the fill any more (a resting
        order's margin is checked again at fill time, as a triggered stop's is on exchanges)."""
        try:
            return self._fill(txn, order, qty, price, maker=maker, ts_ms=tick.ts_ms, market=market)
        except _Refused as refused:
            status = VenueOrderStatus.REJECTED if order.filled <= 0 else VenueOrderStatus.CANCELLED
            self._finish(txn, order, status, str(refused))
            return None

    def _executable(self, txn: _Txn, order: PaperOrderRecord, qty: float, market: MarketInfo) -> float:
        """How much of ``qty`` the account can execute: all of it, except that reducing orders
        stop at the position (and spot TP/SL children at the base balance)."""
        if market.type not in _DERIVATIVES:
            if order.parent_id is not None and order.side is OrderSide.SELL:
                return min(qty, pm.floor_to_step(max(txn.balance(market.base).free, 0.0), market.amount_step))
            return qty
        if not order.reduce_only:
            return qty
        long_position = txn.book.positions.get((order.symbol, PositionSide.LONG))
        short_position = txn.book.positions.get((order.symbol, PositionSide.SHORT))
        plan = pm.plan_fill(
            txn.book.account.position_mode,
            order.side,
            qty,
            long_contracts=long_position.contracts if long_position else 0.0,
            short_contracts=short_position.contracts if short_position else 0.0,
            position_side=order.position_side,
            reduce_only=True,
            amount_step=market.amount_step,
        )
        return plan.total

    def _fill(
        self,
        txn: _Txn,
        order: PaperOrderRecord,
        qty: float,
        price: float,
        *,
        maker: bool,
        ts_ms: int,
        market: MarketInfo,
    ) -> PaperOrderRecord:
        """Execute ``qty`` of ``order`` at ``price``: balances, position, fill and order, or
        raise _Refused (before changing anything) when the account cannot pay."""
        account = txn.book.account
        step = market.amount_step
        # Sizes are whole lots: 1.0 − 0.8 is 0.2 here, not 0.19999999999999996.
        qty = pm.clean_amount(qty, step)
        remaining = pm.clean_amount(order.remaining, step)
        last = qty >= remaining or pm.clean_amount(remaining - qty, step) <= 0
        release = order.reserved if last else order.reserved * qty / remaining
        reserved_asset = self._reservation_asset(order, market)
        rate = pm.fee_rate(
            market, maker=maker, maker_override=account.maker_fee, taker_override=account.taker_fee
        )
        fee = pm.trade_fee(price, qty, rate, market.contract_size)
        quote = market.quote  # linear contracts settle in the quote; spot pays in it
        realized = 0.0
        flat: list[PositionSide] = []

        if market.type in _DERIVATIVES:
            long_key, short_key = (order.symbol, PositionSide.LONG), (order.symbol, PositionSide.SHORT)
            long_position = txn.book.positions.get(long_key)
            short_position = txn.book.positions.get(short_key)
            plan = pm.plan_fill(
                account.position_mode,
                order.side,
                qty,
                long_contracts=long_position.contracts if long_position else 0.0,
                short_contracts=short_position.contracts if short_position else 0.0,
                position_side=order.position_side,
                reduce_only=order.reduce_only,
                amount_step=step,
            )
            setting = self._setting(txn.book, market)
            settlement = pm.settle_derivative_fill(
                plan,
                price,
                fee,
                long=_state(long_position) if long_position else None,
                short=_state(short_position) if short_position else None,
                leverage=setting.leverage,
                margin_mode=setting.margin_mode,
                contract_size=market.contract_size,
                amount_step=step,
            )
            balance = txn.balance(quote)
            free = balance.free + release + settlement.free_delta
            if free < -_EPSILON:
                raise _Refused(
                    f"{order.symbol}: {qty:.12g} at {price:.12g} needs {settlement.added_margin:.8g} {quote} "
                    f"margin + {fee:.8g} fee, but only {balance.free + release:.8g} is free"
                )
            used = balance.used - release - settlement.released_margin + settlement.added_margin
            txn.put_balance(replace(balance, free=free, used=used))
            realized = settlement.realized_pnl
            for updated in (settlement.closed, settlement.opened):
                if updated is None:
                    continue
                key = (order.symbol, updated.side)
                if updated.contracts <= 0:
                    txn.put_position(key, None)
                    flat.append(updated.side)
                else:
                    txn.put_position(key, _record(order.symbol, updated))
        else:
            spot = pm.settle_spot_fill(order.side, qty, price, fee)
            quote_balance, base_balance = txn.balance(quote), txn.balance(market.base)
            if reserved_asset == quote:
                quote_balance = replace(
                    quote_balance, free=quote_balance.free + release, used=quote_balance.used - release
                )
            else:
                base_balance = replace(
                    base_balance, free=base_balance.free + release, used=base_balance.used - release
                )
            if quote_balance.free + spot.quote_delta < -_EPSILON:
                raise _Refused(
                    f"{order.symbol}: buying {qty:.12g} at {price:.12g} costs {-spot.quote_delta:.8g} "
                    f"{quote} with the fee, but only {quote_balance.free:.8g} is free"
                )
            if base_balance.free + spot.base_delta < -_EPSILON * max(1.0, qty):
                raise _Refused(
                    f"{order.symbol}: selling {qty:.12g} {market.base} needs that much free, but only "
                    f"{base_balance.free:.8g} is"
                )
            txn.put_balance(replace(quote_balance, free=quote_balance.free + spot.quote_delta))
            txn.put_balance(replace(base_balance, free=base_balance.free + spot.base_delta))

        txn.changes.fills.append(
            PaperFillRecord(
                id=None,  # numbered by the database, in execution order
                order_id=order.id,
                symbol=order.symbol,
                side=order.side,
                price=price,
                amount=qty,
                fee=fee,
                fee_currency=quote,
                maker=maker,
                realized_pnl=realized,
                ts_ms=ts_ms,
            )
        )
        filled = order.amount if last else pm.clean_amount(order.filled + qty, step)
        average = ((order.average or 0.0) * order.filled + price * qty) / (order.filled + qty)
        after = txn.put_order(
            replace(
                order,
                filled=filled,
                average=average,
                fee=order.fee + fee,
                reserved=0.0 if last else order.reserved - release,
                status=VenueOrderStatus.FILLED if last else VenueOrderStatus.PARTIALLY_FILLED,
                updated_ms=ts_ms,
            )
        )
        self._sync_children(txn, order, after, market)
        if after.parent_id is not None and not after.is_open:
            self._cancel_siblings(txn, after)
        for side in flat:
            self._cancel_reducers(txn, order.symbol, side)
        # The order itself may just have been cancelled with its position.
        return txn.changes.orders[after.id]

    def _reservation_asset(self, order: PaperOrderRecord, market: MarketInfo) -> str:
        """Spot sells hold the base asset; everything else holds the quote."""
        if market.type not in _DERIVATIVES and order.side is OrderSide.SELL:
            return market.base
        return market.quote

    def _finish(
        self, txn: _Txn, order: PaperOrderRecord, status: VenueOrderStatus, reason: str | None
    ) -> PaperOrderRecord:
        """End an order (cancelled, rejected, expired) and give back what it reserved."""
        current = txn.book.orders.get(order.id, order)
        if current.reserved:
            asset = self._reservation_asset(current, self._data.market(current.symbol))
            txn.move(asset, free=current.reserved, used=-current.reserved)
        return txn.put_order(
            replace(current, status=status, reserved=0.0, reject_reason=reason, updated_ms=txn.now_ms)
        )

    def _sync_children(
        self, txn: _Txn, before: PaperOrderRecord, after: PaperOrderRecord, market: MarketInfo
    ) -> None:
        """Attached TP/SL: created reduce-only on the entry's first fill for the filled amount,
        resized while the entry keeps filling. Once a child has ended (triggered or cancelled
        with its position) later fills of the entry do not recreate it."""
        if after.parent_id is not None or (after.take_profit is None and after.stop_loss is None):
            return
        children = [o for o in txn.book.orders.values() if o.parent_id == after.id]
        if children:
            for child in children:
                if child.filled <= 0 and child.amount != after.filled:
                    txn.put_order(replace(child, amount=after.filled, updated_ms=txn.now_ms))
            return
        if before.filled > 0:
            return
        derivative = market.type in _DERIVATIVES
        side = OrderSide.SELL if after.side is OrderSide.BUY else OrderSide.BUY
        for kind, level in (
            (OrderType.TAKE_PROFIT, after.take_profit),
            (OrderType.STOP_LOSS, after.stop_loss),
        ):
            if level is None:
                continue
            child = PaperOrderRecord(
                id=new_id(),
                client_order_id=_child_client_id(after.client_order_id, kind),
                symbol=after.symbol,
                side=side,
                type=kind,
                status=VenueOrderStatus.OPEN,
                amount=after.filled,
                filled=0.0,
                price=None,
                stop_price=level,
                average=None,
                fee=0.0,
                fee_currency=after.fee_currency,
                reduce_only=derivative,
                position_side=after.position_side,
                time_in_force=TimeInForce.GTC,
                leverage=after.leverage,
                take_profit=None,
                stop_loss=None,
                reserved=0.0,
                reject_reason=None,
                created_ms=txn.now_ms,
                updated_ms=txn.now_ms,
                parent_id=after.id,
            )
            txn.put_order(child)
            txn.new_children.append(child.id)

    def _cancel_siblings(self, txn: _Txn, child: PaperOrderRecord) -> None:
        """One-cancels-the-other between the TP and SL of one entry."""
        if child.status is not VenueOrderStatus.FILLED:
            return
        for other in list(txn.book.orders.values()):
            if other.parent_id == child.parent_id and other.id != child.id:
                self._finish(txn, other, VenueOrderStatus.CANCELLED, f"the {child.type.value} sibling filled")

    def _cancel_reducers(self, txn: _Txn, symbol: str, side: PositionSide) -> None:
        """A flat position takes its reduce-only orders with it (as Bybit and OKX do)."""
        hedge = txn.book.account.position_mode is PositionMode.HEDGE
        for other in list(txn.book.orders.values()):
            if other.symbol != symbol or not other.reduce_only:
                continue
            addresses = other.position_side is side if hedge else pm.closes(other.side, side)
            if addresses:
                self._finish(txn, other, VenueOrderStatus.CANCELLED, f"the {side.value} position was closed")

    # ----------------------------------------------------------------------- plumbing

    def _setting(self, book: _Book, market: MarketInfo) -> PaperSymbolSettingRecord:
        setting = book.settings.get(market.symbol)
        if setting is not None:
            return setting
        leverage = book.account.default_leverage
        if market.max_leverage is not None:
            leverage = min(leverage, market.max_leverage)
        return PaperSymbolSettingRecord(market.symbol, leverage, book.account.margin_mode)

    async def _commit(self, txn: _Txn) -> None:
        """Persist the transaction, then (only then) make it the live state and tell watchers."""
        if txn.changes:
            try:
                await self._repository.apply(self._account_id, txn.changes)
            except SQLAlchemyError as exc:
                raise UnknownExchangeError(
                    self.name,
                    "the paper account could not be saved; the change was not applied",
                    detail=str(exc),
                ) from exc
        self._book = txn.book
        if txn.changes.orders:
            self._notify([_snapshot(order) for order in txn.changes.orders.values()])

    def _notify(self, updates: list[OrderSnapshot]) -> None:
        if not self._watchers:
            return
        for key, buffer in self._watchers.items():
            buffer.extend(u for u in updates if key is None or u.symbol == key)
        event, self._watch_event = self._watch_event, asyncio.Event()
        event.set()


def _child_client_id(parent: str, kind: OrderType) -> str:
    return f"{parent}:{'tp' if kind is OrderType.TAKE_PROFIT else 'sl'}"


def _state(position: PaperPositionRecord) -> pm.PositionState:
    return pm.PositionState(
        side=position.side,
        contracts=position.contracts,
        entry_price=position.entry_price,
        leverage=position.leverage,
        margin_mode=position.margin_mode,
        margin=position.margin,
        realized_pnl=position.realized_pnl,
    )


def _record(symbol: str, state: pm.PositionState) -> PaperPositionRecord:
    return PaperPositionRecord(
        symbol=symbol,
        side=state.side,
        contracts=state.contracts,
        entry_price=state.entry_price,
        leverage=state.leverage,
        margin_mode=state.margin_mode,
        margin=state.margin,
        realized_pnl=state.realized_pnl,
    )


def _snapshot(order: PaperOrderRecord) -> OrderSnapshot:
    return OrderSnapshot(
        id=order.id,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        status=order.status,
        amount=order.amount,
        filled=order.filled,
        price=order.price,
        average=order.average,
        fee=order.fee,
        fee_currency=order.fee_currency,
        timestamp_ms=order.created_ms,
        reduce_only=order.reduce_only,
        reject_reason=order.reject_reason,
    )

"""Market and account value types every venue returns (ccxt, paper, replay, simulated).

Plain frozen dataclasses: the engine and the UI never see a ccxt dict, so a venue can be
swapped (paper ⇄ live, replay in a backtest) without touching their code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class VenueOrderStatus(StrEnum):
    """What the venue says about an order (our own lifecycle adds pending/lost states on top)."""

    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"


class MarginMode(StrEnum):
    CROSS = "cross"
    ISOLATED = "isolated"


class PositionMode(StrEnum):
    HEDGE = "hedge"
    ONE_WAY = "one_way"


class MarketType(StrEnum):
    SPOT = "spot"
    SWAP = "swap"
    FUTURE = "future"


class StreamStatus(StrEnum):
    """Shown next to every symbol in the Market panel."""

    CONNECTING = "connecting"
    LIVE = "live"
    STALE = "stale"
    RECONNECTING = "reconnecting"
    POLLING = "polling"  # websocket unavailable, REST fallback in use
    STOPPED = "stopped"


ALIVE_STREAM_STATUSES = frozenset({StreamStatus.LIVE, StreamStatus.POLLING})
"""A stream that delivers prices (the REST fallback counts: it is slower, not lost)."""
FAILING_STREAM_STATUSES = frozenset({StreamStatus.STALE, StreamStatus.RECONNECTING, StreamStatus.STOPPED})
"""A stream that does not deliver prices."""


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """Trading rules of one symbol; sizes are rounded to these before an order is sent (D13)."""

    symbol: str
    base: str
    quote: str
    type: MarketType
    price_step: float | None = None  # tick size
    amount_step: float | None = None  # lot step (in contracts for derivatives)
    min_amount: float | None = None
    min_cost: float | None = None
    contract_size: float = 1.0
    max_leverage: float | None = None
    maker_fee: float | None = None  # fraction, 0.0002 = 0.02 %
    taker_fee: float | None = None
    linear: bool = True
    active: bool = True


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    timestamp_ms: int
    last: float
    bid: float | None = None
    ask: float | None = None
    high_24h: float | None = None
    low_24h: float | None = None
    change_pct_24h: float | None = None
    base_volume_24h: float | None = None
    quote_volume_24h: float | None = None


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bar; ``ts_ms`` is the bar's open time in UTC milliseconds."""

    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: float
    used: float
    total: float


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order as the engine wants it; ``client_order_id`` is generated and stored before sending."""

    symbol: str
    side: OrderSide
    type: OrderType
    amount: float
    client_order_id: str
    price: float | None = None  # limit price
    stop_price: float | None = None  # trigger for stop_loss / take_profit orders
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    position_side: PositionSide | None = None  # hedge mode
    take_profit: float | None = None  # attached TP/SL where the venue supports it
    stop_loss: float | None = None


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    id: str
    client_order_id: str | None
    symbol: str
    side: OrderSide
    type: OrderType
    status: VenueOrderStatus
    amount: float
    filled: float
    price: float | None = None
    average: float | None = None
    fee: float = 0.0
    fee_currency: str | None = None
    timestamp_ms: int | None = None
    reduce_only: bool = False
    reject_reason: str | None = None

    @property
    def remaining(self) -> float:
        return max(self.amount - self.filled, 0.0)


@dataclass(frozen=True, slots=True)
class Fill:
    id: str
    order_id: str
    symbol: str
    side: OrderSide
    price: float
    amount: float
    fee: float
    fee_currency: str | None
    timestamp_ms: int
    maker: bool = False


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    symbol: str
    side: PositionSide
    contracts: float
    entry_price: float
    mark_price: float | None = None
    leverage: float | None = None
    margin_mode: MarginMode | None = None
    unrealized_pnl: float | None = None
    realized_pnl: float | None = None
    liquidation_price: float | None = None
    notional: float | None = None
    extra: dict[str, float] = field(default_factory=dict, compare=False)


class ApiType(StrEnum):
    """Which account/market family a connection trades (DOMAIN §5)."""

    UNIFIED = "unified"  # Bybit's unified account: spot and USDT perpetuals
    PERPETUAL_FUTURES = "perpetual_futures"  # USDT-margined perpetual swaps
    SPOT = "spot"

"""The one protocol the engine uses for every venue: ccxt exchanges, paper, replay and simulated.

Streaming methods follow ccxt.pro's shape (each call returns the next update), so one stream
supervisor adds reconnects, staleness detection and REST fallback for every venue alike.
Every method raises only ``cts_desktop.exchanges.errors.ExchangeError`` subclasses.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cts_desktop.domain.market import (
    Balance,
    Candle,
    MarginMode,
    MarketInfo,
    OrderRequest,
    OrderSnapshot,
    PositionSnapshot,
    Ticker,
)


@runtime_checkable
class Exchange(Protocol):
    @property
    def name(self) -> str:
        """Venue id for logs and messages: 'binance', 'bybit', 'paper', 'simulated'…"""
        ...

    @property
    def supports_streaming(self) -> bool:
        """False when ``watch_*`` are unavailable and the supervisor must poll over REST."""
        ...

    async def load_markets(self, *, reload: bool = False) -> dict[str, MarketInfo]: ...

    def market(self, symbol: str) -> MarketInfo:
        """Rules of a loaded symbol; raises BadSymbolError for an unknown one."""
        ...

    async def fetch_server_time(self) -> int: ...

    async def fetch_ticker(self, symbol: str) -> Ticker: ...

    async def fetch_tickers(self, symbols: list[str] | None = None) -> dict[str, Ticker]: ...

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since_ms: int | None = None, limit: int | None = None
    ) -> list[Candle]: ...

    async def watch_ticker(self, symbol: str) -> Ticker: ...

    async def watch_ohlcv(self, symbol: str, timeframe: str = "1m") -> list[Candle]: ...

    async def watch_orders(self, symbol: str | None = None) -> list[OrderSnapshot]: ...

    async def fetch_balance(self) -> dict[str, Balance]: ...

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[PositionSnapshot]: ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]: ...

    async def create_order(self, request: OrderRequest) -> OrderSnapshot: ...

    async def cancel_order(self, order_id: str, symbol: str) -> OrderSnapshot: ...

    async def fetch_order(self, order_id: str, symbol: str) -> OrderSnapshot: ...

    async def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> OrderSnapshot:
        """Raises OrderNotFoundError when the venue has no order with this client id."""
        ...

    async def set_leverage(self, symbol: str, leverage: float) -> None: ...

    async def set_margin_mode(self, symbol: str, mode: MarginMode) -> None: ...

    async def set_position_mode(self, hedged: bool) -> None: ...

    async def close(self) -> None: ...

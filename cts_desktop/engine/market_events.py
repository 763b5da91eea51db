"""Market-data events the MarketBus publishes on the EventBus.

``source`` is the venue or connection the data came from (several connections can stream the same
symbol at different prices), so subscribers key their state by ``(source, symbol)``, as the bus does.
The UI bridge coalesces these events (≤ 10 refreshes per second per panel); the engine receives
every one.
"""

from __future__ import annotations

from dataclasses import dataclass

from cts_desktop.domain.market import Candle, StreamStatus, Ticker
from cts_desktop.engine.events import Event
from cts_desktop.exchanges.streams import StreamKind

__all__ = ["CandleClosed", "StreamKind", "StreamStatusChanged", "TickerUpdated"]


@dataclass(frozen=True, slots=True)
class TickerUpdated(Event):
    """A newer ticker arrived (websocket or REST poll)."""

    source: str
    symbol: str
    ticker: Ticker


@dataclass(frozen=True, slots=True)
class CandleClosed(Event):
    """A bar is final: published exactly once, when the first update of a newer bar arrives.

    Indications that work on closed bars subscribe to this and never see a half-built bar.
    """

    source: str
    symbol: str
    timeframe: str
    candle: Candle


@dataclass(frozen=True, slots=True)
class StreamStatusChanged(Event):
    """A symbol's stream changed state (live, stale, reconnecting, polling, stopped…).

    ``reason`` is a sentence a trader understands (the error text, "no update for 30 s"…); it is
    empty when the new status needs no explanation (LIVE).
    """

    source: str
    symbol: str
    stream: StreamKind
    status: StreamStatus
    reason: str = ""

"""Runs one market-data venue into the shared MarketBus: the application's live market.

With no exchange configured (or no network) the venue is the seeded simulated market, so the
application always shows a living market in paper mode; a connection's engine later runs its
own exchange's stream into the same bus under its own source name (D19).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.streams import StreamSupervisor

log = logging.getLogger(__name__)


class MarketService:
    def __init__(
        self,
        bus: MarketBus,
        venue: Exchange,
        symbols: Sequence[str],
        *,
        timeframe: str = "1m",
        stale_after_s: float = 30.0,
    ) -> None:
        self.bus = bus
        self.venue = venue
        self._symbols = list(symbols)
        self._timeframe = timeframe
        self._stale_after_s = stale_after_s
        self._supervisor: StreamSupervisor | None = None

    @property
    def source(self) -> str:
        return self.venue.name

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    @property
    def running(self) -> bool:
        return self._supervisor is not None and self._supervisor.running

    async def start(self) -> None:
        if self._supervisor is not None:
            return
        feed = self.bus.feed(self.source)
        self._supervisor = StreamSupervisor(
            self.venue,
            self._symbols,
            on_ticker=feed.on_ticker,
            on_candles=feed.on_candles,
            on_status=feed.on_status,
            timeframe=self._timeframe,
            stale_after_s=self._stale_after_s,
        )
        self._supervisor.start()
        log.info("market stream started: %s, %d symbols", self.source, len(self._symbols))

    async def stop(self) -> None:
        if self._supervisor is None:
            return
        supervisor, self._supervisor = self._supervisor, None
        await supervisor.stop()
        log.info("market stream stopped: %s", self.source)

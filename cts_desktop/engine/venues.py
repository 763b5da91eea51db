"""Which venues a connection's engine uses: where its prices come from and where its orders go.

Two roles, decided here and nowhere else:

- **data venue** (the market stream and the symbol list): the ``--replay`` candle files when the
  application runs a replay, the seeded simulated market for the built-in "Simulated market"
  connection, otherwise the connection's own exchange through ccxt, public data only (D19: each
  connection streams from its own exchange);
- **trading venue** (orders, balances, positions): in paper mode a :class:`PaperExchange` over
  that data venue, with a persisted paper account per connection (``paper-<connection id>``) on
  the application database, so a restart continues the same paper positions; in live mode the
  connection's ccxt venue with its credentials.

Paper is the default and the only mode this factory chooses by itself: it builds a live venue
only when asked for ``TradingMode.LIVE`` (the coordinator asks only after its live-permission
hook agreed), and a live request for a venue that cannot trade live, or without stored
credentials, raises instead of quietly trading paper or live by surprise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import MarginMode, PositionMode
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.candle_files import timeframe_label
from cts_desktop.exchanges.catalog import EXCHANGES
from cts_desktop.exchanges.clock import Clock
from cts_desktop.exchanges.errors import AuthenticationError, NotSupportedError
from cts_desktop.exchanges.factory import create_venue_for_connection
from cts_desktop.exchanges.paper import AccountSettings, PaperExchange
from cts_desktop.exchanges.replay import ReplayExchange, ReplaySource, load_replay_sources
from cts_desktop.redaction import Redactor
from cts_desktop.storage.repositories.paper import PaperRepository
from cts_desktop.storage.secrets import Credentials

if TYPE_CHECKING:
    from cts_desktop.storage.database import Database
    from cts_desktop.storage.repositories.connections import ConnectionRecord

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_STALE_AFTER_S",
    "EngineVenueFactory",
    "EngineVenues",
    "ReplayFeed",
    "VenueFactory",
    "paper_account_id",
    "source_name",
]

DEFAULT_STALE_AFTER_S = 30.0
"""A live stream silent this long is treated as dead (the stream supervisor's default)."""

type PriceSink = Callable[[str, float, int], Awaitable[None]]
"""``on_price(symbol, price, ts_ms)``: feeds one traded price to a simulated venue's matching."""


def paper_account_id(connection_id: str) -> str:
    """One persisted paper account per connection, so paper positions survive a restart."""
    return f"paper-{connection_id}"


def source_name(record: ConnectionRecord) -> str:
    """The MarketBus source a connection's engine streams under (D19: its own prices, not a
    shared feed); the connection's name, because that is what the Market panel shows."""
    return record.name


@dataclass(frozen=True, slots=True)
class EngineVenues:
    """The venues one engine runs on, and who closes them.

    ``owns_data`` is False when the data venue is shared (the application's one simulated
    market): the engine must then not close it. ``on_price`` is set in paper mode, where every
    streamed price must reach the paper venue's matching so resting TP/SL orders fill.
    ``timeframe`` is the candle stream's (a replay of hourly candles cannot stream 1m bars).
    """

    data: Exchange
    trading: Exchange
    mode: TradingMode
    source: str
    owns_data: bool = True
    stale_after_s: float = DEFAULT_STALE_AFTER_S
    on_price: PriceSink | None = None
    timeframe: str = "1m"

    async def close(self) -> None:
        """Close the trading venue, then the data venue if this engine owns it (each once)."""
        try:
            await self.trading.close()
        finally:
            if self.owns_data and self.data is not self.trading:
                await self.data.close()


class EngineVenueFactory(Protocol):
    """Builds the venues for one start of one connection's engine (a fresh set per start)."""

    async def __call__(self, record: ConnectionRecord, mode: TradingMode) -> EngineVenues: ...


@dataclass(frozen=True, slots=True)
class ReplayFeed:
    """Candle files replayed as every engine's market (``cts-desktop run --replay FILE``).

    The files are read once; each engine gets its own :class:`ReplayExchange` over the same
    candles, because a replay's streams are shared by all their readers and its market time
    starts with its first reader: separate instances keep engines from stealing each other's
    ticks. ``speed`` is market time per clock time (None: as fast as the engines pull).
    """

    sources: tuple[ReplaySource, ...]
    speed: float | None = 1.0
    clock: Clock | None = None

    @classmethod
    def from_files(
        cls, files: Sequence[str | Path] | Mapping[str, str | Path], speed: float | None
    ) -> ReplayFeed:
        """Load the files (any candle format ``candle_files`` reads); raises ``CandleFileError`` or
        ``ValueError`` with the file's problem."""
        return cls(tuple(load_replay_sources(files)), speed or None)

    @property
    def symbols(self) -> list[str]:
        return [source.symbol for source in self.sources]

    @property
    def timeframe(self) -> str:
        """The candle timeframe every replayed file can produce: its coarsest bar interval."""
        interval = max(source.interval_ms for source in self.sources)
        return timeframe_label(interval) or "1m"

    @property
    def stale_after_s(self) -> float:
        """Replayed ticks arrive every quarter bar of market time; at a slow speed that is longer
        than a live stream's silence limit, so the limit grows with it (three tick spacings)."""
        if self.speed is None:
            return DEFAULT_STALE_AFTER_S
        spacing_s = max(source.interval_ms for source in self.sources) / 4 / self.speed / 1000.0
        return max(DEFAULT_STALE_AFTER_S, math.ceil(3 * spacing_s))

    def venue(self) -> ReplayExchange:
        # raise_at_end: at the end of the data the streams stop with that reason instead of
        # going stale and reconnecting for ever.
        return ReplayExchange(self.sources, clock=self.clock, speed=self.speed, raise_at_end=True)


class VenueFactory:
    """The application's :class:`EngineVenueFactory` (see the module docstring for the rules).

    ``simulated`` is the application's shared simulated market (the venue the Market panel
    streams): the Simulated-market connection reads the very same prices. ``public_venue`` builds
    a connection's exchange without credentials; injectable so tests reach ccxt through a fake
    HTTP session.
    """

    def __init__(
        self,
        *,
        database: Database,
        redactor: Redactor,
        credentials: Callable[[str], Awaitable[Credentials | None]],
        simulated: Exchange,
        replay: ReplayFeed | None = None,
        paper_account: AccountSettings | None = None,
        public_venue: Callable[[ConnectionRecord], Exchange] | None = None,
    ) -> None:
        self._database = database
        self._redactor = redactor
        self._credentials = credentials
        self._simulated = simulated
        self._replay = replay
        self._paper_account = paper_account or AccountSettings()
        self._public_venue = public_venue or (
            lambda record: create_venue_for_connection(record, None, self._redactor)
        )

    async def __call__(self, record: ConnectionRecord, mode: TradingMode) -> EngineVenues:
        source = source_name(record)
        if mode is TradingMode.LIVE:
            return await self._live(record, source)
        data, owns, stale = self._data_venue(record)
        timeframe = self._replay.timeframe if self._replay is not None else "1m"
        paper = PaperExchange(
            data,
            PaperRepository(self._database),
            account_id=paper_account_id(record.id),
            create_if_missing=self._account_settings(record),
        )
        return EngineVenues(
            data=data,
            trading=paper,
            mode=TradingMode.PAPER,
            source=source,
            owns_data=owns,
            stale_after_s=stale,
            on_price=paper.on_price,
            timeframe=timeframe,
        )

    def _data_venue(self, record: ConnectionRecord) -> tuple[Exchange, bool, float]:
        if self._replay is not None:
            return self._replay.venue(), True, self._replay.stale_after_s
        spec = EXCHANGES.get(record.exchange)
        if spec is not None and spec.builtin:
            return self._simulated, False, DEFAULT_STALE_AFTER_S
        return self._public_venue(record), True, DEFAULT_STALE_AFTER_S

    def _account_settings(self, record: ConnectionRecord) -> AccountSettings:
        """The template account with this connection's name, modes and id (other fields as given)."""
        base = self._paper_account
        return replace(
            base,
            name=f"Paper {record.name}"[:100],
            position_mode=_enum(PositionMode, record.position_mode, base.position_mode),
            margin_mode=_enum(MarginMode, record.margin_mode, base.margin_mode),
            connection_id=record.id,
        )

    async def _live(self, record: ConnectionRecord, source: str) -> EngineVenues:
        spec = EXCHANGES.get(record.exchange)
        if spec is None or not spec.supported or not spec.live_capable or spec.builtin:
            raise NotSupportedError(record.exchange, f"{record.name} cannot trade live on {record.exchange}")
        if self._replay is not None:
            raise NotSupportedError(record.exchange, "a replay never trades live; run it in paper mode")
        credentials = await self._credentials(record.id)
        if credentials is None:
            raise AuthenticationError(
                record.exchange, f"no API key is stored for {record.name}; add it before trading live"
            )
        venue = create_venue_for_connection(record, credentials, self._redactor)
        return EngineVenues(data=venue, trading=venue, mode=TradingMode.LIVE, source=source)


def _enum[E: (PositionMode, MarginMode)](kind: type[E], value: str, default: E) -> E:
    try:
        return kind(value)
    except ValueError:
        return default

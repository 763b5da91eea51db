"""Market stream supervision: keep every symbol's ticker (and candle) stream alive, one task each.

Venues drop websockets, go silent without closing them, rate-limit us or offer no streaming at
all. The original app had one hard-coded socket for everything (DOMAIN D19) that reconnected every
5 s at most 10 times and then gave up (§7). Here every ``(symbol, stream)`` pair gets its own
supervised asyncio task that:

- calls ``watch_ticker`` / ``watch_ohlcv`` in a loop (ccxt.pro shape: each call returns the next
  update) and reports LIVE while messages flow;
- on a retryable ``ExchangeError`` reports RECONNECTING and retries after an exponential backoff
  with jitter (so 50 symbols do not reconnect in lock-step);
- on a non-retryable one (authentication, permission, bad symbol…) stops *that* symbol with status
  STOPPED and the reason: retrying would fail the same way and may get the key locked;
- treats "no message for ``stale_after_s``" as a dead connection (a socket can stay open while
  the venue stops sending): reports STALE, cancels the pending watch and reconnects;
- falls back to REST polling (status POLLING) when the venue has no streaming, when ``watch_*``
  raises ``NotSupportedError``, or after ``fallback_after_failures`` websocket failures in a row,
  and tries the websocket again every ``ws_retry_interval_s`` while polling.

A failure in one task (or in a callback) never touches another symbol: each task owns its own
backoff state and catches its own errors.

Plain asyncio, no Qt: the same supervisor runs under qasync in the app, headless in the CLI and in
tests. Timings are coarse on purpose (qasync timers are about ±5 % off, PITFALLS.md): staleness is
detected between ``stale_after_s`` and 1.1 × ``stale_after_s`` after the last message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from cts_desktop.domain.market import Candle, StreamStatus, Ticker

# NOTE(layering): backoff lives in engine/ (it is also used for order and engine retries) but is a
# leaf module with no engine dependencies, so importing it here creates no cycle.
from cts_desktop.exchanges.backoff import Backoff, BackoffPolicy, Jitter
from cts_desktop.exchanges.errors import ErrorKind, ExchangeError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RECONNECT_POLICY",
    "CandlesCallback",
    "MarketDataSource",
    "StatusCallback",
    "StreamInfo",
    "StreamKind",
    "StreamSupervisor",
    "TickerCallback",
]


class StreamKind(StrEnum):
    """Which of a symbol's streams a status belongs to; a symbol can have a ticker and a candle stream."""

    TICKER = "ticker"
    CANDLES = "candles"


class MarketDataSource(Protocol):
    """The part of the ``Exchange`` protocol the supervisor uses; every ``Exchange`` satisfies it.

    Kept this narrow so replay and simulated feeds (and test fakes) need not implement trading.
    """

    @property
    def name(self) -> str: ...

    @property
    def supports_streaming(self) -> bool: ...

    async def fetch_ticker(self, symbol: str) -> Ticker: ...

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since_ms: int | None = None, limit: int | None = None
    ) -> list[Candle]: ...

    async def watch_ticker(self, symbol: str) -> Ticker: ...

    async def watch_ohlcv(self, symbol: str, timeframe: str = "1m") -> list[Candle]: ...


type TickerCallback = Callable[[Ticker], None]
"""``on_ticker(ticker)``: one new ticker (``ticker.symbol`` says which)."""
type CandlesCallback = Callable[[str, str, list[Candle]], None]
"""``on_candles(symbol, timeframe, candles)``: the venue's latest bars, oldest first."""
type StatusCallback = Callable[[str, StreamKind, StreamStatus, str], None]
"""``on_status(symbol, stream, status, reason)``: called only when status or reason changes."""

DEFAULT_RECONNECT_POLICY = BackoffPolicy(
    base_s=1.0, factor=2.0, cap_s=30.0, max_attempts=None, jitter=Jitter.FULL
)
"""1 s, 2 s, 4 s … capped at 30 s, fully jittered; the supervisor never gives up on its own."""

_STALE_SLACK = 0.1
"""The staleness deadline is moved at most every 10 % of ``stale_after_s`` instead of on every
message (moving an asyncio timer allocates a new handle): cheap at 50 symbols × many ticks/s, and
detection lands within [stale_after_s, 1.1 × stale_after_s] of the last message."""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A snapshot of one stream for the Market panel and the self-test."""

    symbol: str
    stream: StreamKind
    status: StreamStatus
    reason: str
    messages: int
    last_message_age_s: float | None


class _Stopped(Exception):
    """A non-retryable failure: this stream ends with status STOPPED and ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Stale(Exception):
    """No message for ``stale_after_s``: the pending watch was cancelled."""


class _NoWebsocket(Exception):
    """The venue said it cannot stream this (NotSupportedError): poll for good."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _really_cancelled() -> bool:
    """True when our own task is being cancelled (stop, remove), not a stray CancelledError.

    Some venue libraries raise CancelledError from a request when their socket is closed under
    them; treating that as our cancellation would end the stream silently with a stale status.
    """
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


class _Stream[T]:
    """State of one supervised ``(symbol, stream)`` pair; owned by exactly one task."""

    __slots__ = (
        "backoff",
        "callback_errors",
        "deliver",
        "kind",
        "last_message_at",
        "messages",
        "poll",
        "poll_backoff",
        "reason",
        "session_delivered",
        "status",
        "symbol",
        "task",
        "watch",
    )

    def __init__(
        self,
        symbol: str,
        kind: StreamKind,
        *,
        watch: Callable[[], Awaitable[T]],
        poll: Callable[[], Awaitable[T]],
        deliver: Callable[[T], None],
        backoff: Backoff,
        poll_backoff: Backoff,
    ) -> None:
        self.symbol = symbol
        self.kind = kind
        self.watch = watch
        self.poll = poll
        self.deliver = deliver
        self.backoff = backoff
        self.poll_backoff = poll_backoff
        self.status = StreamStatus.CONNECTING
        self.reason = ""
        self.messages = 0
        self.last_message_at: float | None = None
        self.session_delivered = False
        self.callback_errors = 0
        self.task: asyncio.Task[None] | None = None


class StreamSupervisor:
    """Supervises the ticker stream (and, with ``on_candles``, the candle stream) of many symbols.

    Lifecycle: construct, ``start()`` on a running loop, ``add_symbols`` / ``await remove_symbols``
    at any time, ``await stop()`` to cancel and await every task. Usable as ``async with``.

    ``clock`` (seconds, monotonic) only timestamps messages for ``info().last_message_age_s``;
    waiting uses the loop's own timers, and ``sleep`` is injectable so tests can record the
    backoff delays instead of waiting them out. ``rng`` seeds the jitter: each stream draws its
    own ``random.Random`` from it, in the order the symbols were added, so runs are reproducible.
    """

    def __init__(
        self,
        exchange: MarketDataSource,
        symbols: Iterable[str],
        *,
        on_ticker: TickerCallback,
        on_status: StatusCallback,
        on_candles: CandlesCallback | None = None,
        timeframe: str = "1m",
        stale_after_s: float = 30.0,
        backoff: BackoffPolicy = DEFAULT_RECONNECT_POLICY,
        poll_interval_s: float = 5.0,
        fallback_after_failures: int = 5,
        ws_retry_interval_s: float = 60.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if stale_after_s <= 0 or poll_interval_s <= 0 or ws_retry_interval_s <= 0:
            raise ValueError("stale_after_s, poll_interval_s and ws_retry_interval_s must be > 0")
        if fallback_after_failures < 1:
            raise ValueError(f"fallback_after_failures must be >= 1, got {fallback_after_failures}")
        self._source = exchange
        self._on_ticker = on_ticker
        self._on_candles = on_candles
        self._on_status = on_status
        self._timeframe = timeframe
        self._stale_after_s = stale_after_s
        self._policy = backoff
        self._poll_interval_s = poll_interval_s
        self._fallback_after = fallback_after_failures
        self._ws_retry_interval_s = ws_retry_interval_s
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._clock = clock
        self._sleep = sleep
        self._streams: dict[tuple[str, StreamKind], _Stream[Any]] = {}
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.add_symbols(symbols)

    # ------------------------------------------------------------------ public API

    @property
    def source(self) -> str:
        return self._source.name

    @property
    def timeframe(self) -> str:
        return self._timeframe

    @property
    def symbols(self) -> tuple[str, ...]:
        """Supervised symbols in the order they were added."""
        return tuple(dict.fromkeys(symbol for symbol, _ in self._streams))

    @property
    def running(self) -> bool:
        return self._started

    def start(self) -> None:
        """Start one task per stream; must be called on the running loop. Idempotent."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._started = True
        for stream in self._streams.values():
            self._spawn(stream)

    async def stop(self) -> None:
        """Cancel every stream task and wait until all have ended; statuses become STOPPED.

        Awaiting the cancelled tasks (instead of only cancelling them) is what keeps asyncio from
        warning "Task was destroyed but it is pending" when the loop closes.
        """
        self._started = False
        streams = list(self._streams.values())
        await self._cancel(streams)
        for stream in streams:
            if stream.status is not StreamStatus.STOPPED:
                self._set_status(stream, StreamStatus.STOPPED, "market stream stopped")

    async def __aenter__(self) -> StreamSupervisor:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def add_symbols(self, symbols: Iterable[str]) -> None:
        """Supervise more symbols; a symbol whose streams have STOPPED is started again."""
        for symbol in symbols:
            self._add(symbol, StreamKind.TICKER)
            if self._on_candles is not None:
                self._add(symbol, StreamKind.CANDLES)

    async def remove_symbols(self, symbols: Iterable[str]) -> None:
        """Stop supervising these symbols (cancelled and awaited); their last status is STOPPED."""
        wanted = set(symbols)
        streams = [stream for key, stream in self._streams.items() if key[0] in wanted]
        await self._cancel(streams)
        for stream in streams:
            self._set_status(stream, StreamStatus.STOPPED, "symbol removed")
            del self._streams[(stream.symbol, stream.kind)]

    def status(self, symbol: str, stream: StreamKind = StreamKind.TICKER) -> StreamStatus:
        """Current status of one stream; KeyError for a symbol that is not supervised."""
        return self._streams[(symbol, stream)].status

    def info(self, symbol: str, stream: StreamKind = StreamKind.TICKER) -> StreamInfo:
        s = self._streams[(symbol, stream)]
        age = None if s.last_message_at is None else max(0.0, self._now() - s.last_message_at)
        return StreamInfo(s.symbol, s.kind, s.status, s.reason, s.messages, age)

    def infos(self) -> list[StreamInfo]:
        return [self.info(symbol, kind) for symbol, kind in self._streams]

    # ------------------------------------------------------------------ setup

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return self._loop.time() if self._loop is not None else time.monotonic()

    def _add(self, symbol: str, kind: StreamKind) -> None:
        existing = self._streams.get((symbol, kind))
        if existing is not None:
            if existing.task is None or not existing.task.done():
                return  # already supervised (or waiting for start())
            existing.status, existing.reason = StreamStatus.CONNECTING, ""
            if self._started:
                self._spawn(existing)
            return
        backoff = self._policy.backoff(random.Random(self._rng.getrandbits(64)))  # noqa: S311
        poll_backoff = self._policy.backoff(random.Random(self._rng.getrandbits(64)))  # noqa: S311
        stream: _Stream[Ticker] | _Stream[list[Candle]]
        if kind is StreamKind.TICKER:
            stream = _Stream(
                symbol,
                kind,
                watch=lambda: self._source.watch_ticker(symbol),
                poll=lambda: self._source.fetch_ticker(symbol),
                deliver=self._on_ticker,
                backoff=backoff,
                poll_backoff=poll_backoff,
            )
        else:
            on_candles = self._on_candles
            assert on_candles is not None
            timeframe = self._timeframe

            def deliver(candles: list[Candle]) -> None:
                on_candles(symbol, timeframe, candles)

            stream = _Stream(
                symbol,
                kind,
                watch=lambda: self._source.watch_ohlcv(symbol, timeframe),
                # Two bars: the one that just closed (its final values) and the open one.
                poll=lambda: self._source.fetch_ohlcv(symbol, timeframe, limit=2),
                deliver=deliver,
                backoff=backoff,
                poll_backoff=poll_backoff,
            )
        self._streams[(symbol, kind)] = stream
        if self._started:
            self._spawn(stream)

    def _spawn(self, stream: _Stream[Any]) -> None:
        if stream.task is not None and not stream.task.done():
            return
        stream.task = asyncio.get_running_loop().create_task(
            self._run(stream), name=f"stream:{self._source.name}:{stream.symbol}:{stream.kind}"
        )

    @staticmethod
    async def _cancel(streams: Iterable[_Stream[Any]]) -> None:
        tasks = [s.task for s in streams if s.task is not None and not s.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ status and delivery

    def _set_status(
        self, stream: _Stream[Any], status: StreamStatus, reason: str = "", *, force: bool = False
    ) -> None:
        if not force and stream.status is status and stream.reason == reason:
            return
        stream.status, stream.reason = status, reason
        level = logging.WARNING if status in (StreamStatus.STALE, StreamStatus.STOPPED) else logging.INFO
        if status is not StreamStatus.LIVE or log.isEnabledFor(logging.DEBUG):
            log.log(level, "%s %s %s: %s %s", self._source.name, stream.symbol, stream.kind, status, reason)
        try:
            self._on_status(stream.symbol, stream.kind, status, reason)
        except Exception:
            log.exception("stream status callback failed for %s %s", stream.symbol, stream.kind)

    def _deliver[T](self, stream: _Stream[T], item: T, now: float) -> None:
        stream.messages += 1
        stream.last_message_at = now if self._clock is None else self._clock()
        try:
            stream.deliver(item)
        except Exception:
            # A faulty consumer must not turn into a "stream failure" (and a reconnect storm);
            # log the first failure with its traceback and then only every 1000th.
            stream.callback_errors += 1
            if stream.callback_errors == 1 or stream.callback_errors % 1000 == 0:
                log.exception(
                    "market data callback failed for %s %s (%d times)",
                    stream.symbol,
                    stream.kind,
                    stream.callback_errors,
                )

    # ------------------------------------------------------------------ supervision

    async def _run[T](self, stream: _Stream[T]) -> None:
        self._set_status(stream, StreamStatus.CONNECTING, force=True)  # tell the UI it started
        try:
            await self._supervise(stream)
        except _Stopped as stop:
            self._set_status(stream, StreamStatus.STOPPED, stop.reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the supervisor itself: say so instead of dying silently
            log.exception("stream supervisor for %s %s crashed", stream.symbol, stream.kind)
            self._set_status(stream, StreamStatus.STOPPED, f"internal error: {exc!r}")

    async def _supervise[T](self, stream: _Stream[T]) -> None:
        websocket_usable = True
        reason = "the exchange offers no websocket streaming; polling over REST"
        if self._source.supports_streaming:
            try:
                reason = await self._streaming(stream, allowed_failures=self._fallback_after)
            except _NoWebsocket as no_ws:
                websocket_usable, reason = False, no_ws.reason
        while True:
            probe = websocket_usable and self._source.supports_streaming
            await self._polling(stream, reason, self._ws_retry_interval_s if probe else None)
            self._set_status(stream, StreamStatus.CONNECTING, "trying the websocket again")
            try:
                reason = await self._streaming(stream, allowed_failures=1)
            except _NoWebsocket as no_ws:
                websocket_usable, reason = False, no_ws.reason

    async def _streaming[T](self, stream: _Stream[T], *, allowed_failures: int) -> str:
        """Stream until the websocket has failed ``allowed_failures`` times in a row.

        Returns the reason to fall back to polling; raises ``_Stopped`` on a non-retryable error
        and ``_NoWebsocket`` when the venue cannot stream this symbol.
        """
        backoff = stream.backoff
        backoff.reset()
        failures = 0
        while True:
            error: BaseException | None = None
            try:
                await self._session(stream)
            except _Stale:
                text = f"no update for {self._stale_after_s:g} s"
                self._set_status(stream, StreamStatus.STALE, text)
            except asyncio.CancelledError as exc:
                if _really_cancelled():
                    raise
                error, text = exc, "the exchange library cancelled the request"
            except ExchangeError as exc:
                if exc.kind is ErrorKind.NOT_SUPPORTED:
                    raise _NoWebsocket(f"{exc}; polling over REST") from exc
                if not exc.retryable:
                    raise _Stopped(str(exc)) from exc
                error, text = exc, str(exc)
            except Exception as exc:
                # The protocol promises ExchangeErrors only; anything else is an adapter glitch.
                # Retry it like a network error (the backoff keeps the log quiet) rather than
                # leaving the symbol dead for good.
                log.exception("unexpected error from %s stream of %s", stream.kind, stream.symbol)
                error, text = exc, f"unexpected error: {exc!r}"
            if stream.session_delivered:
                failures = 0
                allowed_failures = self._fallback_after
                backoff.reset()
            failures += 1
            if failures >= allowed_failures:
                return (
                    f"websocket failed {failures} time(s) in a row ({text}); polling over REST, "
                    f"retrying the websocket every {self._ws_retry_interval_s:g} s"
                )
            delay = backoff.next_delay(error)
            self._set_status(
                stream,
                StreamStatus.RECONNECTING,
                f"{text}; reconnecting in {delay:.1f} s (attempt {failures})",
            )
            await self._sleep(delay)

    async def _session[T](self, stream: _Stream[T]) -> None:
        """One websocket session: deliver messages until an error or silence ends it."""
        loop = asyncio.get_running_loop()
        stale = self._stale_after_s
        slack = stale * _STALE_SLACK
        stream.session_delivered = False
        watch = stream.watch
        deadline = asyncio.timeout(stale + slack)
        try:
            async with deadline:
                while True:
                    item = await watch()
                    now = loop.time()
                    when = deadline.when()
                    if when is None or when - now < stale:
                        deadline.reschedule(now + stale + slack)
                    self._deliver(stream, item, now)
                    if not stream.session_delivered:
                        stream.session_delivered = True
                        self._set_status(stream, StreamStatus.LIVE)
        except TimeoutError:
            if deadline.expired():
                raise _Stale from None
            raise

    async def _polling[T](self, stream: _Stream[T], reason: str, probe_after_s: float | None) -> None:
        """Poll over REST every ``poll_interval_s``; return when it is time to try the websocket.

        ``probe_after_s`` None polls for good (no streaming at all). REST failures are retried with
        their own backoff (never faster than the poll interval); non-retryable ones stop the stream.
        """
        loop = asyncio.get_running_loop()
        deadline = None if probe_after_s is None else loop.time() + probe_after_s
        backoff = stream.poll_backoff
        backoff.reset()
        self._set_status(stream, StreamStatus.POLLING, reason)
        while deadline is None or loop.time() < deadline:
            try:
                async with asyncio.timeout(self._stale_after_s):
                    item = await stream.poll()
            except ExchangeError as exc:
                if not exc.retryable:
                    raise _Stopped(str(exc)) from exc
                error: BaseException = exc
                text = str(exc)
            except TimeoutError as exc:
                error, text = exc, f"REST request took longer than {self._stale_after_s:g} s"
            except asyncio.CancelledError as exc:
                if _really_cancelled():
                    raise
                error, text = exc, "the exchange library cancelled the request"
            except Exception as exc:
                log.exception("unexpected error while polling %s of %s", stream.kind, stream.symbol)
                error, text = exc, f"unexpected error: {exc!r}"
            else:
                self._deliver(stream, item, loop.time())
                backoff.reset()
                self._set_status(stream, StreamStatus.POLLING, reason)
                await self._sleep(self._poll_interval_s)
                continue
            delay = max(self._poll_interval_s, backoff.next_delay(error))
            self._set_status(stream, StreamStatus.RECONNECTING, f"{text}; polling again in {delay:.1f} s")
            await self._sleep(delay)

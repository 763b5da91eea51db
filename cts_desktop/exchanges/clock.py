"""Injected time for market venues: real time in the app, virtual time in tests and fast replays.

Every offline venue (replay, simulated) reads the time and waits through a ``Clock`` instead of
``time.time()`` / ``asyncio.sleep()``. That one indirection is what lets a backtest replay years of
candles as fast as the CPU allows and lets tests assert exact timestamps without sleeping:

- ``SystemClock``: wall-clock UTC milliseconds and ``asyncio.sleep`` (the running application);
- ``ManualClock``: time moves only when a test calls ``advance``/``advance_to``; sleepers wake in
  deadline order, and the loop is allowed to settle between deadlines so a woken task can schedule
  its next sleep before later deadlines are processed (no skipped wake-ups);
- ``VirtualClock``: a ``ManualClock`` with ``autoadvance=True``: as soon as every task is blocked,
  time jumps straight to the earliest pending wake-up. Deterministic and as fast as possible.

Times are integer UTC milliseconds, like ``Candle.ts_ms`` and ``Ticker.timestamp_ms``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock", "VirtualClock", "wait_until_idle"]


@runtime_checkable
class Clock(Protocol):
    """What a venue needs from time: read it, and wait for it."""

    def now_ms(self) -> int:
        """Current time in UTC milliseconds."""
        ...

    async def sleep_until_ms(self, t_ms: int) -> None:
        """Return once ``now_ms() >= t_ms`` (immediately, after one loop turn, if it already is)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """Real UTC time; waits with ``asyncio.sleep`` (so it works under qasync too)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until_ms(self, t_ms: int) -> None:
        # asyncio timers use the monotonic clock and may fire a little early relative to the wall
        # clock (or the wall clock may be stepped); loop until the wall clock really got there.
        while True:
            remaining = t_ms - self.now_ms()
            if remaining <= 0:
                await asyncio.sleep(0)
                return
            await asyncio.sleep(remaining / 1000.0)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


_FALLBACK_SETTLE_ROUNDS = 20
"""Loop turns to yield when the event loop's ready queue cannot be inspected (e.g. qasync)."""
_MAX_SETTLE_ROUNDS = 1000
"""Give up waiting for idleness after this many turns (a task spinning on ``sleep(0)`` must not
freeze virtual time forever)."""


async def wait_until_idle(max_rounds: int = _MAX_SETTLE_ROUNDS) -> None:
    """Yield to the event loop until no other callback is ready to run.

    On CPython's standard loops the ready queue (``loop._ready``, a private deque) tells exactly
    when every other task is blocked; that is what makes virtual time both fast (one turn per
    wake-up when nothing else runs) and causal (time never jumps while a woken task still has work
    at the current time). On loops without it, a fixed number of turns is the best guess.
    """
    await asyncio.sleep(0)
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    if not isinstance(ready, deque):
        for _ in range(_FALLBACK_SETTLE_ROUNDS):
            await asyncio.sleep(0)
        return
    rounds = 1
    while ready and rounds < max_rounds:
        await asyncio.sleep(0)
        rounds += 1


class ManualClock:
    """A clock whose time moves only when told to (or, with ``autoadvance``, when all are idle).

    Sleepers are kept in a heap of ``(deadline, sequence, future)``; ties wake in the order they
    started sleeping, so runs are reproducible. Cancelling a sleeping task is safe: its future is
    cancelled and simply skipped.
    """

    def __init__(self, start_ms: int = 0, *, autoadvance: bool = False) -> None:
        self._now = int(start_ms)
        self._autoadvance = autoadvance
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._sequence = itertools.count()
        self._jumper: asyncio.Task[None] | None = None

    @property
    def autoadvance(self) -> bool:
        return self._autoadvance

    def now_ms(self) -> int:
        return self._now

    @property
    def pending(self) -> int:
        """Number of tasks currently sleeping on this clock."""
        return sum(1 for _, _, fut in self._heap if not fut.done())

    @property
    def next_deadline_ms(self) -> int | None:
        """Earliest pending wake-up time, or None when nobody sleeps."""
        self._drop_done()
        return self._heap[0][0] if self._heap else None

    async def sleep_until_ms(self, t_ms: int) -> None:
        if t_ms <= self._now:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._heap, (int(t_ms), next(self._sequence), future))
        if self._autoadvance and self._jumper is None:
            self._jumper = loop.create_task(self._jump_while_sleepers())
        await future

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        # Round up: a positive sleep always lets at least one millisecond pass.
        await self.sleep_until_ms(self._now + max(1, math.ceil(seconds * 1000)))

    async def advance(self, ms: int) -> None:
        """Move time forward by ``ms``, waking every sleeper on the way in deadline order."""
        await self.advance_to(self._now + int(ms))

    async def advance_to(self, t_ms: int) -> None:
        """Move time to ``t_ms`` (not backwards), letting woken tasks run at each deadline."""
        if t_ms < self._now:
            raise ValueError(f"a clock cannot go backwards (now {self._now} ms, asked {t_ms} ms)")
        while True:
            await wait_until_idle()
            self._drop_done()
            if not self._heap or self._heap[0][0] > t_ms:
                break
            self._wake_through(self._heap[0][0])
        self._now = int(t_ms)
        await wait_until_idle()

    def release_all(self) -> None:
        """Wake every sleeper now without moving time (used when a replay seeks elsewhere)."""
        while self._heap:
            _, _, future = heapq.heappop(self._heap)
            if not future.done():
                future.set_result(None)

    def _drop_done(self) -> None:
        while self._heap and self._heap[0][2].done():
            heapq.heappop(self._heap)

    def _wake_through(self, t_ms: int) -> None:
        self._now = max(self._now, t_ms)
        while self._heap and self._heap[0][0] <= t_ms:
            _, _, future = heapq.heappop(self._heap)
            if not future.done():
                future.set_result(None)

    async def _jump_while_sleepers(self) -> None:
        try:
            while True:
                await wait_until_idle()
                self._drop_done()
                if not self._heap:
                    return
                self._wake_through(self._heap[0][0])
        finally:
            self._jumper = None


class VirtualClock(ManualClock):
    """Virtual time that jumps to the next wake-up whenever every task is waiting on it.

    The clock for backtests and as-fast-as-possible replays: no real time passes, results are
    deterministic, and a replay runs at CPU speed.
    """

    def __init__(self, start_ms: int = 0, *, autoadvance: bool = True) -> None:
        super().__init__(start_ms, autoadvance=autoadvance)

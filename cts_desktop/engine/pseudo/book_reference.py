"""The pseudo book's rules as a plain loop over entry objects: the readable statement of the rules.

``PseudoBook`` (book.py) runs the same rules as one compiled pass over columns; this module exists
so a reader can check the rules line by line, and so property tests can hold the fast book equal to
it on random ticks, candles and triggers. It is far too slow for live use (a few ms per tick for
4,620 entries); it is never used by the engine.

Ticks and candles are written out separately here, on purpose: the fast book treats a tick as the
candle open = high = low = close, and the tests check that this shortcut gives the tick rules.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cts_desktop.engine.pseudo.book import DEFAULT_MAX_OPEN_PER_CONFIG, MAX_OPEN_PER_CONFIG_RANGE
from cts_desktop.engine.pseudo.closed import ClosedBatch
from cts_desktop.engine.pseudo.geometry import LONG, SHORT, ExitReason, exit_levels, result_steps, tp_distance
from cts_desktop.engine.pseudo.grid import ConfigGrid

__all__ = ["ReferenceBook", "ReferenceEntry"]

_MS_PER_HOUR = 3_600_000


@dataclass(slots=True)
class ReferenceEntry:
    """One open pseudo entry. Prices are absolute; distances are absolute price distances."""

    set_index: int
    direction: int
    entry_price: float
    opened_ms: int
    tp_price: float
    sl_price: float
    position_cost_pct: float
    trailing: bool
    trail_start_distance: float
    trail_stop_distance: float
    fee_fraction: float
    max_age_ms: int
    best_price: float
    trailing_active: bool = False
    below_peak: bool = False
    drawdown_time_ms: int = 0
    last_update_ms: int = 0


@dataclass(slots=True)
class _Close:
    entry: ReferenceEntry
    exit_price: float
    reason: ExitReason
    closed_ms: int
    drawdown_time_ms: int


class ReferenceBook:
    """Same public API and rules as ``PseudoBook``, one entry at a time."""

    def __init__(
        self,
        *,
        max_open_per_config: int = DEFAULT_MAX_OPEN_PER_CONFIG,
        target_caps_trailing: bool = False,
    ) -> None:
        low, high = MAX_OPEN_PER_CONFIG_RANGE
        if not low <= max_open_per_config <= high:
            raise ValueError(f"max_open_per_config must be in {low}–{high}")
        self.max_open_per_config = max_open_per_config
        self.target_caps_trailing = target_caps_trailing
        self.accepting_new = True
        self.entries: dict[str, list[ReferenceEntry]] = {}
        self._open_per_set: Counter[tuple[int, int]] = Counter()

    def open_entries(
        self,
        symbol: str,
        set_indices: npt.ArrayLike,
        direction: int,
        entry_price: float,
        ts_ms: int,
        grid: ConfigGrid,
        *,
        rows: npt.ArrayLike | None = None,
        position_cost_pct: float = 0.1,
        fee_fraction: float,
        max_age_hours: float = 0.0,
    ) -> npt.NDArray[np.bool_]:
        sets = [int(s) for s in np.asarray(set_indices, dtype=np.int64).ravel()]
        row_list = list(range(len(sets))) if rows is None else [int(r) for r in np.asarray(rows).ravel()]
        if direction not in (LONG, SHORT):
            raise ValueError("direction must be +1 or -1")
        accepted = np.zeros(len(sets), dtype=np.bool_)
        if not self.accepting_new:
            return accepted
        book = self.entries.setdefault(symbol, [])
        for j, (set_index, row) in enumerate(zip(sets, row_list, strict=True)):
            key = (set_index, direction)
            if self._open_per_set[key] >= self.max_open_per_config:
                continue
            tp_factor = float(grid.tp_factor[row])
            distance = float(tp_distance(entry_price, tp_factor, position_cost_pct))
            tp_price, sl_price = exit_levels(
                entry_price, direction, tp_factor, float(grid.sl_ratio[row]), position_cost_pct
            )
            start = float(grid.trail_start[row])
            stop = float(grid.trail_stop[row])
            book.append(
                ReferenceEntry(
                    set_index=set_index,
                    direction=direction,
                    entry_price=entry_price,
                    opened_ms=ts_ms,
                    tp_price=float(tp_price),
                    sl_price=float(sl_price),
                    position_cost_pct=position_cost_pct,
                    trailing=not math.isnan(start),
                    trail_start_distance=start * distance,
                    trail_stop_distance=stop * distance,
                    fee_fraction=fee_fraction,
                    max_age_ms=round(max_age_hours * _MS_PER_HOUR),
                    best_price=entry_price,
                    last_update_ms=ts_ms,
                )
            )
            self._open_per_set[key] += 1
            accepted[j] = True
        return accepted

    # ------------------------------------------------------------------ ticks

    def on_tick(self, symbol: str, price: float, ts_ms: int) -> ClosedBatch:
        """A tick is one price: any level at or beyond it fills at the tick price."""
        closes: list[_Close] = []
        still_open: list[ReferenceEntry] = []
        for e in self.entries.get(symbol, []):
            reason = ExitReason.OPEN
            if _at_or_beyond_stop(price, e):
                reason = ExitReason.STOP_LOSS
            elif e.trailing_active and _retraced(price, e):
                reason = ExitReason.TRAILING_STOP
            elif self._target_applies(e) and _reached_target(price, e):
                reason = ExitReason.TAKE_PROFIT
            elif _timed_out(e, ts_ms):
                reason = ExitReason.TIMEOUT
            dd = e.drawdown_time_ms + _under_interval(e, ts_ms)
            if reason != ExitReason.OPEN:
                closes.append(_Close(e, price, reason, ts_ms, dd))
                continue
            e.drawdown_time_ms = dd
            self._after_exits(e, favorable=price, last=price, ts_ms=ts_ms)
            still_open.append(e)
        return self._finish(symbol, still_open, closes)

    # ------------------------------------------------------------------ candles

    def on_candle(
        self, symbol: str, open_: float, high: float, low: float, close: float, ts_ms: int
    ) -> ClosedBatch:
        """The range decides (stop first, path unknown); a level gapped through fills at the open."""
        closes: list[_Close] = []
        still_open: list[ReferenceEntry] = []
        for e in self.entries.get(symbol, []):
            long = e.direction == LONG
            adverse = low if long else high
            favorable = high if long else low
            trail_level = e.best_price - e.direction * e.trail_stop_distance
            reason = ExitReason.OPEN
            fill = 0.0
            if _at_or_beyond_stop(adverse, e):
                reason = ExitReason.STOP_LOSS
                fill = open_ if _at_or_beyond_stop(open_, e) else e.sl_price
            elif e.trailing_active and _retraced(adverse, e):
                reason = ExitReason.TRAILING_STOP
                fill = open_ if _retraced(open_, e) else trail_level
            elif self._target_applies(e) and _reached_target(favorable, e):
                reason = ExitReason.TAKE_PROFIT
                fill = open_ if _reached_target(open_, e) else e.tp_price
            elif _timed_out(e, ts_ms):
                reason, fill = ExitReason.TIMEOUT, close
            dd = e.drawdown_time_ms + _under_interval(e, ts_ms)
            if reason != ExitReason.OPEN:
                closes.append(_Close(e, fill, reason, ts_ms, dd))
                continue
            e.drawdown_time_ms = dd
            self._after_exits(e, favorable=favorable, last=close, ts_ms=ts_ms)
            still_open.append(e)
        return self._finish(symbol, still_open, closes)

    # ------------------------------------------------------------------ queries

    def open_count(self, symbol: str) -> int:
        return len(self.entries.get(symbol, []))

    def open_count_by_set(
        self, set_indices: npt.ArrayLike, direction: int | None = None
    ) -> npt.NDArray[np.int64]:
        directions = (LONG, SHORT) if direction is None else (direction,)
        return np.array(
            [
                sum(self._open_per_set[(int(s), d)] for d in directions)
                for s in np.asarray(set_indices, dtype=np.int64).ravel()
            ],
            dtype=np.int64,
        )

    # ------------------------------------------------------------------ rules shared by both paths

    def _target_applies(self, e: ReferenceEntry) -> bool:
        """D4: with trailing on, the target is not a hard exit (unless the other reading is chosen)."""
        return not e.trailing or self.target_caps_trailing

    @staticmethod
    def _after_exits(e: ReferenceEntry, *, favorable: float, last: float, ts_ms: int) -> None:
        """Raise the best price, activate trailing, note whether the entry sits below its peak."""
        if e.direction * (favorable - e.best_price) > 0.0:
            e.best_price = favorable
        activation = e.entry_price + e.direction * e.trail_start_distance
        if e.trailing and not e.trailing_active and e.direction * (e.best_price - activation) >= 0.0:
            e.trailing_active = True
        e.below_peak = e.direction * (last - e.best_price) < 0.0
        e.last_update_ms = max(e.last_update_ms, ts_ms)

    def _finish(self, symbol: str, still_open: list[ReferenceEntry], closes: list[_Close]) -> ClosedBatch:
        if symbol in self.entries:
            self.entries[symbol] = still_open
        for c in closes:
            self._open_per_set[(c.entry.set_index, c.entry.direction)] -= 1
        return _batch(closes)


def _at_or_beyond_stop(price: float, e: ReferenceEntry) -> bool:
    return e.direction * (price - e.sl_price) <= 0.0


def _retraced(price: float, e: ReferenceEntry) -> bool:
    """The price is back ``trail_stop`` × TP distance (or more) from the best price."""
    level = e.best_price - e.direction * e.trail_stop_distance
    return e.direction * (price - level) <= 0.0


def _reached_target(price: float, e: ReferenceEntry) -> bool:
    return e.direction * (price - e.tp_price) >= 0.0


def _timed_out(e: ReferenceEntry, ts_ms: int) -> bool:
    return e.max_age_ms > 0 and ts_ms - e.opened_ms >= e.max_age_ms


def _under_interval(e: ReferenceEntry, ts_ms: int) -> int:
    """Time since the last update, if the entry spent it below its previous peak (D12)."""
    return max(0, ts_ms - e.last_update_ms) if e.below_peak else 0


def _batch(closes: list[_Close]) -> ClosedBatch:
    if not closes:
        return ClosedBatch.empty()
    set_index, opened, closed, entry, exit_, steps, pnl, fees, reason, dd, hold = ([] for _ in range(11))
    for c in closes:
        e = c.entry
        f = e.fee_fraction
        gross = e.direction * (c.exit_price - e.entry_price)
        fee_cost = f * (e.entry_price + c.exit_price)
        capital = e.entry_price * (1.0 + f)  # entry value plus the entry fee
        set_index.append(e.set_index)
        opened.append(e.opened_ms)
        closed.append(c.closed_ms)
        entry.append(e.entry_price)
        exit_.append(c.exit_price)
        steps.append(float(result_steps(e.entry_price, c.exit_price, e.direction, e.position_cost_pct)))
        pnl.append((gross - fee_cost) / capital)
        fees.append(fee_cost / capital)
        reason.append(int(c.reason))
        dd.append(c.drawdown_time_ms)
        hold.append(c.closed_ms - e.opened_ms)
    i8, f8 = np.int64, np.float64
    return ClosedBatch(
        set_index=np.array(set_index, dtype=i8),
        opened_ms=np.array(opened, dtype=i8),
        closed_ms=np.array(closed, dtype=i8),
        entry_price=np.array(entry, dtype=f8),
        exit_price=np.array(exit_, dtype=f8),
        result_steps=np.array(steps, dtype=f8),
        pnl_fraction=np.array(pnl, dtype=f8),
        fees_fraction=np.array(fees, dtype=f8),
        reason=np.array(reason, dtype=np.int8),
        drawdown_time_ms=np.array(dd, dtype=i8),
        hold_time_ms=np.array(hold, dtype=i8),
    )

"""PseudoBook: every open pseudo entry of every configuration set, as numpy columns (DOMAIN §2, D17).

Why columns: one trigger opens 924 configurations (616 for active-advanced), five indication types
trigger per symbol, and 50 symbols stream several ticks per second. Objects per entry would mean
~230,000 Python objects touched per second; columns make a tick one pass over contiguous memory.

Layout. Per symbol, two preallocated 2-D blocks (one row per column, one column per entry, so each
field is a contiguous vector) hold the open entries in slots ``[0, n)``; they grow by doubling.
Closed entries are removed by swap-compaction (the last open entries move into the holes), so the
live prefix is always dense and no "open" flag or free list is scanned on every tick. The per
(set, direction) open counts that enforce ``maxPositionsPerConfigDirection`` (D9) live in one
book-wide array indexed by set index, so the limit check for a 924-row trigger is one gather.

Update. ``on_tick`` and ``on_candle`` run one numba kernel over the symbol's entries (a tick is the
degenerate candle open = high = low = close = price, which gives exactly the tick rules below).
Measured with ``benchmarks/live_book.py`` (50 symbols × 4,620 entries, round-robin ticks): ~11 µs
median and ~40–60 µs p99 per ``on_tick``, while masked numpy operations need ≥ 40 µs median for the
same rules before a single close is even extracted (about 20 array passes per tick), so the kernel
it is. ``book_reference.py`` states the same rules as a plain per-entry loop, and property
tests hold the two equal.

Exit rules (D3, D4, D12, D25), per entry, the same as the sweep's (``sweep.py``) so live pseudo
results and backtests agree; checked in this order:

1. stop: the price reached the stop;
2. trailing exit, for entries whose trailing is active: the price retraced ``trail_stop`` × TP
   distance from the best price; otherwise the target, for entries without trailing (with trailing
   the target is not a hard exit, D4, unless ``target_caps_trailing`` is set: the other reading of
   D4, kept behind one flag so both can be tested);
3. timeout: the entry is ``max_age`` old (``maxPositionAgeHours``, 0 = off, D25).

A tick is one price, so every tick exit fills at the tick price (a level already passed is a gap).
A candle decides by its range: the stop when the low (high, for shorts) reached it, even if the
target or the trailing level was touched too (the path inside the candle is unknown: the
conservative reading); a level that the open is already at or beyond was gapped through and fills
at the open, otherwise at the level; a timeout fills at the close. Only entries that stay open
raise their best price (with the tick price, or the candle's high for longs / low for shorts) and
may activate trailing (best price at ``entry ± trail_start`` × TP distance); trailing that
activates inside a candle therefore cannot exit in that same candle.

Drawdown time (D12) is the time an entry spent below its previous peak: after every update the
entry is "under" when the last price is below its best price (above, for shorts), and the interval
up to the next update counts when it was under. Prices are taken as constant between updates.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

import numba
import numpy as np
import numpy.typing as npt

from cts_desktop.engine.pseudo.closed import ClosedBatch
from cts_desktop.engine.pseudo.geometry import LONG, SHORT, ExitReason, exit_levels, tp_distance
from cts_desktop.engine.pseudo.grid import ConfigGrid
from cts_desktop.engine.pseudo.stats import warm_up as _warm_up_stats

__all__ = [
    "DEFAULT_MAX_OPEN_PER_CONFIG",
    "MAX_OPEN_PER_CONFIG_RANGE",
    "OpenSnapshot",
    "PseudoBook",
    "warm_up",
]

type FloatArray = npt.NDArray[np.float64]
type IntArray = npt.NDArray[np.int64]
type BoolArray = npt.NDArray[np.bool_]

DEFAULT_MAX_OPEN_PER_CONFIG: Final = 2
"""D9: open entries allowed per (set, direction) at once; the settings range is 1–5."""
MAX_OPEN_PER_CONFIG_RANGE: Final = (1, 5)

_INITIAL_CAPACITY: Final = 1024
_INITIAL_SET_CAPACITY: Final = 4096
_ROW_PAD: Final = 24  # elements (192 bytes) added to each row; see _block
_MS_PER_HOUR: Final = 3_600_000

# Float block rows.
_F_ENTRY: Final = 0
_F_TP: Final = 1  # take-profit price
_F_SL: Final = 2  # stop-loss price
_F_STEP: Final = 3  # one step = entry × PC / 100, for result_steps
_F_TSTART: Final = 4  # trailing activation distance (absolute; NaN when trailing is off)
_F_TSTOP: Final = 5  # trailing retrace distance (absolute; NaN when trailing is off)
_F_BEST: Final = 6  # best price seen while open (highest for longs, lowest for shorts)
_F_FEE: Final = 7  # fee per side as a fraction of traded value
_NF: Final = 8

# Integer block rows.
_I_SET: Final = 0  # set index in the caller's set table
_I_DIR: Final = 1  # +1 long, −1 short
_I_OPENED: Final = 2  # UTC ms
_I_MAX_AGE: Final = 3  # ms, 0 = no timeout
_I_DD: Final = 4  # drawdown time accumulated so far, ms
_I_TRAILING: Final = 5  # 1 when the configuration trails
_I_ACTIVE: Final = 6  # 1 once trailing is active
_I_UNDER: Final = 7  # 1 when the last price was below the best price (D12)
_NI: Final = 8

# Kernel output rows (one output column per closed entry).
_OF_ENTRY, _OF_EXIT, _OF_RESULT, _OF_PNL, _OF_FEES = 0, 1, 2, 3, 4
_NOF: Final = 5
_OI_SET, _OI_OPENED, _OI_REASON, _OI_DD, _OI_HOLD = 0, 1, 2, 3, 4
_NOI: Final = 5

_R_TP: Final = int(ExitReason.TAKE_PROFIT)
_R_SL: Final = int(ExitReason.STOP_LOSS)
_R_TRAIL: Final = int(ExitReason.TRAILING_STOP)
_R_TIMEOUT: Final = int(ExitReason.TIMEOUT)

# A frozen (PyInstaller) build has no source files next to the modules, and numba's on-disk cache
# needs one to locate its index; there the kernel is compiled once per process instead.
_CACHE: Final = not getattr(sys, "frozen", False)


def _jit[F: Callable[..., object]](fn: F) -> F:
    """numba.njit with a type mypy can see (numba ships no stubs). No fastmath: the kernel must
    round exactly like the numpy code and the reference loop (IEEE, no contraction to FMA)."""
    return cast(F, numba.njit(cache=_CACHE, nogil=True)(fn))


@_jit
def _update_kernel(
    fcol: FloatArray,
    icol: IntArray,
    n: int,
    open_: float,
    high: float,
    low: float,
    close: float,
    ts: int,
    last_ts: int,
    target_caps_trailing: bool,
    counts: IntArray,
    hits: BoolArray,
    out_f: FloatArray,
    out_i: IntArray,
) -> int:
    """One candle (or tick: all four prices equal) for entries ``[0, n)``; returns how many closed.

    Closed entries are written to ``out_f``/``out_i`` columns ``[0, k)``, their (set, direction)
    counts are decremented, and the survivors are swap-compacted into ``[0, n − k)``.

    Two passes, because the obvious single loop (if closed: write the result, else: update) was
    measured at 21 µs for 4,620 entries and this split at 7.5 µs: a first pass without branches
    (LLVM vectorises it) decides for every entry *whether* it closes and updates the others; only
    when something closed (a small share of ticks) a second pass applies the ordered rules to
    decide *how*.
    """
    dt = ts - last_ts
    if dt < 0:
        dt = 0
    k = 0
    for i in range(n):
        d = icol[_I_DIR, i]
        df = float(d)
        adverse = low if d > 0 else high
        favorable = high if d > 0 else low
        best = fcol[_F_BEST, i]
        active = icol[_I_ACTIVE, i] != 0
        target_applies = (icol[_I_TRAILING, i] == 0) | target_caps_trailing
        level = best - df * fcol[_F_TSTOP, i]
        max_age = icol[_I_MAX_AGE, i]
        # Whether it closes, without branches: their outcome is random from tick to tick, and
        # mispredicted branches doubled the cost.
        hit = (
            (df * (adverse - fcol[_F_SL, i]) <= 0.0)
            | (active & (df * (adverse - level) <= 0.0))
            | (target_applies & (df * (favorable - fcol[_F_TP, i]) >= 0.0))
            | ((max_age > 0) & (ts - icol[_I_OPENED, i] >= max_age))
        )
        hits[i] = hit
        k += hit
        # Drawdown time up to now counts for closing entries too; everything else keeps its
        # pre-update value on a hit, because the second pass needs the old best price and flags.
        under = icol[_I_UNDER, i]
        icol[_I_DD, i] += dt * under
        raised = favorable if df * (favorable - best) > 0.0 else best
        new_best = best if hit else raised
        fcol[_F_BEST, i] = new_best
        # A NaN start distance (trailing off) never compares true.
        activation = fcol[_F_ENTRY, i] + df * fcol[_F_TSTART, i]
        activated = active | (df * (new_best - activation) >= 0.0)
        icol[_I_ACTIVE, i] = active if hit else activated
        below = 1 if df * (close - new_best) < 0.0 else 0
        icol[_I_UNDER, i] = under if hit else below
    if k == 0:
        return 0

    j = 0
    for i in range(n):
        if not hits[i]:
            continue
        d = icol[_I_DIR, i]
        df = float(d)
        adverse = low if d > 0 else high
        favorable = high if d > 0 else low
        entry = fcol[_F_ENTRY, i]
        sl = fcol[_F_SL, i]
        tp = fcol[_F_TP, i]
        active = icol[_I_ACTIVE, i] != 0
        target_applies = (icol[_I_TRAILING, i] == 0) or target_caps_trailing
        level = fcol[_F_BEST, i] - df * fcol[_F_TSTOP, i]
        # The candle's range decides which level (stop first); a level the open is already at or
        # beyond was gapped through and fills at the open, otherwise at the level.
        if df * (adverse - sl) <= 0.0:
            reason = _R_SL
            fill = open_ if df * (open_ - sl) <= 0.0 else sl
        elif active and df * (adverse - level) <= 0.0:
            reason = _R_TRAIL
            fill = open_ if df * (open_ - level) <= 0.0 else level
        elif target_applies and df * (favorable - tp) >= 0.0:
            reason = _R_TP
            fill = open_ if df * (open_ - tp) >= 0.0 else tp
        else:
            reason = _R_TIMEOUT
            fill = close
        fee = fcol[_F_FEE, i]
        gross = df * (fill - entry)
        fee_cost = fee * (entry + fill)
        capital = entry * (1.0 + fee)
        out_f[_OF_ENTRY, j] = entry
        out_f[_OF_EXIT, j] = fill
        out_f[_OF_RESULT, j] = gross / fcol[_F_STEP, i]
        out_f[_OF_PNL, j] = (gross - fee_cost) / capital
        out_f[_OF_FEES, j] = fee_cost / capital
        s = icol[_I_SET, i]
        out_i[_OI_SET, j] = s
        out_i[_OI_OPENED, j] = icol[_I_OPENED, i]
        out_i[_OI_REASON, j] = reason
        out_i[_OI_DD, j] = icol[_I_DD, i]
        out_i[_OI_HOLD, j] = ts - icol[_I_OPENED, i]
        counts[0 if d > 0 else 1, s] -= 1
        j += 1

    # Swap-compaction: fill each hole from the front with the last open entry from the back.
    lo = 0
    hi = n - 1
    while True:
        while lo < n and not hits[lo]:
            lo += 1
        while hi >= 0 and hits[hi]:
            hi -= 1
        if lo >= hi:
            break
        for r in range(fcol.shape[0]):
            fcol[r, lo] = fcol[r, hi]
        for r in range(icol.shape[0]):
            icol[r, lo] = icol[r, hi]
        lo += 1
        hi -= 1
    return k


def _empty_batch() -> ClosedBatch:
    batch = ClosedBatch.empty()
    for name in ClosedBatch.__dataclass_fields__:
        getattr(batch, name).flags.writeable = False
    return batch


_EMPTY: Final = _empty_batch()
"""Returned for every update that closes nothing (almost all of them): read-only, so sharing it
is safe and the hot path allocates no arrays."""


@dataclass(frozen=True, slots=True)
class OpenSnapshot:
    """Copies of one symbol's open entries (for tests, the UI and diagnostics); order unspecified."""

    set_index: IntArray
    direction: IntArray
    entry_price: FloatArray
    opened_ms: IntArray
    tp_price: FloatArray
    sl_price: FloatArray
    trail_start_distance: FloatArray
    trail_stop_distance: FloatArray
    trailing_active: BoolArray
    best_price: FloatArray
    below_peak: BoolArray
    drawdown_time_ms: IntArray
    fee_fraction: FloatArray
    max_age_ms: IntArray

    def __len__(self) -> int:
        return int(self.set_index.shape[0])


def _block(rows: int, capacity: int, dtype: type[np.float64] | type[np.int64]) -> npt.NDArray[np.generic]:
    """A (rows × capacity) block whose row stride is padded off a multiple of 4 KiB.

    With power-of-two capacities every column of an entry would sit at the same offset within a
    page, so the kernel's 16 column streams compete for the same few cache sets: measured at 4,620
    entries, 15 µs per tick unpadded against 7 µs padded. ``np.zeros`` maps pages lazily, so unused
    capacity costs no memory; every slot is written at open before the kernel reads it (reading
    never-written zero pages was measured far slower).
    """
    return np.zeros((rows, capacity + _ROW_PAD), dtype=dtype)


class _SymbolColumns:
    """One symbol's open entries in slots ``[0, n)`` plus the kernel's output scratch."""

    __slots__ = ("capacity", "fcol", "hits", "icol", "last_ts", "n", "out_f", "out_i")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.fcol = cast(FloatArray, _block(_NF, capacity, np.float64))
        self.icol = cast(IntArray, _block(_NI, capacity, np.int64))
        self.out_f = cast(FloatArray, _block(_NOF, capacity, np.float64))
        self.out_i = cast(IntArray, _block(_NOI, capacity, np.int64))
        self.hits: BoolArray = np.zeros(capacity, dtype=np.bool_)
        self.n = 0
        self.last_ts = np.iinfo(np.int64).min // 2  # no update yet; nobody is under before one

    def reserve(self, needed: int) -> None:
        """Grow by doubling so a long run reallocates O(log n) times, never per trigger."""
        if needed <= self.capacity:
            return
        capacity = self.capacity
        while capacity < needed:
            capacity *= 2
        grown = _SymbolColumns(capacity)
        grown.fcol[:, : self.n] = self.fcol[:, : self.n]
        grown.icol[:, : self.n] = self.icol[:, : self.n]
        self.capacity = capacity
        self.fcol, self.icol, self.hits = grown.fcol, grown.icol, grown.hits
        self.out_f, self.out_i = grown.out_f, grown.out_i


def _occurrence_rank(sets: IntArray) -> IntArray:
    """0 for the first row of each set index in this call, 1 for its second row, …

    A trigger normally names each set once; if it names one twice, the second row must see the
    first as already open, or one call could exceed the limit.
    """
    order = np.argsort(sets, kind="stable")
    ordered = sets[order]
    new_group = np.empty(ordered.shape[0], dtype=np.bool_)
    new_group[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
    if new_group.all():
        return np.zeros(sets.shape[0], dtype=np.int64)
    positions = np.arange(ordered.shape[0], dtype=np.int64)
    group_start = np.maximum.accumulate(np.where(new_group, positions, 0))
    rank = np.empty_like(positions)
    rank[order] = positions - group_start
    return rank


class PseudoBook:
    """All open pseudo entries, per symbol, as columns; one kernel call per tick or candle.

    ``accepting_new`` is the pause switch (D14): while it is False ``open_entries`` refuses every
    row, and ``on_tick``/``on_candle`` keep monitoring and closing what is open.

    Set indices are the caller's (the set table's) non-negative integers. The open limit counts per
    (set index, direction). ``ClosedBatch`` carries no direction, so give the long and short sets of
    one configuration different indices (DOMAIN §2.1 makes direction part of the set anyway).

    Timestamps are UTC ms and must not go backwards per symbol; an older tick still updates prices
    but adds no drawdown time.
    """

    def __init__(
        self,
        *,
        max_open_per_config: int = DEFAULT_MAX_OPEN_PER_CONFIG,
        target_caps_trailing: bool = False,
        initial_capacity: int = _INITIAL_CAPACITY,
    ) -> None:
        self.accepting_new = True
        self.target_caps_trailing = target_caps_trailing
        self._max_open = DEFAULT_MAX_OPEN_PER_CONFIG
        self.max_open_per_config = max_open_per_config
        self._initial_capacity = max(1, initial_capacity)
        self._symbols: dict[str, _SymbolColumns] = {}
        self._counts: IntArray = np.zeros((2, _INITIAL_SET_CAPACITY), dtype=np.int64)

    @property
    def max_open_per_config(self) -> int:
        """D9 limit (1–5). Lowering it never closes anything; it only refuses new rows."""
        return self._max_open

    @max_open_per_config.setter
    def max_open_per_config(self, value: int) -> None:
        low, high = MAX_OPEN_PER_CONFIG_RANGE
        if not low <= value <= high:
            raise ValueError(f"max_open_per_config must be in {low}–{high}, got {value}")
        self._max_open = int(value)

    # ------------------------------------------------------------------ opening

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
    ) -> BoolArray:
        """Open one trigger's configurations at ``entry_price``; returns which rows were opened.

        ``set_indices[j]`` is the set of grid row ``rows[j]`` (or of grid row ``j`` when ``rows`` is
        None, so a whole 924-row grid opens with ``set_indices`` of length 924). A row is refused
        when the book is paused or its (set, direction) already holds ``max_open_per_config`` open
        entries. ``fee_fraction`` is charged on entry and on exit (0.00055 = 0.055 % per side);
        ``max_age_hours`` is D25's ``maxPositionAgeHours`` (0 = no timeout).
        """
        sets = np.asarray(set_indices, dtype=np.int64).ravel()
        row_index = (
            np.arange(sets.shape[0], dtype=np.intp) if rows is None else np.asarray(rows, dtype=np.intp)
        )
        if row_index.shape != sets.shape:
            raise ValueError("set_indices and rows must have the same length")
        if rows is None and sets.shape[0] != len(grid):
            raise ValueError("without rows, set_indices must name one set per grid row")
        if direction not in (LONG, SHORT):
            raise ValueError(f"direction must be +1 or -1, got {direction}")
        if not (math.isfinite(entry_price) and entry_price > 0.0):
            raise ValueError(f"entry price must be a positive number, got {entry_price}")
        if not (math.isfinite(position_cost_pct) and position_cost_pct > 0.0):
            raise ValueError(f"position cost must be a positive percentage, got {position_cost_pct}")
        if not (math.isfinite(fee_fraction) and 0.0 <= fee_fraction < 1.0):
            raise ValueError(f"fee fraction must be in [0, 1), got {fee_fraction}")
        if not (math.isfinite(max_age_hours) and max_age_hours >= 0.0):
            raise ValueError(f"max age must be ≥ 0 hours, got {max_age_hours}")
        if sets.shape[0] and int(sets.min()) < 0:
            raise ValueError("set indices must be non-negative")

        accepted = np.zeros(sets.shape[0], dtype=np.bool_)
        if not self.accepting_new or sets.shape[0] == 0:
            return accepted

        self._reserve_sets(int(sets.max()) + 1)
        side = 0 if direction == LONG else 1
        np.less(self._counts[side, sets] + _occurrence_rank(sets), self._max_open, out=accepted)
        m = int(np.count_nonzero(accepted))
        if m == 0:
            return accepted

        new_sets = sets[accepted]
        picked = row_index[accepted]
        tp_factor = grid.tp_factor[picked]
        trail_start = grid.trail_start[picked]
        trail_stop = grid.trail_stop[picked]
        distance = tp_distance(entry_price, tp_factor, position_cost_pct)
        tp_price, sl_price = exit_levels(
            entry_price, direction, tp_factor, grid.sl_ratio[picked], position_cost_pct
        )
        trailing = ~np.isnan(trail_start)

        cols = self._symbols.get(symbol)
        if cols is None:
            cols = self._symbols[symbol] = _SymbolColumns(self._initial_capacity)
        cols.reserve(cols.n + m)
        lo, hi = cols.n, cols.n + m
        f, i = cols.fcol, cols.icol
        f[_F_ENTRY, lo:hi] = entry_price
        f[_F_TP, lo:hi] = tp_price
        f[_F_SL, lo:hi] = sl_price
        f[_F_STEP, lo:hi] = entry_price * (position_cost_pct / 100.0)
        f[_F_TSTART, lo:hi] = trail_start * distance
        f[_F_TSTOP, lo:hi] = trail_stop * distance
        f[_F_BEST, lo:hi] = entry_price
        f[_F_FEE, lo:hi] = fee_fraction
        i[_I_SET, lo:hi] = new_sets
        i[_I_DIR, lo:hi] = direction
        i[_I_OPENED, lo:hi] = ts_ms
        i[_I_MAX_AGE, lo:hi] = round(max_age_hours * _MS_PER_HOUR)
        i[_I_DD, lo:hi] = 0
        i[_I_TRAILING, lo:hi] = trailing
        i[_I_ACTIVE, lo:hi] = 0
        i[_I_UNDER, lo:hi] = 0
        cols.n = hi
        np.add.at(self._counts[side], new_sets, 1)
        return accepted

    # ------------------------------------------------------------------ monitoring

    def on_tick(self, symbol: str, price: float, ts_ms: int) -> ClosedBatch:
        """Apply one traded price to every open entry of ``symbol``; returns the entries it closed."""
        if not math.isfinite(price):
            raise ValueError(f"tick price must be finite, got {price}")
        return self._update(symbol, price, price, price, price, ts_ms)

    def on_candle(
        self, symbol: str, open_: float, high: float, low: float, close: float, ts_ms: int
    ) -> ClosedBatch:
        """Apply one finished candle; ``ts_ms`` stamps its exits (pass the candle's close time)."""
        if not all(math.isfinite(x) for x in (open_, high, low, close)):
            raise ValueError("candle prices must be finite")
        if not (low <= min(open_, close) and high >= max(open_, close)):
            raise ValueError(f"inconsistent candle o={open_} h={high} l={low} c={close}")
        return self._update(symbol, open_, high, low, close, ts_ms)

    def _update(
        self, symbol: str, open_: float, high: float, low: float, close: float, ts_ms: int
    ) -> ClosedBatch:
        cols = self._symbols.get(symbol)
        if cols is None:
            return _EMPTY
        last_ts = cols.last_ts
        cols.last_ts = max(last_ts, ts_ms)
        n = cols.n
        if n == 0:
            return _EMPTY
        k = _update_kernel(
            cols.fcol,
            cols.icol,
            n,
            float(open_),
            float(high),
            float(low),
            float(close),
            int(ts_ms),
            int(last_ts),
            bool(self.target_caps_trailing),
            self._counts,
            cols.hits,
            cols.out_f,
            cols.out_i,
        )
        if k == 0:
            return _EMPTY
        cols.n = n - k
        of, oi = cols.out_f, cols.out_i
        return ClosedBatch(
            set_index=oi[_OI_SET, :k].copy(),
            opened_ms=oi[_OI_OPENED, :k].copy(),
            closed_ms=np.full(k, ts_ms, dtype=np.int64),
            entry_price=of[_OF_ENTRY, :k].copy(),
            exit_price=of[_OF_EXIT, :k].copy(),
            result_steps=of[_OF_RESULT, :k].copy(),
            pnl_fraction=of[_OF_PNL, :k].copy(),
            fees_fraction=of[_OF_FEES, :k].copy(),
            reason=oi[_OI_REASON, :k].astype(np.int8),
            drawdown_time_ms=oi[_OI_DD, :k].copy(),
            hold_time_ms=oi[_OI_HOLD, :k].copy(),
        )

    # ------------------------------------------------------------------ queries

    def symbols(self) -> list[str]:
        """Symbols that have (or had) entries in the book."""
        return list(self._symbols)

    def open_count(self, symbol: str) -> int:
        cols = self._symbols.get(symbol)
        return 0 if cols is None else cols.n

    def total_open(self) -> int:
        return sum(cols.n for cols in self._symbols.values())

    def open_count_by_set(self, set_indices: npt.ArrayLike, direction: int | None = None) -> IntArray:
        """Open entries per set index (for one direction, or both when ``direction`` is None)."""
        sets = np.asarray(set_indices, dtype=np.int64)
        known = (sets >= 0) & (sets < self._counts.shape[1])
        safe = np.where(known, sets, 0)
        if direction is None:
            found = self._counts[0, safe] + self._counts[1, safe]
        elif direction in (LONG, SHORT):
            found = self._counts[0 if direction == LONG else 1, safe]
        else:
            raise ValueError(f"direction must be +1, -1 or None, got {direction}")
        return np.where(known, found, 0)

    def snapshot(self, symbol: str) -> OpenSnapshot:
        cols = self._symbols.get(symbol) or _SymbolColumns(1)
        n, f, i = cols.n, cols.fcol, cols.icol
        return OpenSnapshot(
            set_index=i[_I_SET, :n].copy(),
            direction=i[_I_DIR, :n].copy(),
            entry_price=f[_F_ENTRY, :n].copy(),
            opened_ms=i[_I_OPENED, :n].copy(),
            tp_price=f[_F_TP, :n].copy(),
            sl_price=f[_F_SL, :n].copy(),
            trail_start_distance=f[_F_TSTART, :n].copy(),
            trail_stop_distance=f[_F_TSTOP, :n].copy(),
            trailing_active=i[_I_ACTIVE, :n] != 0,
            best_price=f[_F_BEST, :n].copy(),
            below_peak=i[_I_UNDER, :n] != 0,
            drawdown_time_ms=i[_I_DD, :n].copy(),
            fee_fraction=f[_F_FEE, :n].copy(),
            max_age_ms=i[_I_MAX_AGE, :n].copy(),
        )

    def _reserve_sets(self, needed: int) -> None:
        if needed <= self._counts.shape[1]:
            return
        capacity = self._counts.shape[1]
        while capacity < needed:
            capacity *= 2
        counts = np.zeros((2, capacity), dtype=np.int64)
        counts[:, : self._counts.shape[1]] = self._counts
        self._counts = counts


def warm_up() -> None:
    """Compile (or load from numba's cache) the book's kernel and the set statistics' fold kernels
    (:func:`cts_desktop.engine.pseudo.stats.warm_up`) now, so the first live tick does not pay it.

    Call once at engine start, off the UI thread's critical path.
    """
    _warm_up_stats()
    book = PseudoBook(initial_capacity=4)
    grid = ConfigGrid(
        tp_factor=np.array([2.0]),
        sl_ratio=np.array([1.0]),
        trailing=np.zeros(1, dtype=np.int8),
        trail_start=np.array([np.nan]),
        trail_stop=np.array([np.nan]),
    )
    book.open_entries("_warm_up", [0], LONG, 100.0, 0, grid, fee_fraction=0.0)
    book.on_tick("_warm_up", 100.0, 1)
    book.on_tick("_warm_up", 50.0, 2)

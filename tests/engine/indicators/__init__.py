"""Tests of the preset indicators; ``market_candles`` loads the real files once per session."""

from __future__ import annotations

from functools import cache

import pytest

from cts_desktop.exchanges.candle_files import CandleArrays, load_candles
from tests.conftest import SHARED_DIR

MARKET_DIR = SHARED_DIR / "data" / "market"
REAL_FILES = ("Binance_BTCUSDT_1h.csv", "Binance_ETHUSDT_1h.csv", "freqtrade_UNITTEST_BTC-1m.json")


@cache
def _load(name: str) -> CandleArrays:
    return load_candles(MARKET_DIR / name).candles


def market_candles(name: str) -> CandleArrays:
    """The candles of one real file (cached), or a skip naming where they were looked for."""
    path = MARKET_DIR / name
    if not path.is_file():
        pytest.skip(f"real market data not found at {path} (see shared/data/market/SOURCE.md)")
    return _load(name)

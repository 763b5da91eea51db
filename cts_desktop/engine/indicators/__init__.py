"""Preset ("common") indicators, DOMAIN §1.8 with decision D20.

- ``batch``: whole-series values through TA-Lib (history, backtests, the CSV export);
- ``incremental``: O(1) per-candle updaters that reproduce TA-Lib's values for live candles;
- ``signals``: the D20 signal rules and their explicit combiner;
- ``grids``: the §1.8 parameter grids and the default parameter set;
- ``export``: ``write_indicator_csv`` behind ``cts-desktop indicators``.

Nothing is re-exported here, so importing one part does not import the others.
"""

"""Market rules shared by the engine tests: real-looking perpetuals of our venues."""

from __future__ import annotations

from cts_desktop.domain.market import MarketInfo, MarketType

BTC_SWAP = MarketInfo(
    "BTC/USDT:USDT",
    "BTC",
    "USDT",
    MarketType.SWAP,
    price_step=0.1,
    amount_step=0.001,
    min_amount=0.001,
    min_cost=5.0,
    max_leverage=100.0,
    maker_fee=0.0002,
    taker_fee=0.0005,
)
"""A linear BTC perpetual (Bybit/Binance style): 0.001 BTC lots, 0.1 USDT ticks, 5 USDT minimum."""

ETH_CONTRACTS = MarketInfo(
    "ETH/USDT:USDT",
    "ETH",
    "USDT",
    MarketType.SWAP,
    price_step=0.01,
    amount_step=1.0,
    min_amount=1.0,
    contract_size=0.1,
    max_leverage=50.0,
    taker_fee=0.0005,
)
"""An OKX-style contract market: one contract is 0.1 ETH, whole contracts only, at most 50×."""

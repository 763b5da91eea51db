"""The paper venue's arithmetic, each rule against a case computed by hand (in the comments)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cts_desktop.domain.market import (
    MarginMode,
    MarketInfo,
    MarketType,
    OrderSide,
    OrderType,
    PositionMode,
    PositionSide,
)
from cts_desktop.exchanges import paper_matching as pm

BUY, SELL = OrderSide.BUY, OrderSide.SELL
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
BTC = MarketInfo(
    "BTC/USDT:USDT",
    "BTC",
    "USDT",
    MarketType.SWAP,
    price_step=0.1,
    amount_step=0.001,
    maker_fee=0.0002,
    taker_fee=0.0005,
)


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-12, abs=1e-9)


# --------------------------------------------------------------------------- steps


@pytest.mark.parametrize(
    ("step", "decimals"), [(0.001, 3), (0.1, 1), (0.5, 1), (1.0, 0), (10.0, 0), (1e-8, 8), (0.00025, 5)]
)
def test_step_decimals(step: float, decimals: int) -> None:
    assert pm.step_decimals(step) == decimals


def test_step_rounding_ignores_binary_noise() -> None:
    # 0.1 + 0.2 = 0.30000000000000004 in binary: still 3 steps of 0.1.
    assert pm.is_on_step(0.1 + 0.2, 0.1)
    assert pm.floor_to_step(0.1 + 0.2, 0.1) == 0.3
    assert pm.ceil_to_step(0.3, 0.1) == 0.3
    assert pm.clean_amount(0.1 + 0.2, 0.001) == 0.3
    # 0.0015 is half-way between 0.001 and 0.002: off the grid.
    assert not pm.is_on_step(0.0015, 0.001)
    assert pm.nearest_steps(0.0015, 0.001) == (0.001, 0.002)
    assert pm.floor_to_step(60_000.07, 0.1) == 60_000.0
    assert pm.ceil_to_step(60_000.01, 0.1) == 60_000.1
    # No step: values pass through.
    assert pm.is_on_step(0.123456789, None)
    assert pm.floor_to_step(1.234, None) == 1.234


def test_large_counts_on_a_small_step() -> None:
    # 123,456.789 BTC-worth at a 0.001 step is 123,456,789 steps: still exactly on the grid.
    assert pm.is_on_step(123_456.789, 0.001)
    assert not pm.is_on_step(123_456.7895, 0.001)


# --------------------------------------------------------------------------- fees and slippage


def test_fee_rate_precedence() -> None:
    bare = MarketInfo("X/USDT", "X", "USDT", MarketType.SPOT)
    assert pm.fee_rate(BTC, maker=True) == 0.0002
    assert pm.fee_rate(BTC, maker=False) == 0.0005
    assert pm.fee_rate(BTC, maker=True, maker_override=0.0001) == 0.0001  # the account's setting wins
    assert pm.fee_rate(BTC, maker=False, taker_override=0.0) == 0.0  # 0 is a rate, not "unset"
    assert pm.fee_rate(bare, maker=True) == pm.DEFAULT_MAKER_FEE
    assert pm.fee_rate(bare, maker=False) == pm.DEFAULT_TAKER_FEE


def test_fee_is_traded_value_times_rate() -> None:
    # 0.1 BTC × 60,030 = 6,003 USDT; × 0.0005 = 3.0015 USDT.
    assert pm.trade_fee(60_030.0, 0.1, 0.0005) == approx(3.0015)
    # 3 contracts of 0.01 BTC at 50,000 = 1,500 USDT; × 0.0002 = 0.3 USDT.
    assert pm.trade_fee(50_000.0, 3, 0.0002, contract_size=0.01) == approx(0.3)


def test_slippage_is_adverse_bounded_and_on_the_tick() -> None:
    # Buy: 60,000 × (1 + 5/10,000) = 60,030.0; sell: 60,000 × (1 − 0.0005) = 59,970.0.
    assert pm.slipped_price(60_000.0, BUY, 5, 0.1) == 60_030.0
    assert pm.slipped_price(60_000.0, SELL, 5, 0.1) == 59_970.0
    # 100.03 × 1.0005 = 100.0800150 → up to the tick 0.01 for a buy: 100.09; the sell
    # 100.03 × 0.9995 = 99.979985 → down: 99.97.
    assert pm.slipped_price(100.03, BUY, 5, 0.01) == 100.09
    assert pm.slipped_price(100.03, SELL, 5, 0.01) == 99.97
    # Base 5 bps + impact 20 bps × (2 / 4 of the volume) = 15 bps; capped at 12.
    assert pm.slippage_bps(5, 50, impact_bps=20, amount=2, volume=4) == 15
    assert pm.slippage_bps(5, 12, impact_bps=20, amount=2, volume=4) == 12
    assert pm.slippage_bps(5, 50, impact_bps=20, amount=2, volume=None) == 5
    assert pm.slippage_bps(5, 50, impact_bps=20, amount=2, volume=0) == 5


# --------------------------------------------------------------------------- triggers


def test_a_limit_fills_only_when_traded_through() -> None:
    assert pm.limit_marketable(BUY, 100, 100) and pm.limit_marketable(SELL, 100, 100)
    assert not pm.limit_traded_through(BUY, 100, 100)  # a touch is not a fill
    assert pm.limit_traded_through(BUY, 100, 99.9)
    assert not pm.limit_traded_through(SELL, 100, 100)
    assert pm.limit_traded_through(SELL, 100, 100.1)


@pytest.mark.parametrize(
    ("order_type", "side", "price", "fires"),
    [
        (OrderType.STOP_LOSS, SELL, 59_000.1, False),  # long's stop at 59,000
        (OrderType.STOP_LOSS, SELL, 59_000.0, True),
        (OrderType.STOP_LOSS, SELL, 58_000.0, True),
        (OrderType.STOP_LOSS, BUY, 58_999.9, False),  # short's stop (or breakout buy) at 59,000
        (OrderType.STOP_LOSS, BUY, 59_000.0, True),
        (OrderType.TAKE_PROFIT, SELL, 58_999.9, False),  # long's take-profit at 59,000
        (OrderType.TAKE_PROFIT, SELL, 59_100.0, True),
        (OrderType.TAKE_PROFIT, BUY, 59_000.1, False),  # short's take-profit at 59,000
        (OrderType.TAKE_PROFIT, BUY, 58_000.0, True),
        (OrderType.LIMIT, BUY, 1.0, False),
    ],
)
def test_stop_triggers(order_type: OrderType, side: OrderSide, price: float, fires: bool) -> None:
    assert pm.stop_triggered(order_type, side, 59_000.0, price) is fires


def test_a_gapped_stop_fills_at_the_first_price_past_it() -> None:
    # Stop at 59,000, the next price seen is 58,000: the fill is 58,000 (less 5 bps = 57,971.0),
    # never the 59,000 level the market skipped.
    assert pm.stop_fill_price(58_000.0, SELL, 0, 0.1) == 58_000.0
    assert pm.stop_fill_price(58_000.0, SELL, 5, 0.1) == 57_971.0


# --------------------------------------------------------------------------- partial fills


def test_fillable_amount() -> None:
    # 40 % of a 1.0 order per tick: 0.4, 0.4, then the remaining 0.2.
    assert pm.fillable_amount(1.0, 1.0, 0.4, None, 0.001) == 0.4
    assert pm.fillable_amount(0.2, 1.0, 0.4, None, 0.001) == 0.2
    # 10 % of a tick volume of 3.0 = 0.3 available.
    assert pm.fillable_amount(1.0, 1.0, 1.0, pm.tick_liquidity(3.0, 0.1), 0.001) == approx(0.3)
    # 0.5 × 0.003 = 0.0015 rounds down to whole lots: 0.001.
    assert pm.fillable_amount(0.003, 0.003, 0.5, None, 0.001) == 0.001
    # Less than one lot available: nothing this tick.
    assert pm.fillable_amount(1.0, 1.0, 1.0, 0.0004, 0.001) == 0.0
    assert pm.tick_liquidity(None, 0.1) is None
    assert pm.tick_liquidity(5.0, None) is None


# --------------------------------------------------------------------------- positions


def test_margin_and_pnl_of_a_leveraged_long_and_short() -> None:
    # 10× long 0.1 BTC at 60,000: notional 6,000, margin 600. At 61,200: (61,200 − 60,000) × 0.1 = +120.
    assert pm.initial_margin(60_000.0, 0.1, 10) == approx(600.0)
    assert pm.position_pnl(LONG, 60_000.0, 61_200.0, 0.1) == approx(120.0)
    # The same short loses 120; a short from 60,000 to 58,800 gains 120.
    assert pm.position_pnl(SHORT, 60_000.0, 61_200.0, 0.1) == approx(-120.0)
    assert pm.position_pnl(SHORT, 60_000.0, 58_800.0, 0.1) == approx(120.0)
    # Contract size: 10 contracts × 0.01 BTC = 0.1 BTC, same PnL.
    assert pm.position_pnl(LONG, 60_000.0, 61_200.0, 10, contract_size=0.01) == approx(120.0)


def test_plan_hedge_keeps_sides_apart() -> None:
    # Hedge: a sell addressed to the long side only reduces it, never past it.
    plan = pm.plan_fill(
        PositionMode.HEDGE, SELL, 0.3, long_contracts=0.1, short_contracts=0.0, position_side=LONG
    )
    assert plan == pm.FillPlan(LONG, 0.1, None, 0.0)
    # A plain sell opens (or adds to) the short even while a long is open.
    plan = pm.plan_fill(PositionMode.HEDGE, SELL, 0.3, long_contracts=0.1, short_contracts=0.0)
    assert plan == pm.FillPlan(None, 0.0, SHORT, 0.3)
    # Reduce-only without a side: a sell reduces the long.
    plan = pm.plan_fill(
        PositionMode.HEDGE, SELL, 0.05, long_contracts=0.1, short_contracts=0.2, reduce_only=True
    )
    assert plan == pm.FillPlan(LONG, 0.05, None, 0.0)


def test_plan_one_way_reduces_closes_then_flips() -> None:
    # Long 0.1, sell 0.05: reduce. Sell 0.1: close. Sell 0.3: close 0.1 and open short 0.2.
    assert pm.plan_fill(
        PositionMode.ONE_WAY, SELL, 0.05, long_contracts=0.1, short_contracts=0
    ) == pm.FillPlan(LONG, 0.05, None, 0.0)
    assert pm.plan_fill(
        PositionMode.ONE_WAY, SELL, 0.1, long_contracts=0.1, short_contracts=0
    ) == pm.FillPlan(LONG, 0.1, None, 0.0)
    plan = pm.plan_fill(
        PositionMode.ONE_WAY, SELL, 0.3, long_contracts=0.1, short_contracts=0, amount_step=0.001
    )
    assert plan == pm.FillPlan(LONG, 0.1, SHORT, 0.2)
    # Reduce-only never flips: the remainder is dropped.
    plan = pm.plan_fill(
        PositionMode.ONE_WAY, SELL, 0.3, long_contracts=0.1, short_contracts=0, reduce_only=True
    )
    assert plan == pm.FillPlan(LONG, 0.1, None, 0.0)


def test_settle_a_leveraged_round_trip() -> None:
    # Open: 10× long 0.1 at 60,000, taker fee 0.1 × 60,000 × 0.0005 = 3: margin 600, free −603.
    opened = pm.settle_derivative_fill(
        pm.FillPlan(None, 0, LONG, 0.1),
        60_000.0,
        3.0,
        long=None,
        short=None,
        leverage=10,
        margin_mode=MarginMode.CROSS,
    )
    assert opened.added_margin == approx(600.0)
    assert opened.free_delta == approx(-603.0)
    assert opened.opened == pm.PositionState(LONG, 0.1, 60_000.0, 10, MarginMode.CROSS, 600.0, -3.0)
    # Close at 61,200, fee 0.1 × 61,200 × 0.0005 = 3.06: +120 PnL, 600 margin back: free +716.94.
    closed = pm.settle_derivative_fill(
        pm.FillPlan(LONG, 0.1, None, 0),
        61_200.0,
        3.06,
        long=opened.opened,
        short=None,
        leverage=10,
        margin_mode=MarginMode.CROSS,
        amount_step=0.001,
    )
    assert closed.realized_pnl == approx(120.0)
    assert closed.released_margin == approx(600.0)
    assert closed.free_delta == approx(716.94)
    assert closed.closed is not None and closed.closed.contracts == 0
    assert closed.closed.realized_pnl == approx(-3.0 + 120.0 - 3.06)  # 113.94 net of both fees


def test_settle_adding_averages_the_entry_and_a_flip_splits_the_fee() -> None:
    long = pm.PositionState(LONG, 0.1, 60_000.0, 10, MarginMode.ISOLATED, 600.0, 0.0)
    # Add 0.1 at 62,000: entry (60,000 × 0.1 + 62,000 × 0.1) / 0.2 = 61,000; margin 600 + 620.
    added = pm.settle_derivative_fill(
        pm.FillPlan(None, 0, LONG, 0.1),
        62_000.0,
        0.0,
        long=long,
        short=None,
        leverage=5,
        margin_mode=MarginMode.CROSS,
    )
    assert added.opened is not None
    assert added.opened.entry_price == approx(61_000.0)
    assert added.opened.margin == approx(1_220.0)
    assert (added.opened.leverage, added.opened.margin_mode) == (
        10,
        MarginMode.ISOLATED,
    )  # the position's own
    # Flip: sell 0.3 at 61,000 against long 0.1 at 60,000; fee 9.15 split 1/3 : 2/3 by quantity.
    flip = pm.settle_derivative_fill(
        pm.FillPlan(LONG, 0.1, SHORT, 0.2),
        61_000.0,
        9.15,
        long=long,
        short=None,
        leverage=10,
        margin_mode=MarginMode.CROSS,
        amount_step=0.001,
    )
    assert flip.realized_pnl == approx(100.0)  # (61,000 − 60,000) × 0.1
    assert flip.added_margin == approx(1_220.0)  # 0.2 × 61,000 / 10
    assert flip.closed is not None and flip.closed.realized_pnl == approx(100.0 - 3.05)
    assert flip.opened is not None and flip.opened.realized_pnl == approx(-6.1)
    # Free: +600 margin back + 100 PnL − 9.15 fee − 1,220 new margin = −529.15.
    assert flip.free_delta == approx(-529.15)


def test_remargin_and_spot() -> None:
    long = pm.PositionState(LONG, 0.1, 60_000.0, 10, MarginMode.CROSS, 600.0, 0.0)
    assert pm.remargin(long, 5).margin == approx(1_200.0)  # 6,000 / 5
    # Spot buy 0.5 at 2,002 with fee 1.001: pay 1,001 + 1.001 quote, receive 0.5 base.
    assert pm.settle_spot_fill(BUY, 0.5, 2_002.0, 1.001) == pm.SpotSettlement(0.5, -1_002.001, 1.001)
    assert pm.settle_spot_fill(SELL, 0.5, 2_100.0, 1.05) == pm.SpotSettlement(-0.5, 1_048.95, 1.05)
    assert pm.unrealized_pnl(long, 59_000.0) == approx(-100.0)


# --------------------------------------------------------------------------- properties

contracts = st.integers(min_value=0, max_value=5_000).map(lambda n: n / 1000)
quantities = st.integers(min_value=1, max_value=5_000).map(lambda n: n / 1000)


@given(
    mode=st.sampled_from(PositionMode),
    side=st.sampled_from(OrderSide),
    qty=quantities,
    long_contracts=contracts,
    short_contracts=contracts,
    position_side=st.none() | st.sampled_from(PositionSide),
    reduce_only=st.booleans(),
)
def test_plan_never_increases_a_position_when_reducing(
    mode: PositionMode,
    side: OrderSide,
    qty: float,
    long_contracts: float,
    short_contracts: float,
    position_side: PositionSide | None,
    reduce_only: bool,
) -> None:
    plan = pm.plan_fill(
        mode,
        side,
        qty,
        long_contracts=long_contracts,
        short_contracts=short_contracts,
        position_side=position_side if mode is PositionMode.HEDGE else None,
        reduce_only=reduce_only,
        amount_step=0.001,
    )
    assert plan.total <= qty + 1e-12
    if reduce_only:
        assert plan.open_qty == 0
    if plan.close_side is not None:
        held = long_contracts if plan.close_side is LONG else short_contracts
        assert plan.close_qty <= held + 1e-12
        assert pm.closes(side, plan.close_side)
    if plan.open_side is not None:
        assert plan.open_side is pm.opening_side(side)
    if mode is PositionMode.ONE_WAY and not reduce_only:
        assert math.isclose(plan.total, qty, abs_tol=1e-12)  # netting always executes everything


@given(
    entry=st.integers(min_value=1_000, max_value=100_000),
    exit_=st.integers(min_value=1_000, max_value=100_000),
    qty=quantities,
    close_share=st.integers(min_value=1, max_value=100),
    leverage=st.integers(min_value=1, max_value=100),
)
def test_a_round_trip_conserves_money(
    entry: int, exit_: int, qty: float, close_share: int, leverage: int
) -> None:
    """Whatever is opened and partly closed: free change + margin still held = PnL − fees."""
    fee_open, fee_close = 1.5, 0.7
    opened = pm.settle_derivative_fill(
        pm.FillPlan(None, 0, SHORT, qty),
        float(entry),
        fee_open,
        long=None,
        short=None,
        leverage=leverage,
        margin_mode=MarginMode.CROSS,
    )
    assert opened.opened is not None
    close_qty = min(qty, pm.ceil_to_step(qty * close_share / 100, 0.001))
    closed = pm.settle_derivative_fill(
        pm.FillPlan(SHORT, close_qty, None, 0),
        float(exit_),
        fee_close,
        long=None,
        short=opened.opened,
        leverage=leverage,
        margin_mode=MarginMode.CROSS,
        amount_step=0.001,
    )
    assert closed.closed is not None
    held = closed.closed.margin
    pnl = (entry - exit_) * close_qty
    assert opened.free_delta + closed.free_delta + held == pytest.approx(pnl - fee_open - fee_close, abs=1e-6)

"""D13 order sizing: hand-computed cases on real-looking markets, the refusals (no fallback balance,
never rounded up to the minimum), exact decimal rounding, and properties over random inputs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import MarketInfo, MarketType, OrderSide, OrderType
from cts_desktop.domain.orders import OrderIntent, RiskDecision
from cts_desktop.domain.settings_schema import SettingValidationError, defaults
from cts_desktop.engine.risk import AccountState, RiskGate, RiskLimits
from cts_desktop.engine.sizing import (
    SizedOrder,
    leverage_for,
    size_order,
    size_order_from_settings,
    volume_factor_for,
)
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.connections import ConnectionRepository
from tests.engine.markets import BTC_SWAP as BTC
from tests.engine.markets import ETH_CONTRACTS

SPOT = MarketInfo(
    "ETH/USDT", "ETH", "USDT", MarketType.SPOT, price_step=0.01, amount_step=0.0001, min_amount=0.0001
)

DEFAULTS: dict[str, Any] = {
    "balance": 10_000.0,
    "price": 50_000.0,
    "market": BTC,
    "position_cost_pct": 0.1,
    "volume_factor": 1.0,
    "leverage_pct": 100.0,
    "max_leverage_setting": 125.0,
    "use_max_leverage": True,
    "leverage_cap": 0.0,
}


def size(**changes: Any) -> SizedOrder | RiskDecision:
    return size_order(**{**DEFAULTS, **changes})


def sized(**changes: Any) -> SizedOrder:
    result = size(**changes)
    assert isinstance(result, SizedOrder), result
    return result


def refusal(**changes: Any) -> RiskDecision:
    result = size(**changes)
    assert isinstance(result, RiskDecision), result
    assert not result.allowed
    return result


# --- D13 by hand ------------------------------------------------------------------------------------


def test_d13_with_the_maximal_leverage() -> None:
    # leverage = min(exchange 100, setting 125) = 100; 10,000 × 0.1 % × 1 × 100 ÷ 50,000 = 0.02 BTC
    order = sized()
    assert order == SizedOrder(
        amount=0.02, leverage=100.0, price=50_000.0, notional=1_000.0, margin=10.0, raw_amount=0.02
    )


@pytest.mark.parametrize(
    ("changes", "leverage", "amount"),
    [
        ({"use_max_leverage": False, "leverage_pct": 50.0}, 50.0, 0.01),  # 100 × 50 %
        ({"leverage_cap": 20.0}, 20.0, 0.004),  # the risk cap wins, even with "use maximal"
        ({"max_leverage_setting": 10.0}, 10.0, 0.002),  # the setting wins over the exchange
        ({"volume_factor": 0.1}, 100.0, 0.002),  # a first live switch
        ({"volume_factor": 2.5, "position_cost_pct": 0.2}, 100.0, 0.1),
        ({"balance": 500.0}, 100.0, 0.001),  # exactly the minimum amount: allowed
    ],
)
def test_d13_cases(changes: dict[str, Any], leverage: float, amount: float) -> None:
    order = sized(**changes)
    assert (order.leverage, order.amount) == (leverage, amount)
    assert order.notional == pytest.approx(amount * 50_000.0)
    assert order.margin == pytest.approx(order.notional / leverage)


NO_MAX = dataclasses.replace(BTC, max_leverage=None)


@pytest.mark.parametrize(
    ("market", "pct", "use_max", "cap", "connection_max", "expected"),
    [
        (BTC, 35.0, False, 0.0, None, 35.0),  # 100 × 35 %
        (dataclasses.replace(BTC, max_leverage=125.0), 35.0, False, 0.0, None, 43.0),  # 43.75 → 43
        (BTC, 5.0, False, 10.0, None, 1.0),  # 10 × 5 % = 0.5 → at least 1
        (BTC, 100.0, True, 0.0, None, 100.0),
        (BTC, 100.0, True, 0.0, 150.0, 100.0),  # the market's own maximum wins over the connection's
        (NO_MAX, 5.0, False, 0.0, 150.0, 6.0),  # min(setting 125, connection 150) × 5 % = 6.25 → 6
        (NO_MAX, 100.0, True, 0.0, 20.0, 20.0),  # the connection's maximum where the market states none
        (NO_MAX, 100.0, True, 10.0, None, 10.0),  # or the risk cap
        (NO_MAX, 100.0, True, 0.0, None, 1.0),  # nobody said leverage is allowed
        (SPOT, 100.0, True, 20.0, 125.0, 1.0),  # spot has no leverage
    ],
)
def test_leverage(
    market: MarketInfo, pct: float, use_max: bool, cap: float, connection_max: float | None, expected: float
) -> None:
    got = leverage_for(
        market,
        leverage_pct=pct,
        max_leverage_setting=125.0,
        use_max_leverage=use_max,
        leverage_cap=cap,
        connection_max_leverage=connection_max,
    )
    assert got == expected


def test_rounding_is_down_to_the_lot_step() -> None:
    # 12,345 × 0.1 % × 100 ÷ 43,210.5 = 0.02856944... → 0.028 (never 0.029)
    order = sized(balance=12_345.0, price=43_210.5)
    assert order.amount == 0.028
    assert order.raw_amount == pytest.approx(0.0285694449)


def test_exact_decimal_arithmetic_does_not_lose_a_lot_step_to_float_noise() -> None:
    # In floats 1,000 × 0.3 % × 0.3 × 7 ÷ 100 is 0.06299999999999999, which a float floor turns
    # into 0.062; the exact value is 0.063, exactly 63 lot steps.
    market = dataclasses.replace(BTC, min_cost=None)
    assert math.floor(1_000 * 0.3 / 100 * 0.3 * 7 / 100 / 0.001) * 0.001 < 0.063  # the trap is real
    order = sized(
        balance=1_000.0,
        price=100.0,
        market=market,
        position_cost_pct=0.3,
        volume_factor=0.3,
        max_leverage_setting=7,
    )
    assert order.amount == 0.063
    assert repr(order.amount) == "0.063"  # no 0.063000000000000001-style tail


def test_a_contract_size_market_sizes_in_whole_contracts() -> None:
    # leverage min(50, 125) = 50; 10,000 × 0.1 % × 50 ÷ (3,000 × 0.1) = 1.67 contracts → 1
    order = sized(price=3_000.0, market=ETH_CONTRACTS)
    assert (order.amount, order.leverage, order.notional, order.margin) == (1.0, 50.0, 300.0, 6.0)
    # 1 % position cost: 16.67 → 16 contracts = 1.6 ETH = 4,800 USDT
    order = sized(price=3_000.0, market=ETH_CONTRACTS, position_cost_pct=1.0)
    assert order.amount == 16.0 and order.notional == pytest.approx(4_800.0)


def test_spot_sizes_without_leverage() -> None:
    order = sized(price=2_000.0, market=SPOT)  # 10,000 × 0.1 % ÷ 2,000 = 0.005 ETH
    assert (order.amount, order.leverage) == (0.005, 1.0)


# --- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("balance", [None, 0.0, -50.0, math.nan, math.inf])
def test_no_order_without_a_real_balance(balance: float | None) -> None:
    result = refusal(balance=balance)
    assert result.rule == "balance"
    assert "no order without a balance fetched from the account" in result.message
    assert "10,000" not in result.message  # the original's fallback balance is gone


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan])
def test_no_order_without_a_price(price: float) -> None:
    assert refusal(price=price).rule == "price"


def test_below_the_minimum_amount_is_refused_not_raised_to_it() -> None:
    # 499 × 0.1 % × 100 ÷ 50,000 = 0.000998 → 0 lot steps; the original raised it to 0.001.
    result = refusal(balance=499.0)
    assert result.rule == "min_amount"
    assert result.numbers["raw_amount"] == pytest.approx(0.000998)
    assert result.numbers["amount"] == 0.0 and result.numbers["minimum"] == 0.001
    assert "below the minimum order size 0.001 of BTC/USDT:USDT" in result.message
    # A market minimum above one lot step: 0.004 is on the step but below 0.005.
    result = refusal(market=dataclasses.replace(BTC, min_amount=0.005), leverage_cap=20.0)
    assert (result.rule, result.numbers["amount"]) == ("min_amount", 0.004)


def test_below_the_minimum_cost_is_refused_and_exactly_at_it_allowed() -> None:
    # 0.001 BTC at 4,000 = 4 USDT < 5; at 5,000 = exactly 5 USDT.
    result = refusal(balance=40.0, price=4_000.0)
    assert result.rule == "min_cost"
    assert result.message == "minimum order value: 4.00 USDT is below the minimum 5.00 USDT of BTC/USDT:USDT"
    assert sized(balance=50.0, price=5_000.0).notional == 5.0


def test_a_refusal_is_a_risk_decision() -> None:
    decision = refusal(balance=40.0, price=4_000.0)
    assert not decision.allowed and decision.rule == "min_cost"
    assert decision.numbers["notional"] == 4.0 and decision.numbers["minimum"] == 5.0


@pytest.mark.parametrize(
    "bad",
    [
        {"position_cost_pct": 0.0},
        {"volume_factor": -1.0},
        {"leverage_pct": 0.0},
        {"leverage_pct": 120.0},
        {"max_leverage_setting": 0.5},
        {"leverage_cap": -2.0},
    ],
)
def test_impossible_settings_are_bugs_and_raise(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        size(**bad)


# --- settings and the connection's volume factor --------------------------------------------------------


@pytest_asyncio.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'sizing.db'}")
    yield db
    await db.close()


@pytest.mark.asyncio
async def test_sizing_from_settings_with_the_connections_volume_factors(database: Database) -> None:
    record = await ConnectionRepository(database).create(
        name="Bybit main", exchange="bybit", live_volume_factor=0.1, preset_volume_factor=2.0
    )
    assert volume_factor_for("main", record) == 0.1
    assert volume_factor_for("preset", record) == 2.0
    values = {**defaults(), "exchange.live_volume_factor": 3.0}
    assert volume_factor_for("main", None, values) == 3.0
    assert volume_factor_for("preset", None, {}) == 1.0  # the registry default
    with pytest.raises(ValueError):
        volume_factor_for("other", record)  # type: ignore[arg-type]

    # Defaults: PC 0.1 %, use maximal leverage, max 125, no cap → min(100, 125) = 100×.
    main = size_order_from_settings(
        defaults(),
        balance=10_000.0,
        price=50_000.0,
        market=BTC,
        volume_factor=volume_factor_for("main", record),
    )
    assert isinstance(main, SizedOrder) and (main.amount, main.leverage) == (0.002, 100.0)
    custom = {
        **defaults(),
        "main.position_cost_pct": 0.5,
        "main.use_max_leverage": False,
        "main.leverage_pct": 20,
        "risk.leverage_cap": 0,
    }
    preset = size_order_from_settings(
        custom,
        balance=10_000.0,
        price=50_000.0,
        market=BTC,
        volume_factor=volume_factor_for("preset", record),
    )
    # 10,000 × 0.5 % × 2 × (100 × 20 % = 20) ÷ 50,000 = 0.04
    assert isinstance(preset, SizedOrder) and (preset.amount, preset.leverage) == (0.04, 20.0)
    with pytest.raises(SettingValidationError):
        size_order_from_settings(
            {"main.position_cost_pct": 5.0}, balance=1.0, price=1.0, market=BTC, volume_factor=1.0
        )


# --- properties ---------------------------------------------------------------------------------------

STEPS = [0.001, 0.0001, 0.00001, 0.01, 0.1, 1.0, 10.0]


def _dec(value: float) -> Decimal:
    return Decimal(repr(value))


@settings(max_examples=400, deadline=None)
@given(
    balance=st.floats(min_value=1.0, max_value=5_000_000.0, allow_nan=False),
    price=st.floats(min_value=0.0001, max_value=200_000.0, allow_nan=False),
    pc=st.integers(min_value=1, max_value=100).map(lambda n: n / 100),  # 0.01–1.0 %, the setting's grid
    vf=st.integers(min_value=1, max_value=100).map(lambda n: n / 10),  # 0.1–10, step 0.1
    leverage_pct=st.integers(min_value=1, max_value=20).map(lambda n: float(n * 5)),
    use_max=st.booleans(),
    market_max=st.sampled_from([None, 10.0, 20.0, 50.0, 75.0, 100.0, 125.0, 150.0]),
    cap=st.sampled_from([0.0, 1.0, 5.0, 20.0, 200.0]),
    connection_max=st.sampled_from([None, 20.0, 125.0, 150.0]),
    step=st.sampled_from(STEPS),
    contract_size=st.sampled_from([1.0, 0.1, 0.01, 10.0, 100.0]),
)
def test_a_sized_order_is_a_lot_step_multiple_within_the_formula_and_passes_the_gate(
    balance: float,
    price: float,
    pc: float,
    vf: float,
    leverage_pct: float,
    use_max: bool,
    market_max: float | None,
    cap: float,
    connection_max: float | None,
    step: float,
    contract_size: float,
) -> None:
    market = dataclasses.replace(
        BTC,
        price_step=None,
        amount_step=step,
        min_amount=step,
        min_cost=5.0,
        contract_size=contract_size,
        max_leverage=market_max,
    )
    result = size_order(
        balance=balance,
        price=price,
        market=market,
        position_cost_pct=pc,
        volume_factor=vf,
        leverage_pct=leverage_pct,
        max_leverage_setting=125.0,
        use_max_leverage=use_max,
        leverage_cap=cap,
        connection_max_leverage=connection_max,
    )
    if isinstance(result, RiskDecision):
        assert not result.allowed
        # Refused only when the largest lot-step multiple within the formula is under a minimum.
        assert result.rule in ("min_amount", "min_cost")
        floored = math.floor(result.numbers["raw_amount"] / step + 1e-9)
        assert floored * step < step or floored * step * contract_size * price < 5.0 + 1e-6
        return
    amount, lot, size = _dec(result.amount), _dec(step), _dec(contract_size)
    exchange_max = market_max or connection_max
    ceiling = min(x for x in (125.0, exchange_max, cap or None) if x) if exchange_max or cap else 1.0
    assert result.leverage == int(result.leverage) and 1 <= result.leverage <= ceiling
    bound = _dec(balance) * _dec(pc) / 100 * _dec(vf) * _dec(result.leverage) / _dec(price)
    assert amount * size <= bound  # never above balance × PC × vf × lev ÷ price
    if amount / lot < 10**14:  # up to 15 significant digits a float holds the decimal exactly
        assert amount % lot == 0  # a whole number of lot steps, exactly
        assert (amount + lot) * size > bound  # and the largest such multiple
    else:  # a float cannot hold the exact multiple: it is rounded toward zero by at most one ulp
        assert (amount + lot) * size > bound * (1 - Decimal("1e-15"))
    assert amount >= _dec(step) and result.notional >= 5.0

    # A sized order on a fresh account with that balance passes the risk gate.
    intent = OrderIntent(
        connection_id="c",
        symbol=market.symbol,
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        amount=result.amount,
        reference_price=price,
        mode=TradingMode.PAPER,
        contract_size=contract_size,
        leverage=result.leverage,
    )
    fresh = AccountState(equity=balance, free_balance=balance, day_start_equity=balance, peak_equity=balance)
    limits = RiskLimits(
        max_open_positions=10,
        max_daily_loss_pct=5.0,
        max_drawdown_pct=30.0,
        leverage_cap=cap,
        connection_max_leverage=connection_max,
    )
    decision = RiskGate().check(intent, fresh, market, limits)
    assert decision.allowed, decision.message

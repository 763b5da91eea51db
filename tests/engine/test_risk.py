"""The risk gate: each rule just inside, exactly at and just outside its boundary; reduce-only
exemptions; the rule order; and, end to end, the gate in front of the real paper venue trading the
simulated market on a real SQLite file.

Unless a test says otherwise: BTC/USDT:USDT is a linear perpetual with tick 0.1, lot 0.001,
minimum 0.001, minimum cost 5 USDT, max leverage 100, taker fee 0.05 %; the account holds 10,000
USDT with no loss today and no drawdown; the limits are 10 open positions, 5 % daily loss, 30 %
drawdown, leverage cap 20× and a 10,000 USDT position limit.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import (
    MarketInfo,
    MarketType,
    OrderRequest,
    OrderSide,
    OrderType,
    PositionMode,
    VenueOrderStatus,
)
from cts_desktop.domain.orders import OrderIntent, RiskDecision
from cts_desktop.domain.settings_schema import SettingValidationError, defaults
from cts_desktop.engine.risk import (
    EXPOSURE_RULES,
    RULE_ORDER,
    AccountState,
    RiskGate,
    RiskLimits,
    RiskRule,
    connection_max_leverage,
    effective_leverage_cap,
    equity_of,
)
from cts_desktop.engine.sizing import SizedOrder, size_order_from_settings
from cts_desktop.exchanges import paper_matching as pm
from cts_desktop.exchanges.clock import ManualClock
from cts_desktop.exchanges.errors import InsufficientFundsError, InvalidOrderError
from cts_desktop.exchanges.paper import AccountSettings, PaperExchange
from cts_desktop.exchanges.simulated import SimulatedExchange
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.connections import ConnectionRepository
from cts_desktop.storage.repositories.paper import PaperRepository
from tests.engine.markets import BTC_SWAP, ETH_CONTRACTS

BTC = "BTC/USDT:USDT"
MARKET = BTC_SWAP
SPOT = MarketInfo(
    "ETH/USDT", "ETH", "USDT", MarketType.SPOT, price_step=0.01, amount_step=0.0001, taker_fee=0.001
)
LIMITS = RiskLimits(
    max_open_positions=10,
    max_daily_loss_pct=5.0,
    max_drawdown_pct=30.0,
    leverage_cap=20.0,
    max_position_notional=10_000.0,
)
ACCOUNT = AccountState(
    equity=10_000.0, free_balance=10_000.0, day_start_equity=10_000.0, peak_equity=10_000.0, open_positions=0
)
GATE = RiskGate()


def intent(**changes: Any) -> OrderIntent:
    """A 0.01 BTC market buy at 50,000 (500 USDT) with 10× leverage, then ``changes``."""
    base = OrderIntent(
        connection_id="conn-1",
        symbol=BTC,
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        amount=0.01,
        reference_price=50_000.0,
        mode=TradingMode.PAPER,
        leverage=10.0,
    )
    return dataclasses.replace(base, **changes)


def account(**changes: Any) -> AccountState:
    return dataclasses.replace(ACCOUNT, **changes)


def limits(**changes: Any) -> RiskLimits:
    return dataclasses.replace(LIMITS, **changes)


def check(
    order: OrderIntent | None = None,
    state: AccountState = ACCOUNT,
    market: MarketInfo = MARKET,
    risk: RiskLimits = LIMITS,
) -> RiskDecision:
    return GATE.check(order or intent(), state, market, risk)


def refused(decision: RiskDecision, rule: RiskRule) -> RiskDecision:
    assert not decision.allowed, "expected a refusal"
    assert decision.rule == rule.value, decision.message
    return decision


def allowed(decision: RiskDecision) -> None:
    assert decision.allowed, f"refused: [{decision.rule}] {decision.message}"


def test_an_ordinary_order_passes() -> None:
    decision = check()
    assert decision == RiskDecision.ok()


# --- market, amount and precision ----------------------------------------------------------------


def test_an_inactive_market_or_the_wrong_market_is_refused() -> None:
    decision = refused(check(market=dataclasses.replace(MARKET, active=False)), RiskRule.MARKET)
    assert "not active" in decision.message
    decision = refused(check(intent(symbol="ETH/USDT:USDT")), RiskRule.MARKET)
    assert "ETH/USDT:USDT" in decision.message and BTC in decision.message


@pytest.mark.parametrize("amount", [0.0, -0.01, math.nan, math.inf])
def test_the_amount_must_be_a_positive_number(amount: float) -> None:
    refused(check(intent(amount=amount)), RiskRule.AMOUNT)


def test_the_intents_contract_size_must_be_the_markets() -> None:
    # Forgetting the contract size of a 0.1-ETH contract would value the order 10× too high.
    order = intent(symbol=ETH_CONTRACTS.symbol, amount=10.0, reference_price=3_000.0)
    decision = refused(check(order, market=ETH_CONTRACTS), RiskRule.AMOUNT)
    assert decision.numbers == {"contract_size": 1.0, "market_contract_size": 0.1}
    allowed(check(dataclasses.replace(order, contract_size=0.1), market=ETH_CONTRACTS))


def test_the_amount_must_be_on_the_lot_step() -> None:
    decision = refused(check(intent(amount=0.0105)), RiskRule.LOT_STEP)
    assert decision.message == (
        "lot step: amount 0.0105 is not a multiple of the lot step 0.001 (nearest valid: 0.01 or 0.011)"
    )
    assert decision.numbers == {"amount": 0.0105, "step": 0.001}
    allowed(check(intent(amount=0.011)))
    # Float noise is not an off-step amount: 0.1 + 0.2 is 0.30000000000000004.
    allowed(check(intent(amount=0.1 + 0.2, reference_price=5_000.0)))
    allowed(check(intent(amount=3 * 0.001)))


def test_prices_must_exist_be_positive_and_sit_on_the_tick() -> None:
    refused(check(intent(reference_price=0.0)), RiskRule.PRICE)
    refused(check(intent(type=OrderType.LIMIT)), RiskRule.PRICE)  # a limit order without a price
    refused(check(intent(type=OrderType.STOP_LOSS)), RiskRule.PRICE)  # a stop without a stop price
    decision = refused(check(intent(type=OrderType.LIMIT, price=49_999.95)), RiskRule.PRICE_TICK)
    assert "limit price 49,999.95 is not a multiple of the tick size 0.1" in decision.message
    allowed(check(intent(type=OrderType.LIMIT, price=49_999.9)))
    refused(check(intent(type=OrderType.TAKE_PROFIT, stop_price=51_000.05)), RiskRule.PRICE_TICK)
    allowed(check(intent(type=OrderType.TAKE_PROFIT, stop_price=51_000.1)))


# --- minimums: exactly at the minimum is allowed ---------------------------------------------------


@pytest.mark.parametrize(("amount", "ok"), [(0.003, True), (0.002, True), (0.001, False)])
def test_minimum_amount_boundary(amount: float, ok: bool) -> None:
    market = dataclasses.replace(MARKET, min_amount=0.002, min_cost=None)
    decision = check(intent(amount=amount), market=market)
    if ok:
        allowed(decision)
    else:
        assert refused(decision, RiskRule.MIN_AMOUNT).message == (
            f"minimum amount: 0.001 is below the minimum order size 0.002 of {BTC}"
        )


@pytest.mark.parametrize(("price", "ok"), [(5_000.1, True), (5_000.0, True), (4_999.9, False)])
def test_minimum_cost_boundary(price: float, ok: bool) -> None:
    decision = check(intent(amount=0.001, reference_price=price))  # 0.001 × 5,000 = 5 USDT, the minimum
    if ok:
        allowed(decision)
    else:
        decision = refused(decision, RiskRule.MIN_COST)
        assert decision.message == f"minimum order value: 5.00 USDT is below the minimum 5.00 USDT of {BTC}"
        assert decision.numbers["notional"] == pytest.approx(4.9999)


def test_a_limit_orders_value_is_measured_at_its_limit_price() -> None:
    # Market at 5,000 (5 USDT, enough) but the limit buy at 4,999.9 is worth less than the minimum.
    order = intent(amount=0.001, reference_price=5_000.0, type=OrderType.LIMIT, price=4_999.9)
    refused(check(order), RiskRule.MIN_COST)


# --- leverage: exactly at the cap is allowed -------------------------------------------------------


@pytest.mark.parametrize(("leverage", "ok"), [(19.0, True), (20.0, True), (21.0, False)])
def test_leverage_cap_boundary(leverage: float, ok: bool) -> None:
    decision = check(intent(leverage=leverage))
    if ok:
        allowed(decision)
    else:
        decision = refused(decision, RiskRule.LEVERAGE)
        assert decision.message == f"leverage: 21× is above the cap of 20× for {BTC}"
        assert decision.numbers == {"leverage": 21.0, "cap": 20.0}


NO_MAX = dataclasses.replace(MARKET, max_leverage=None)


@pytest.mark.parametrize(
    ("market", "setting", "connection_max", "cap"),
    [
        (MARKET, 20.0, None, 20.0),  # the setting is below the market's maximum
        (MARKET, 0.0, None, 100.0),  # 0 = the market's own maximum
        (MARKET, 150.0, None, 100.0),  # never above the market's maximum
        (MARKET, 0.0, 125.0, 100.0),  # the market's maximum is more specific than the connection's
        (NO_MAX, 0.0, 125.0, 125.0),  # the market states none: the connection's maximum
        (NO_MAX, 150.0, 125.0, 125.0),  # ... and never above it
        (NO_MAX, 150.0, None, 150.0),  # nobody states a maximum: the setting
        (NO_MAX, 0.0, None, 1.0),  # nobody allowed leverage
        (SPOT, 20.0, 125.0, 1.0),  # spot has no leverage
    ],
)
def test_the_effective_leverage_cap(
    market: MarketInfo, setting: float, connection_max: float | None, cap: float
) -> None:
    risk = limits(leverage_cap=setting, connection_max_leverage=connection_max)
    assert effective_leverage_cap(market, risk) == cap


def test_leverage_with_the_markets_own_cap_and_invalid_leverage() -> None:
    no_setting = limits(leverage_cap=0.0, max_position_notional=0.0)
    allowed(check(intent(leverage=100.0), risk=no_setting))
    refused(check(intent(leverage=101.0), risk=no_setting), RiskRule.LEVERAGE)
    refused(check(intent(leverage=0.5)), RiskRule.LEVERAGE)
    refused(check(intent(leverage=math.nan)), RiskRule.LEVERAGE)
    spot_buy = intent(symbol=SPOT.symbol, amount=0.1, reference_price=3_000.0, leverage=2.0)
    refused(check(spot_buy, market=SPOT), RiskRule.LEVERAGE)
    allowed(check(dataclasses.replace(spot_buy, leverage=1.0), market=SPOT))


# --- position size: exactly at the limit is allowed -------------------------------------------------


@pytest.mark.parametrize(("amount", "ok"), [(0.199, True), (0.2, True), (0.201, False)])
def test_max_position_notional_boundary(amount: float, ok: bool) -> None:
    decision = check(intent(amount=amount))  # 0.2 × 50,000 = 10,000 USDT, the limit
    if ok:
        allowed(decision)
    else:
        decision = refused(decision, RiskRule.MAX_NOTIONAL)
        assert decision.message == "max position size: order 10,050.00 USDT, limit 10,000.00 USDT"


@pytest.mark.parametrize(("amount", "ok"), [(0.099, True), (0.1, True), (0.101, False)])
def test_max_position_notional_counts_what_is_already_open(amount: float, ok: bool) -> None:
    holding = account(position_notional={BTC: 5_000.0, "ETH/USDT:USDT": 9_000.0})
    decision = check(intent(amount=amount), state=holding)
    if ok:
        allowed(decision)
    else:
        decision = refused(decision, RiskRule.MAX_NOTIONAL)
        assert decision.message == (
            "max position size: order 5,050.00 USDT + open 5,000.00 USDT = 10,050.00 USDT, "
            "limit 10,000.00 USDT"
        )


def test_max_position_notional_zero_means_no_limit_and_uses_the_contract_size() -> None:
    rich = account(free_balance=1_000_000.0)
    allowed(check(intent(amount=10.0), state=rich, risk=limits(max_position_notional=0.0)))
    contracts = intent(symbol=ETH_CONTRACTS.symbol, amount=34.0, reference_price=3_000.0, contract_size=0.1)
    # 34 contracts × 0.1 ETH × 3,000 = 10,200 USDT
    refused(check(contracts, market=ETH_CONTRACTS), RiskRule.MAX_NOTIONAL)
    allowed(check(dataclasses.replace(contracts, amount=33.0), market=ETH_CONTRACTS))


# --- open positions: at the limit a new one is refused ----------------------------------------------


@pytest.mark.parametrize(("open_positions", "ok"), [(9, True), (10, False), (11, False)])
def test_max_open_positions_boundary(open_positions: int, ok: bool) -> None:
    decision = check(state=account(open_positions=open_positions))
    if ok:
        allowed(decision)
    else:
        decision = refused(decision, RiskRule.MAX_OPEN_POSITIONS)
        assert decision.message == f"max open positions: {open_positions} open, limit 10"
        assert decision.numbers == {"open_positions": open_positions, "limit": 10}


# --- loss limits: reaching the limit stops new orders -----------------------------------------------


@pytest.mark.parametrize(("equity", "ok"), [(9_501.0, True), (9_500.0, False), (9_499.0, False)])
def test_daily_loss_boundary(equity: float, ok: bool) -> None:
    state = account(equity=equity, free_balance=equity, realized_pnl_today=-300.0)
    decision = check(state=state)
    if ok:
        allowed(decision)
    else:
        decision = refused(decision, RiskRule.DAILY_LOSS)
        loss = (10_000.0 - equity) / 100
        assert decision.message == (
            f"daily loss: {loss:.2f} % lost today (10,000.00 USDT → {equity:,.2f} USDT, "
            "realised -300.00 USDT), limit 5 %"
        )
        assert decision.numbers["loss_pct"] == pytest.approx(loss)


def test_a_winning_day_is_no_loss() -> None:
    allowed(check(state=account(equity=12_000.0, peak_equity=12_000.0)))


@pytest.mark.parametrize(("equity", "ok"), [(7_001.0, True), (7_000.0, False), (6_999.0, False)])
def test_drawdown_boundary(equity: float, ok: bool) -> None:
    # The day started at today's equity, so only the drawdown from the peak is at stake.
    state = account(equity=equity, free_balance=equity, day_start_equity=equity)
    decision = check(state=state)
    if ok:
        allowed(decision)
    else:
        decision = refused(decision, RiskRule.DRAWDOWN)
        assert decision.message.startswith(f"drawdown: {(10_000.0 - equity) / 100:.2f} % below the peak")
        assert decision.message.endswith("limit 30 %")


@pytest.mark.parametrize(
    "state",
    [
        account(equity=0.0),
        account(equity=math.nan),
        account(day_start_equity=0.0),
        account(peak_equity=-1.0),
        account(free_balance=math.inf),
    ],
)
def test_an_unknown_account_refuses_new_positions(state: AccountState) -> None:
    decision = refused(check(state=state), RiskRule.ACCOUNT)
    assert "no new position without a real balance" in decision.message


# --- balance: the margin plus the fee must be free; exactly enough is allowed -------------------------


@pytest.mark.parametrize(("free", "ok"), [(50.26, True), (50.25, True), (50.24, False)])
def test_balance_boundary(free: float, ok: bool) -> None:
    # 0.01 × 50,000 = 500 USDT at 10× → 50 margin + 0.25 taker fee (0.05 %) = 50.25
    decision = check(state=account(free_balance=free))
    if ok:
        allowed(decision)
    else:
        decision = refused(decision, RiskRule.BALANCE)
        assert decision.message == (
            "balance: the order needs 50.25 USDT (margin 50.00 USDT + fee 0.25 USDT) "
            "but only 50.24 USDT is free"
        )


def test_the_fee_estimate_without_a_market_fee_and_spot_orders() -> None:
    no_fee = dataclasses.replace(MARKET, taker_fee=None)  # the paper venue's default 0.05 % applies
    assert pm.fee_rate(no_fee, maker=False) == pm.DEFAULT_TAKER_FEE == 0.0005
    allowed(check(state=account(free_balance=50.25), market=no_fee))
    decision = refused(check(state=account(free_balance=50.2499), market=no_fee), RiskRule.BALANCE)
    # The estimate is the fee the paper venue would charge for this fill.
    assert decision.numbers["fee"] == pm.trade_fee(50_000.0, 0.01, pm.DEFAULT_TAKER_FEE) == 0.25
    dearer = dataclasses.replace(MARKET, taker_fee=0.001)  # the market's own fee wins over the default
    refused(check(state=account(free_balance=50.25), market=dearer), RiskRule.BALANCE)
    # Spot: a buy pays the full value (no leverage), a sell spends the base asset, not the quote.
    spot_buy = intent(symbol=SPOT.symbol, amount=0.1, reference_price=3_000.0, leverage=1.0)
    refused(check(spot_buy, state=account(free_balance=300.0), market=SPOT), RiskRule.BALANCE)
    allowed(check(spot_buy, state=account(free_balance=300.3), market=SPOT))
    spot_sell = dataclasses.replace(spot_buy, side=OrderSide.SELL)
    allowed(check(spot_sell, state=account(free_balance=0.0), market=SPOT))


# --- reduce-only exemptions and rule order ----------------------------------------------------------


EXPOSURE_BREACHES: list[tuple[RiskRule, OrderIntent, AccountState]] = [
    (RiskRule.LEVERAGE, intent(leverage=50.0), ACCOUNT),
    (RiskRule.MAX_NOTIONAL, intent(amount=1.0), account(free_balance=1_000_000.0)),
    (RiskRule.MAX_OPEN_POSITIONS, intent(), account(open_positions=10)),
    (RiskRule.ACCOUNT, intent(), account(equity=0.0)),
    (RiskRule.DAILY_LOSS, intent(), account(equity=9_000.0, free_balance=9_000.0)),
    (RiskRule.DRAWDOWN, intent(), account(equity=6_000.0, free_balance=6_000.0, day_start_equity=6_000.0)),
    (RiskRule.BALANCE, intent(), account(free_balance=0.0)),
]


@pytest.mark.parametrize(
    ("rule", "order", "state"), EXPOSURE_BREACHES, ids=[r.value for r, _, _ in EXPOSURE_BREACHES]
)
def test_reduce_only_is_never_refused_by_exposure_or_loss_rules(
    rule: RiskRule, order: OrderIntent, state: AccountState
) -> None:
    refused(check(order, state), rule)
    closing = dataclasses.replace(order, side=OrderSide.SELL, reduce_only=True)
    allowed(check(closing, state))


def test_every_exposure_rule_has_a_reduce_only_case() -> None:
    assert {rule for rule, _, _ in EXPOSURE_BREACHES} == EXPOSURE_RULES


@pytest.mark.parametrize(
    ("rule", "order", "market"),
    [
        (RiskRule.MARKET, intent(), dataclasses.replace(MARKET, active=False)),
        (RiskRule.AMOUNT, intent(amount=0.0), MARKET),
        (RiskRule.LOT_STEP, intent(amount=0.0105), MARKET),
        (RiskRule.PRICE_TICK, intent(type=OrderType.LIMIT, price=50_000.05), MARKET),
        (RiskRule.MIN_AMOUNT, intent(), dataclasses.replace(MARKET, min_amount=0.02)),
        (RiskRule.MIN_COST, intent(amount=0.001, reference_price=4_000.0), MARKET),
    ],
)
def test_reduce_only_still_obeys_market_precision_and_minimum_rules(
    rule: RiskRule, order: OrderIntent, market: MarketInfo
) -> None:
    closing = dataclasses.replace(order, side=OrderSide.SELL, reduce_only=True)
    # Even on an account past every loss limit, the venue's own rules still apply.
    broke = account(equity=5_000.0, free_balance=0.0, open_positions=99)
    refused(check(closing, broke, market), rule)


def test_the_rules_run_in_the_documented_order() -> None:
    assert [r.value for r in RULE_ORDER] == [
        "market",
        "amount",
        "lot_step",
        "price",
        "price_tick",
        "min_amount",
        "min_cost",
        "leverage",
        "max_notional",
        "max_open_positions",
        "account",
        "daily_loss",
        "drawdown",
        "balance",
    ]
    everything_wrong = account(equity=5_000.0, free_balance=0.0, open_positions=10)
    refused(check(intent(amount=0.0105), everything_wrong), RiskRule.LOT_STEP)
    refused(check(intent(leverage=30.0), everything_wrong), RiskRule.LEVERAGE)
    refused(check(intent(), everything_wrong), RiskRule.MAX_OPEN_POSITIONS)
    refused(check(intent(), account(equity=5_000.0, free_balance=0.0)), RiskRule.DAILY_LOSS)


def test_a_refusal_is_logged_with_its_rule_and_numbers(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cts_desktop.engine.risk"):
        check(state=account(open_positions=10))
        check()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"risk gate refused buy {BTC} paper on conn-1: "
        "[max_open_positions] max open positions: 10 open, limit 10"
    ]


# --- limits from settings ----------------------------------------------------------------------------


def test_limits_from_settings() -> None:
    assert RiskLimits.from_settings(defaults()) == RiskLimits(10, 5.0, 30.0, 0.0, 0.0)
    assert RiskLimits.from_settings({}) == RiskLimits(10, 5.0, 30.0, 0.0, 0.0)  # registry defaults
    values = {
        **defaults(),
        "risk.max_open_positions": 3,
        "risk.max_daily_loss_pct": 2.5,
        "risk.max_drawdown_pct": 12.0,
        "risk.leverage_cap": 5,
        "risk.max_position_notional": 2_000.0,
    }
    assert RiskLimits.from_settings(values) == RiskLimits(3, 2.5, 12.0, 5.0, 2_000.0)
    with pytest.raises(SettingValidationError, match=r"risk\.max_daily_loss_pct"):
        RiskLimits.from_settings({"risk.max_daily_loss_pct": 0.0})


@pytest.mark.parametrize(
    "bad",
    [
        {"max_open_positions": 0},
        {"max_daily_loss_pct": 0.0},
        {"max_drawdown_pct": math.nan},
        {"leverage_cap": -1.0},
        {"max_position_notional": -5.0},
        {"connection_max_leverage": 0.5},
    ],
)
def test_invalid_limits_are_refused_at_construction(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid risk limits"):
        limits(**bad)


@pytest.mark.asyncio
async def test_the_connections_maximum_leverage(tmp_path: Path) -> None:
    database = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'connections.db'}")
    try:
        repository = ConnectionRepository(database)
        predefined = await repository.create(
            name="BingX X01", exchange="bingx", settings={"max_leverage": 150}
        )
        plain = await repository.create(name="OKX", exchange="okx")
        unknown = await repository.create(name="Elsewhere", exchange="nowhere")
    finally:
        await database.close()
    assert connection_max_leverage(predefined) == 150.0  # the template's own value
    assert connection_max_leverage(plain) == 125.0  # the catalogue's (DOMAIN §5)
    assert connection_max_leverage(unknown) is None
    risk = RiskLimits.from_settings(defaults(), connection_max_leverage=connection_max_leverage(plain))
    assert effective_leverage_cap(NO_MAX, risk) == 125.0


# --- end to end: sizing → gate → the real paper venue on the simulated market --------------------------

START_MS = 1_700_000_000_000
SIM_BTC = "BTC/USDT"  # the simulated market's symbol, traded here as a perpetual swap


@pytest_asyncio.fixture
async def paper(tmp_path: Path) -> AsyncIterator[PaperExchange]:
    database = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'risk.db'}")
    clock = ManualClock(START_MS)
    market_data = SimulatedExchange(clock, seed=7, market_type=MarketType.SWAP)
    venue = PaperExchange(
        market_data,
        PaperRepository(database),
        create_if_missing=AccountSettings(
            starting_balance=10_000.0, slippage_bps=0.0, position_mode=PositionMode.ONE_WAY
        ),
        clock=clock.now_ms,
    )
    try:
        yield venue
    finally:
        await venue.close()
        await database.close()


async def account_of(venue: PaperExchange, *, day_start: float, peak: float) -> AccountState:
    balance = (await venue.fetch_balance())["USDT"]
    positions = await venue.fetch_positions()
    equity = equity_of(balance, positions)
    assert equity is not None
    return AccountState(
        equity=equity,
        free_balance=balance.free,
        day_start_equity=day_start,
        peak_equity=peak,
        open_positions=sum(1 for p in positions if p.contracts > 0),
        position_notional={p.symbol: p.notional or 0.0 for p in positions},
    )


def to_request(order: OrderIntent, client_order_id: str) -> OrderRequest:
    return OrderRequest(
        order.symbol, order.side, order.type, order.amount, client_order_id, reduce_only=order.reduce_only
    )


@pytest.mark.asyncio
async def test_a_sized_order_passes_the_gate_and_the_paper_venue_fills_it(paper: PaperExchange) -> None:
    market = (await paper.load_markets())[SIM_BTC]
    price = (await paper.fetch_ticker(SIM_BTC)).last
    state = await account_of(paper, day_start=10_000.0, peak=10_000.0)
    settings = {**defaults(), "risk.leverage_cap": 20}
    sized = size_order_from_settings(  # from the free balance, as the order loop sizes
        settings, balance=state.free_balance, price=price, market=market, volume_factor=1.0
    )
    assert isinstance(sized, SizedOrder)
    assert sized.leverage == 20.0  # the cap wins over the market's 100× and the 125× setting
    order = intent(symbol=SIM_BTC, amount=sized.amount, reference_price=price, leverage=sized.leverage)
    allowed(GATE.check(order, state, market, RiskLimits.from_settings(settings)))
    await paper.set_leverage(SIM_BTC, sized.leverage)
    filled = await paper.create_order(to_request(order, "risk-1"))
    assert filled.status is VenueOrderStatus.FILLED and filled.filled == sized.amount


@pytest.mark.asyncio
async def test_what_the_gate_refuses_for_precision_or_balance_the_venue_refuses_too(
    paper: PaperExchange,
) -> None:
    market = (await paper.load_markets())[SIM_BTC]
    price = (await paper.fetch_ticker(SIM_BTC)).last
    state = await account_of(paper, day_start=10_000.0, peak=10_000.0)
    off_step = intent(symbol=SIM_BTC, amount=0.000015, reference_price=price, leverage=1.0)
    refused(GATE.check(off_step, state, market, LIMITS), RiskRule.LOT_STEP)
    with pytest.raises(InvalidOrderError, match="lot step"):
        await paper.create_order(to_request(off_step, "risk-2"))
    # Twice the account's value at 1×: the gate says balance, the venue says insufficient funds.
    amount = round(2 * state.equity / price, 5)
    too_big = intent(symbol=SIM_BTC, amount=amount, reference_price=price, leverage=1.0)
    no_position_limit = limits(max_position_notional=0.0)
    refused(GATE.check(too_big, state, market, no_position_limit), RiskRule.BALANCE)
    with pytest.raises(InsufficientFundsError):
        await paper.create_order(to_request(too_big, "risk-3"))


@pytest.mark.asyncio
async def test_after_the_daily_loss_limit_new_orders_stop_but_the_position_can_still_be_closed(
    paper: PaperExchange,
) -> None:
    market = (await paper.load_markets())[SIM_BTC]
    price = (await paper.fetch_ticker(SIM_BTC)).last
    await paper.set_leverage(SIM_BTC, 20.0)
    amount = math.floor(50_000.0 / price * 1e5) / 1e5  # about 50,000 USDT of BTC at 20×
    opening = intent(symbol=SIM_BTC, amount=amount, reference_price=price, leverage=20.0)
    risk = limits(max_position_notional=0.0)
    state = await account_of(paper, day_start=10_000.0, peak=10_000.0)
    allowed(GATE.check(opening, state, market, risk))
    await paper.create_order(to_request(opening, "open-1"))

    dropped = round(price * 0.988, 1)  # −1.2 % on 50,000 USDT: about −600 USDT, −6 % of the account
    await paper.on_price(SIM_BTC, dropped, START_MS + 1_000)
    state = await account_of(paper, day_start=10_000.0, peak=10_000.0)
    assert state.daily_loss_pct is not None and state.daily_loss_pct > 5.0
    another = dataclasses.replace(opening, reference_price=dropped, amount=0.001)
    decision = refused(GATE.check(another, state, market, risk), RiskRule.DAILY_LOSS)
    assert "limit 5 %" in decision.message

    closing = dataclasses.replace(opening, side=OrderSide.SELL, reduce_only=True, reference_price=dropped)
    allowed(GATE.check(closing, state, market, risk))
    closed = await paper.create_order(to_request(closing, "close-1"))
    assert closed.status is VenueOrderStatus.FILLED
    assert await paper.fetch_positions() == []
    state = await account_of(paper, day_start=10_000.0, peak=10_000.0)
    refused(GATE.check(another, state, market, risk), RiskRule.DAILY_LOSS)  # the loss is now realised

"""Live is never an accident: a live order is impossible without each of the three conditions, and
the go-live checklist checks what it can.

Connections are real rows made by the real ConnectionService on a real SQLite file; their stored
test results come from the real connection test (``run_connection_test``) run against the paper
venue over the simulated market, or, for the withdrawal permission, against ccxt's Binance code
answering from recorded responses. So the live guard reads exactly what a real test stores.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import keyring.backends.fail
import pytest
import pytest_asyncio

from cts_desktop.domain.market import ApiType, MarketType
from cts_desktop.domain.settings_schema import defaults
from cts_desktop.engine.connection_test import run_connection_test
from cts_desktop.engine.connections import ConnectionDraft, ConnectionService
from cts_desktop.engine.events import EventBus
from cts_desktop.engine.live_guard import (
    AUTOMATIC_ITEMS,
    MANUAL_ITEMS,
    PAPER_MIN_DAYS,
    PAPER_MIN_TRADES,
    LiveConfirmation,
    LiveRule,
    build_checklist,
    exchange_display_name,
    live_order_allowed,
    names_exchange,
    stored_test,
)
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.ccxt_exchange import CcxtExchange
from cts_desktop.exchanges.clock import ManualClock
from cts_desktop.exchanges.paper import AccountSettings, PaperExchange
from cts_desktop.exchanges.simulated import SimulatedExchange
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRecord, ConnectionRepository
from cts_desktop.storage.repositories.paper import PaperRepository
from cts_desktop.storage.secrets import Credentials, SecretStore
from tests.engine.test_connection_test import KEY, SECRET, binance_responder
from tests.exchanges.conftest import load_currencies, normalized_markets, require_static
from tests.exchanges.fake_http import FakeHttpSession

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
START_MS = 1_700_000_000_000


@pytest_asyncio.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}")
    yield db
    await db.close()


@pytest.fixture
def service(database: Database) -> ConnectionService:
    # No keyring needed: the guard is told whether credentials are present.
    secrets = SecretStore(Redactor(), keyring.backends.fail.Keyring())
    return ConnectionService(ConnectionRepository(database), secrets, AuditRepository(database), EventBus())


def paper_venue(database: Database, account_id: str) -> PaperExchange:
    """A real venue with an account: the simulated market's prices and a 10,000 USDT paper account."""
    clock = ManualClock(START_MS)
    return PaperExchange(
        SimulatedExchange(clock, market_type=MarketType.SWAP),
        PaperRepository(database),
        account_id=account_id,
        create_if_missing=AccountSettings(starting_balance=10_000.0),
        clock=clock.now_ms,
    )


async def run_test(
    service: ConnectionService, record: ConnectionRecord, venue: Exchange, *, authenticated: bool = True
) -> ConnectionRecord:
    """The real connection test against ``venue``, stored the way ConnectionTester stores it."""
    result = await run_connection_test(record, venue, authenticated=authenticated, min_connect_interval_s=0)
    return await service.record_test_result(
        record.id,
        status=result.status,
        at=result.started_at,
        balance=result.quote_balance,
        log_text=result.log_text,
        capabilities=result.capabilities,
    )


async def connection(
    service: ConnectionService,
    database: Database,
    *,
    name: str = "Bybit main",
    exchange: str = "bybit",
    testnet: bool = False,
    live: bool = True,
    authenticated: bool = True,
    **draft: Any,
) -> ConnectionRecord:
    """An enabled connection whose last test passed (on the network it trades), live if asked."""
    record = await service.create(ConnectionDraft(name=name, exchange=exchange, is_testnet=testnet, **draft))
    await service.set_enabled(record.id, True)
    venue = paper_venue(database, f"test-{record.id}")
    try:
        await run_test(service, record, venue, authenticated=authenticated)
    finally:
        await venue.close()
    if live:
        await service.set_live_trade(record.id, True)
    return await service.get(record.id)


async def connection_tested(
    service: ConnectionService, database: Database, record: ConnectionRecord
) -> ConnectionRecord:
    """``record`` (enabled) after a passing authenticated test on the paper venue."""
    await service.set_enabled(record.id, True)
    venue = paper_venue(database, f"test-{record.id}")
    try:
        return await run_test(service, record, venue)
    finally:
        await venue.close()


def confirm(record: ConnectionRecord, **changes: Any) -> LiveConfirmation:
    base = LiveConfirmation(
        connection_id=record.id, exchange=record.exchange, balance=10_000.0, typed="Bybit"
    )
    return dataclasses.replace(base, **changes)


# --- the three conditions ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_live_order_is_allowed_with_all_three_conditions(
    service: ConnectionService, database: Database
) -> None:
    record = await connection(service, database)
    assert record.is_live_trade and record.last_test_status == "success"
    decision = live_order_allowed(record, confirm(record), credentials_present=True)
    assert decision.allowed, decision.message


@pytest.mark.parametrize("missing", ["live_flag", "credentials", "connection_test", "confirmation"])
@pytest.mark.asyncio
async def test_a_live_order_is_impossible_without_each_condition(
    service: ConnectionService, database: Database, missing: str
) -> None:
    record = await connection(service, database)
    confirmation: LiveConfirmation | None = confirm(record)
    credentials = True
    if missing == "live_flag":
        record = await service.set_live_trade(record.id, False)
    elif missing == "credentials":
        credentials = False
    elif missing == "connection_test":
        record = await service.create(ConnectionDraft(name="Bybit untested", exchange="bybit"))
        await service.set_enabled(record.id, True)
        record = await service.set_live_trade(record.id, True)
        confirmation = confirm(record)
    else:
        confirmation = None
    decision = live_order_allowed(record, confirmation, credentials_present=credentials)
    assert not decision.allowed
    assert decision.rule == missing
    expected = {
        "live_flag": (
            "live trading is off for Bybit main: its orders are paper orders until you switch it live"
        ),
        "credentials": "live trading: no API key is stored for Bybit main; add one and test it",
        "connection_test": "live trading: Bybit untested has never been tested: run 'Test connection' first",
        "confirmation": (
            "live trading: Bybit main has not been confirmed for live trading (exchange name and balance)"
        ),
    }
    assert decision.message == expected[missing]


@pytest.mark.asyncio
async def test_a_failed_or_keyless_test_does_not_count(
    service: ConnectionService, database: Database
) -> None:
    keyless = await connection(service, database, name="Keyless", authenticated=False)
    assert keyless.last_test_status == "success"  # the public steps passed ...
    decision = live_order_allowed(keyless, confirm(keyless), credentials_present=True)
    assert (decision.rule, decision.allowed) == (LiveRule.CONNECTION_TEST.value, False)
    assert "did not use the API key" in decision.message  # ... but the key was never used

    failing = await service.create(ConnectionDraft(name="Failing", exchange="bybit"))
    await service.set_enabled(failing.id, True)
    venue = paper_venue(database, "failing")
    await venue.close()  # a closed venue answers every account call with an error
    failing = await run_test(service, failing, venue)
    failing = await service.set_live_trade(failing.id, True)
    assert failing.last_test_status == "failed"
    decision = live_order_allowed(failing, confirm(failing), credentials_present=True)
    assert decision.rule == LiveRule.CONNECTION_TEST.value
    assert "the last connection test of Failing failed" in decision.message


@pytest.mark.asyncio
async def test_a_testnet_test_does_not_cover_the_real_network(
    service: ConnectionService, database: Database
) -> None:
    record = await connection(service, database, testnet=True)
    allowed = live_order_allowed(record, confirm(record), credentials_present=True)
    assert allowed.allowed  # live on testnet after a testnet test: fine
    record = await service.update(record.id, {"is_testnet": False})  # now the real network
    decision = live_order_allowed(record, confirm(record), credentials_present=True)
    assert decision.rule == LiveRule.CONNECTION_TEST.value
    assert "ran on testnet, but it now trades on the real network: test again" in decision.message


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_replaced_credentials_need_a_new_test(database: Database, real_keyring: Any) -> None:
    """Replacing the key through the service clears the stored test: the old key's pass does not
    count for the new key, until the new key is tested."""
    service = ConnectionService(
        ConnectionRepository(database),
        SecretStore(Redactor(), real_keyring),
        AuditRepository(database),
        EventBus(),
    )
    record = await service.create(
        ConnectionDraft(name="Bybit main", exchange="bybit"), Credentials("KEYold123456", "SECRETold123456")
    )
    try:
        record = await connection_tested(service, database, record)
        record = await service.set_live_trade(record.id, True)
        present = await service.has_credentials(record.id)
        assert live_order_allowed(record, confirm(record), present).allowed

        record = await service.set_credentials(record.id, Credentials("KEYnew456789", "SECRETnew456789"))
        assert (record.last_test_status, record.last_test_at, record.last_test_log) == (None, None, None)
        assert record.last_test_balance is None and record.is_live_trade
        stored = await service.get(record.id)
        assert stored == record  # cleared in the database, not only in the returned record
        present = await service.has_credentials(record.id)
        decision = live_order_allowed(record, confirm(record), present)
        assert (decision.allowed, decision.rule) == (False, LiveRule.CONNECTION_TEST.value)
        assert decision.message == (
            "live trading: Bybit main has never been tested: run 'Test connection' first"
        )

        record = await connection_tested(service, database, record)  # the new key, tested
        assert live_order_allowed(record, confirm(record), present).allowed
    finally:
        await service.delete(record.id)
    assert real_keyring.get_password("cts-desktop", f"{record.id}:api_key") is None


@pytest.mark.asyncio
async def test_a_venue_that_cannot_trade_real_money_or_a_disabled_connection_is_refused(
    service: ConnectionService, database: Database
) -> None:
    record = await connection(service, database)
    simulated = dataclasses.replace(record, exchange="simulated")
    decision = live_order_allowed(simulated, confirm(simulated), credentials_present=True)
    assert decision.rule == LiveRule.LIVE_CAPABLE.value
    # The database refuses "live but disabled"; a stale record in memory must be refused too.
    disabled = dataclasses.replace(record, is_enabled=False)
    decision = live_order_allowed(disabled, confirm(disabled), credentials_present=True)
    assert decision.rule == LiveRule.CONNECTION_ENABLED.value


# --- the confirmation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["Bybit", "bybit", " BYBIT ", "ByBit"])
@pytest.mark.asyncio
async def test_the_confirmation_accepts_the_exchange_name(
    service: ConnectionService, database: Database, typed: str
) -> None:
    record = await connection(service, database)
    assert confirm(record, typed=typed).problem(record) is None
    assert names_exchange(typed, record.exchange)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"typed": ""}, "type the exchange's name (Bybit) to confirm live trading"),
        ({"typed": "yes"}, "type the exchange's name (Bybit)"),
        ({"typed": "Binance"}, "type the exchange's name (Bybit)"),
        ({"typed": "Bybt"}, "type the exchange's name (Bybit)"),
        ({"balance": None}, "must show the real account balance, fetched from bybit; got None USDT"),
        ({"balance": 0.0}, "must show the real account balance"),
        ({"balance": -5.0}, "must show the real account balance"),
        ({"balance": math.nan}, "must show the real account balance"),
        (
            {"exchange": "binance", "typed": "Binance"},
            "the confirmation names binance, but Bybit main trades on bybit",
        ),
        ({"connection_id": "another"}, "the confirmation was given for another connection, not Bybit main"),
    ],
)
@pytest.mark.asyncio
async def test_an_invalid_confirmation_is_refused_with_its_reason(
    service: ConnectionService, database: Database, changes: dict[str, Any], problem: str
) -> None:
    record = await connection(service, database)
    confirmation = confirm(record, **changes)
    assert confirmation.problem(record) is not None
    decision = live_order_allowed(record, confirmation, credentials_present=True)
    assert decision.rule == LiveRule.CONFIRMATION.value and problem in decision.message


def test_the_display_name_the_dialog_asks_for() -> None:
    assert (exchange_display_name("bybit"), exchange_display_name("okx"), exchange_display_name("x")) == (
        "Bybit",
        "OKX",
        "x",
    )


def test_naming_the_exchange_is_its_id_or_display_name_in_any_case() -> None:
    assert (
        names_exchange("OKX", "okx") and names_exchange(" okx ", "okx") and names_exchange("bingx", "bingx")
    )
    assert names_exchange("BINGX", "bingx") and names_exchange("Bybit", " bybit ")
    assert not names_exchange("", "okx") and not names_exchange("Bybt", "bybit")
    assert not names_exchange("binance", "bybit") and not names_exchange("yes", "bybit")


# --- the go-live checklist ---------------------------------------------------------------------------------

ALL_TICKS = frozenset(MANUAL_ITEMS)


def the_testnet_item(checklist: Any) -> Any:
    (item,) = [i for i in checklist.items if i.key == "testnet_test"]
    return item


def items(checklist: Any) -> dict[str, bool | None]:
    return {item.key: item.passed for item in checklist.items}


@pytest.mark.asyncio
async def test_a_connection_that_walked_the_whole_path_is_ready(
    service: ConnectionService, database: Database
) -> None:
    record = await connection(service, database, testnet=True, live=False, live_volume_factor=0.1)
    checklist = build_checklist(
        record,
        defaults(),
        first_paper_trade_at=NOW - timedelta(days=8),
        paper_trade_count=25,
        now=NOW,
        ticks=ALL_TICKS,
    )
    assert checklist.ready, [(i.key, i.passed, i.detail) for i in checklist.items]
    assert (checklist.connection_id, checklist.exchange) == (record.id, "bybit")
    assert [i.key for i in checklist.items] == [*AUTOMATIC_ITEMS, *MANUAL_ITEMS]
    assert all(i.automatic for i in checklist.items[: len(AUTOMATIC_ITEMS)])
    assert not any(i.automatic for i in checklist.items[len(AUTOMATIC_ITEMS) :])
    testnet = the_testnet_item(checklist)
    assert testnet.detail.startswith("last test passed on testnet/demo at ")


@pytest.mark.asyncio
async def test_a_new_connection_is_far_from_ready(service: ConnectionService, database: Database) -> None:
    record = await service.create(ConnectionDraft(name="Fresh", exchange="bybit"))
    checklist = build_checklist(record, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW)
    assert not checklist.ready
    assert items(checklist) == {
        "live_capable": True,
        "testnet_test": False,
        "paper_days": False,
        "paper_trades": False,
        "risk_limits": True,  # the defaults (5 %, 30 %, 10 positions) are limits
        "first_live_volume_factor": False,  # 1.0 until lowered
        "backups": True,  # on by default
        "real_money": None,
        "withdrawal_off": None,
        "orders_checked": None,
    }
    details = {i.key: i.detail for i in checklist.items}
    assert details["paper_days"] == "no paper trade on this connection yet"
    assert details["first_live_volume_factor"] == "live volume factor 1: lower it to 0.1"


@pytest.mark.parametrize(
    ("days", "trades", "days_ok", "trades_ok"),
    [
        (PAPER_MIN_DAYS + 0.01, PAPER_MIN_TRADES + 1, True, True),
        (PAPER_MIN_DAYS, PAPER_MIN_TRADES, True, True),  # exactly at the thresholds: passed
        (PAPER_MIN_DAYS - 0.01, PAPER_MIN_TRADES - 1, False, False),
    ],
)
@pytest.mark.asyncio
async def test_paper_days_and_trades_boundaries(
    service: ConnectionService, database: Database, days: float, trades: int, days_ok: bool, trades_ok: bool
) -> None:
    assert (PAPER_MIN_DAYS, PAPER_MIN_TRADES) == (7, 20)
    record = await service.create(ConnectionDraft(name="Paper", exchange="bybit"))
    first = NOW - timedelta(days=days)
    checklist = build_checklist(
        record, defaults(), first_paper_trade_at=first, paper_trade_count=trades, now=NOW
    )
    got = items(checklist)
    assert (got["paper_days"], got["paper_trades"]) == (days_ok, trades_ok)


@pytest.mark.parametrize(("factor", "ok"), [(0.1, True), (0.2, False)])
@pytest.mark.asyncio
async def test_first_live_volume_factor_boundary(
    service: ConnectionService, database: Database, factor: float, ok: bool
) -> None:
    record = await service.create(ConnectionDraft(name="Factor", exchange="bybit", live_volume_factor=factor))
    checklist = build_checklist(record, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW)
    assert items(checklist)["first_live_volume_factor"] is ok


@pytest.mark.asyncio
async def test_after_a_first_live_switch_scaling_up_is_allowed(
    service: ConnectionService, database: Database
) -> None:
    record = await connection(service, database)  # set_live_trade started it at 0.1
    assert record.live_volume_factor == 0.1 and record.settings["has_been_live"] is True
    record = await service.update(record.id, {"live_volume_factor": 2.0})
    checklist = build_checklist(record, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW)
    factor = next(i for i in checklist.items if i.key == "first_live_volume_factor")
    assert factor.passed is True and "has been live before" in factor.detail


@pytest.mark.asyncio
async def test_backups_and_risk_limits_come_from_the_settings(service: ConnectionService) -> None:
    record = await service.create(ConnectionDraft(name="Settings", exchange="bybit"))
    values = {**defaults(), "system.auto_backup": False, "risk.max_daily_loss_pct": 0.0}
    checklist = build_checklist(record, values, first_paper_trade_at=None, paper_trade_count=0, now=NOW)
    got = items(checklist)
    assert (got["backups"], got["risk_limits"]) == (False, False)
    risk = next(i for i in checklist.items if i.key == "risk_limits")
    assert "risk.max_daily_loss_pct" in risk.detail
    values = {
        **defaults(),
        "risk.max_daily_loss_pct": 2.0,
        "risk.max_drawdown_pct": 10.0,
        "risk.max_open_positions": 3,
    }
    checklist = build_checklist(record, values, first_paper_trade_at=None, paper_trade_count=0, now=NOW)
    risk = next(i for i in checklist.items if i.key == "risk_limits")
    assert risk.passed is True and risk.detail == "daily loss 2 %, drawdown 10 %, at most 3 open positions"


@pytest.mark.asyncio
async def test_a_test_on_the_real_network_is_not_a_testnet_pass(
    service: ConnectionService, database: Database
) -> None:
    record = await connection(service, database, testnet=False, live=False)
    assert stored_test(record).on_testnet is False
    checklist = build_checklist(record, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW)
    testnet = the_testnet_item(checklist)
    assert testnet.passed is False and "ran on the real network" in testnet.detail
    # A caller that kept the earlier testnet pass says so.
    checklist = build_checklist(
        record, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW, testnet_test_passed=True
    )
    assert the_testnet_item(checklist).passed is True


@pytest.mark.asyncio
async def test_ticks_cannot_override_automatic_checks(service: ConnectionService) -> None:
    record = await service.create(ConnectionDraft(name="Ticks", exchange="bybit"))
    with pytest.raises(ValueError, match="cannot be ticked: paper_days"):
        build_checklist(
            record, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW, ticks={"paper_days"}
        )
    with pytest.raises(ValueError, match="cannot be ticked: nonsense"):
        build_checklist(
            record, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW, ticks={"nonsense"}
        )
    checklist = build_checklist(
        record, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW, ticks={"real_money"}
    )
    assert items(checklist)["real_money"] is True and items(checklist)["orders_checked"] is None


@pytest.mark.asyncio
async def test_an_exchange_without_a_testnet_makes_the_testnet_step_a_tick(
    service: ConnectionService,
) -> None:
    record = await service.create(ConnectionDraft(name="BingX spot", exchange="bingx", api_type=ApiType.SPOT))
    checklist = build_checklist(record, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW)
    item = the_testnet_item(checklist)
    assert (item.key, item.automatic, item.passed) == ("testnet_test", False, None)
    assert "BingX has no testnet or demo for spot" in item.label
    ticked = build_checklist(
        record, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW, ticks={"testnet_test"}
    )
    assert the_testnet_item(ticked).passed is True


def binance(can_withdraw: bool) -> CcxtExchange:
    """ccxt's real Binance code answering from recorded responses (no network)."""
    return CcxtExchange(
        "binance",
        api_type=ApiType.SPOT,
        credentials=Credentials(KEY, SECRET),
        redactor=Redactor(),
        session=FakeHttpSession(binance_responder(can_withdraw=can_withdraw)),
        enable_rate_limit=False,
        use_websocket=False,
        markets=normalized_markets("binance"),
        currencies=load_currencies("binance"),
    )


@pytest.mark.asyncio
async def test_a_key_that_can_withdraw_fails_the_checklist_even_when_ticked(
    service: ConnectionService,
) -> None:
    require_static()
    record = await service.create(
        ConnectionDraft(name="Binance spot", exchange="binance", api_type=ApiType.SPOT)
    )
    for can_withdraw in (True, False):
        venue = binance(can_withdraw)
        try:
            record = await run_test(service, record, venue)
        finally:
            await venue.close()
        assert stored_test(record).can_withdraw is can_withdraw
        checklist = build_checklist(
            record, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW, ticks=ALL_TICKS
        )
        withdrawal = next(i for i in checklist.items if i.key == "withdrawal_off")
        if can_withdraw:
            assert withdrawal.passed is False and "CAN withdraw" in withdrawal.detail
        else:
            assert withdrawal.passed is True  # known off, and ticked


@pytest.mark.asyncio
async def test_a_paper_only_venue_can_never_complete_the_checklist(service: ConnectionService) -> None:
    (simulated,) = [r for r in await service.ensure_predefined() if r.exchange == "simulated"]
    checklist = build_checklist(
        simulated, defaults(), first_paper_trade_at=None, paper_trade_count=0, now=NOW
    )
    (capable,) = [i for i in checklist.items if i.key == "live_capable"]
    assert (capable.automatic, capable.passed, capable.detail) == (
        True,
        False,
        "Simulated market is paper only",
    )
    assert not checklist.ready

"""Live is never an accident: the conditions for a live order and the go-live checklist.

Paper is the default for every connection. A live order needs all three of:

1. the connection's live flag (``is_live_trade``; the connection must be enabled and its venue able
   to trade real money: the built-in simulated market never is);
2. credentials that are stored *and* passed a connection test: the last test succeeded, it ran
   authenticated (its "balances" step passed, so the key was really used), and on the network the
   connection trades now (testnet or not). Replacing the credentials clears the stored test
   (``ConnectionService.set_credentials``), so a new key always needs a test of its own;
3. a :class:`LiveConfirmation` for this connection that names the exchange (the user typed its
   name) and shows a balance fetched from the account (not zero, not missing).

:func:`live_order_allowed` checks them in that order and refuses with the first one missing, as a
:class:`~cts_desktop.domain.orders.RiskDecision` (rule and a message saying what to do). The order
executor asks it before every live order; the risk gate then checks the order itself.

The go-live checklist (:func:`build_checklist`) follows the path testnet → paper → minimal live →
scale. It checks what the application can know itself and leaves the rest to the user's ticks.

What a connection test leaves behind is its record fields (``last_test_status``, ``last_test_at``,
``last_test_balance``, ``last_test_log``, ``api_capabilities``) and nothing in the audit log, so
whether the test ran on testnet, authenticated, or found a withdrawal permission is read from the
lines :func:`~cts_desktop.engine.connection_test.run_connection_test` writes into the stored log
("testnet: yes", "balances: ok", the withdrawal warning). Only the *last* test is stored: once a
connection is switched from testnet to the real network and tested there, the earlier testnet
pass is no longer visible. A caller that keeps that evidence (e.g. in the connection's settings)
passes it as ``testnet_test_passed``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cts_desktop.domain.engine import ChecklistItem, GoLiveChecklist
from cts_desktop.domain.market import ApiType
from cts_desktop.domain.orders import RiskDecision
from cts_desktop.domain.settings_schema import SPEC_BY_KEY
from cts_desktop.engine.connection_test import WITHDRAW_WARNING
from cts_desktop.engine.connections import FIRST_LIVE_VOLUME_FACTOR
from cts_desktop.engine.risk import RiskLimits
from cts_desktop.exchanges.catalog import EXCHANGES, UnsupportedApiTypeError, is_live_capable
from cts_desktop.storage.repositories.connections import ConnectionRecord

__all__ = [
    "AUTOMATIC_ITEMS",
    "MANUAL_ITEMS",
    "PAPER_MIN_DAYS",
    "PAPER_MIN_TRADES",
    "LiveConfirmation",
    "LiveRule",
    "StoredTest",
    "build_checklist",
    "exchange_display_name",
    "live_order_allowed",
    "names_exchange",
    "stored_test",
]

PAPER_MIN_DAYS = 7
"""Days of paper trading on the connection before the live switch is offered (a full week of sessions)."""
PAPER_MIN_TRADES = 20
"""Paper trades on the connection before the live switch is offered (enough to see entries and exits work)."""

TEST_PASSED = "success"  # ConnectionTestResult.status of a passed test
_TESTNET_YES = "testnet: yes"
_TESTNET_NO = "testnet: no"
_AUTHENTICATED = "balances: ok"
_WITHDRAW_OFF = "withdrawal permission: off"


class LiveRule(StrEnum):
    """Rule names of a live-order refusal, in the order they are checked."""

    LIVE_CAPABLE = "live_capable"
    CONNECTION_ENABLED = "connection_enabled"
    LIVE_FLAG = "live_flag"
    CREDENTIALS = "credentials"
    CONNECTION_TEST = "connection_test"
    CONFIRMATION = "confirmation"


def exchange_display_name(exchange: str) -> str:
    """The name the confirmation dialog asks the user to type ("Bybit" for ``bybit``)."""
    spec = EXCHANGES.get(exchange.strip().lower())
    return spec.display_name if spec is not None else exchange


def names_exchange(typed: str, exchange: str) -> bool:
    """Whether ``typed`` names ``exchange``: its id or its display name, ignoring surrounding
    spaces and letter case (the point is a deliberate act that names the venue, not a spelling
    test). The go-live dialog and :class:`LiveConfirmation` share this one rule."""
    wanted = {exchange.strip().casefold(), exchange_display_name(exchange).casefold()}
    return typed.strip().casefold() in wanted


@dataclass(frozen=True, slots=True)
class LiveConfirmation:
    """What the user confirmed when switching a connection live.

    ``balance`` is the account balance shown in the dialog (in ``balance_asset``), fetched from
    the account just before; ``typed`` is what the user typed where the dialog asked for the
    exchange's name. Holds nothing secret.
    """

    connection_id: str
    exchange: str
    balance: float | None
    typed: str
    balance_asset: str = "USDT"

    def problem(self, record: ConnectionRecord) -> str | None:
        """Why this confirmation does not cover ``record``, or None when it does.

        The typed text must name the exchange (:func:`names_exchange`).
        """
        if self.connection_id != record.id:
            return f"the confirmation was given for another connection, not {record.name}"
        if self.exchange.strip().lower() != record.exchange.strip().lower():
            return f"the confirmation names {self.exchange}, but {record.name} trades on {record.exchange}"
        if not names_exchange(self.typed, record.exchange):
            return (
                f"type the exchange's name ({exchange_display_name(record.exchange)}) to confirm live trading"
            )
        balance = self.balance
        if balance is None or isinstance(balance, bool) or not math.isfinite(balance) or balance <= 0:
            return (
                f"the confirmation must show the real account balance, fetched from {record.exchange}; "
                f"got {balance!r} {self.balance_asset}"
            )
        return None


@dataclass(frozen=True, slots=True)
class StoredTest:
    """What the stored result of a connection's last test tells (see the module docstring)."""

    passed: bool
    at: datetime | None
    on_testnet: bool | None  # None when the log does not say
    authenticated: bool
    can_withdraw: bool | None  # None when unknown


def stored_test(record: ConnectionRecord) -> StoredTest:
    text = record.last_test_log or ""
    on_testnet = True if _TESTNET_YES in text else False if _TESTNET_NO in text else None
    can_withdraw = True if WITHDRAW_WARNING in text else False if _WITHDRAW_OFF in text else None
    return StoredTest(
        passed=record.last_test_status == TEST_PASSED,
        at=record.last_test_at,
        on_testnet=on_testnet,
        authenticated=_AUTHENTICATED in text,
        can_withdraw=can_withdraw,
    )


def _test_problem(record: ConnectionRecord) -> str | None:
    test = stored_test(record)
    name = record.name
    if record.last_test_status is None:
        return f"{name} has never been tested: run 'Test connection' first"
    if not test.passed:
        return f"the last connection test of {name} failed: fix it and test again"
    if not test.authenticated:
        return (
            f"the last connection test of {name} did not use the API key (no balances were read): test again"
        )
    if test.on_testnet is None:
        return f"the last connection test of {name} does not say which network it ran on: test again"
    if test.on_testnet != record.is_testnet:
        ran, now = ("testnet", "the real network") if test.on_testnet else ("the real network", "testnet")
        return f"the last connection test of {name} ran on {ran}, but it now trades on {now}: test again"
    return None


def live_order_allowed(
    record: ConnectionRecord, confirmation: LiveConfirmation | None, credentials_present: bool
) -> RiskDecision:
    """Whether a live order may be sent on ``record`` (the three conditions of the module docstring).

    ``credentials_present`` is whether the keyring holds this connection's key and secret
    (``ConnectionService.has_credentials``).
    """
    name = record.name
    if not is_live_capable(record.exchange):
        return RiskDecision.refuse(
            LiveRule.LIVE_CAPABLE.value, f"live trading: {record.exchange} cannot trade real money ({name})"
        )
    if not record.is_enabled:
        return RiskDecision.refuse(
            LiveRule.CONNECTION_ENABLED.value, f"live trading: the connection {name} is disabled"
        )
    if not record.is_live_trade:
        return RiskDecision.refuse(
            LiveRule.LIVE_FLAG.value,
            f"live trading is off for {name}: its orders are paper orders until you switch it live",
        )
    if not credentials_present:
        return RiskDecision.refuse(
            LiveRule.CREDENTIALS.value, f"live trading: no API key is stored for {name}; add one and test it"
        )
    problem = _test_problem(record)
    if problem is not None:
        return RiskDecision.refuse(LiveRule.CONNECTION_TEST.value, f"live trading: {problem}")
    if confirmation is None:
        return RiskDecision.refuse(
            LiveRule.CONFIRMATION.value,
            f"live trading: {name} has not been confirmed for live trading (exchange name and balance)",
        )
    problem = confirmation.problem(record)
    if problem is not None:
        return RiskDecision.refuse(LiveRule.CONFIRMATION.value, f"live trading: {problem}")
    return RiskDecision.ok()


# --------------------------------------------------------------------------- go-live checklist

AUTOMATIC_ITEMS = (
    "live_capable",
    "testnet_test",
    "paper_days",
    "paper_trades",
    "risk_limits",
    "first_live_volume_factor",
    "backups",
)
"""Keys of the items the application checks itself (``testnet_test`` becomes a manual item for an
exchange without a testnet or demo for the connection's API type)."""

MANUAL_ITEMS: Mapping[str, str] = {
    "real_money": "I understand that live orders use real money and can lose it",
    "withdrawal_off": "Withdrawal permission is off on this API key",
    "orders_checked": "I checked on testnet or demo that orders appear on the exchange as expected",
}
"""Keys and labels of the items the user ticks."""


def _has_testnet(record: ConnectionRecord) -> bool:
    spec = EXCHANGES.get(record.exchange.strip().lower())
    if spec is None:
        return False
    try:
        return spec.testnet(ApiType(record.api_type)).available
    except (UnsupportedApiTypeError, ValueError):
        return False


def _testnet_item(
    record: ConnectionRecord, testnet_test_passed: bool | None, ticks: Collection[str]
) -> ChecklistItem:
    label = "Connection test passed on testnet or demo"
    if not _has_testnet(record):
        display = exchange_display_name(record.exchange)
        return ChecklistItem(
            "testnet_test",
            f"I tested this key carefully: {display} has no testnet or demo for {record.api_type}",
            automatic=False,
            passed=True if "testnet_test" in ticks else None,
        )
    if testnet_test_passed is not None:
        detail = (
            "as recorded by the caller" if testnet_test_passed else "no passing testnet or demo test recorded"
        )
        return ChecklistItem("testnet_test", label, automatic=True, passed=testnet_test_passed, detail=detail)
    test = stored_test(record)
    passed = test.passed and test.on_testnet is True and test.authenticated
    if passed:
        detail = f"last test passed on testnet/demo at {test.at:%Y-%m-%d %H:%M} UTC" if test.at else "passed"
    elif test.on_testnet is False:
        detail = "the last stored test ran on the real network; a testnet/demo pass is not stored"
    elif not test.passed:
        detail = "switch the connection to testnet/demo and run a connection test with its API key"
    else:
        detail = "the last testnet test did not use an API key"
    return ChecklistItem("testnet_test", label, automatic=True, passed=passed, detail=detail)


def _risk_limits_item(settings: Mapping[str, Any]) -> ChecklistItem:
    """Passed when the settings make valid risk limits (the ones the risk gate will enforce)."""
    label = "Risk limits set (daily loss, drawdown, open positions)"
    try:
        limits = RiskLimits.from_settings(settings)
    except ValueError as exc:  # SettingValidationError is one; RiskLimits' own checks raise it too
        return ChecklistItem("risk_limits", label, automatic=True, passed=False, detail=str(exc))
    detail = (
        f"daily loss {limits.max_daily_loss_pct:g} %, drawdown {limits.max_drawdown_pct:g} %, "
        f"at most {limits.max_open_positions} open positions"
    )
    return ChecklistItem("risk_limits", label, automatic=True, passed=True, detail=detail)


def _volume_factor_item(record: ConnectionRecord) -> ChecklistItem:
    label = f"First live volume factor at most {FIRST_LIVE_VOLUME_FACTOR:g}"
    factor = record.live_volume_factor
    if record.settings.get("has_been_live"):
        return ChecklistItem(
            "first_live_volume_factor",
            label,
            automatic=True,
            passed=True,
            detail=f"the connection has been live before (factor {factor:g}); scaling up is the last step",
        )
    passed = factor <= FIRST_LIVE_VOLUME_FACTOR + 1e-9
    detail = f"live volume factor {factor:g}" + (
        "" if passed else f": lower it to {FIRST_LIVE_VOLUME_FACTOR:g}"
    )
    return ChecklistItem("first_live_volume_factor", label, automatic=True, passed=passed, detail=detail)


def build_checklist(
    record: ConnectionRecord,
    settings: Mapping[str, Any],
    *,
    first_paper_trade_at: datetime | None,
    paper_trade_count: int,
    now: datetime,
    ticks: Collection[str] = frozenset(),
    testnet_test_passed: bool | None = None,
) -> GoLiveChecklist:
    """The go-live checklist of ``record``: automatic items first, then the user's ticks.

    ``settings`` are the current setting values (``SettingsService.values()``); the paper figures
    are this connection's (first paper fill time and number of paper trades); ``now`` and
    ``first_paper_trade_at`` are timezone-aware, as every stored time is; ``ticks`` are the keys
    of the manual items the user ticked. Ticking an unknown or automatic item raises
    ``ValueError``: an automatic check cannot be overridden by a tick. The checklist is ``ready``
    only when every item passed.
    """
    manual_keys = set(MANUAL_ITEMS) | ({"testnet_test"} if not _has_testnet(record) else set())
    unknown = set(ticks) - manual_keys
    if unknown:
        raise ValueError(f"these checklist items cannot be ticked: {', '.join(sorted(unknown))}")
    if paper_trade_count < 0:
        raise ValueError(f"paper_trade_count must not be negative, not {paper_trade_count}")

    if first_paper_trade_at is None:
        days, days_detail = 0.0, "no paper trade on this connection yet"
    else:
        days = (now - first_paper_trade_at) / timedelta(days=1)
        days_detail = f"{days:.1f} days since the first paper trade"
    auto_backup = settings.get("system.auto_backup", SPEC_BY_KEY["system.auto_backup"].default) is True

    capable = is_live_capable(record.exchange)
    items = [
        ChecklistItem(
            "live_capable",
            "The exchange can trade real money",
            automatic=True,
            passed=capable,
            detail="" if capable else f"{exchange_display_name(record.exchange)} is paper only",
        ),
        _testnet_item(record, testnet_test_passed, ticks),
        ChecklistItem(
            "paper_days",
            f"Traded on paper for at least {PAPER_MIN_DAYS} days",
            automatic=True,
            passed=days >= PAPER_MIN_DAYS,
            detail=days_detail,
        ),
        ChecklistItem(
            "paper_trades",
            f"At least {PAPER_MIN_TRADES} paper trades",
            automatic=True,
            passed=paper_trade_count >= PAPER_MIN_TRADES,
            detail=f"{paper_trade_count} paper trades on this connection",
        ),
        _risk_limits_item(settings),
        _volume_factor_item(record),
        ChecklistItem(
            "backups",
            "Automatic backups are on",
            automatic=True,
            passed=auto_backup,
            detail="system.auto_backup is on"
            if auto_backup
            else "turn on Automatic backups (System settings)",
        ),
    ]
    can_withdraw = stored_test(record).can_withdraw
    for key, label in MANUAL_ITEMS.items():
        if key == "withdrawal_off" and can_withdraw:
            items.append(
                ChecklistItem(
                    key,
                    label,
                    automatic=False,
                    passed=False,
                    detail="the last connection test found that this key CAN withdraw: replace the key",
                )
            )
            continue
        items.append(ChecklistItem(key, label, automatic=False, passed=True if key in ticks else None))
    return GoLiveChecklist(connection_id=record.id, exchange=record.exchange, items=tuple(items))

"""'Test connection' end to end: ConnectionTester → the real CcxtExchange (ccxt's signing, parsing
and error mapping) → a fake HTTP session answering with Binance's recorded responses; the result
is stored on a real SQLite file."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import keyring.backends.fail
import pytest
import pytest_asyncio

from cts_desktop.domain.market import ApiType
from cts_desktop.engine.connection_test import WITHDRAW_WARNING, ConnectionTester, run_connection_test
from cts_desktop.engine.connections import ConnectionDraft, ConnectionService
from cts_desktop.engine.events import EventBus
from cts_desktop.exchanges.ccxt_exchange import CcxtExchange
from cts_desktop.exchanges.errors import ErrorKind
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRecord, ConnectionRepository
from cts_desktop.storage.secrets import Credentials, SecretStore
from tests.exchanges.conftest import load_case, load_currencies, normalized_markets, require_static
from tests.exchanges.fake_http import FakeHttpSession, FakeResponse, RecordedRequest

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


@pytest_asyncio.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
    yield db
    await db.close()


def binance_responder(*, can_withdraw: bool = True, balance_error: dict[str, Any] | None = None) -> Any:
    ticker = load_case("binance", "fetchTicker", 0)["httpResponse"]
    balance = load_case("binance", "fetchBalance", 0)["httpResponse"]

    def answer(request: RecordedRequest) -> FakeResponse:
        if request.path.endswith("/time"):
            return FakeResponse(200, {"serverTime": int(time.time() * 1000)})
        if request.path.endswith("/ticker/24hr"):
            return FakeResponse(200, ticker)
        if request.path.endswith("/api/v3/account"):
            if balance_error is not None:
                return FakeResponse(401, balance_error)
            return FakeResponse(200, balance)
        if request.path.endswith("/account/apiRestrictions"):
            return FakeResponse(200, {"enableReading": True, "enableWithdrawals": can_withdraw})
        raise AssertionError(f"unexpected request {request.method} {request.url}")

    return answer


async def _tester(
    database: Database, backend: Any, session: FakeHttpSession, redactor: Redactor
) -> tuple[ConnectionService, ConnectionTester]:
    require_static()
    service = ConnectionService(
        ConnectionRepository(database), SecretStore(redactor, backend), AuditRepository(database), EventBus()
    )

    def factory(record: ConnectionRecord, credentials: Credentials | None) -> CcxtExchange:
        return CcxtExchange(
            record.exchange,
            api_type=ApiType(record.api_type),
            credentials=credentials,
            testnet=record.is_testnet,
            redactor=redactor,
            session=session,
            enable_rate_limit=False,
            use_websocket=False,
            markets=normalized_markets("binance"),
            currencies=load_currencies("binance"),
        )

    return service, ConnectionTester(service, factory)


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_a_successful_test_logs_every_step_and_stores_the_result(
    database: Database, real_keyring: Any
) -> None:
    redactor = Redactor()
    session = FakeHttpSession(binance_responder(can_withdraw=True))
    service, tester = await _tester(database, real_keyring, session, redactor)
    record = await service.create(
        ConnectionDraft(name="Binance spot", exchange="binance", api_type=ApiType.SPOT),
        Credentials(KEY, SECRET),
    )
    try:
        result = await tester.test(record.id)
        stored = await service.get(record.id)
    finally:
        await service.delete(record.id)
    assert result.success, result.log_text
    assert stored.last_test_status == "success" and stored.last_test_log == result.log_text
    expected_last = float(load_case("binance", "fetchTicker", 0)["parsedResponse"]["last"])
    assert result.btc_price == expected_last
    assert result.can_withdraw is True
    text = result.log_text
    for fragment in (
        "start: testing connection 'Binance spot' on binance",
        "API type: spot; method: library; testnet: no",
        "load markets: ok (",
        "server time: ok (",
        "BTC price (BTC/USDT): ok (",
        "balances: ok (",
        "withdrawal permission: ok (",
        WITHDRAW_WARNING,
        "successful in",
    ):
        assert fragment in text
    assert all(line[:4].isdigit() and " UTC  " in line for line in result.lines)  # every line timestamped
    assert any("  ETH: free 0.02229833, used 0, total 0.02229833" in line for line in result.lines)
    # the requests were really signed by ccxt
    account = next(r for r in session.requests if r.path.endswith("/api/v3/account"))
    assert "signature=" in account.url and account.header("X-MBX-APIKEY") == KEY
    assert KEY not in text and SECRET not in text


@pytest.mark.asyncio
async def test_the_result_is_persisted_without_secrets(database: Database) -> None:
    redactor = Redactor()
    session = FakeHttpSession(binance_responder())
    service, _ = await _tester(database, keyring.backends.fail.Keyring(), session, redactor)
    record = await service.create(
        ConnectionDraft(name="Binance spot", exchange="binance", api_type=ApiType.SPOT)
    )
    exchange = CcxtExchange(
        "binance",
        api_type=ApiType.SPOT,
        credentials=Credentials(KEY, SECRET),
        redactor=redactor,
        session=session,
        enable_rate_limit=False,
        use_websocket=False,
        markets=normalized_markets("binance"),
        currencies=load_currencies("binance"),
    )
    try:
        result = await run_connection_test(record, exchange, min_connect_interval_s=0)
    finally:
        await exchange.close()
    assert result.success and set(result.balances) == {"ETH", "LTC"}  # the recorded account has no USDT
    stored = await service.record_test_result(
        record.id,
        status=result.status,
        at=result.started_at,
        balance=result.quote_balance,
        log_text=result.log_text,
        capabilities=result.capabilities,
    )
    assert stored.last_test_status == "success" and stored.last_test_log == result.log_text
    assert stored.last_test_balance == result.quote_balance and stored.api_capabilities
    database_file = Path(str(database.engine.url.database))
    await database.engine.dispose()
    data = b"".join(p.read_bytes() for p in database_file.parent.glob("test.db*"))
    assert b"successful in" in data and KEY.encode() not in data and SECRET.encode() not in data


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_wrong_keys_fail_with_a_clear_step_and_reason(database: Database, real_keyring: Any) -> None:
    redactor = Redactor()
    session = FakeHttpSession(
        binance_responder(
            balance_error={"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        )
    )
    service, tester = await _tester(database, real_keyring, session, redactor)
    record = await service.create(
        ConnectionDraft(name="Binance spot", exchange="binance", api_type=ApiType.SPOT),
        Credentials(KEY, SECRET),
    )
    try:
        result = await tester.test(record.id)
        stored = await service.get(record.id)
    finally:
        await service.delete(record.id)
    assert not result.success and result.error_kind is ErrorKind.AUTHENTICATION
    assert "balances: FAILED after" in result.log_text
    assert "Check the API key, secret" in result.log_text
    assert "connection test failed after" in result.lines[-1]
    assert stored.last_test_status == "failed" and "balances: FAILED" in (stored.last_test_log or "")
    assert KEY not in result.log_text and SECRET not in result.log_text


@pytest.mark.asyncio
async def test_without_a_keyring_only_public_data_is_tested(database: Database) -> None:
    redactor = Redactor()
    session = FakeHttpSession(binance_responder())
    service, tester = await _tester(database, keyring.backends.fail.Keyring(), session, redactor)
    record = await service.create(
        ConnectionDraft(name="Binance spot", exchange="binance", api_type=ApiType.SPOT)
    )
    result = await tester.test(record.id)
    assert result.success and result.btc_price is not None and result.balances == {}
    assert "balances: skipped: no API key is stored" in result.log_text
    assert not any(r.path.endswith("/api/v3/account") for r in session.requests)


@pytest.mark.asyncio
async def test_a_hanging_exchange_times_out_cleanly(database: Database) -> None:
    redactor = Redactor()

    service, _ = await _tester(
        database, keyring.backends.fail.Keyring(), FakeHttpSession(binance_responder()), redactor
    )
    record = await service.create(
        ConnectionDraft(name="Binance spot", exchange="binance", api_type=ApiType.SPOT)
    )

    class Hanging(CcxtExchange):
        async def clock_skew_ms(self) -> int:
            await asyncio.sleep(60)
            return 0

    exchange = Hanging(
        "binance",
        api_type=ApiType.SPOT,
        redactor=redactor,
        session=FakeHttpSession(binance_responder()),
        enable_rate_limit=False,
        use_websocket=False,
        markets=normalized_markets("binance"),
        currencies=load_currencies("binance"),
    )
    started = time.perf_counter()
    try:
        result = await run_connection_test(record, exchange, overall_timeout_s=0.3, min_connect_interval_s=0)
    finally:
        await exchange.close()
    assert time.perf_counter() - started < 5
    assert not result.success and result.error_kind is ErrorKind.NETWORK
    assert "did not finish within 0.3 s" in result.log_text

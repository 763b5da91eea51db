"""Fixtures for exchange tests: ccxt's recorded responses, fake credentials, offline venues.

The recorded data lives outside the repository, in ``../shared/data/ccxt-static`` (see its
SOURCE.md): ccxt's own static fixtures, a response file per exchange (method → cases with
``input``, ``httpResponse`` and ``parsedResponse``) plus the markets and currencies ccxt's static
tests install with ``set_markets``. Tests that need it are skipped, with the path, when it is
absent. Helpers here return deep copies, because ccxt's ``set_markets`` and our tests may
modify what they are given.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cts_desktop.domain.market import ApiType
from cts_desktop.exchanges.ccxt_exchange import CcxtExchange
from cts_desktop.redaction import Redactor
from cts_desktop.storage.secrets import Credentials
from tests.conftest import SHARED_DIR
from tests.exchanges.fake_http import FakeHttpSession

CCXT_STATIC_DIR = SHARED_DIR / "data" / "ccxt-static"

# Fake credentials long enough to be registered by the Redactor and easy to spot in any text.
TEST_API_KEY = "TESTKEY-abcdefghijklmnop0123456789"
TEST_API_SECRET = "TESTSECRET-zyxwvutsrqponm9876543210"
TEST_PASSPHRASE = "TESTPASS-42-passphrase"
SECRETS = (TEST_API_KEY, TEST_API_SECRET, TEST_PASSPHRASE)

# Keys every ccxt market carries; the static markets come from older ccxt revisions and
# sometimes lack some of them (ccxt 4.5.90 then fails with KeyError 'inverse').
_MARKET_DEFAULTS: dict[str, Any] = {
    "linear": None,
    "inverse": None,
    "contractSize": None,
    "settle": None,
    "settleId": None,
    "subType": None,
    "expiry": None,
    "expiryDatetime": None,
    "strike": None,
    "optionType": None,
    "created": None,
    "index": None,
}


def static_available() -> bool:
    return (CCXT_STATIC_DIR / "response").is_dir()


def require_static() -> Path:
    """The static folder, or skip the calling test with the path that was looked for."""
    if not static_available():
        pytest.skip(f"ccxt static fixtures not found at {CCXT_STATIC_DIR} (see tests/exchanges/conftest.py)")
    return CCXT_STATIC_DIR


@functools.cache
def _read(kind: str, exchange: str) -> Any:
    return json.loads((require_static() / kind / f"{exchange}.json").read_text(encoding="utf-8"))


def load_response_file(exchange: str) -> dict[str, Any]:
    """The whole ``response/<exchange>.json`` (``exchange``, ``options``, ``skipKeys``, ``methods``)."""
    return copy.deepcopy(_read("response", exchange))


def load_markets(exchange: str) -> dict[str, Any]:
    return copy.deepcopy(_read("markets", exchange))


def load_currencies(exchange: str) -> dict[str, Any]:
    return copy.deepcopy(_read("currencies", exchange))


def load_case(exchange: str, method: str, index: int, description: str | None = None) -> dict[str, Any]:
    """One recorded case; ``description`` guards against the file changing under the index."""
    case = load_response_file(exchange)["methods"][method][index]
    if description is not None:
        assert case["description"] == description, (
            f"{exchange}.{method}[{index}] is now {case['description']!r}"
        )
    return dict(case)


# Static market files saved by ccxt revisions that still used DECIMAL_PLACES precision
# (precision.amount == 3 meaning 0.001); ccxt 4.5.90 reads precision as tick sizes for these.
DECIMAL_PLACES_FILES = frozenset({"binance", "bingx"})


def normalized_markets(exchange: str, clones: dict[str, str] | None = None) -> dict[str, Any]:
    """The static markets made consistent with ccxt 4.5.90, plus cloned markets.

    Missing standard keys are filled in, decimal-places precision becomes tick sizes, and
    ``clones`` maps a missing symbol to an existing one of the same kind ({"SOL/USDT":
    "LTC/USDT"}): a response case sometimes names a market the markets file of another ccxt
    revision does not have. Used by the typed tests; the contract tests use the files as they are.
    """
    markets = load_markets(exchange)
    for market in markets.values():
        for key, value in _MARKET_DEFAULTS.items():
            market.setdefault(key, value)
        precision = market.get("precision")
        if exchange in DECIMAL_PLACES_FILES and isinstance(precision, dict):
            for key, value in list(precision.items()):
                if isinstance(value, int | float) and value >= 1:
                    precision[key] = float(f"1e-{int(value)}")
    for symbol, template in (clones or {}).items():
        clone = copy.deepcopy(markets[template])
        old_base, new_base = markets[template]["base"], symbol.split("/")[0]
        clone.update(
            symbol=symbol,
            base=new_base,
            baseId=new_base,
            id=str(clone["id"]).replace(old_base, new_base),
            lowercaseId=str(clone.get("lowercaseId") or "").replace(old_base.lower(), new_base.lower())
            or None,
        )
        markets[symbol] = clone
    return markets


@pytest.fixture
def ccxt_static() -> Path:
    """Path of the static fixtures; skips the test when they are absent."""
    return require_static()


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.fixture
def credentials() -> Credentials:
    return Credentials(TEST_API_KEY, TEST_API_SECRET, TEST_PASSPHRASE)


MakeExchange = Callable[..., CcxtExchange]


@pytest_asyncio.fixture
async def make_exchange(redactor: Redactor, credentials: Credentials) -> AsyncIterator[MakeExchange]:
    """Factory for offline CcxtExchange instances; every one is closed after the test.

    ``make_exchange("binance", ApiType.SPOT, session, markets=..., testnet=False, ...)``: markets
    default to the static file of the exchange (normalized), credentials to the fake ones,
    the rate limiter is off and websockets are not used.
    """
    created: list[CcxtExchange] = []

    def make(
        exchange_id: str,
        api_type: ApiType = ApiType.PERPETUAL_FUTURES,
        session: FakeHttpSession | None = None,
        **kwargs: Any,
    ) -> CcxtExchange:
        if "markets" not in kwargs:
            kwargs["markets"] = normalized_markets(exchange_id)
        if "currencies" not in kwargs:
            kwargs["currencies"] = load_currencies(exchange_id)
        kwargs.setdefault("credentials", credentials)
        kwargs.setdefault("enable_rate_limit", False)
        kwargs.setdefault("use_websocket", False)
        exchange = CcxtExchange(
            exchange_id,
            api_type=api_type,
            redactor=redactor,
            session=session if session is not None else FakeHttpSession(),
            **kwargs,
        )
        created.append(exchange)
        return exchange

    yield make
    for exchange in created:
        await exchange.close()

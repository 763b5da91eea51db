"""Builds the venue for a connection: the one place that maps a connection's fields to ccxt.

Takes anything shaped like a connection record (a Protocol, so this package does not import
storage); an unsupported exchange, API type or testnet raises NotSupportedError with the
catalogue's reason, at build time rather than on the first order.
"""

from __future__ import annotations

from typing import Protocol

from cts_desktop.domain.market import ApiType
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.ccxt_exchange import CcxtExchange
from cts_desktop.redaction import Redactor
from cts_desktop.storage.secrets import Credentials


class ConnectionFields(Protocol):
    @property
    def exchange(self) -> str: ...

    @property
    def api_type(self) -> str: ...

    @property
    def is_testnet(self) -> bool: ...


def create_venue_for_connection(
    connection: ConnectionFields,
    credentials: Credentials | None,
    redactor: Redactor,
    *,
    timeout_ms: int = 10_000,
) -> Exchange:
    return CcxtExchange(
        connection.exchange,
        api_type=ApiType(connection.api_type),
        credentials=credentials,
        testnet=connection.is_testnet,
        redactor=redactor,
        timeout_ms=timeout_ms,
    )

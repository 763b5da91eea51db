"""Arming a connection for live trading: the one path from a confirmed go-live dialog to live orders.

The three conditions of :mod:`~cts_desktop.engine.live_guard` are checked here, on every live
order and before a live engine may start:

* the live flag is set only by :meth:`LiveArming.arm`, after the confirmation (exchange name typed,
  real balance shown) and the tested credentials have been checked;
* the confirmation is held **in memory for this session only**. After a restart, the flag is still
  stored, but no live order can be sent until the user confirms again: a crash, an auto-start or a
  copied database never resumes live trading on its own;
* :meth:`permit` is what the coordinator (``live_permitted``) and the order loop
  (``live_permission``) ask; :meth:`disarm` clears both the confirmation and the flag.

:meth:`permit` runs before every live order, so it must not cost a database read and a keyring
(D-Bus) read each time. It judges a cached copy of the connection record and of whether the
keyring holds its key; the copy is dropped whenever the connection service announces a change of
that connection (``ConnectionChanged`` on the event bus; every write of a connection goes through
the service, which announces it), and the next permit reads both again. A re-read also decides
whether the confirmation still stands: it is dropped when the connection is disabled, its live
flag is off, or its credentials are no longer the ones it was armed with (replaced keys need a
new test *and* a new confirmation); a deleted connection loses it at once. A key deleted from
the keyring behind the application's back is noticed at the next re-read only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from dataclasses import dataclass, replace

from cts_desktop.domain.enums import Actor
from cts_desktop.domain.orders import RiskDecision
from cts_desktop.engine.connections import ConnectionChanged, ConnectionService
from cts_desktop.engine.events import EventBus
from cts_desktop.engine.live_guard import LiveConfirmation, LiveRule, live_order_allowed
from cts_desktop.storage.repositories.connections import ConnectionRecord
from cts_desktop.storage.secrets import Credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Armed:
    """A confirmation and the credentials it was given for (a keyed digest, never the secret)."""

    confirmation: LiveConfirmation
    key_digest: bytes


@dataclass(frozen=True, slots=True)
class _Checked:
    """What :meth:`LiveArming.permit` judges: the record and whether the keyring holds its key."""

    record: ConnectionRecord
    credentials_present: bool


class LiveArming:
    def __init__(self, connections: ConnectionService, bus: EventBus) -> None:
        self._connections = connections
        self._armed: dict[str, _Armed] = {}
        self._checked: dict[str, _Checked] = {}
        self._changes: dict[str, int] = {}  # ConnectionChanged events seen, per connection
        # Digests of credentials are keyed with a secret of this session only: nothing derived
        # from a key outlives the process or can be compared with anything outside it.
        self._digest_key = os.urandom(32)
        bus.subscribe(ConnectionChanged, self._on_connection_changed)

    def is_armed(self, connection_id: str) -> bool:
        return connection_id in self._armed

    async def arm(self, confirmation: LiveConfirmation, *, actor: Actor = Actor.USER) -> RiskDecision:
        """Check the confirmation and the credentials, then set the live flag; nothing changes on a
        refusal. Returns the decision (refusals carry the rule and what to do)."""
        record = await self._connections.get(confirmation.connection_id)
        problem = confirmation.problem(record)
        if problem is not None:
            return RiskDecision.refuse(LiveRule.CONFIRMATION.value, f"live trading: {problem}")
        credentials = await self._connections.credentials(record.id)
        # Everything but the flag itself must already hold: judge the record as it would be armed.
        armed_view = replace(record, is_live_trade=True)
        decision = live_order_allowed(armed_view, confirmation, credentials is not None)
        if not decision.allowed:
            return decision
        assert credentials is not None  # live_order_allowed refuses without them
        await self._connections.set_live_trade(
            record.id,
            True,
            actor=actor,
            reason=f"live confirmed; balance {confirmation.balance} {confirmation.balance_asset}",
        )
        self._armed[record.id] = _Armed(confirmation, self._digest(credentials))
        log.warning("%s is now LIVE: its orders use real money on %s", record.name, record.exchange)
        return RiskDecision.ok()

    async def disarm(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        """Back to paper: forget the confirmation and clear the live flag."""
        self._armed.pop(connection_id, None)
        record = await self._connections.get(connection_id)
        if record.is_live_trade:
            await self._connections.set_live_trade(
                connection_id, False, actor=actor, reason=reason or "back to paper"
            )

    async def permit(self, record: ConnectionRecord) -> RiskDecision:
        """Whether a live order (or a live engine start) is allowed on ``record`` right now.

        Only ``record.id`` is used: the record judged is the service's, cached until it changes.
        """
        checked = self._checked.get(record.id)
        if checked is None:
            checked = await self._read(record.id)
        armed = self._armed.get(record.id)
        confirmation = armed.confirmation if armed is not None else None
        return live_order_allowed(checked.record, confirmation, checked.credentials_present)

    async def _read(self, connection_id: str) -> _Checked:
        """Read the record and the keyring again, drop a confirmation that no longer stands, and
        cache the result unless the connection changed meanwhile (then the next permit reads)."""
        changes = self._changes.get(connection_id, 0)
        fresh = await self._connections.get(connection_id)
        credentials = await self._connections.credentials(connection_id)
        armed = self._armed.get(connection_id)
        if armed is not None:
            if not fresh.is_enabled or not fresh.is_live_trade:
                # The flag went off (emergency stop, disabled connection, the user): the
                # confirmation went with it; turning live on again needs a new one.
                self._armed.pop(connection_id, None)
            elif credentials is None or not hmac.compare_digest(self._digest(credentials), armed.key_digest):
                self._armed.pop(connection_id, None)
                log.warning(
                    "%s: the API key changed after live trading was confirmed; confirm again", fresh.name
                )
        checked = _Checked(fresh, credentials is not None)
        if self._changes.get(connection_id, 0) == changes:
            self._checked[connection_id] = checked
        return checked

    def _on_connection_changed(self, event: ConnectionChanged) -> None:
        connection_id = event.connection_id
        self._changes[connection_id] = self._changes.get(connection_id, 0) + 1
        self._checked.pop(connection_id, None)
        if event.change == "deleted":
            self._armed.pop(connection_id, None)

    def _digest(self, credentials: Credentials) -> bytes:
        parts = (credentials.api_key, credentials.api_secret, credentials.passphrase or "")
        return hmac.new(self._digest_key, "\0".join(parts).encode(), hashlib.sha256).digest()

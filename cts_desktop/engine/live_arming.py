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
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

from cts_desktop.domain.enums import Actor
from cts_desktop.domain.orders import RiskDecision
from cts_desktop.engine.connections import ConnectionService
from cts_desktop.engine.live_guard import LiveConfirmation, LiveRule, live_order_allowed
from cts_desktop.storage.repositories.connections import ConnectionRecord

log = logging.getLogger(__name__)


class LiveArming:
    def __init__(self, connections: ConnectionService) -> None:
        self._connections = connections
        self._confirmations: dict[str, LiveConfirmation] = {}

    def is_armed(self, connection_id: str) -> bool:
        return connection_id in self._confirmations

    async def arm(self, confirmation: LiveConfirmation, *, actor: Actor = Actor.USER) -> RiskDecision:
        """Check the confirmation and the credentials, then set the live flag; nothing changes on a
        refusal. Returns the decision (refusals carry the rule and what to do)."""
        record = await self._connections.get(confirmation.connection_id)
        problem = confirmation.problem(record)
        if problem is not None:
            return RiskDecision.refuse(LiveRule.CONFIRMATION.value, f"live trading: {problem}")
        credentials = await self._connections.has_credentials(record.id)
        # Everything but the flag itself must already hold: judge the record as it would be armed.
        armed_view = _with_live_flag(record)
        decision = live_order_allowed(armed_view, confirmation, credentials)
        if not decision.allowed:
            return decision
        stamped = LiveConfirmation(
            confirmation.connection_id,
            confirmation.exchange,
            confirmation.balance,
            confirmation.typed,
            confirmation.balance_asset,
            confirmation.confirmed_at or datetime.now(UTC),
        )
        await self._connections.set_live_trade(
            record.id,
            True,
            actor=actor,
            reason=f"live confirmed; balance {confirmation.balance} {confirmation.balance_asset}",
        )
        self._confirmations[record.id] = stamped
        log.warning("%s is now LIVE: its orders use real money on %s", record.name, record.exchange)
        return RiskDecision.ok()

    async def disarm(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        """Back to paper: forget the confirmation and clear the live flag."""
        self._confirmations.pop(connection_id, None)
        record = await self._connections.get(connection_id)
        if record.is_live_trade:
            await self._connections.set_live_trade(
                connection_id, False, actor=actor, reason=reason or "back to paper"
            )

    async def permit(self, record: ConnectionRecord) -> RiskDecision:
        """Whether a live order (or a live engine start) is allowed on ``record`` right now."""
        fresh = await self._connections.get(record.id)
        if not fresh.is_live_trade:
            # The flag went off (emergency stop, disabled connection, the user): the confirmation
            # went with it; turning live on again needs a new one.
            self._confirmations.pop(record.id, None)
        credentials = await self._connections.has_credentials(record.id)
        return live_order_allowed(fresh, self._confirmations.get(record.id), credentials)


def _with_live_flag(record: ConnectionRecord) -> ConnectionRecord:
    return replace(record, is_live_trade=True)

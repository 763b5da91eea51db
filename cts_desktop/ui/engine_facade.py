"""What the window needs of the engine coordinator, and nothing more.

The UI programs against this structural type instead of importing ``engine.coordinator``: the
panels and dialogs then run unchanged over the real :class:`Coordinator` and over the small test
double in ``tests/ui/fakes.py``, and a change of the coordinator's internals cannot leak into
widget code. Every member restates the coordinator's public API exactly (names, keyword-only
``actor``/``reason``, return types), so the real class satisfies it without inheriting from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cts_desktop.domain.engine import EngineAction, EngineSnapshot, GoLiveChecklist
from cts_desktop.domain.enums import Actor, EngineState
from cts_desktop.domain.orders import OrderView, PositionView, ReconcileDifference


class EmergencyOutcome(Protocol):
    """The fields the Engine dock reports after an emergency stop.

    Structural (read-only properties) so the coordinator's frozen ``EmergencyReport`` dataclass
    matches without the UI importing the engine module that defines it.
    """

    @property
    def stopped(self) -> Sequence[str]: ...

    @property
    def cancelled_orders(self) -> int: ...

    @property
    def flattened_positions(self) -> int: ...

    @property
    def errors(self) -> Sequence[str]: ...


class EngineFacade(Protocol):
    """The coordinator as the Engine, Positions and Orders docks and the engine dialogs use it.

    Sync members are cheap in-memory reads (safe in a paint or a timer); async members may touch
    the database or a venue and run through a :class:`~cts_desktop.ui.async_tasks.TaskRunner`.
    Every per-connection action raises ``IllegalTransition`` and changes nothing when the state
    machine does not allow it (the state may have moved since the buttons were last enabled).
    """

    @property
    def global_state(self) -> EngineState: ...

    def snapshots(self) -> list[EngineSnapshot]: ...

    def snapshot(self, connection_id: str) -> EngineSnapshot: ...

    def allowed(self, connection_id: str) -> frozenset[EngineAction]: ...

    async def start(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None: ...

    async def stop(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None: ...

    async def pause(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None: ...

    async def resume(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None: ...

    async def restart(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None: ...

    async def start_all(self, *, actor: Actor = Actor.USER) -> None: ...

    async def stop_all(self, *, actor: Actor = Actor.USER, reason: str = "") -> None: ...

    async def pause_all(self, *, actor: Actor = Actor.USER) -> None: ...

    async def resume_all(self, *, actor: Actor = Actor.USER) -> None: ...

    async def emergency_stop(
        self, *, flatten: bool = False, actor: Actor = Actor.USER
    ) -> EmergencyOutcome: ...

    async def open_orders(self, connection_id: str | None = None) -> list[OrderView]: ...

    async def cancel_order(
        self, connection_id: str, client_order_id: str, *, actor: Actor = Actor.USER
    ) -> OrderView: ...

    async def open_positions(self, connection_id: str | None = None) -> list[PositionView]: ...

    async def reconcile(self, connection_id: str) -> list[ReconcileDifference]: ...

    async def apply_difference(self, difference: ReconcileDifference) -> None: ...

    async def go_live_checklist(
        self, connection_id: str, ticked: frozenset[str] = frozenset()
    ) -> GoLiveChecklist: ...


def connection_names(facade: EngineFacade) -> dict[str, str]:
    """Connection id → display name, for tables whose rows carry only the id."""
    return {snapshot.connection_id: snapshot.name for snapshot in facade.snapshots()}

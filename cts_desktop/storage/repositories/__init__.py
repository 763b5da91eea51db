"""Small async repositories, one per aggregate, each taking the :class:`Database`.

They return frozen dataclasses rather than ORM objects: an ORM object handed to the engine or
the UI would keep a session alive and could lazy-load (impossible under asyncio) long after the
transaction ended. Writes on hot paths are Core ``insert()`` batches.
"""

from cts_desktop.storage.repositories.audit import AuditEntry, AuditRepository
from cts_desktop.storage.repositories.connections import (
    ConnectionInUseError,
    ConnectionRecord,
    ConnectionRepository,
)
from cts_desktop.storage.repositories.engine_state import EngineStateRecord, EngineStateRepository
from cts_desktop.storage.repositories.paper import (
    PaperAccountRecord,
    PaperAccountState,
    PaperBalanceRecord,
    PaperChanges,
    PaperFillRecord,
    PaperOrderRecord,
    PaperPositionRecord,
    PaperRepository,
    PaperSymbolSettingRecord,
    new_account_record,
)
from cts_desktop.storage.repositories.settings import SettingsRepository
from cts_desktop.storage.repositories.system_log import LogEntry, SystemLogRepository

__all__ = [
    "AuditEntry",
    "AuditRepository",
    "ConnectionInUseError",
    "ConnectionRecord",
    "ConnectionRepository",
    "EngineStateRecord",
    "EngineStateRepository",
    "LogEntry",
    "PaperAccountRecord",
    "PaperAccountState",
    "PaperBalanceRecord",
    "PaperChanges",
    "PaperFillRecord",
    "PaperOrderRecord",
    "PaperPositionRecord",
    "PaperRepository",
    "PaperSymbolSettingRecord",
    "SettingsRepository",
    "SystemLogRepository",
    "new_account_record",
]

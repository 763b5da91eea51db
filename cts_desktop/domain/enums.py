"""Enumerations with one meaning across the application (DOMAIN D15, D24)."""

from enum import StrEnum


class EngineState(StrEnum):
    """The one persisted engine state (D15). The original mixed ``state`` and ``status``."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"


class TradingMode(StrEnum):
    """Paper is the default everywhere; live needs an explicit, confirmed switch per connection."""

    PAPER = "paper"
    LIVE = "live"


class Actor(StrEnum):
    """Who caused a state change or an order, for the audit log."""

    USER = "user"
    AUTO_START = "auto_start"
    CIRCUIT_BREAKER = "circuit_breaker"
    SHUTDOWN = "shutdown"
    SYSTEM = "system"
    MIGRATION = "migration"

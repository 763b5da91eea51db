"""Plain value types shared by every layer. No I/O, no Qt, no SQLAlchemy."""

from cts_desktop.domain.enums import Actor, EngineState, TradingMode

__all__ = ["Actor", "EngineState", "TradingMode"]

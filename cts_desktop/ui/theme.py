"""Colours and styles shared by the panels, kept in one place so the look can change without
touching panel code, and so "LIVE" looks the same (alarming) everywhere it appears."""

from __future__ import annotations

import logging
from typing import Final

from PySide6.QtGui import QColor

from cts_desktop.domain.enums import TradingMode

#: Foreground per log level; INFO keeps the palette's text colour (None) so it stays readable
#: on both light and dark themes.
LEVEL_COLOURS: Final[dict[int, QColor | None]] = {
    logging.DEBUG: QColor("#8a8a8a"),
    logging.INFO: None,
    logging.WARNING: QColor("#c77700"),
    logging.ERROR: QColor("#d32f2f"),
    logging.CRITICAL: QColor("#b71c1c"),
}

#: An error message under a panel or in a dialog; the bold one for a failure that must stand out.
ERROR_STYLE: Final = "QLabel { color: #d32f2f; }"
BOLD_ERROR_STYLE: Final = "QLabel { color: #d32f2f; font-weight: bold; }"

#: Paper is the normal state and must not shout; live trading must be impossible to miss.
MODE_STYLES: Final[dict[TradingMode, str]] = {
    TradingMode.PAPER: "QLabel { background: #2e6f8e; color: white; padding: 1px 8px; border-radius: 3px; }",
    TradingMode.LIVE: (
        "QLabel { background: #c62828; color: white; font-weight: bold;"
        " padding: 1px 8px; border-radius: 3px; }"
    ),
}


def level_colour(levelno: int) -> QColor | None:
    """Colour of the nearest standard level at or below ``levelno`` (custom levels fall in between)."""
    chosen: QColor | None = None
    for threshold, colour in sorted(LEVEL_COLOURS.items()):
        if levelno >= threshold:
            chosen = colour
    return chosen

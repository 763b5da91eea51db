"""The Logs dock, fed through a real ``logging.Logger`` and the QtLogHandler."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from cts_desktop.ui.log_handler import QtLogHandler
from cts_desktop.ui.models.log_model import LEVEL, MESSAGE
from cts_desktop.ui.panels.logs_panel import LogsPanel
from cts_desktop.ui.theme import LEVEL_COLOURS
from tests.helpers import wait_for


class RedactSecrets(logging.Filter):
    """Stands in for the composition root's redaction filter."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = str(record.msg).replace("SECRET123", "***")
        if isinstance(record.args, tuple):
            record.args = tuple(str(a).replace("SECRET123", "***") for a in record.args)
        return True


class BrokenFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        raise ValueError("bug in the filter")


@pytest.fixture
def handler() -> QtLogHandler:
    return QtLogHandler()


@pytest.fixture
def logger(handler: QtLogHandler) -> Iterator[logging.Logger]:
    log = logging.getLogger(f"cts.test.{uuid.uuid4().hex[:8]}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(handler)
    yield log
    log.removeHandler(handler)


@pytest.fixture
def panel(qtbot: QtBot, handler: QtLogHandler) -> LogsPanel:
    widget = LogsPanel()
    qtbot.addWidget(widget)
    widget.attach(handler)
    return widget


def messages(panel: LogsPanel) -> list[str]:
    return [entry.message for entry in panel.entries()]


@pytest.mark.asyncio
async def test_records_appear_after_the_coalescing_timer(panel: LogsPanel, logger: logging.Logger) -> None:
    logger.info("order %s filled at %.1f", "abc", 101.5)
    logger.warning("slow response")

    assert panel.model.rowCount() == 0  # buffered until the next refresh
    await wait_for(lambda: panel.model.rowCount() == 2)

    first = panel.model.entry(0)
    assert (first.level, first.logger, first.message) == ("INFO", logger.name, "order abc filled at 101.5")
    assert panel.model.index(1, LEVEL).data() == "WARNING"
    assert (
        panel.model.index(1, MESSAGE).data(Qt.ItemDataRole.ForegroundRole) == LEVEL_COLOURS[logging.WARNING]
    )


@pytest.mark.asyncio
async def test_a_burst_is_inserted_as_one_batch(panel: LogsPanel, logger: logging.Logger) -> None:
    inserts: list[tuple[int, int]] = []
    panel.model.rowsInserted.connect(lambda _parent, first, last: inserts.append((first, last)))

    for i in range(200):
        logger.info("tick %d", i)
    await wait_for(lambda: panel.model.rowCount() == 200)

    assert inserts == [(0, 199)]


@pytest.mark.asyncio
async def test_the_level_filter_shows_that_level_and_above(panel: LogsPanel, logger: logging.Logger) -> None:
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        logger.log(level, "at %s", logging.getLevelName(level))
    await wait_for(lambda: panel.model.rowCount() == 5)

    panel.level_box.setCurrentText("WARNING")
    assert [e.level for e in panel.entries()] == ["WARNING", "ERROR", "CRITICAL"]

    panel.set_min_level("error")
    assert [e.level for e in panel.entries()] == ["ERROR", "CRITICAL"]
    logger.info("hidden")
    logger.error("shown")
    await wait_for(lambda: panel.model.rowCount() == 7)
    assert messages(panel)[-1] == "shown" and "hidden" not in messages(panel)

    panel.level_box.setCurrentText("DEBUG")
    assert panel.proxy.rowCount() == 7


@pytest.mark.asyncio
async def test_the_search_box_matches_logger_or_message_case_insensitively(
    panel: LogsPanel, handler: QtLogHandler
) -> None:
    binance, engine = logging.getLogger("cts.exchanges.binance"), logging.getLogger("cts.engine.orders")
    for log in (binance, engine):
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
    try:
        binance.info("ticker received")
        engine.info("Order FILLED on Binance")
        engine.debug("order filled partially")
        engine.info("heartbeat")
        await wait_for(lambda: panel.model.rowCount() == 4)

        panel.search_box.setText("BINANCE")  # logger of one, message of another
        assert messages(panel) == ["ticker received", "Order FILLED on Binance"]
        panel.search_box.setText("order filled")
        assert messages(panel) == ["Order FILLED on Binance", "order filled partially"]
        panel.set_min_level("INFO")  # combines with the search
        assert messages(panel) == ["Order FILLED on Binance"]
        panel.search_box.clear()
        assert messages(panel) == ["ticker received", "Order FILLED on Binance", "heartbeat"]
    finally:
        for log in (binance, engine):
            log.removeHandler(handler)


@pytest.mark.asyncio
async def test_the_ring_keeps_only_the_newest_records(qtbot: QtBot, handler: QtLogHandler) -> None:
    panel = LogsPanel(capacity=100)
    qtbot.addWidget(panel)
    panel.attach(handler)
    log = logging.getLogger("cts.test.ring")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        for i in range(250):  # one batch larger than the ring
            log.info("msg %d", i)
        await wait_for(lambda: panel.model.rowCount() == 100 and messages(panel)[-1] == "msg 249")
        assert messages(panel)[0] == "msg 150" and messages(panel)[-1] == "msg 249"

        for i in range(250, 280):  # a later batch pushes the oldest out
            log.info("msg %d", i)
        await wait_for(lambda: messages(panel)[-1] == "msg 279")
        assert panel.model.rowCount() == 100
        assert messages(panel)[0] == "msg 180"
    finally:
        log.removeHandler(handler)


@pytest.mark.asyncio
async def test_a_filter_on_the_handler_runs_before_the_record_reaches_the_model(
    panel: LogsPanel, handler: QtLogHandler, logger: logging.Logger
) -> None:
    handler.addFilter(RedactSecrets())

    logger.info("api key SECRET123 loaded")
    logger.warning("signed url %s", "https://api.example.com/order?signature=SECRET123")
    await wait_for(lambda: panel.model.rowCount() == 2)

    assert messages(panel) == ["api key *** loaded", "signed url https://api.example.com/order?signature=***"]
    every_cell = [
        str(panel.model.index(row, column).data(role))
        for row in range(panel.model.rowCount())
        for column in range(panel.model.columnCount())
        for role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole)
    ]
    assert not any("SECRET123" in cell for cell in every_cell)


@pytest.mark.asyncio
async def test_a_failing_filter_drops_the_record_without_raising(
    panel: LogsPanel, handler: QtLogHandler, logger: logging.Logger
) -> None:
    handler.addFilter(BrokenFilter())

    logger.error("token SECRET123")  # must not raise into the caller

    await wait_for(lambda: panel.model.rowCount() == 1)
    entry = panel.model.entry(0)
    assert entry.level == "ERROR" and "dropped" in entry.message and "ValueError" in entry.message
    assert "SECRET123" not in entry.message


@pytest.mark.asyncio
async def test_a_broken_format_call_does_not_raise(
    panel: LogsPanel, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", False)  # keep stderr quiet

    logger.info("%d orders", "not a number")
    logger.info("next")

    await wait_for(lambda: panel.model.rowCount() == 1)
    assert messages(panel) == ["next"]


@pytest.mark.asyncio
async def test_records_from_a_worker_thread_reach_the_model_on_the_gui_thread(
    panel: LogsPanel, logger: logging.Logger
) -> None:
    threads: list[threading.Thread] = []
    panel.model.rowsInserted.connect(lambda *_: threads.append(threading.current_thread()))

    worker = threading.Thread(target=lambda: [logger.info("from worker %d", i) for i in range(20)])
    worker.start()
    worker.join()

    await wait_for(lambda: panel.model.rowCount() == 20)
    assert set(threads) == {threading.main_thread()}


@pytest.mark.asyncio
async def test_exception_text_is_kept(panel: LogsPanel, logger: logging.Logger) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("order failed")
    await wait_for(lambda: panel.model.rowCount() == 1)

    assert panel.model.index(0, MESSAGE).data() == "order failed"  # first line in the cell
    tooltip = panel.model.index(0, MESSAGE).data(Qt.ItemDataRole.ToolTipRole)
    assert "Traceback" in tooltip and "RuntimeError: boom" in tooltip


@pytest.mark.asyncio
async def test_a_panel_attached_late_shows_the_backlog(
    qtbot: QtBot, handler: QtLogHandler, logger: logging.Logger
) -> None:
    logger.info("database opened")
    logger.info("migrations applied")

    late = LogsPanel()
    qtbot.addWidget(late)
    late.attach(handler)
    logger.info("window shown")

    await wait_for(lambda: late.model.rowCount() == 3)
    assert messages(late) == ["database opened", "migrations applied", "window shown"]


@pytest.mark.asyncio
async def test_clear_empties_the_table_and_detach_stops_updates(
    panel: LogsPanel, logger: logging.Logger
) -> None:
    logger.info("one")
    await wait_for(lambda: panel.model.rowCount() == 1)
    logger.info("pending")

    panel.clear_button.click()
    assert panel.model.rowCount() == 0
    panel.detach()
    logger.info("after detach")
    panel.model.flush()
    assert panel.model.rowCount() == 0


@pytest.mark.asyncio
async def test_follows_the_newest_row_unless_the_user_scrolled_up(
    panel: LogsPanel, logger: logging.Logger
) -> None:
    panel.resize(600, 250)
    panel.show()
    bar = panel.view.verticalScrollBar()
    for i in range(200):
        logger.info("line %d", i)
    await wait_for(
        lambda: panel.model.rowCount() == 200 and bar.maximum() > 0 and bar.value() == bar.maximum()
    )
    assert panel.is_following()

    bar.setValue(0)  # the user scrolls up to read
    assert not panel.is_following()
    for i in range(50):
        logger.info("more %d", i)
    await wait_for(lambda: panel.model.rowCount() == 250)
    await wait_for(lambda: panel.view.rowAt(0) == 0)  # let the view lay out the new rows
    assert bar.value() == 0 and not panel.is_following()

    bar.setValue(bar.maximum())  # back at the bottom: follow again
    assert panel.is_following()
    old_maximum = bar.maximum()
    for i in range(50):
        logger.info("again %d", i)
    await wait_for(lambda: bar.maximum() > old_maximum and bar.value() == bar.maximum())
    newest = panel.view.visualRect(panel.proxy.index(panel.proxy.rowCount() - 1, 0))
    assert panel.view.viewport().rect().intersects(newest)

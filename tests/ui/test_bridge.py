"""EventBridge: bus events become one Qt signal, always delivered on the GUI thread."""

from __future__ import annotations

import logging
import threading

import pytest
import shiboken6
from PySide6.QtCore import QObject

from cts_desktop.domain.enums import EngineState
from cts_desktop.engine.events import EngineStateChanged, Event, EventBus, SettingChanged
from cts_desktop.ui.bridge import EventBridge
from tests.helpers import wait_for


def _state_event(new: EngineState = EngineState.RUNNING) -> EngineStateChanged:
    return EngineStateChanged(connection_id=None, old=EngineState.IDLE, new=new)


@pytest.mark.asyncio
async def test_every_event_type_is_reemitted_on_the_gui_thread_without_delay() -> None:
    bus = EventBus()
    bridge = EventBridge(bus)
    received: list[tuple[Event, threading.Thread]] = []
    bridge.received.connect(lambda event: received.append((event, threading.current_thread())))

    state, setting = _state_event(), SettingChanged(key="ui.theme", old="light", new="dark")
    bus.publish(state)
    bus.publish(setting)

    assert [event for event, _ in received] == [state, setting]  # same thread: no round trip
    assert all(thread is threading.main_thread() for _, thread in received)
    bridge.close()


@pytest.mark.asyncio
async def test_an_event_published_on_a_worker_thread_is_delivered_on_the_gui_thread() -> None:
    bus = EventBus()
    bridge = EventBridge(bus)
    received: list[tuple[Event, threading.Thread]] = []
    bridge.received.connect(lambda event: received.append((event, threading.current_thread())))
    event = _state_event()

    worker = threading.Thread(target=bus.publish, args=(event,))
    worker.start()
    worker.join()
    assert received == []  # queued, not run on the worker

    await wait_for(lambda: len(received) == 1)
    assert received[0] == (event, threading.main_thread())
    bridge.close()


@pytest.mark.asyncio
async def test_close_unsubscribes_and_is_idempotent() -> None:
    bus = EventBus()
    bridge = EventBridge(bus)
    received: list[Event] = []
    bridge.received.connect(received.append)

    bridge.close()
    bridge.close()
    bus.publish(_state_event())

    assert received == []


@pytest.mark.asyncio
async def test_a_bridge_deleted_with_its_parent_stops_receiving(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    parent = QObject()
    EventBridge(bus, parent)

    shiboken6.delete(parent)  # C++ deletion without close(), as when a window is destroyed
    with caplog.at_level(logging.ERROR):
        bus.publish(_state_event())

    assert not [r for r in caplog.records if "event handler" in r.getMessage()]
    assert not bus._handlers[Event]  # the bus no longer holds the dead bridge

"""Engine events → one Qt signal on the GUI thread (Electrum's ``QtEventListener`` role).

The engine never imports Qt; panels never subscribe to the :class:`EventBus` themselves. Each
panel connects to ``EventBridge.received`` and filters by event type, so every handler runs on the
GUI thread even when an event is published from a worker thread.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from cts_desktop.engine.events import Event, EventBus, Unsubscribe


class EventBridge(QObject):
    """Re-emits every bus event as ``event``; ``close()`` (or destroying the bridge) unsubscribes."""

    # Not named "event": that would shadow QObject.event(), the virtual every Qt event goes through.
    received = Signal(object)
    # Connected to a slot of this object (which lives on the GUI thread): Qt queues the call when the
    # emitter is another thread, and calls it directly on the GUI thread, without a round trip.
    _posted = Signal(object)

    def __init__(self, bus: EventBus, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._posted.connect(self._deliver)
        unsubscribe = bus.subscribe(Event, self._on_event)
        self._unsubscribe: Unsubscribe | None = unsubscribe
        # If a parent deletes the C++ object without close(), stop the bus from calling into it.
        self.destroyed.connect(lambda *_: unsubscribe())

    def close(self) -> None:
        """Stop receiving events; idempotent."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def _on_event(self, event: Event) -> None:
        """Bus handler: runs on the publisher's thread."""
        try:
            self._posted.emit(event)
        except RuntimeError:  # the C++ object is already deleted
            self.close()

    @Slot(object)
    def _deliver(self, event: object) -> None:
        self.received.emit(event)

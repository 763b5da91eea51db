"""The settings service: the one place that reads, validates, saves and announces settings (D2).

Why it exists: in the original the UI saved values the API rejected and the engines read keys
nobody wrote, so edits never reached a running engine. Here every change is validated against
the registry (:mod:`cts_desktop.domain.settings_schema`), saved, and only then published as a
:class:`~cts_desktop.engine.events.SettingChanged` event, so the engines react without a restart
and never see a value that was not stored.

Guarantees:

- Memory and storage never disagree about a value the service accepted: a change is saved first
  and applied in memory only after the save succeeded; a failing save changes nothing and
  publishes nothing.
- A batch (:meth:`SettingsService.update`, :meth:`SettingsService.import_json`) is all-or-nothing.
- A bad value already in storage is never silently overwritten: :meth:`SettingsService.load`
  reports it and uses the default in memory, and the trader fixes it (nothing is lost).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from cts_desktop.domain.settings_schema import SPEC_BY_KEY, SettingValidationError, defaults, validate
from cts_desktop.engine.events import EventBus, SettingChanged

log = logging.getLogger(__name__)

_MISSING: Any = object()


class SettingsStorage(Protocol):
    """Persistence of setting values by key (the SQLite/PostgreSQL repository in production)."""

    async def load_all(self) -> dict[str, Any]:
        """Every stored key with its stored value, including keys this version does not know."""
        ...

    async def save_many(self, values: Mapping[str, Any], actor: str) -> None:
        """Store all ``values`` in one transaction (all or none), recording ``actor`` for the audit log."""
        ...


class SettingsImportError(ValueError):
    """An import file that is not a JSON object of settings (malformed, or the wrong shape)."""


class SettingsService:
    """In-memory view of all settings, backed by ``storage`` and announced on ``bus``.

    Until :meth:`load` runs, every setting has its default, so the service is usable at once.
    Mutations are serialised by a lock, so the ``old`` of each published event is exactly the
    value the previous change left behind.
    """

    def __init__(self, storage: SettingsStorage, bus: EventBus) -> None:
        self._storage = storage
        self._bus = bus
        self._values: dict[str, Any] = defaults()
        self._stored: dict[str, Any] = {}
        """Valid values known to be in storage (normalised); decides what a change must write."""
        self._lock = asyncio.Lock()

    async def load(self) -> list[SettingValidationError]:
        """Read storage and validate every value; return the problems found (empty when all is well).

        An invalid stored value is reported and logged with the setting and its allowed range, and
        the default is used in memory, but the stored value is left as it is: nothing is lost, and
        saving a valid value for that setting replaces it. Unknown stored keys (a newer version, a
        removed setting) are kept in storage and ignored with a warning. No events are published:
        loading establishes the starting values, it does not change them.
        """
        async with self._lock:
            stored = await self._storage.load_all()
            values = defaults()
            valid_stored: dict[str, Any] = {}
            errors: list[SettingValidationError] = []
            for key, raw in stored.items():
                spec = SPEC_BY_KEY.get(key)
                if spec is None:
                    log.warning("ignoring unknown stored setting %r (left in storage)", key)
                    continue
                try:
                    value = spec.validate(raw)
                except SettingValidationError as error:
                    errors.append(error)
                    log.warning(
                        "%s; using the default %r until it is fixed (stored value kept)", error, spec.default
                    )
                    continue
                values[key] = value
                valid_stored[key] = value
            self._values = values
            self._stored = valid_stored
            return errors

    def get(self, key: str) -> Any:
        """The current value of ``key``; an unknown key is a programming error (``KeyError``)."""
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"unknown setting {key!r}") from None

    def values(self) -> dict[str, Any]:
        """A copy of all current values (list settings are tuples, so the copy cannot alias state)."""
        return dict(self._values)

    async def set(self, key: str, value: Any, *, actor: str = "user") -> None:
        """Validate, save and publish one setting; see :meth:`update`."""
        await self.update({key: value}, actor=actor)

    async def update(self, changes: Mapping[str, Any], *, actor: str = "user") -> None:
        """Validate, save and publish several settings as one all-or-nothing change.

        Every value is validated first; if any is invalid, the first :class:`SettingValidationError`
        is raised with all of them in ``.errors`` and nothing changes. Only values that differ from
        what storage holds are written (so re-saving a whole settings page does not flood the audit
        log, but saving a value over an invalid stored one does fix it). If the storage raises, the
        exception propagates, memory stays unchanged and no event is published. After a successful
        save, one ``SettingChanged`` is published per key whose value actually changed.
        """
        normalised = _validate_all(changes)
        async with self._lock:
            to_write = {k: v for k, v in normalised.items() if self._stored.get(k, _MISSING) != v}
            changed = {k: (self._values[k], v) for k, v in normalised.items() if self._values[k] != v}
            if to_write:
                try:
                    await self._storage.save_many(to_write, actor)
                except Exception as exc:  # the caller reports it; memory must simply stay as it was
                    log.warning("saving settings %s failed (%s); nothing was changed", sorted(to_write), exc)
                    raise
                self._stored.update(to_write)
            self._values.update(normalised)
            if changed:
                log.info("settings changed by %s: %s", actor, ", ".join(sorted(changed)))
            for key, (old, new) in changed.items():
                self._bus.publish(SettingChanged(key=key, old=old, new=new))

    def export_json(self) -> str:
        """All current values as a JSON object with sorted keys (lists become arrays)."""
        return json.dumps(self._values, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)

    async def import_json(self, text: str, *, actor: str = "user") -> None:
        """Apply the settings in an exported JSON file as one all-or-nothing :meth:`update`.

        Keys missing from the file keep their current value. Malformed JSON or a file that is not
        an object raises :class:`SettingsImportError`; an unknown key or an invalid value raises
        :class:`SettingValidationError` (all problems in ``.errors``). Either way nothing changes.
        The message never quotes the file, only where it broke.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsImportError(
                f"The settings file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
            ) from None
        except RecursionError:
            raise SettingsImportError("The settings file is not valid JSON (nested too deeply).") from None
        if not isinstance(data, dict):
            raise SettingsImportError("The settings file must hold a JSON object of setting keys and values.")
        await self.update(data, actor=actor)


def _validate_all(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise every change, or raise the first error with all errors attached."""
    normalised: dict[str, Any] = {}
    errors: list[SettingValidationError] = []
    for key, value in changes.items():
        try:
            normalised[key] = validate(key, value)
        except SettingValidationError as error:
            errors.append(error)
    if errors:
        first = errors[0]
        first.errors = tuple(errors)
        raise first
    return normalised

"""SettingsService: validate, save, then publish; batches all-or-nothing; bad stored values kept."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from cts_desktop.domain.settings_schema import SPEC_BY_KEY, SettingValidationError, defaults
from cts_desktop.engine.events import EventBus, SettingChanged
from cts_desktop.engine.settings_service import SettingsImportError, SettingsService, SettingsStorage


class InMemorySettingsStorage:
    """Stand-in for the SQL repository (not written yet): a dict, one atomic save, optional failure."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = dict(data or {})
        self.saves: list[tuple[dict[str, Any], str]] = []
        self.fail_with: Exception | None = None

    async def load_all(self) -> dict[str, Any]:
        return dict(self.data)

    async def save_many(self, values: Mapping[str, Any], actor: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.saves.append((dict(values), actor))
        self.data.update(values)


def make(
    data: Mapping[str, Any] | None = None,
) -> tuple[SettingsService, InMemorySettingsStorage, list[SettingChanged]]:
    storage = InMemorySettingsStorage(data)
    bus = EventBus()
    events: list[SettingChanged] = []
    bus.subscribe(SettingChanged, events.append)
    return SettingsService(storage, bus), storage, events


def changes_of(events: list[SettingChanged]) -> list[tuple[str, Any, Any]]:
    return [(e.key, e.old, e.new) for e in events]


def test_in_memory_storage_satisfies_the_protocol() -> None:
    storage: SettingsStorage = InMemorySettingsStorage()
    assert storage is not None


def test_defaults_are_available_before_load() -> None:
    service, _, _ = make()
    assert service.values() == defaults()
    assert service.get("system.position_length_base") == 250
    with pytest.raises(KeyError, match=r"no\.such"):
        service.get("no.such")


@pytest.mark.asyncio
async def test_load_uses_valid_stored_values() -> None:
    service, _, events = make({"system.trade_mode": "main", "main.main_symbols": ["btc", "eth"]})
    assert await service.load() == []
    assert service.get("system.trade_mode") == "main"
    assert service.get("main.main_symbols") == ("BTC", "ETH")
    assert events == []  # loading sets the starting point, it is not a change


@pytest.mark.asyncio
async def test_load_reports_bad_stored_values_uses_defaults_and_keeps_them_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stored = {
        "main.position_cost_pct": 5.0,  # out of range
        "main.symbol_count": "eight",  # malformed
        "system.trade_mode": "preset",  # fine
        "legacy.removed_setting": 42,  # unknown to this version
    }
    service, storage, _ = make(stored)
    with caplog.at_level(logging.WARNING, logger="cts_desktop.engine.settings_service"):
        errors = await service.load()

    assert sorted(e.key for e in errors) == ["main.position_cost_pct", "main.symbol_count"]
    assert "between 0.01 and 1.0 in steps of 0.01; got 5.0" in str(errors[0])
    assert service.get("main.position_cost_pct") == 0.1
    assert service.get("main.symbol_count") == 8
    assert service.get("system.trade_mode") == "preset"
    assert "legacy.removed_setting" not in service.values()
    assert storage.data == stored  # nothing overwritten, nothing deleted
    assert storage.saves == []
    log_text = caplog.text
    assert "main.position_cost_pct" in log_text and "between 0.01 and 1.0" in log_text
    assert "legacy.removed_setting" in log_text


@pytest.mark.asyncio
async def test_saving_over_a_bad_stored_value_fixes_it_even_when_it_equals_the_default() -> None:
    service, storage, events = make({"main.position_cost_pct": 5.0})
    await service.load()
    await service.set("main.position_cost_pct", 0.1)
    assert storage.data["main.position_cost_pct"] == 0.1
    assert events == []  # the value in use did not change


@pytest.mark.asyncio
async def test_set_validates_normalises_saves_and_publishes() -> None:
    service, storage, events = make()
    await service.load()
    await service.set("exchange.live_volume_factor", 0.1 * 3, actor="tester")
    assert service.get("exchange.live_volume_factor") == 0.3
    assert storage.saves == [({"exchange.live_volume_factor": 0.3}, "tester")]
    assert changes_of(events) == [("exchange.live_volume_factor", 1.0, 0.3)]


@pytest.mark.asyncio
async def test_set_rejects_invalid_values_and_changes_nothing() -> None:
    service, storage, events = make()
    with pytest.raises(SettingValidationError, match=r"system\.position_length_main.*between 50 and 500"):
        await service.set("system.position_length_main", 550)
    with pytest.raises(SettingValidationError, match="Unknown setting"):
        await service.set("no.such", 1)
    assert service.values() == defaults()
    assert storage.saves == [] and events == []


@pytest.mark.asyncio
async def test_update_is_all_or_nothing() -> None:
    service, storage, events = make()
    await service.load()
    with pytest.raises(SettingValidationError) as info:
        await service.update(
            {
                "main.symbol_count": 12,  # valid
                "system.rearrange_threshold_pct": 22,  # off the 5 % grid
                "engine.auto_start": "yes",  # not a bool
            }
        )
    error = info.value
    assert error.key == "system.rearrange_threshold_pct"  # the first error is raised...
    assert [e.key for e in error.errors] == [
        "system.rearrange_threshold_pct",
        "engine.auto_start",
    ]  # ...with all
    assert service.values() == defaults()
    assert storage.saves == [] and storage.data == {}
    assert events == []


@pytest.mark.asyncio
async def test_events_only_for_keys_that_changed() -> None:
    service, storage, events = make({"main.symbol_count": 10})
    await service.load()
    await service.update(
        {
            "main.symbol_count": 10,  # same as stored
            "engine.auto_start": False,  # same as default (not stored yet)
            "main.forced_symbols": ["xrp", "bch"],  # same as default after normalisation
            "system.trade_mode": "main",  # changed
            "risk.max_open_positions": 20,  # changed
        }
    )
    assert sorted(changes_of(events)) == [
        ("risk.max_open_positions", 10, 20),
        ("system.trade_mode", "both", "main"),
    ]
    # Values equal to what storage holds are not written again; explicit choices of a default are.
    assert storage.saves == [
        (
            {
                "engine.auto_start": False,
                "main.forced_symbols": ("XRP", "BCH"),
                "system.trade_mode": "main",
                "risk.max_open_positions": 20,
            },
            "user",
        )
    ]
    events.clear()
    await service.update({"system.trade_mode": "main", "risk.max_open_positions": 20})
    assert events == []
    assert len(storage.saves) == 1  # nothing to write


@pytest.mark.asyncio
async def test_storage_failure_leaves_memory_unchanged_and_publishes_nothing() -> None:
    service, storage, events = make()
    await service.load()
    storage.fail_with = OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        await service.update({"main.symbol_count": 12, "system.trade_mode": "preset"})
    assert service.values() == defaults()
    assert events == []

    storage.fail_with = None
    await service.set("main.symbol_count", 12)
    assert changes_of(events) == [("main.symbol_count", 8, 12)]


def test_values_is_a_copy() -> None:
    service, _, _ = make()
    values = service.values()
    values["main.symbol_count"] = 99
    assert service.get("main.symbol_count") == 8


@pytest.mark.asyncio
async def test_export_import_round_trip() -> None:
    service, _, _ = make()
    await service.update(
        {
            "main.position_cost_pct": 0.25,
            "main.main_symbols": ["BTC", "SOL"],
            "strategy.trailing_stop_values": [0.1, 0.3],
            "system.max_database_size_gb": 35,
            "monitoring.log_level": "debug",
            "engine.auto_start": True,
        }
    )
    text = service.export_json()
    data = json.loads(text)
    assert list(data) == sorted(data) == sorted(SPEC_BY_KEY)
    assert data["main.main_symbols"] == ["BTC", "SOL"]

    other, other_storage, other_events = make()
    await other.load()
    await other.import_json(text, actor="import")
    assert other.values() == service.values()
    assert other.export_json() == text
    assert {e.key for e in other_events} == {
        "main.position_cost_pct",
        "main.main_symbols",
        "strategy.trailing_stop_values",
        "system.max_database_size_gb",
        "monitoring.log_level",
        "engine.auto_start",
    }
    assert all(actor == "import" for _, actor in other_storage.saves)


@pytest.mark.asyncio
async def test_import_keeps_keys_the_file_does_not_mention() -> None:
    service, _, _ = make()
    await service.set("main.symbol_count", 20)
    await service.import_json('{"system.trade_mode": "preset"}')
    assert service.get("main.symbol_count") == 20
    assert service.get("system.trade_mode") == "preset"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ('{"main.symbol_count": 12,', SettingsImportError, r"not valid JSON \(line 1"),
        ("", SettingsImportError, "not valid JSON"),
        ("[1, 2]", SettingsImportError, "JSON object"),
        ("[" * 100_000, SettingsImportError, "not valid JSON"),
        (
            '{"main.symbol_count": 12, "main.position_cost_pct": NaN}',
            SettingValidationError,
            "position_cost_pct",
        ),
        (
            '{"main.symbol_count": 12, "system.max_database_size_gb": 60}',
            SettingValidationError,
            "between 5 and 50",
        ),
        ('{"main.symbol_count": 12, "no.such": 1}', SettingValidationError, "Unknown setting 'no.such'"),
    ],
)
async def test_bad_import_changes_nothing(text: str, error: type[Exception], match: str) -> None:
    service, storage, events = make()
    await service.load()
    with pytest.raises(error, match=match) as info:
        await service.import_json(text)
    assert isinstance(info.value, ValueError)
    assert service.values() == defaults()
    assert storage.saves == [] and events == []


@pytest.mark.asyncio
async def test_service_with_sqlite_repository(tmp_path: Path) -> None:
    repositories = pytest.importorskip("cts_desktop.storage.repositories.settings")
    from cts_desktop.storage.database import Database

    db = await Database.open("sqlite+aiosqlite:///" + str(tmp_path / "t.db"))
    try:
        repo = repositories.SettingsRepository(db)
        bus = EventBus()
        events: list[SettingChanged] = []
        bus.subscribe(SettingChanged, events.append)

        # A malformed value already in storage (written behind the service's back).
        await repo.save_many({"main.position_cost_pct": 5.0, "legacy.removed_setting": "x"}, "test")
        service = SettingsService(repo, bus)
        errors = await service.load()
        assert [e.key for e in errors] == ["main.position_cost_pct"]
        assert service.get("main.position_cost_pct") == 0.1
        assert (await repo.load_all())["main.position_cost_pct"] == 5.0

        # All-or-nothing.
        with pytest.raises(SettingValidationError):
            await service.update({"main.symbol_count": 12, "system.rearrange_threshold_pct": 11})
        assert "main.symbol_count" not in await repo.load_all()
        assert events == []

        # Changes survive a restart with their types; events only for changed keys.
        await service.update(
            {
                "main.symbol_count": 12,
                "main.main_symbols": ["BTC", "ETH"],
                "engine.auto_start": True,
                "exchange.live_volume_factor": 0.1 * 3,
                "system.trade_mode": "both",  # unchanged
            },
            actor="user",
        )
        assert sorted(e.key for e in events) == [
            "engine.auto_start",
            "exchange.live_volume_factor",
            "main.main_symbols",
            "main.symbol_count",
        ]
        restarted = SettingsService(repo, EventBus())
        assert [e.key for e in await restarted.load()] == ["main.position_cost_pct"]
        assert restarted.values() == service.values()

        # Export from one, import into a fresh service on the same database.
        exported = restarted.export_json()
        await restarted.import_json(exported)
        assert restarted.export_json() == exported
    finally:
        await db.close()

"""The settings registry: every default valid, every bound and step enforced, clear messages."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from cts_desktop.domain.settings_schema import (
    SETTINGS,
    SPEC_BY_KEY,
    SettingCategory,
    SettingKind,
    SettingSpec,
    SettingValidationError,
    defaults,
    validate,
)

NUMERIC = [s for s in SETTINGS if s.kind in (SettingKind.INT, SettingKind.FLOAT)]
STEPPED = [s for s in NUMERIC if s.step is not None]
CHOICES = [s for s in SETTINGS if s.kind is SettingKind.CHOICE]
BOOLS = [s for s in SETTINGS if s.kind is SettingKind.BOOL]


def ids(specs: list[SettingSpec]) -> list[str]:
    return [s.key for s in specs]


def bounds_text(spec: SettingSpec) -> str:
    return f"between {spec.minimum!r} and {spec.maximum!r}"


def outside_distance(spec: SettingSpec) -> float:
    """One step, or for an unstepped setting 1 (int) or a thousandth of the range (float)."""
    assert spec.minimum is not None and spec.maximum is not None
    if spec.step is not None:
        return spec.step
    return 1 if spec.kind is SettingKind.INT else (spec.maximum - spec.minimum) / 1000


def rejected(key: str, value: Any) -> SettingValidationError:
    with pytest.raises(SettingValidationError) as info:
        validate(key, value)
    return info.value


# --- the registry itself ------------------------------------------------------------------------


def test_keys_are_unique_dotted_and_indexed() -> None:
    keys = [s.key for s in SETTINGS]
    assert len(keys) == len(set(keys))
    assert set(SPEC_BY_KEY) == set(keys)
    assert all("." in k and k == k.lower() for k in keys)
    with pytest.raises(TypeError):
        SPEC_BY_KEY["x.y"] = SETTINGS[0]  # type: ignore[index]


def test_every_category_is_populated() -> None:
    counts = Counter(s.category for s in SETTINGS)
    assert set(counts) == set(SettingCategory)
    subpages = {(s.category, s.subcategory) for s in SETTINGS}
    for expected in [
        (SettingCategory.OVERALL, "Main"),
        (SettingCategory.OVERALL, "Connection defaults"),
        (SettingCategory.OVERALL, "Monitoring"),
        (SettingCategory.INDICATION, "Optimal"),
        (SettingCategory.INDICATION, "Auto"),
        (SettingCategory.INDICATION, "Common"),
        (SettingCategory.SYSTEM, "Database"),
        (SettingCategory.RISK, "Limits"),
        (SettingCategory.RISK, "Circuit breakers"),
    ]:
        assert expected in subpages


@pytest.mark.parametrize("spec", SETTINGS, ids=ids(list(SETTINGS)))
def test_every_default_validates_to_itself(spec: SettingSpec) -> None:
    value = validate(spec.key, spec.default)
    assert value == spec.default
    assert type(value) is type(spec.default)
    assert spec.label and spec.help.endswith(".")


def test_defaults_is_a_fresh_complete_dict() -> None:
    first = defaults()
    assert set(first) == set(SPEC_BY_KEY)
    first["main.symbol_count"] = 99
    assert defaults()["main.symbol_count"] == 8


@pytest.mark.parametrize(
    ("key", "default", "minimum", "maximum", "step"),
    [
        # Product requirements that override DOMAIN §6.
        ("system.position_length_base", 250, 50, 500, 50),
        ("system.position_length_main", 250, 50, 500, 50),
        ("system.position_length_real", 250, 50, 500, 50),
        ("system.position_length_preset", 250, 50, 500, 50),
        ("system.rearrange_threshold_pct", 20, 10, 50, 5),
        ("system.max_database_size_gb", 20, 5, 50, 5),
        # §6 and decisions.
        ("main.position_cost_pct", 0.1, 0.01, 1.0, 0.01),
        ("main.symbol_count", 8, 2, 30, None),  # D21
        ("strategy.max_positions_per_config_direction", 2, 1, 5, None),  # D9
        ("strategy.max_position_age_main_h", 0, 0, 168, None),  # D25: 0 = off
        ("strategy.max_position_age_preset_h", 2, 0, 168, None),  # D25
        ("risk.max_open_positions", 10, 1, 500, None),  # D26
        ("risk.max_daily_loss_pct", 5.0, 0.5, 50.0, 0.5),  # D26
        ("risk.max_drawdown_pct", 30.0, 1.0, 90.0, 0.5),  # D26
        ("risk.error_burst_count", 5, 2, 50, None),  # circuit breakers
        ("risk.error_burst_window_s", 60, 10, 600, None),
        ("risk.stream_lost_pause_s", 30, 5, 600, None),
        ("exchange.live_volume_factor", 1.0, 0.1, 10.0, 0.1),
        ("system.main_engine_interval_ms", 100, 50, 1000, 50),
    ],
)
def test_required_ranges(key: str, default: Any, minimum: Any, maximum: Any, step: Any) -> None:
    spec = SPEC_BY_KEY[key]
    assert (spec.default, spec.minimum, spec.maximum, spec.step) == (default, minimum, maximum, step)


def test_required_choices_lists_and_flags() -> None:
    interval = SPEC_BY_KEY["main.symbol_update_interval_min"]
    assert (interval.choices, interval.default, interval.unit) == ((15, 30, 60, 120, 360), 60, "min")
    volatility = SPEC_BY_KEY["main.volatility_period_min"]
    assert (volatility.choices, volatility.default) == ((60,), 60)  # fixed at 1 h
    assert SPEC_BY_KEY["main.main_symbols"].default == ("BTC", "ETH", "BNB", "XRP", "ADA", "SOL")  # D21
    assert SPEC_BY_KEY["main.forced_symbols"].default == ("XRP", "BCH")  # D21
    assert SPEC_BY_KEY["system.main_engine_enabled"].default is True  # D16
    assert SPEC_BY_KEY["system.preset_engine_enabled"].default is True  # D16
    mode = SPEC_BY_KEY["system.trade_mode"]
    assert (mode.choices, mode.default) == (("both", "main", "preset"), "both")  # D16
    assert SPEC_BY_KEY["engine.auto_start"].default is False
    assert SPEC_BY_KEY["monitoring.log_level"].default == "info"
    assert SPEC_BY_KEY["risk.leverage_cap"].default == 0  # 0 = the connection's own maximum (D26)
    for level in ("base", "main", "real"):
        assert SPEC_BY_KEY[f"strategy.{level}_pf_min"].default == 0.6  # D11


def test_settings_without_a_range_in_the_spec_say_so() -> None:
    for key in (
        "risk.max_open_positions",
        "indication.validation_timeout_s",
        "connection.rate_limit_delay_ms",
    ):
        assert "chosen by cts-desktop" in SPEC_BY_KEY[key].help


def test_a_bad_declaration_fails_at_construction() -> None:
    common: dict[str, Any] = {
        "key": "test.value",
        "label": "Test",
        "category": SettingCategory.SYSTEM,
        "subcategory": "Test",
        "help": "A test.",
    }
    with pytest.raises(ValueError, match="default rejected"):
        SettingSpec(kind=SettingKind.INT, default=7, minimum=0, maximum=10, step=5, **common)
    with pytest.raises(ValueError, match="minimum < maximum"):
        SettingSpec(kind=SettingKind.FLOAT, default=1.0, minimum=2.0, maximum=1.0, **common)
    with pytest.raises(ValueError, match="choices"):
        SettingSpec(kind=SettingKind.CHOICE, default="a", **common)
    with pytest.raises(ValueError, match="dotted"):
        SettingSpec(**{**common, "key": "Nodot"}, kind=SettingKind.BOOL, default=True)


# --- numbers: bounds, steps, types --------------------------------------------------------------


def test_message_names_label_key_range_step_and_value() -> None:
    error = rejected("main.position_cost_pct", 1.5)
    assert (
        str(error)
        == "Position cost % (main.position_cost_pct) must be between 0.01 and 1.0 in steps of 0.01; got 1.5"
    )
    assert error.key == "main.position_cost_pct"
    assert error.spec is SPEC_BY_KEY["main.position_cost_pct"]
    assert error.errors == (error,)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("spec", NUMERIC, ids=ids(NUMERIC))
def test_exact_bounds_are_accepted(spec: SettingSpec) -> None:
    assert validate(spec.key, spec.minimum) == spec.minimum
    assert validate(spec.key, spec.maximum) == spec.maximum
    assert type(validate(spec.key, spec.maximum)) is type(spec.default)


@pytest.mark.parametrize("spec", NUMERIC, ids=ids(NUMERIC))
def test_just_outside_the_bounds_is_rejected_with_key_and_range(spec: SettingSpec) -> None:
    assert spec.minimum is not None and spec.maximum is not None
    distance = outside_distance(spec)
    for value in (spec.minimum - distance, spec.maximum + distance):
        message = str(rejected(spec.key, value))
        assert spec.key in message
        assert spec.label in message
        assert bounds_text(spec) in message
        if spec.step is not None:
            assert f"in steps of {spec.step!r}" in message


@pytest.mark.parametrize("spec", STEPPED, ids=ids(STEPPED))
def test_off_grid_values_are_rejected(spec: SettingSpec) -> None:
    assert spec.minimum is not None and spec.step is not None
    half = spec.step // 2 if spec.kind is SettingKind.INT else spec.step / 2
    assert half, "a stepped int setting needs a step of at least 2 to have off-grid values"
    message = str(rejected(spec.key, spec.minimum + half))
    assert f"in steps of {spec.step!r}" in message


@pytest.mark.parametrize("spec", STEPPED, ids=ids(STEPPED))
def test_every_grid_point_is_accepted(spec: SettingSpec) -> None:
    assert spec.minimum is not None and spec.maximum is not None and spec.step is not None
    count = round((spec.maximum - spec.minimum) / spec.step)
    for n in range(count + 1):
        value = spec.minimum + n * spec.step  # float arithmetic on purpose: it must still pass
        assert validate(spec.key, value) == pytest.approx(value)


def test_float_step_tolerates_binary_rounding_and_snaps() -> None:
    assert 0.1 * 3 != 0.3
    assert validate("exchange.live_volume_factor", 0.1 * 3) == 0.3
    assert validate("main.position_cost_pct", sum([0.01] * 10)) == 0.1
    assert validate("strategy.preset_sl_max", 0.3 * 10) == 3.0
    assert validate("strategy.preset_sl_min", 0.1 * 3) == 0.3
    rejected("exchange.live_volume_factor", 0.35)


@pytest.mark.parametrize("spec", NUMERIC, ids=ids(NUMERIC))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nan_and_infinity_are_rejected(spec: SettingSpec, bad: float) -> None:
    assert bounds_text(spec) in str(rejected(spec.key, bad))


@pytest.mark.parametrize("bad", [True, False, "5", None, [5], {"v": 5}])
def test_numbers_reject_other_types(bad: Any) -> None:
    rejected("main.prehistoric_days", bad)
    rejected("main.position_cost_pct", bad)


def test_int_normalisation() -> None:
    value = validate("main.prehistoric_days", 7.0)
    assert value == 7 and type(value) is int
    assert "a whole number between 1 and 15" in str(rejected("main.prehistoric_days", 7.5))


def test_float_normalisation() -> None:
    value = validate("main.base_volume_factor", 2)
    assert value == 2.0 and type(value) is float


def test_huge_numbers_are_rejected_not_overflowing() -> None:
    rejected("risk.max_position_notional", 10**400)
    rejected("main.prehistoric_days", 10**400)


# --- choices, booleans, lists, unknown keys -----------------------------------------------------


@pytest.mark.parametrize("spec", CHOICES, ids=ids(CHOICES))
def test_every_choice_is_accepted_and_others_rejected(spec: SettingSpec) -> None:
    for choice in spec.choices:
        assert validate(spec.key, choice) == choice
    bad = "not-a-choice" if isinstance(spec.choices[0], str) else 9999
    message = str(rejected(spec.key, bad))
    assert spec.key in message
    assert "one of " + ", ".join(str(c) for c in spec.choices) in message


def test_int_choices_are_type_exact() -> None:
    rejected("main.market_timeframe_s", True)  # bool is not the choice 1
    rejected("main.symbol_update_interval_min", "60")
    rejected("main.symbol_update_interval_min", 45)
    assert validate("main.symbol_update_interval_min", 120.0) == 120


def test_string_choices_match_case_insensitively() -> None:
    assert validate("monitoring.log_level", "INFO") == "info"
    assert validate("system.trade_mode", " Preset ") == "preset"
    rejected("monitoring.log_level", "verbose")


@pytest.mark.parametrize("spec", BOOLS, ids=ids(BOOLS))
def test_bools_accept_real_bools_and_true_false_strings(spec: SettingSpec) -> None:
    assert validate(spec.key, True) is True
    assert validate(spec.key, False) is False
    assert validate(spec.key, "true") is True
    assert validate(spec.key, "FALSE") is False


@pytest.mark.parametrize("bad", [1, 0, 1.0, "yes", "no", "1", "on", "", None])
def test_bools_reject_everything_else(bad: Any) -> None:
    error = rejected("engine.auto_start", bad)
    assert "(engine.auto_start) must be true or false" in str(error)


def test_symbol_lists_are_normalised() -> None:
    assert validate("main.main_symbols", [" btc", "Eth"]) == ("BTC", "ETH")
    assert validate("main.forced_symbols", []) == ()
    for bad in (["BTC", "btc"], ["BTC/USDT"], [""], [1], "BTC", None, ["X"] * 31):
        assert "(main.forced_symbols) must be a list of 0 to 30 asset codes" in str(
            rejected("main.forced_symbols", bad)
        )
    assert len(validate("main.forced_symbols", [f"S{i}" for i in range(30)])) == 30


def test_number_lists_check_every_item() -> None:
    assert validate("strategy.trailing_start_values", [0.1 * 3, 1, 4.9]) == (0.3, 1.0, 4.9)
    for bad in ([], [0.5, 0.5], [0.55], [0.0], [5.1], [math.nan], ["0.5"], [True], 0.5, [0.1] * 11):
        message = str(rejected("strategy.trailing_start_values", bad))
        assert "each between 0.1 and 5.0 in steps of 0.1" in message


def test_unknown_key_names_nothing_but_the_key() -> None:
    error = rejected("main.no_such_setting", "sk-live-SECRET")
    assert error.spec is None
    assert error.key == "main.no_such_setting"
    assert "main.no_such_setting" in str(error)
    assert "SECRET" not in str(error)
    assert "main.position_cost_pct" not in str(error)  # does not list the valid keys either
    assert rejected(123, 1).spec is None  # type: ignore[arg-type]

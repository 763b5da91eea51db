"""The one typed settings registry: every setting's key, type, range, default and help (DOMAIN §6, D2).

Why a registry: the original kept settings in three places (a JSON file, ``system_settings`` and
per-connection JSON), the UI saved values the API rejected, and the engines read keys nobody
wrote (D2, D16). Here every setting is declared once, with the product overrides and the §10
decisions already applied, and every write goes through :func:`validate`. The settings page, the
settings service, import/export and the engines all read this module, so a range can only be
wrong in one place. Pure Python, no I/O: it is safe to import from any layer.

Values are normalised so that equal settings compare equal: ints are ``int``, floats are ``float``
snapped to their step grid, lists are tuples (immutable, so a copy of the values can be handed out
freely; JSON turns them back into arrays).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = [
    "SETTINGS",
    "SPEC_BY_KEY",
    "SettingCategory",
    "SettingKind",
    "SettingSpec",
    "SettingValidationError",
    "defaults",
    "validate",
]


class SettingKind(StrEnum):
    """The value types a setting can have; each has one normalised Python type."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CHOICE = "choice"
    STR_LIST = "str_list"
    """A list of asset codes (BTC, ETH, ...): the only string lists the product has."""
    FLOAT_LIST = "float_list"


class SettingCategory(StrEnum):
    """The tabs of the settings page (DOMAIN §9) plus Risk (D26)."""

    OVERALL = "Overall"
    EXCHANGE = "Exchange"
    INDICATION = "Indication"
    STRATEGY = "Strategy"
    SYSTEM = "System"
    RISK = "Risk"


_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_ASSET_RE = re.compile(r"^[A-Z0-9]{1,20}$")
_REL_TOLERANCE = 1e-9
"""Float slack for range and step checks: 0.1 * 3 is 0.30000000000000004 and must pass a 0.1 grid."""


class SettingValidationError(ValueError):
    """A value that a setting does not accept, or an unknown key.

    The message names the setting (label and key), the value given and what is allowed, so it can
    be shown to the trader unchanged. ``spec`` is ``None`` for an unknown key. ``errors`` holds every
    error of a batch (the settings service raises the first one with all of them attached), and is
    just this error when it stands alone.
    """

    def __init__(self, message: str, *, key: str, spec: SettingSpec | None) -> None:
        super().__init__(message)
        self.key = key
        self.spec = spec
        self.errors: tuple[SettingValidationError, ...] = (self,)


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingSpec:
    """One setting: what it is called, what it holds and what is allowed.

    ``minimum``/``maximum``/``step`` bound the value of ``int`` and ``float`` settings and each
    item of a ``float_list``; the step grid is anchored at ``minimum``. ``min_items``/``max_items``
    bound the length of list settings. ``choices`` lists the allowed values of a ``choice``.
    The constructor checks the declaration itself (a bad default fails at import, not in a user's
    settings file).
    """

    key: str
    label: str
    kind: SettingKind
    default: Any
    category: SettingCategory
    subcategory: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str | int, ...] = ()
    unit: str = ""
    min_items: int = 0
    max_items: int | None = None

    def __post_init__(self) -> None:
        problem = self._declaration_problem()
        if problem:
            raise ValueError(f"bad setting declaration {self.key!r}: {problem}")
        try:
            normalised = self.validate(self.default)
        except SettingValidationError as exc:
            raise ValueError(f"bad setting declaration {self.key!r}: default rejected: {exc}") from None
        if normalised != self.default or type(normalised) is not type(self.default):
            raise ValueError(f"bad setting declaration {self.key!r}: default is not normalised")

    def _declaration_problem(self) -> str:
        if not _KEY_RE.match(self.key):
            return "key must be dotted lower_snake_case"
        if not self.label or not self.help.endswith("."):
            return "label and a one-sentence help text ending in '.' are required"
        bounded = self.kind in (SettingKind.INT, SettingKind.FLOAT, SettingKind.FLOAT_LIST)
        if bounded:
            if self.minimum is None or self.maximum is None or self.minimum >= self.maximum:
                return "numeric settings need minimum < maximum"
            if self.step is not None:
                if self.step <= 0:
                    return "step must be positive"
                if not _on_grid(self.maximum, self.minimum, self.step):
                    return "maximum must sit on the step grid"
            if self.kind is SettingKind.INT and not all(
                isinstance(v, int) for v in (self.minimum, self.maximum, self.step) if v is not None
            ):
                return "int settings need int bounds and step"
        elif (self.minimum, self.maximum, self.step) != (None, None, None):
            return "only numeric settings have minimum/maximum/step"
        if (self.kind is SettingKind.CHOICE) != bool(self.choices):
            return "choices are required for (and only for) choice settings"
        if len(set(self.choices)) != len(self.choices):
            return "duplicate choices"
        if self.max_items is not None and self.max_items < self.min_items:
            return "max_items < min_items"
        return ""

    @property
    def requirement(self) -> str:
        """What the setting accepts, in words (used in error messages and tooltips)."""
        if self.kind is SettingKind.BOOL:
            return "true or false"
        if self.kind is SettingKind.CHOICE:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.kind is SettingKind.STR_LIST:
            return f"a list of {self._item_count()} asset codes (1-20 letters or digits each, no duplicates)"
        bounds = f"between {_fmt(self.minimum)} and {_fmt(self.maximum)}"
        if self.step is not None:
            bounds += f" in steps of {_fmt(self.step)}"
        if self.kind is SettingKind.INT:
            return "a whole number " + bounds
        if self.kind is SettingKind.FLOAT_LIST:
            return f"a list of {self._item_count()} different numbers, each {bounds}"
        return bounds

    def _item_count(self) -> str:
        if self.max_items is None:
            return f"at least {self.min_items}"
        return f"{self.min_items} to {self.max_items}"

    def validate(self, value: Any) -> Any:
        """Return ``value`` normalised for this setting, or raise :class:`SettingValidationError`."""
        result = _normalise(self, value)
        if result is _REJECT:
            raise SettingValidationError(
                f"{self.label} ({self.key}) must be {self.requirement}; got {_show(value)}",
                key=self.key,
                spec=self,
            )
        return result


# --- validation helpers -------------------------------------------------------------------------

_REJECT: Any = object()


def _fmt(number: float | None) -> str:
    return repr(number)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _decimals(number: float) -> int:
    exponent = Decimal(repr(number)).as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _tolerance(scale: float) -> float:
    return _REL_TOLERANCE * max(1.0, abs(scale))


def _on_grid(value: float, minimum: float, step: float) -> bool:
    ratio = (value - minimum) / step
    return abs(ratio - round(ratio)) <= _tolerance(ratio)


def _number(spec: SettingSpec, value: Any, *, integral: bool) -> Any:
    """Range- and step-check one number; ints stay exact, floats are snapped onto the grid."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _REJECT
    if isinstance(value, float) and not math.isfinite(value):
        return _REJECT
    assert spec.minimum is not None and spec.maximum is not None
    lo, hi, step = spec.minimum, spec.maximum, spec.step
    if integral:
        if isinstance(value, float):
            if not value.is_integer():
                return _REJECT
            value = int(value)
        if value < lo or value > hi:
            return _REJECT
        if step is not None and (value - lo) % step != 0:
            return _REJECT
        return value
    # Compare before float(): a huge int must be rejected, not overflow.
    if value < lo - _tolerance(lo) or value > hi + _tolerance(hi):
        return _REJECT
    number = float(value)
    if step is not None:
        if not _on_grid(number, lo, step):
            return _REJECT
        places = max(_decimals(step), _decimals(lo))
        number = round(lo + round((number - lo) / step) * step, places)
    return float(min(max(number, lo), hi))


def _choice(spec: SettingSpec, value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    for choice in spec.choices:  # type-exact: True must not pass as 1, nor "60" as 60
        if type(choice) is type(value) and choice == value:
            return choice
    if isinstance(value, str):  # "INFO" for "info": an unambiguous case-insensitive match
        folded = [c for c in spec.choices if isinstance(c, str) and c.casefold() == value.strip().casefold()]
        if len(folded) == 1:
            return folded[0]
    return _REJECT


def _items(spec: SettingSpec, value: Any) -> list[Any] | None:
    if not isinstance(value, list | tuple):
        return None
    if len(value) < spec.min_items or (spec.max_items is not None and len(value) > spec.max_items):
        return None
    return list(value)


def _normalise(spec: SettingSpec, value: Any) -> Any:
    kind = spec.kind
    if kind is SettingKind.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return _REJECT
    if kind is SettingKind.INT:
        return _number(spec, value, integral=True)
    if kind is SettingKind.FLOAT:
        return _number(spec, value, integral=False)
    if kind is SettingKind.CHOICE:
        return _choice(spec, value)
    items = _items(spec, value)
    if items is None:
        return _REJECT
    if kind is SettingKind.STR_LIST:
        codes = [item.strip().upper() if isinstance(item, str) else None for item in items]
        if any(code is None or not _ASSET_RE.match(code) for code in codes) or len(set(codes)) != len(codes):
            return _REJECT
        return tuple(codes)
    numbers = [_number(spec, item, integral=False) for item in items]
    if any(n is _REJECT for n in numbers) or len(set(numbers)) != len(numbers):
        return _REJECT
    return tuple(numbers)


# --- declaration helpers ------------------------------------------------------------------------


class _Section:
    """Builds the specs of one settings sub-page, so each declaration states only what differs.

    ``chosen`` marks a value DOMAIN §6 left open ("range", "default", "upper bound", ...): the help
    text then says so, as the trader deserves to know which limits are ours and not the original's.
    """

    def __init__(self, category: SettingCategory, subcategory: str) -> None:
        self.category = category
        self.subcategory = subcategory

    def _spec(
        self, key: str, label: str, kind: SettingKind, default: Any, help: str, **fields: Any
    ) -> SettingSpec:
        chosen = fields.pop("chosen", "")
        if chosen:
            help = f"{help.removesuffix('.')} ({chosen} chosen by cts-desktop; the original set none)."
        return SettingSpec(
            key=key,
            label=label,
            kind=kind,
            default=default,
            category=self.category,
            subcategory=self.subcategory,
            help=help,
            **fields,
        )

    def integer(
        self,
        key: str,
        label: str,
        default: int,
        minimum: int,
        maximum: int,
        help: str,
        *,
        step: int | None = None,
        unit: str = "",
        chosen: str = "",
    ) -> SettingSpec:
        return self._spec(
            key, label, SettingKind.INT, default, help,
            minimum=minimum, maximum=maximum, step=step, unit=unit, chosen=chosen,
        )  # fmt: skip

    def number(
        self,
        key: str,
        label: str,
        default: float,
        minimum: float,
        maximum: float,
        help: str,
        *,
        step: float | None = None,
        unit: str = "",
        chosen: str = "",
    ) -> SettingSpec:
        return self._spec(
            key, label, SettingKind.FLOAT, float(default), help,
            minimum=float(minimum), maximum=float(maximum), step=None if step is None else float(step),
            unit=unit, chosen=chosen,
        )  # fmt: skip

    def flag(self, key: str, label: str, default: bool, help: str) -> SettingSpec:
        return self._spec(key, label, SettingKind.BOOL, default, help)

    def choice(
        self,
        key: str,
        label: str,
        default: str | int,
        choices: tuple[str | int, ...],
        help: str,
        *,
        unit: str = "",
    ) -> SettingSpec:
        return self._spec(key, label, SettingKind.CHOICE, default, help, choices=choices, unit=unit)

    def symbols(self, key: str, label: str, default: tuple[str, ...], help: str) -> SettingSpec:
        return self._spec(key, label, SettingKind.STR_LIST, default, help, min_items=0, max_items=30)

    def numbers(
        self,
        key: str,
        label: str,
        default: tuple[float, ...],
        minimum: float,
        maximum: float,
        step: float,
        help: str,
        *,
        max_items: int,
        unit: str = "",
        chosen: str = "",
    ) -> SettingSpec:
        return self._spec(
            key, label, SettingKind.FLOAT_LIST, tuple(float(d) for d in default), help,
            minimum=float(minimum), maximum=float(maximum), step=float(step),
            min_items=1, max_items=max_items, unit=unit, chosen=chosen,
        )  # fmt: skip


_C = SettingCategory

# The declaration tables below are kept one setting per block for review; the formatter would
# spread every argument over its own line.
# fmt: off

# --- Overall (DOMAIN §6 Overall/Main, Connection defaults, Monitoring; D21; product overrides) ---

_main = _Section(_C.OVERALL, "Main")
_OVERALL_MAIN = (
    _main.integer("main.prehistoric_days", "Prehistoric data days", 5, 1, 15,
        "Days of past prices loaded at engine start, so indications have history from the first minute.",
        unit="days"),
    _main.choice("main.market_timeframe_s", "Market timeframe", 1, (1, 5, 15, 30, 60, 300),
        "Length of one price sample that indications count in; shorter reacts faster but stores more data.",
        unit="s"),
    _main.number("main.base_volume_factor", "Base volume factor", 1.0, 0.5, 10.0,
        "Multiplier on the base position size, applied before a connection's live or preset factor.",
        step=0.5, unit="×"),
    _main.integer("main.loss_trigger_pct", "Loss-trigger range %", 20, 5, 30,  # negativeChangePercent
        "Share of the balance that risk-based sizing spreads over all positions; higher means bigger ones.",
        step=5, unit="%"),
    _main.integer("main.positions_average", "Positions average", 50, 20, 300,
        "Number of positions the risk budget is divided by in risk-based sizing; higher means smaller ones.",
        step=10, unit="positions"),
    _main.flag("main.min_volume_enforcement", "Minimum volume enforcement", True,
        "Check every order against the exchange's minimum order size before it is sent."),
    _main.number("main.position_cost_pct", "Position cost %", 0.1, 0.01, 1.0,
        "One step of price in percent (0.1 means 0.1 %, not 10 %); take profit and stop loss count in steps.",
        step=0.01, unit="%"),
    _main.integer("main.leverage_pct", "Leverage % of maximum", 100, 5, 100,
        "Share of the allowed maximum leverage that is used when 'Use maximal leverage' is off.",
        step=5, unit="%"),
    _main.integer("main.max_leverage", "Max leverage", 125, 1, 125,
        "Highest leverage the app ever sets; a lower exchange or symbol maximum still wins.",
        unit="×"),
    _main.flag("main.use_max_leverage", "Use maximal leverage", True,
        "Use the full allowed leverage instead of the 'Leverage % of maximum' share."),
    _main.choice("main.symbol_order", "Symbol order", "volume_24h",
        ("volume_24h", "market_cap", "price_change_24h", "volatility", "trades_24h", "alphabetical"),
        "How symbols are ranked when a connection picks the top ones to trade."),
    _main.integer("main.symbol_count", "Number of symbols", 8, 2, 30,  # D21
        "How many ranked symbols each connection trades.",
        unit="symbols"),
    _main.choice("main.quote_asset", "Quote asset", "USDT", ("USDT", "USDC", "BUSD", "BTC", "ETH"),
        "Currency the symbols are quoted and settled in, e.g. BTC with USDT trades BTCUSDT."),
    _main.flag("main.use_main_symbols", "Use main symbols", False,
        "Trade the fixed main symbol list instead of the top-ranked symbols."),
    _main.symbols("main.main_symbols", "Main symbols", ("BTC", "ETH", "BNB", "XRP", "ADA", "SOL"),  # D21
        "Base assets traded when 'Use main symbols' is on."),
    _main.symbols("main.forced_symbols", "Forced symbols", ("XRP", "BCH"),  # D21
        "Base assets that are always traded, whatever the ranking says."),
    _main.choice("main.symbol_update_interval_min", "Symbol update interval", 60, (15, 30, 60, 120, 360),
        "How often the symbol ranking is refreshed from the exchange.",
        unit="min"),
    _main.choice("main.volatility_period_min", "Volatility period", 60, (60,),  # product: fixed at 1 h
        "Window that volatility is measured over for symbol ranking, fixed at one hour.",
        unit="min"),
)

_conn = _Section(_C.OVERALL, "Connection defaults")
_OVERALL_CONNECTION = (
    _conn.choice("connection.margin_mode", "Margin", "cross", ("cross", "isolated"),
        "Margin mode of new connections; cross lets positions share the balance, isolated caps each one."),
    _conn.choice("connection.position_mode", "Position mode", "hedge", ("hedge", "one_way"),
        "Position mode of new connections; hedge keeps long and short positions on one symbol apart."),
    _conn.integer("connection.rate_limit_delay_ms", "Rate-limit delay", 50, 0, 1000,
        "Extra pause between two requests to one exchange, on top of its published rate limit.",
        chosen="range",
        unit="ms"),
    _conn.integer("connection.max_concurrent", "Max concurrent connections", 3, 1, 20,
        "How many connections may connect or run a test at the same time.",
        chosen="range",
        unit="connections"),
    _conn.flag("connection.testnet_default", "Testnet by default", False,
        "Create new connections on the exchange's testnet instead of the real market."),
    _conn.integer("connection.min_connect_interval_ms", "Minimum connect interval", 200, 0, 5000,
        "Wait before a connection test or reconnect, so repeated clicks do not hammer the exchange.",
        chosen="range",
        unit="ms"),
    _conn.integer("connection.symbols_per_exchange", "Symbols per exchange", 50, 1, 500,
        "How many of an exchange's symbols are loaded for ranking and selection.",
        chosen="range",
        unit="symbols"),
)

_mon = _Section(_C.OVERALL, "Monitoring")
_OVERALL_MONITORING = (
    _mon.flag("monitoring.enabled", "System monitoring", True,
        "Collect system metrics such as cycle times and error counts for the Monitoring page."),
    _mon.integer("monitoring.metrics_retention_days", "Metrics retention", 30, 7, 90,
        "How long collected metrics are kept before cleanup deletes them.",
        unit="days"),
    _mon.flag("monitoring.auto_restart", "Auto-restart on error", True,
        "Restart an engine automatically after it stops on an error."),
    _mon.integer("monitoring.restart_cooldown_min", "Restart cooldown", 5, 1, 30,
        "Wait before an automatic restart, so a recurring fault does not restart in a tight loop.",
        unit="min"),
    _mon.integer("monitoring.max_restart_attempts", "Max restart attempts", 3, 1, 10,
        "Automatic restarts allowed before the engine stays stopped and waits for you.",
        unit="attempts"),
    _mon.choice("monitoring.log_level", "Log level", "info", ("debug", "info", "warning", "error"),
        "Least severe messages written to the log; debug is very verbose and meant for fault finding."),
    _mon.integer("monitoring.log_limit", "Log limit", 100, 10, 1000,
        "How many recent log entries the log views show.",
        unit="entries"),
)

# --- Exchange: defaults of every connection (DOMAIN §6 Exchange, §5 connection_settings, §2.8) ---

_exv = _Section(_C.EXCHANGE, "Volume and limits")
_EXCHANGE_VOLUME = (
    _exv.number("exchange.live_volume_factor", "Live trade volume factor", 1.0, 0.1, 10.0,
        "Multiplier on the size of a connection's live (main engine) exchange orders.",
        step=0.1, unit="×"),
    _exv.number("exchange.preset_volume_factor", "Preset trade volume factor", 1.0, 0.1, 10.0,
        "Multiplier on the size of a connection's preset engine exchange orders.",
        step=0.1, unit="×"),
    _exv.integer("exchange.max_positions", "Max positions per exchange", 100, 1, 500,  # §2.8
        "Most open exchange positions per connection; the exchange's own cap (e.g. Pionex 50) wins if lower.",
        chosen="default",
        unit="positions"),
    # §6 says 300 (docs only); the code and §5 use 12 h, and the spec prefers the code.
    _exv.integer("exchange.drawdown_time_min", "Drawdown time", 720, 60, 1440,
        "Longest time a position may spend below its peak and still count toward real trading.",
        unit="min"),
)

# §5: PF minimums for base, main and real, live and preset each (D5: average result in steps);
# exchange.live_main_pf_min is §6's "Main-trade PF minimum", whose 0.1-2.0 range all six share.
_expf = _Section(_C.EXCHANGE, "Profit factor minimums")
_EXCHANGE_PF = tuple(
    _expf.number(f"exchange.{mode}_{level}_pf_min",
        f"{mode.capitalize()} {level} PF minimum",
        0.6, 0.1, 2.0,
        f"Minimum average result in steps a {level} set needs before it may trade {mode} on a connection.")
    for mode in ("live", "preset")
    for level in ("base", "main", "real")
)

_exi = _Section(_C.EXCHANGE, "Main indications and strategies")
_EXCHANGE_TOGGLES = (
    _exi.flag("exchange.direction_enabled", "Direction indication", True,
        "Let Direction indications (a reversal after a one-sided run) open positions on a connection."),
    _exi.flag("exchange.move_enabled", "Move indication", True,
        "Let Move indications (a steady move in one direction) open positions on a connection."),
    _exi.flag("exchange.active_enabled", "Active indication", True,
        "Let Active indications (a sharp recent price change) open positions on a connection."),
    _exi.flag("exchange.optimal_enabled", "Optimal indication", False,
        "Let Optimal indications, the most CPU-hungry kind, open positions on a connection."),
    _exi.flag("exchange.trailing_enabled", "Trailing", False,
        "Include trailing-stop configurations in a connection's exchange trading."),
    _exi.flag("exchange.trailing_only", "Trailing only", False,
        "Trade only trailing-stop configurations on a connection, none with a fixed exit."),
    _exi.flag("exchange.block_enabled", "Block", False,
        "Apply the Block adjustment (more volume after a losing block of positions) on a connection."),
    _exi.flag("exchange.block_only", "Block only", False,
        "Trade only Block-adjusted sets on a connection."),
    _exi.flag("exchange.dca_enabled", "DCA", False,
        "Apply the DCA adjustment (adding to losing positions) on a connection."),
    _exi.flag("exchange.dca_only", "DCA only", False,
        "Trade only DCA-adjusted sets on a connection."),
)

# --- Indication (DOMAIN §6 Indication, §1.1, §1.6) ------------------------------------------------

_ind = _Section(_C.INDICATION, "Main")
_INDICATION_MAIN = (
    _ind.flag("indication.market_activity_enabled", "Market activity check", True,
        "Skip all indications while the market is too quiet, so the engine does not trade noise."),
    _ind.integer("indication.market_activity_range_s", "Market activity calculation range", 10, 5, 20,
        "Number of one-second frames the market activity check averages over.",
        unit="s"),
    _ind.integer("indication.market_activity_factor", "Market activity factor", 2, 1, 20,
        "Required activity as a multiple of 0.05 % average move per second (2 means 0.10 %).",
        unit="× 0.05 %"),
    _ind.number("indication.market_activity_min_volatility_pct", "Market activity minimum volatility",
        0.05, 0.0, 1.0, "The one-second moves must also vary at least this much (standard deviation), "
        "so a steady drift is not mistaken for activity.", step=0.01, unit="%"),
    _ind.number("indication.direction_threshold_pct", "Direction threshold", 0.5, 0.0, 5.0,
        "A Direction run must also move the price at least this much over its range (0 = any size).",
        step=0.05, unit="%"),
    _ind.number("indication.move_threshold_pct", "Move threshold", 0.3, 0.0, 5.0,
        "A Move must carry the price at least this far over its range.", step=0.05, unit="%"),
    _ind.flag("indication.direction_enabled", "Direction enabled", True,
        "Evaluate Direction indications, which look for a reversal after a one-sided run."),
    _ind.flag("indication.move_enabled", "Move enabled", True,
        "Evaluate Move indications, which look for a steady move in one direction."),
    _ind.flag("indication.active_enabled", "Active enabled", True,
        "Evaluate Active indications, which look for a sharp recent price change."),
    _ind.integer("indication.interval_ms", "Indication interval", 100, 50, 1000,
        "How often indications are evaluated; faster than the main engine interval gains nothing.",
        step=50, unit="ms"),
    _ind.integer("indication.timeout_s", "Indication timeout", 3, 0, 10,
        "Longest time one indication evaluation may take before it is skipped for this cycle.",
        unit="s"),
    _ind.integer("indication.validation_timeout_s", "Validation timeout", 15, 1, 300,
        "How long a fired indication stays silent, so one move does not open a burst of positions.",
        chosen="range",
        unit="s"),
    _ind.integer("indication.range_min", "Indication range minimum", 3, 3, 30,
        "Smallest number of price steps an indication looks back over.",
        unit="steps"),
    _ind.integer("indication.range_max", "Indication range maximum", 30, 3, 30,
        "Largest number of price steps an indication looks back over.",
        unit="steps"),
    _ind.number("indication.min_pf", "Indication minimum PF", 0.7, 0.1, 2.0,
        "Minimum profit factor an indication needs before its signals are used.",
        chosen="range"),
)

_opt = _Section(_C.INDICATION, "Optimal")
_INDICATION_OPTIMAL = (
    _opt.flag("indication.optimal_enabled", "Optimal enabled", False,
        "Evaluate Optimal indications, which test 100 sub-configurations per trigger and cost far more CPU."),
    _opt.integer("indication.optimal_interval_ms", "Optimal interval", 1000, 100, 10000,
        "How often Optimal indications are evaluated.",
        chosen="range",
        step=100, unit="ms"),
    _opt.integer("indication.optimal_lookback_s", "Optimal lookback", 60, 10, 300,
        "How much recent price history an Optimal evaluation looks at.",
        chosen="default",
        unit="s"),
    _opt.number("indication.optimal_confidence", "Optimal confidence", 0.7, 0.5, 1.0,
        "Confidence an Optimal signal needs before it is used; higher means fewer, surer signals.",
        chosen="default"),
    _opt.number("indication.optimal_risk_factor", "Optimal risk factor", 1.0, 0.1, 2.0,
        "Weight of the possible loss when Optimal ranks its sub-configurations.",
        chosen="default"),
    _opt.number("indication.optimal_reward_factor", "Optimal reward factor", 1.5, 0.1, 3.0,
        "Weight of the possible gain when Optimal ranks its sub-configurations.",
        chosen="default"),
)

_auto = _Section(_C.INDICATION, "Auto")
_INDICATION_AUTO = (
    _auto.integer("indication.auto_interval_ms", "Auto interval", 2000, 100, 2000,
        "How often the Auto indication re-evaluates the market.",
        chosen="lower bound",
        step=100, unit="ms"),
    _auto.number("indication.auto_adjustment_speed", "Auto adjustment speed", 0.5, 0.1, 1.0,
        "How far Auto moves its parameters toward a new optimum in one adjustment.",
        chosen="default"),
    _auto.integer("indication.auto_min_adjustment_interval_s", "Auto minimum adjustment interval",
        300, 60, 3600,
        "Least time between two Auto parameter adjustments, so it does not chase noise.",
        chosen="default",
        unit="s"),
    _auto.integer("indication.auto_max_parameter_change_pct", "Auto max parameter change", 20, 5, 50,
        "Largest change Auto may make to one parameter in one adjustment.",
        chosen="default",
        unit="%"),
)

_com = _Section(_C.INDICATION, "Common")
_INDICATION_COMMON = (
    _com.integer("indication.common_max_concurrent", "Max concurrent indications", 20, 1, 100,
        "How many common indicator calculations (RSI, MACD, ...) may run at once.",
        chosen="default"),
    _com.integer("indication.common_state_retention_h", "Common state retention", 48, 1, 168,
        "How long common indicator states are kept before cleanup.",
        chosen="default",
        unit="h"),
)

# --- Strategy (DOMAIN §6 Strategy; D4, D5, D9, D11, D25) -------------------------------------------

_pro = _Section(_C.STRATEGY, "Promotion")
_STRATEGY_PROMOTION = (
    # D11: these replace the hard-coded 0.5/0.6 thresholds; D5: they are average results in steps.
    _pro.number("strategy.base_pf_min", "Base PF", 0.6, 0.1, 2.0,
        "Minimum average result in steps a base set needs before its trades are promoted to Main."),
    _pro.number("strategy.main_pf_min", "Main PF", 0.6, 0.1, 2.0,
        "Minimum average result in steps over recent Main trades before they are promoted to Real."),
    _pro.number("strategy.real_pf_min", "Real PF", 0.6, 0.1, 2.0,
        "Minimum average result in steps a set needs before a Real trade is sent to the exchange."),
    _pro.integer("strategy.max_drawdown_time_h", "Max drawdown time", 24, 1, 72,  # D11, D12
        "Longest time a set may spend below its previous peak and still be promoted.",
        unit="h"),
    _pro.integer("strategy.max_positions_per_config_direction", "Max positions per config and direction",
        2, 1, 5,  # D9
        "How many positions one configuration may hold open at once in each direction.",
        unit="positions"),
    _pro.integer("strategy.max_position_age_main_h", "Max position age (main)", 0, 0, 168,  # D25
        "Close a main-engine position after this many hours, 0 means never.",
        chosen="upper bound",
        unit="h"),
    _pro.integer("strategy.max_position_age_preset_h", "Max position age (preset)", 2, 0, 168,  # D25
        "Close a preset-engine position after this many hours, 0 means never.",
        chosen="upper bound",
        unit="h"),
)

_base = _Section(_C.STRATEGY, "Base")
_STRATEGY_BASE = (
    _base.number("strategy.base_value_min", "Base value range minimum", 0.5, 0.1, 5.0,
        "Lower end of the base value range the strategy grid is built from."),
    _base.number("strategy.base_value_max", "Base value range maximum", 2.5, 0.1, 5.0,
        "Upper end of the base value range the strategy grid is built from."),
    _base.number("strategy.base_ratio_min", "Base ratio minimum", 0.2, 0.1, 1.0,
        "Lower end of the base ratio range the strategy grid is built from."),
    _base.number("strategy.base_ratio_max", "Base ratio maximum", 1.0, 0.1, 1.0,
        "Upper end of the base ratio range the strategy grid is built from."),
    _base.integer("strategy.previous_positions", "Previous positions", 5, 1, 50,
        "How many previous positions of a set are averaged when judging it.",
        chosen="range",
        unit="positions"),
    _base.integer("strategy.last_state_count", "Last state count", 3, 1, 20,
        "How many recent set states are remembered for trend checks.",
        chosen="range"),
    _base.number("strategy.step_relation_min", "Step relation ratio minimum", 0.2, 0.1, 1.0,
        "Smallest position step as a share of the indication step, at least one step.",
        chosen="range"),
    _base.number("strategy.step_relation_max", "Step relation ratio maximum", 1.0, 0.1, 1.0,
        "Largest position step as a share of the indication step.",
        chosen="range"),
    _base.number("strategy.min_pf", "Strategy minimum PF", 0.5, 0.1, 2.0,
        "Minimum profit factor a generated strategy combination needs to count as valid.",
        chosen="range"),
)

_trail = _Section(_C.STRATEGY, "Trailing")
_STRATEGY_TRAILING = (
    _trail.flag("strategy.trailing_enabled", "Trailing enabled", True,
        "Add trailing-stop variants to every configuration grid."),
    # D4: start and stop are fractions of the take-profit distance.
    _trail.numbers("strategy.trailing_start_values", "Trailing start values", (0.5, 1.0, 1.5), 0.1, 5.0, 0.1,
        "Profits, as shares of the take-profit distance, at which trailing starts.",
        chosen="range",
        max_items=10, unit="× TP distance"),
    _trail.numbers("strategy.trailing_stop_values", "Trailing stop values", (0.2, 0.4, 0.6), 0.05, 2.0, 0.05,
        "Pullbacks, as shares of the take-profit distance, that close a trailing position.",
        chosen="range",
        max_items=10, unit="× TP distance"),
)

_adj = _Section(_C.STRATEGY, "Adjust")
_STRATEGY_ADJUST = (
    _adj.flag("strategy.block_enabled", "Block", True,
        "Apply the Block adjustment, which raises volume after a losing block of positions."),
    _adj.flag("strategy.dca_enabled", "DCA", False,
        "Apply the DCA adjustment, which adds volume to losing positions."),
    _adj.number("strategy.block_adjustment_ratio", "Block adjustment ratio", 1.0, 0.5, 2.0,  # range: §3.1
        "Extra volume per adjusted block, so 1.0 doubles the volume after one losing block."),
    _adj.integer("strategy.block_auto_disable_min_blocks", "Block auto-disable: minimum blocks", 2, 1, 10,
        "Blocks needed before Block may switch itself off for doing worse than no adjustment.",
        chosen="range",
        unit="blocks"),
    _adj.integer("strategy.block_auto_disable_window", "Block auto-disable: comparison window", 50, 20, 200,
        "Recent positions compared when deciding whether Block helps.",
        chosen="range",
        unit="positions"),
    _adj.numbers("strategy.adjust_statistics_windows_h", "Adjust statistics windows",
        (4.0, 12.0, 24.0, 48.0), 1.0, 168.0, 1.0,
        "Time windows the adjustment statistics are reported for.",
        chosen="range",
        max_items=8, unit="h"),
    _adj.integer("strategy.adjust_drawdown_positions", "Adjust drawdown positions", 80, 10, 500,
        "Recent positions the adjustment drawdown is measured over.",
        chosen="range",
        unit="positions"),
)

_pre = _Section(_C.STRATEGY, "Preset")
_STRATEGY_PRESET = (
    _pre.integer("strategy.preset_tp_min", "Preset TP minimum", 2, 2, 30,
        "Smallest take profit, in steps, in the preset configuration grid.",
        step=2, unit="steps"),
    _pre.integer("strategy.preset_tp_max", "Preset TP maximum", 30, 2, 30,
        "Largest take profit, in steps, in the preset configuration grid.",
        step=2, unit="steps"),
    _pre.number("strategy.preset_sl_min", "Preset SL minimum", 0.3, 0.3, 3.0,
        "Smallest stop-loss ratio (stop distance as a share of the take-profit distance) in the preset grid.",
        step=0.3, unit="× TP distance"),
    _pre.number("strategy.preset_sl_max", "Preset SL maximum", 3.0, 0.3, 3.0,
        "Largest stop-loss ratio (stop distance as a share of the take-profit distance) in the preset grid.",
        step=0.3, unit="× TP distance"),
)

# --- System (DOMAIN §6 System; D8, D16; product overrides) ----------------------------------------

_eng = _Section(_C.SYSTEM, "Engine")
_SYSTEM_ENGINE = (
    _eng.flag("engine.auto_start", "Start engines at launch", False,
        "Start the engines of all enabled connections when the app opens, instead of waiting for you."),
    # D16: a loop runs only if its engine is enabled and the trade mode allows it.
    _eng.flag("system.main_engine_enabled", "Main engine enabled", True,
        "Run the main (step-based) trade engine; turning it off stops its loop on every connection."),
    _eng.flag("system.preset_engine_enabled", "Preset engine enabled", True,
        "Run the preset (common indicator) trade engine; turning it off stops its loop on every connection."),
    _eng.choice("system.trade_mode", "Trade mode", "both", ("both", "main", "preset"),
        "Which enabled engines may trade: both, only the main engine, or only the preset engine."),
    _eng.integer("system.main_engine_interval_ms", "Main engine interval", 100, 50, 1000,
        "Pause after each main engine cycle; shorter reacts faster but uses more CPU.",
        step=50, unit="ms"),
    _eng.integer("system.preset_engine_interval_ms", "Preset engine interval", 100, 50, 1000,
        "Pause after each preset engine cycle; shorter reacts faster but uses more CPU.",
        step=50, unit="ms"),
    _eng.integer("system.active_order_interval_ms", "Active order handling interval", 50, 50, 1000,
        "Pause after each cycle that checks open positions and orders against take profit and stop loss.",
        step=50, unit="ms"),
    _eng.integer("system.position_cooldown_ms", "Position cooldown", 100, 50, 3000,
        "Least time between two new positions of the same configuration.",
        unit="ms"),
    _eng.integer("system.max_concurrent_operations", "Max concurrent operations", 100, 10, 250,
        "How many symbol calculations an engine runs in parallel; lower it if the computer struggles."),
)

_db = _Section(_C.SYSTEM, "Database")
_SYSTEM_DATABASE = (
    # Product override of §6/D8: 50-500 step 50, default 250; D8 rolling window per set.
    *(_db.integer(f"system.position_length_{level}", f"Position length ({level.capitalize()})",
        250, 50, 500,
        f"Newest {level.capitalize()} positions kept per configuration set for its statistics.",
        step=50, unit="positions")
      for level in ("base", "main", "real", "preset")),
    _db.integer("system.rearrange_threshold_pct", "Rearrange threshold", 20, 10, 50,
        "How far a set may outgrow its position length before the oldest entries go (250 + 20 % = 300).",
        step=5, unit="%"),
    _db.integer("system.max_database_size_gb", "Database size limit", 20, 5, 50,
        "Largest size the database may reach; the maintenance task prunes old data to stay below it.",
        step=5, unit="GB"),
    _db.integer("system.db_cleanup_threshold_pct", "Database cleanup threshold", 80, 50, 95,
        "Share of the size limit at which cleanup starts deleting the oldest data.",
        chosen="range",
        step=5, unit="%"),
    _db.flag("system.auto_cleanup", "Automatic cleanup", True,
        "Delete data older than its retention period automatically."),
    _db.integer("system.cleanup_interval_h", "Cleanup interval", 24, 1, 168,
        "How often the automatic cleanup runs.",
        chosen="range",
        unit="h"),
    _db.flag("system.auto_backup", "Automatic backups", True,
        "Back up the database once a day, so a broken disk or a bad edit costs at most a day."),
    _db.choice("system.market_data_retention_days", "Market data retention", 30, (7, 14, 30, 60, 90),
        "How long stored prices are kept; it also limits how far back prehistoric data can reach.",
        unit="days"),
    _db.choice("system.indication_state_retention_h", "Indication state retention", 48, (24, 48, 72, 168),
        "How long indication states are kept before cleanup deletes them.",
        unit="h"),
    _db.integer("system.position_history_retention_days", "Max position age (history)", 90, 7, 365,
        "How long closed position records are kept before cleanup deletes them.",
        chosen="range",
        unit="days"),
)

# --- Risk (DOMAIN §7, D26: checked before every exchange order) -----------------------------------

_risk = _Section(_C.RISK, "Limits")
_RISK = (
    _risk.integer("risk.max_open_positions", "Max open positions", 10, 1, 500,
        "Most exchange positions open at once across all connections; new orders are refused above it.",
        chosen="range",
        unit="positions"),
    _risk.number("risk.max_daily_loss_pct", "Max daily loss", 5.0, 0.5, 50.0,
        "New orders stop for the day once the account has lost this share of its value at the day's start.",
        chosen="range",
        step=0.5, unit="%"),
    _risk.number("risk.max_drawdown_pct", "Max drawdown", 30.0, 1.0, 90.0,
        "New orders stop once the account has fallen this far below its highest value.",
        chosen="range",
        step=0.5, unit="%"),
    _risk.integer("risk.leverage_cap", "Leverage cap", 0, 0, 200,
        "Highest leverage any order may use, 0 means the connection's own maximum.",
        chosen="range",
        unit="×"),
    _risk.number("risk.max_position_notional", "Max position size", 0.0, 0.0, 10_000_000.0,
        "Largest value of one position (amount × contract size × price) in the quote asset, 0 = no limit.",
        chosen="range",
        unit="quote"),
)

# Circuit breakers pause a connection on their own (actor circuit_breaker); open positions stay
# monitored and protected (D14), so a false alarm costs new entries, never protection.
_brk = _Section(_C.RISK, "Circuit breakers")
_RISK_BREAKERS = (
    _brk.integer("risk.error_burst_count", "Error burst: errors", 5, 2, 50,
        "Pause a connection when this many exchange errors happen within the error burst window.",
        chosen="range",
        unit="errors"),
    _brk.integer("risk.error_burst_window_s", "Error burst: window", 60, 10, 600,
        "Time window in which the error burst count is reached to pause a connection.",
        chosen="range",
        unit="s"),
    _brk.integer("risk.stream_lost_pause_s", "Lost market stream pause", 30, 5, 600,
        "Pause a connection when its market stream has not been live for this long.",
        chosen="range",
        unit="s"),
)

# fmt: on

SETTINGS: tuple[SettingSpec, ...] = (
    *_OVERALL_MAIN,
    *_OVERALL_CONNECTION,
    *_OVERALL_MONITORING,
    *_EXCHANGE_VOLUME,
    *_EXCHANGE_PF,
    *_EXCHANGE_TOGGLES,
    *_INDICATION_MAIN,
    *_INDICATION_OPTIMAL,
    *_INDICATION_AUTO,
    *_INDICATION_COMMON,
    *_STRATEGY_PROMOTION,
    *_STRATEGY_BASE,
    *_STRATEGY_TRAILING,
    *_STRATEGY_ADJUST,
    *_STRATEGY_PRESET,
    *_SYSTEM_ENGINE,
    *_SYSTEM_DATABASE,
    *_RISK,
    *_RISK_BREAKERS,
)
"""Every setting, in settings-page order (category, then sub-page)."""

SPEC_BY_KEY: Mapping[str, SettingSpec] = MappingProxyType({spec.key: spec for spec in SETTINGS})
if len(SPEC_BY_KEY) != len(SETTINGS):  # pragma: no cover - a declaration bug, caught at import
    raise ValueError("duplicate setting keys in SETTINGS")


def defaults() -> dict[str, Any]:
    """A fresh dict of every setting's default value (safe to mutate)."""
    return {spec.key: spec.default for spec in SETTINGS}


def validate(key: str, value: Any) -> Any:
    """Return ``value`` normalised for setting ``key``, or raise :class:`SettingValidationError`.

    An unknown key is rejected without echoing the value (a mistyped key could carry anything,
    for example a pasted API secret).
    """
    spec = SPEC_BY_KEY.get(key) if isinstance(key, str) else None
    if spec is None:
        raise SettingValidationError(f"Unknown setting {_show(key)}", key=str(key)[:80], spec=None)
    return spec.validate(value)

"""Command-line entry point. Qt is imported only by the commands that open a window."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cts_desktop import __version__

if TYPE_CHECKING:
    from cts_desktop.exchanges.candle_files import CandleArrays


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="database: an SQLite file path or URL, or postgresql://user@host/db "
        "(default: $CTS_DESKTOP_DB, then the saved setting, then the SQLite file in the data directory)",
    )
    parser = argparse.ArgumentParser(
        prog="cts-desktop",
        description="Desktop crypto trading system. Without a command it opens the window (paper mode).",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"cts-desktop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("gui", parents=[common], help="open the desktop window (the default)")
    selftest = commands.add_parser(
        "selftest",
        parents=[common],
        help="build the whole application offscreen, run it, shut it down and report its health",
    )
    selftest.add_argument("--seconds", type=float, default=3.0, help="how long to run (default 3)")
    selftest.add_argument("--json", action="store_true", help="print one JSON object")
    indicators = commands.add_parser(
        "indicators",
        help="write RSI, MACD, Bollinger, PSAR, ADX and ATR per candle of a candle file to CSV",
    )
    indicators.add_argument("--candles", required=True, type=Path, metavar="FILE", help="CSV or JSON candles")
    indicators.add_argument("--out", required=True, type=Path, metavar="OUT.csv")
    sweep = commands.add_parser(
        "sweep",
        help="run the TP x SL x trailing grid on a candle file (long only); one CSV row per configuration",
    )
    sweep.add_argument("--candles", required=True, type=Path, metavar="FILE", help="CSV or JSON candles")
    sweep.add_argument(
        "--signal", required=True, metavar="rsi:PERIOD:LEVEL", help="entry signal, e.g. rsi:14:30"
    )
    sweep.add_argument(
        "--pc", type=float, default=0.1, help="position cost in percent of price (default 0.1)"
    )
    sweep.add_argument(
        "--fee", type=float, default=0.1, help="fee per side in percent of value (default 0.1)"
    )
    sweep.add_argument("--out", required=True, type=Path, metavar="OUT.csv")
    return parser


def _load_candles_or_explain(path: Path) -> CandleArrays | None:
    """Read a candle file, printing its flaw report; None (after a clear message) when unusable."""
    from cts_desktop.exchanges.candle_files import CandleFileError, load_candles

    try:
        result = load_candles(path)
    except CandleFileError as exc:
        print(f"cts-desktop: {exc}", file=sys.stderr)
        return None
    except OSError as exc:
        print(f"cts-desktop: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return None
    print(result.report.summary(), file=sys.stderr)
    return result.candles


def _run_indicators(args: argparse.Namespace) -> int:
    from cts_desktop.engine.indicators.export import write_indicator_csv

    candles = _load_candles_or_explain(args.candles)
    if candles is None:
        return 2
    rows = write_indicator_csv(candles, args.out)
    print(f"wrote {rows} rows to {args.out}", file=sys.stderr)
    return 0


def _run_sweep(args: argparse.Namespace) -> int:
    from cts_desktop.engine.pseudo.sweep import parse_signal, run_sweep, write_sweep_csv

    try:
        signal = parse_signal(args.signal)
    except ValueError as exc:
        print(f"cts-desktop: {exc}", file=sys.stderr)
        return 2
    if not 0 < args.pc <= 100 or not 0 <= args.fee < 100:
        print("cts-desktop: --pc must be in (0, 100] and --fee in [0, 100) percent", file=sys.stderr)
        return 2
    candles = _load_candles_or_explain(args.candles)
    if candles is None:
        return 2
    result = run_sweep(candles, signal, pc=args.pc, fee_pct=args.fee)
    write_sweep_csv(result, args.out)
    print(f"wrote {len(result)} configurations to {args.out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    db_url: str | None = getattr(args, "db", None)
    command = args.command or "gui"
    if command == "indicators":
        return _run_indicators(args)
    if command == "sweep":
        return _run_sweep(args)
    if command == "selftest":
        from cts_desktop.app import run_selftest

        report, code = run_selftest(seconds=max(0.0, args.seconds), db_url=db_url)
        if args.json:
            print(json.dumps(report, indent=2, sort_keys=True))
        else:
            print(f"selftest: {'healthy' if code == 0 else 'UNHEALTHY'}")
            for error in report["errors"]:
                print(f"  error: {error}")
        return code
    from cts_desktop.app import run_gui

    return run_gui(db_url=db_url)


if __name__ == "__main__":
    sys.exit(main())

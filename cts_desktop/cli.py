"""Command-line entry point. Qt is imported only by the commands that open a window."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cts_desktop import __version__
from cts_desktop.shutdown_signals import install_shutdown_signals

if TYPE_CHECKING:
    from cts_desktop.domain.engine import EngineSnapshot
    from cts_desktop.engine.venues import ReplayFeed
    from cts_desktop.exchanges.candle_files import CandleArrays
    from cts_desktop.services import AppServices


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
    run = commands.add_parser(
        "run",
        parents=[common],
        help="run the trade engines of all enabled connections without a window (servers, crash tests)",
    )
    run.add_argument("--headless", action="store_true", help="run without a window (required)")
    run.add_argument(
        "--paper",
        action="store_true",
        help="run every engine in paper mode, even on connections switched to live "
        "(paper is the default; live can never be switched on from the command line)",
    )
    run.add_argument(
        "--replay",
        type=Path,
        action="append",
        metavar="FILE",
        help="take every engine's market data from this candle file (any supported format; repeat for "
        "more symbols) instead of the exchanges",
    )
    run.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="N",
        help="replay speed: market time per real time (default 1; 3600 = one hour a second; 0 = as fast as "
        "possible, where the engines' timed loops see only the newest 10,000 ticks per symbol)",
    )
    run.add_argument(
        "--seconds", type=float, default=None, metavar="N", help="stop gracefully after N seconds"
    )
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


HEADLESS_READY = "headless run: engines running"
"""Logged once the engines were started (crash tests and service managers wait for it)."""


def _run_headless(args: argparse.Namespace, db_url: str | None) -> int:
    """``cts-desktop run --headless``: the same services and coordinator as the window, no Qt."""
    if not args.headless:
        print("cts-desktop: 'run' needs --headless (the window is 'cts-desktop gui')", file=sys.stderr)
        return 2
    if args.speed < 0 or (args.seconds is not None and args.seconds < 0):
        print("cts-desktop: --speed and --seconds must not be negative", file=sys.stderr)
        return 2
    replay = None
    if args.replay:
        from cts_desktop.engine.venues import ReplayFeed
        from cts_desktop.exchanges.candle_files import CandleFileError

        try:
            replay = ReplayFeed.from_files(args.replay, args.speed)
        except (CandleFileError, ValueError) as exc:
            print(f"cts-desktop: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"cts-desktop: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
            return 2
    return asyncio.run(_headless_main(db_url, replay=replay, paper=args.paper, seconds=args.seconds))


async def _headless_main(
    db_url: str | None, *, replay: ReplayFeed | None, paper: bool, seconds: float | None
) -> int:
    from cts_desktop.logging_setup import LOG_FORMAT
    from cts_desktop.services import build_services
    from cts_desktop.storage.database import DatabaseError

    try:
        services = await build_services(
            db_url=db_url, console_logging=False, replay=replay, force_paper=paper
        )
    except DatabaseError as exc:
        print(f"cts-desktop could not start: {exc}", file=sys.stderr)
        return 1
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter(LOG_FORMAT))
    services.logging.add(console)  # behind the redaction filter, like every handler
    log = logging.getLogger("cts_desktop.headless")
    stop = asyncio.Event()
    remove_handlers = install_shutdown_signals(stop.set, log)
    coordinator = services.coordinator

    async def start_engines() -> None:
        # A headless run exists to run the engines: every enabled connection starts, as an
        # auto-start (one start path, with its retries), whatever the setting says.
        await services.start(auto_start=not stop.is_set())
        running = [
            f"{s.name} ({s.mode.value})" for s in coordinator.snapshots() if s.state.value == "running"
        ]
        log.info("%s: %s", HEADLESS_READY, ", ".join(running) or "none")
        if replay is not None:
            log.info(
                "market data: replay of %s at speed %s", ", ".join(replay.symbols), replay.speed or "max"
            )

    starter = asyncio.ensure_future(start_engines())
    waiter = asyncio.ensure_future(stop.wait())
    before: dict[str, EngineSnapshot] = {}
    try:
        done, _ = await asyncio.wait([starter, waiter], return_when=asyncio.FIRST_COMPLETED)
        if starter in done and not stop.is_set():
            starter.result()
            if seconds is not None:
                try:
                    await asyncio.wait_for(stop.wait(), seconds)
                except TimeoutError:
                    log.info("ran for %g s: shutting down gracefully", seconds)
            else:
                await stop.wait()
        before = {s.connection_id: s for s in coordinator.snapshots()}
    finally:
        waiter.cancel()
        await services.aclose()
        if not starter.done():
            starter.cancel()
        await asyncio.gather(starter, waiter, return_exceptions=True)
        remove_handlers()
    _print_summary(services, before)
    return 0


def _print_summary(services: AppServices, before: dict[str, EngineSnapshot]) -> None:
    """Per connection: its final state, and the cycles and health it had just before the stop."""
    print("summary (state after shutdown; cycles and health before it):")
    for after in services.coordinator.snapshots():
        running = before.get(after.connection_id, after)
        cycles = ", ".join(f"{c.name} {c.cycles}" for c in running.components) or "no cycles"
        line = f"  {after.name} [{after.exchange}, {running.mode.value}]: {after.state.value}"
        line += f"; health {running.health.value}; cycles: {cycles}"
        if running.reason and running.state.value == "error":
            line += f"; error: {running.reason}"
        print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    db_url: str | None = getattr(args, "db", None)
    command = args.command or "gui"
    if command == "indicators":
        return _run_indicators(args)
    if command == "sweep":
        return _run_sweep(args)
    if command == "run":
        return _run_headless(args, db_url)
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

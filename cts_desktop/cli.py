"""Command-line entry point. Qt is imported only by the commands that open a window."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from cts_desktop import __version__


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    db_url: str | None = getattr(args, "db", None)
    command = args.command or "gui"
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

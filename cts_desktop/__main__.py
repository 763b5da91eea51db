"""``python -m cts_desktop`` runs the same entry point as the ``cts-desktop`` script."""

from cts_desktop.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

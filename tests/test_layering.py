"""The one architectural rule: only cts_desktop/ui (and the composition root app.py) touch Qt."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cts_desktop"
QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph", "qasync")
ALLOWED = {"app.py"}


def _non_ui_modules() -> list[Path]:
    return [
        path
        for path in PACKAGE.rglob("*.py")
        if "ui" not in path.relative_to(PACKAGE).parts[:1] and path.name not in ALLOWED
    ]


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_qt_import_outside_ui_in_source() -> None:
    modules = _non_ui_modules()
    assert any("engine" in p.parts for p in modules) and any("storage" in p.parts for p in modules)
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(_imported_roots(path) & set(QT_MODULES)) for path in modules
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_every_non_ui_module_loads_no_qt() -> None:
    names = sorted(
        ".".join(("cts_desktop", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        for p in _non_ui_modules()
        if "migrations" not in p.parts
    )
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""The layers of docs/ARCHITECTURE.md hold: a package imports only packages of lower layers
(lazy imports inside functions included), no module grows past 400 lines, and the core imports
without the HTTP server, the LLM runtime or the speech engines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "omnifuse"

LAYERS: list[set[str]] = [
    {"omnifuse", "errors"},  # the root package holds only the version
    {
        "types",
        "registry",
        "fileio",
        "progress",
        "config",
        "io",
        "nn",
        "info",
        "lazy",
        "engines",
        "threads",
    },
    {"speech", "llm"},
    {"encoders"},
    {"data"},
    {"fusion", "heads", "tasks", "index", "eval"},
    {"models"},
    {"train", "export"},
    {"align", "sweep", "projector", "assistant", "generate"},
    {"tune"},
    {"serve"},
    {"cli"},
    {"__main__"},
]
"""Bottom to top; the same table is in docs/ARCHITECTURE.md."""

RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "omnifuse"


def imported_packages(path: Path) -> set[str]:
    """omnifuse packages a module imports, anywhere in it (lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "omnifuse":
                found |= {a.name if a.name in RANK else "omnifuse" for a in node.names}
            elif node.module.startswith("omnifuse."):
                found.add(package_of(node.module))
        elif isinstance(node, ast.Import):
            found |= {package_of(a.name) for a in node.names if a.name.startswith("omnifuse.")}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def module_package(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0] if len(parts) > 1 or parts[0] != "__init__" else "omnifuse"


def test_every_package_has_a_layer() -> None:
    packages = {module_package(p) for p in MODULES}
    assert packages <= set(RANK), sorted(packages - set(RANK))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_point_down(path: Path) -> None:
    own = module_package(path)
    upward = [name for name in imported_packages(path) - {own} if RANK.get(name, -1) >= RANK[own]]
    assert not upward, f"{own} (layer {RANK[own]}) imports {upward}"


def test_no_module_over_400_lines() -> None:
    long = {
        p.relative_to(PACKAGE).as_posix(): n
        for p in MODULES
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long


def test_the_core_imports_without_the_optional_runtimes() -> None:
    code = (
        "import sys, omnifuse.train, omnifuse.align, omnifuse.sweep, omnifuse.projector, "
        "omnifuse.index, omnifuse.eval; "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'llama_cpp', 'faster_whisper', "
        "'pocketsphinx', 'ray', 'pymilvus') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"

"""The layers hold: the library imports no front-end, front-ends use only the
library's public modules, and the page and the API do not import each other
(import-linter contracts in pyproject.toml).
The check is shown to fail when a forbidden import is added."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.settings import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("rag", "cli", "ui", "api", "serve", "eval", "benchmarks")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_of_the_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for package in PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "results"))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_contracts_hold(tmp_path):
    kept = lint_imports(copy_of_the_project(tmp_path))
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "4 kept, 0 broken" in kept.stdout


@pytest.mark.parametrize(
    "module, planted, contract, chain",
    [
        ("rag/pipeline.py", "ui.app", "The library imports no front-end", "rag.pipeline -> ui.app"),
        ("eval/harness.py", "rag.index", "Front-ends import only the library's public modules", None),
        ("api/app.py", "ui.app", "The page and the API do not import each other", "api.app -> ui.app"),
    ],
)
def test_a_planted_import_breaks_its_contract(tmp_path, module, planted, contract, chain):
    root = copy_of_the_project(tmp_path)
    source = root / module
    source.write_text(source.read_text() + f"\nimport {planted}  # noqa\n")
    broken = lint_imports(root)
    assert broken.returncode != 0
    assert f"{contract} BROKEN" in broken.stdout
    if chain:
        assert chain in broken.stdout


def import_cycles(package: str) -> list[list[str]]:
    """The groups of modules of ``package`` that import each other in a ring, at any depth
    (imports inside functions count too): Tarjan's strongly connected components of grimp's graph."""
    import grimp

    graph = grimp.build_graph(package)
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in imports[module]:
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            ring = []
            while True:
                member = stack.pop()
                ring.append(member)
                if member == module:
                    break
            if len(ring) > 1:
                cycles.append(sorted(ring))

    for module in imports:
        if module not in order:
            visit(module)
    return cycles


def test_the_library_has_no_import_cycle(tmp_path):
    assert import_cycles("rag") == []
    # A planted cycle is found: the paper model importing the corpus loader, which imports it.
    root = tmp_path / "copy"
    shutil.copytree(PROJECT_ROOT / "rag", root / "rag", ignore=shutil.ignore_patterns("__pycache__"))
    paper = root / "rag" / "paper.py"
    paper.write_text(paper.read_text() + "\n\ndef _planted():\n    import rag.corpus  # noqa\n")
    found = subprocess.run(
        [sys.executable, "-c", "from tests.test_architecture import import_cycles; print(import_cycles('rag'))"],
        cwd=root, env={"PYTHONPATH": f"{root}:{PROJECT_ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "rag.corpus" in found.stdout and "rag.paper" in found.stdout, found.stdout + found.stderr

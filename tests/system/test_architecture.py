"""The layout holds: import arrows run one way, no cycles, rooms stay small, the repository
stands alone (docs/architecture.md, decision 0011).

Imports are read from the source with ``ast`` (every ``import`` and ``from … import``, at
module level, inside functions and under ``TYPE_CHECKING`` alike), so a lazy import inside a
command cannot hide an arrow. The checker itself is tested on a small made-up tree first, so
that a checker that finds nothing cannot pass for a clean layout.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: import name → folder
PACKAGES = {
    "meter_drivers": "meter-drivers",
    "edge": "edge",
    "cloud": "cloud",
    "meterflow": "meterflow",
    "simulators": "simulators",
}
MAX_MODULE_LINES = 600
#: Modules directly in cloud/ besides __init__.py.
MAX_LOOSE_CLOUD_MODULES = 2
#: The one module that may import every package's models: Alembic's environment.
SCHEMA_COLLECTOR = "cloud.registry.migrations.env"
#: Rooms that point at each other (decision 0011, "Left as it is"): renewals read the latest
#: move-out scores while risk reads the lease ledger. No new pair may join this list.
KNOWN_ROOM_CYCLES = [["cloud.leases", "cloud.risk"]]


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.importer} → {self.imported} ({self.path}:{self.line})"


def project_modules(root: Path) -> dict[str, Path]:
    """Dotted module name → file, for every .py file of the five packages under ``root``."""
    modules = {}
    for top, folder in PACKAGES.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            parts = [top, *path.relative_to(base).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that ``name`` (a module or a name inside one) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports(modules: dict[str, Path]) -> Iterator[Import]:
    """Every import of one project module by another (a module never imports itself)."""
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                # ``from pkg import mod`` imports pkg.mod; ``from mod import name`` imports mod
                targets = [f"{source}.{alias.name}" for alias in node.names]
                if any(_owner(t, modules) == _owner(source, modules) for t in targets):
                    targets.append(source)
            else:
                continue
            for target in targets:
                if target.split(".")[0] not in PACKAGES:
                    continue
                owner = _owner(target, modules)
                if owner is not None and owner != importer:
                    yield Import(importer, owner, path, node.lineno)


def cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
        graph.setdefault(e.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def _room(module: str) -> str:
    """``cloud.leases.billing`` → ``cloud.leases``; other packages are one room each."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "cloud" and len(parts) > 1 else parts[0]


def _room_of_edge(module: str) -> str:
    """``edge.wire.mqtt`` → ``edge.wire`` (the contract package and its parts)."""
    return "edge.wire" if module == "edge.wire" or module.startswith("edge.wire.") else module


def layering_violations(edges: list[Import]) -> list[str]:
    """Arrows that break the one-way rules of docs/architecture.md."""
    bad = []
    for e in edges:
        a, b = _top(e.importer), _top(e.imported)
        why = None
        if a == "meter_drivers" and b != "meter_drivers":
            why = "meter_drivers imports nothing of ours"
        elif a == "edge" and b in ("cloud", "simulators", "meterflow"):
            why = "edge imports only edge and meter_drivers"
        elif a == "cloud" and b in ("meter_drivers", "simulators", "meterflow"):
            why = "cloud imports none of meter_drivers, simulators, meterflow"
        elif a == "cloud" and b == "edge" and _room_of_edge(e.imported) != "edge.wire":
            why = "cloud imports nothing of edge but edge.wire"
        elif a == "simulators" and b in ("cloud", "edge", "meterflow"):
            why = "simulators import only meter_drivers"
        elif b == "meterflow" and a != "meterflow":
            why = "only meterflow (the composition root) imports meterflow"
        elif a == "cloud" and _room(e.imported) == "cloud.web" and _room(e.importer) != "cloud.web":
            why = "services never import web code"
        elif (
            _room(e.importer) == "cloud.registry"
            and e.importer != SCHEMA_COLLECTOR
            and b == "cloud"
            and _room(e.imported) != "cloud.registry"
        ):
            why = "the registry imports no other package (only Alembic's env collects them)"
        if why:
            bad.append(f"{e}: {why}")
    return bad


# ----------------------------------------------------------------------------- the checker


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_finds_cycles_through_function_imports_and_every_forbidden_arrow(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        {
            "meter-drivers/__init__.py": "",
            "meter-drivers/codec.py": "from edge import wire\n",
            "edge/__init__.py": "",
            "edge/wire/__init__.py": "",
            "edge/wire/mqtt.py": "",
            "edge/commands.py": "",
            "edge/agent.py": "def f():\n    import cloud.ingest.service\n",
            "cloud/__init__.py": "",
            "cloud/ingest/__init__.py": "",
            "cloud/ingest/service.py": (
                "from edge.commands import x\nfrom ..leases import billing\n"
                "from edge.wire import y\nfrom edge.wire.mqtt import z\n"
            ),
            "cloud/leases/__init__.py": "",
            "cloud/leases/billing.py": "def g():\n    from cloud.ingest.service import h\n",
            "cloud/registry/__init__.py": "from cloud.leases.billing import Invoice\n",
            "cloud/web/__init__.py": "",
            "cloud/web/app.py": "from cloud.leases import billing\n",
            "meterflow/__init__.py": "",
            "meterflow/cli.py": "import cloud.web.app\n",
            "simulators/__init__.py": "from meterflow import cli\n",
        },
    )
    edges = list(imports(project_modules(tmp_path)))
    assert cycles(edges) == [["cloud.ingest.service", "cloud.leases.billing"]]
    found = "\n".join(layering_violations(edges))
    assert "meter_drivers.codec → edge.wire" in found
    assert "edge.agent → cloud.ingest.service" in found
    assert "cloud.ingest.service → edge.commands" in found
    assert "cloud.ingest.service → edge.wire" not in found
    assert "cloud.registry → cloud.leases.billing" in found
    assert "simulators → meterflow.cli" in found
    assert "cloud.web.app →" not in found and "meterflow.cli →" not in found


# ----------------------------------------------------------------------------- the tree


@pytest.fixture(scope="module")
def edges() -> list[Import]:
    return list(imports(project_modules(ROOT)))


def test_the_project_has_no_import_cycle(edges: list[Import]) -> None:
    assert len(edges) > 300  # the whole tree was read
    assert cycles(edges) == []


def test_imports_run_one_way(edges: list[Import]) -> None:
    assert layering_violations(edges) == []


def test_rooms_point_one_way(edges: list[Import]) -> None:
    """Between rooms (cloud's packages, and the other four packages) arrows run one way too,
    but for the one pair decision 0011 leaves as it is."""
    between = [
        Import(_room(e.importer), _room(e.imported), e.path, e.line)
        for e in edges
        if _room(e.importer) != _room(e.imported) and e.importer != SCHEMA_COLLECTOR
    ]
    assert cycles(between) == KNOWN_ROOM_CYCLES


def test_cloud_has_no_drawer_and_no_module_is_oversized() -> None:
    loose = sorted(p.name for p in (ROOT / "cloud").glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= MAX_LOOSE_CLOUD_MODULES, loose
    oversized = {
        str(path.relative_to(ROOT)): n
        for path in [*project_modules(ROOT).values(), *(ROOT / "tests").rglob("*.py")]
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert oversized == {}


def test_the_repository_stands_alone() -> None:
    """Nothing tracked points at reference material outside the clone."""
    outside = re.compile(r"\.\./" "shared|" "DOMAIN" r"\.md")
    skip = {".git", ".venv", "var", "build", "test-artifacts", "__pycache__", ".pytest_cache"}
    skip |= {".hypothesis", ".ruff_cache", "meterflow.egg-info"}
    hits = []
    for path in ROOT.rglob("*"):
        if skip & set(path.relative_to(ROOT).parts) or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        hits += [
            f"{path.relative_to(ROOT)}:{n}"
            for n, line in enumerate(text.splitlines(), 1)
            if outside.search(line)
        ]
    assert hits == []

"""The architecture contract: dependencies run one way (import-linter), no module imports one that
imports it back, the web side never loads the IBKR client or the simulator, and a worker for a
real gateway never loads the simulator."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("fetcher", "ibsim", "ibdata_project", "backtests", "ibdata")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / ".importlinter"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contract_holds():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """The project's packages and contract, copied where a test may break them."""
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def add_function(path: Path, body: str) -> None:
    path.write_text(path.read_text() + f"\n\ndef _hidden():\n{body}\n")


@pytest.mark.parametrize(
    ("module", "upward_import", "contract"),
    [
        # the circle the layout removed: services -> tasks (-> execution -> services)
        ("fetcher/services/fetch_runs.py", "from fetcher import tasks", "fetcher layers"),
        ("fetcher/domain/timeframes.py", "from fetcher.models import Bar", "fetcher layers"),
        ("fetcher/domain/timeframes.py", "import django", "Django-free"),
        ("ibsim/market.py", "from fetcher.domain import bars", "ibsim imports nothing"),
        ("fetcher/pacing/local.py", "import ib_insync", "only fetcher.ibkr.clients"),
        ("fetcher/ibkr/gateway.py", "import ib_async", "only fetcher.ibkr.clients"),
        ("fetcher/services/items.py", "from fetcher.ibkr import connect", "web and admin side"),
    ],
)
def test_an_import_hidden_in_a_function_breaks_it(project_copy, module, upward_import, contract):
    add_function(project_copy / module, f"    {upward_import}  # noqa")
    result = lint_imports(project_copy)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]
    assert [line for line in broken if contract in line], result.stdout


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Each module of `packages` under `root`, and the modules of theirs it imports: at the top,
    under TYPE_CHECKING or inside a function alike."""
    paths = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for module, path in paths.items():
        here = module if path.name == "__init__.py" else module.rpartition(".")[0]
        named = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                named.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    source = ".".join([*base, source] if source else base)
                for alias in node.names:  # `from package import module` names the module
                    inner = f"{source}.{alias.name}"
                    named.add(inner if inner in paths else source)
        graph[module] = set()
        for name in named:
            while name and name not in paths:  # a.b.c names the deepest module of ours
                name = name.rpartition(".")[0]
            if name and name != module:
                graph[module].add(name)
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (the strongly
    connected components of more than one module, by Tarjan's algorithm)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in order:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], order[imported])
        if low[module] == order[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return circles


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph(ROOT, PACKAGES)
    assert {module.partition(".")[0] for module in graph} == set(PACKAGES)
    assert "ibsim.gateway" in graph["ibsim.session"]
    assert import_circles(graph) == []


@pytest.mark.parametrize(
    ("module", "hidden_import", "circle"),
    [
        (
            "ibsim/session.py",
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .server import GatewaySimulator",
            ["ibsim.server", "ibsim.session"],
        ),
        (
            "ibsim/rules.py",
            "def _hidden():\n    from ibsim import gateway",
            ["ibsim.gateway", "ibsim.rules"],
        ),
        (
            "fetcher/domain/time.py",
            "def _hidden():\n    from fetcher.domain import ranges",
            ["fetcher.domain.ranges", "fetcher.domain.time"],
        ),
        (
            "ibsim/wire.py",
            "def _hidden():\n    import ibsim.messages",
            ["ibsim.messages", "ibsim.wire"],
        ),
    ],
)
def test_a_circle_under_type_checking_or_in_a_function_is_found(
    project_copy, module, hidden_import, circle
):
    path = project_copy / module
    path.write_text(path.read_text() + "\n" + hidden_import + "  # noqa\n")
    circles = import_circles(import_graph(project_copy, PACKAGES))
    assert [group for group in circles if set(circle) <= set(group)], circles


def test_every_module_of_ibsim_has_its_test_file():
    """Tests mirror modules: ibsim/x.py is tested in tests/ibsim/test_x.py (`__main__` in
    test_cli.py, through `python -m ibsim`)."""
    modules = {path.stem for path in (ROOT / "ibsim").glob("*.py")} - {"__init__", "__main__"}
    tested = {path.stem.removeprefix("test_") for path in (ROOT / "tests/ibsim").glob("test_*.py")}
    assert sorted(modules - tested) == []
    assert sorted(tested - modules) == []


def test_every_module_of_backtests_domain_has_its_test_file():
    """Tests mirror modules: backtests/domain/x.py is tested in tests/backtests/domain/test_x.py,
    strategies/sma.py in strategies/test_sma.py, the registry (strategies/__init__.py) in
    strategies/test_registry.py."""
    code, tests = ROOT / "backtests/domain", ROOT / "tests/backtests/domain"

    def names(folder: Path, pattern: str) -> set[Path]:
        return {path.relative_to(folder).with_suffix("") for path in folder.rglob(pattern)}

    modules = {
        m.with_name("registry") if m.name == "__init__" else m
        for m in names(code, "*.py")
        if m != Path("__init__")
    }
    tested = {t.with_name(t.name.removeprefix("test_")) for t in names(tests, "test_*.py")}
    assert sorted(map(str, modules - tested)) == []
    assert sorted(map(str, tested - modules)) == []


def fresh_interpreter(code: str, **env: str) -> list[str]:
    """Run `code` in a new Python with Django set up; it prints module names, one a line."""
    script = (
        "import django, sys\ndjango.setup()\n" + code + "\nprint('\\n'.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "ibdata_project.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def loaded(modules: list[str], package: str) -> list[str]:
    return [m for m in modules if m == package or m.startswith(package + ".")]


def test_the_web_side_loads_neither_the_client_nor_the_simulator(tmp_path):
    modules = fresh_interpreter(
        "from django.contrib import admin\n"
        "from django.test import Client\n"
        "from django.urls import get_resolver\n"
        "admin.autodiscover()\n"
        "get_resolver().url_patterns\n"
        "assert admin.site.is_registered(__import__('fetcher.models').models.FetchRun)\n"
        "Client().get('/admin/')\n",
        REDIS_URL="redis://127.0.0.1:6379/0",
        DATA_DIR=str(tmp_path),
    )
    assert "fetcher.admin" in modules and "fetcher.services.fetch_runs" in modules
    assert loaded(modules, "ib_insync") == [] and loaded(modules, "ib_async") == []
    assert loaded(modules, "ibsim") == []


def test_a_worker_for_a_real_gateway_does_not_load_the_simulator(tmp_path):
    modules = fresh_interpreter(
        # what a worker does at start-up: import every task module, build its gateway
        "from ibdata_project.celery import app\n"
        "app.loader.import_default_modules()\n"
        "assert 'fetcher.fetch_run' in app.tasks\n"
        "from fetcher.ibkr.connect import gateway_from_settings\n"
        "gateway_from_settings()\n",
        REDIS_URL="redis://127.0.0.1:6379/0",
        IBKR_HOST="127.0.0.1",
        IBKR_CLIENT="ib_insync",
        DATA_DIR=str(tmp_path),
    )
    assert "fetcher.execution.executor" in modules and "ib_insync" in modules
    assert loaded(modules, "ibsim") == [] and loaded(modules, "ib_async") == []


def test_a_worker_on_ib_async_loads_ib_async_alone(tmp_path):
    """IBKR_CLIENT=ib_async: the worker's gateway speaks through ib_async, and ib_insync stays
    out of the process."""
    modules = fresh_interpreter(
        "from ibdata_project.celery import app\n"
        "app.loader.import_default_modules()\n"
        "from fetcher.ibkr.connect import gateway_from_settings\n"
        "assert gateway_from_settings().lib.name == 'ib_async'\n",
        REDIS_URL="redis://127.0.0.1:6379/0",
        IBKR_HOST="127.0.0.1",
        IBKR_CLIENT="ib_async",
        DATA_DIR=str(tmp_path),
    )
    assert "ib_async" in modules and loaded(modules, "ib_insync") == []


def test_ibkr_host_sim_does_load_the_simulator(tmp_path):
    modules = fresh_interpreter(
        "from fetcher.ibkr.connect import gateway_address\n"
        "host, port, simulated = gateway_address()\n"
        "assert simulated and port > 0\n",
        IBKR_HOST="sim",
        DATA_DIR=str(tmp_path),
    )
    assert "ibsim.server" in modules

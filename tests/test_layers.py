"""The house's layers hold: core/ is the floor, nothing below the web app imports it or the serving package,
the simulator stands apart, and no modules import each other in a circle (imports inside functions count)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "storage", "collectors", "operators", "billing", "energy", "reports", "workorders", "grid",
            "notify", "dashboard", "serve", "simulator")
# What each package may import of the project (DESIGN.md, Layers; docs/ARCHITECTURE.md)
BELOW_THE_WEB = ("storage", "collectors", "operators", "billing", "energy", "reports", "workorders", "grid", "notify")
SIMULATOR_MAY_NOT = ("storage", "collectors", "operators", "billing", "energy", "reports", "workorders", "grid", "notify",
                     "dashboard", "serve")


def project_modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg in packages:
        for f in (root / pkg).rglob("*.py") if (root / pkg).is_dir() else ():
            parts = f.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = f
    if (root / "app.py").exists():
        mods["app"] = root / "app.py"
    return mods


def import_graph(root: Path, packages=PACKAGES) -> dict[str, set[str]]:
    """module -> project modules it imports, anywhere in the file (top level, functions, branches)."""
    mods = project_modules(root, packages)

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".")
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                # `from pkg import module` imports the module; `from module import name` the module
                targets = [f"{prefix}.{a.name}" for a in node.names] + [prefix]
            for target in targets:
                found = resolve(target)
                if found and found != mod:
                    graph[mod].add(found)
                    break
    return graph


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for mod, deps in sorted(graph.items()):
        top = mod.split(".")[0]
        for dep in sorted(deps):
            dep_top = dep.split(".")[0]
            if top == "core" and dep_top != "core":
                out.append(f"{mod} imports {dep}: core/ is the floor and imports no other package of the project")
            elif top in BELOW_THE_WEB and dep_top in ("dashboard", "serve"):
                out.append(f"{mod} imports {dep}: {top}/ sits below the web app and the serving process")
            elif top == "simulator" and dep_top in SIMULATOR_MAY_NOT:
                out.append(f"{mod} imports {dep}: the simulator is an independent implementation of the field")
    return out


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def test_the_project_keeps_its_layers():
    assert layer_violations(import_graph(ROOT)) == []


def test_no_project_modules_import_each_other_in_a_circle():
    assert import_circles(import_graph(ROOT)) == []


def test_the_check_sees_a_planted_upward_import_and_a_circle_inside_functions(tmp_path):
    def write(rel: str, text: str) -> None:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    for pkg in ("core", "storage", "billing", "dashboard"):
        write(f"{pkg}/__init__.py", "")
    write("core/clock.py", "def now():\n    from storage.engine import open_engine\n")
    write("storage/engine.py", "def open_engine():\n    pass\n")
    write("billing/ledger.py", "def sell():\n    from billing import accounts\n")
    write("billing/accounts.py", "from dashboard.i18n import t\nfrom .ledger import sell\n")
    write("dashboard/i18n.py", "t = None\n")
    graph = import_graph(tmp_path, ("core", "storage", "billing", "dashboard"))
    assert layer_violations(graph) == [
        "billing.accounts imports dashboard.i18n: billing/ sits below the web app and the serving process",
        "core.clock imports storage.engine: core/ is the floor and imports no other package of the project"]
    assert import_circles(graph) == [["billing.accounts", "billing.ledger"]]

"""The package's import graph: floors that import only the floors below them, and no cycles.

Every `import pynas...` counts, inside functions too (an import deferred for speed is still a
dependency). The floors, lowest first, are the pipeline's stages: an architecture is data, lowered
to ops, organised into spaces, run natively, stored, profiled, predicted; the command line on top."""
import ast
from pathlib import Path

import pynas

PACKAGE = Path(pynas.__file__).resolve().parent
FLOORS = ["_core", "arch", "cell", "timing", "ui", "presets", "data", "ir", "space", "torch_cells", "torch_builder", "native", "runtimes", "store",
          "profiling", "predictor", "verify", "train", "search", "ship", "cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(name: str) -> str | None:
    """The pynas module a dotted name refers to (a module, or a name inside one)."""
    while name and name != "pynas":
        path = PACKAGE.parent / name.replace(".", "/")
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return name
        name = name.rpartition(".")[0]
    return "pynas" if name == "pynas" else None


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        targets = graph.setdefault(source, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.startswith("pynas"):
                    target = resolve(name)
                    if target and target != source:
                        targets.add(target)
    return graph


def floor(module: str) -> int:
    parts = module.split(".")
    return -1 if len(parts) == 1 else FLOORS.index(parts[1])


def test_every_module_has_a_floor():
    unknown = sorted({m.split(".")[1] for m in edges() if "." in m and m.split(".")[1] not in FLOORS})
    assert not unknown, f"add these to FLOORS: {unknown}"


def test_floors_import_only_floors_below():
    wrong = [f"{source} -> {target}" for source, targets in edges().items() for target in sorted(targets)
             if target != "pynas" and floor(target) > floor(source)]
    assert not wrong, "upward imports:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph = edges()
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"

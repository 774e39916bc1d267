"""The package's layering, read from the source with `ast` (every import, at module top or inside a function).

* No import cycle between top-level parts of `hipbridge` (subpackages and top-level modules): a cycle
  means neither side can be understood, tested or replaced alone. The cycles that existed when this
  test was written are listed in KNOWN_CYCLES, to be broken by issue 14's later items; a new cycle,
  a known one that grows, or a listed one that no longer exists, fails.
* Production code never reaches the demo: only `hipbridge.demo` itself and the `hipbridge.cli`
  commands (`hipbridge demo …`, `platform simulate`, `display demo`) import `hipbridge.demo`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "plugins" / "hipbridge"
DAGS = Path(__file__).resolve().parents[1] / "dags"

# Strongly connected groups left to break (issue 14); a new cycle, a known one that grows, or a known one
# that is gone but still listed fails. Already broken: platform ↔ sharing, platform ↔ recognition and
# display ↔ platform (the platform simulator and its data generator moved to hipbridge.demo), crypto ↔
# platform (the YAML loader moved to hipbridge.yamlconfig), {io, settings, spec} (derive_ops_schema moved
# into settings; `spec check` is handed the connection lookup instead of importing io), and {display,
# quality, recognition, sharing} (the quality report, whose 互认 section reads recognition's KPI, moved
# above both to reporting/quality.py), and display ↔ recognition (the service serving both moved above
# them to workstation/service.py). None is left.
KNOWN_CYCLES: list[frozenset[str]] = []


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "hipbridge" else None


def _imports(path: Path, module: str) -> list[str]:
    """Absolute names of the hipbridge modules `path` imports (relative imports resolved)."""
    out = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}   # annotations only: no import at run time
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                out.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                out.append(node.module)
    return [n for n in out if n == "hipbridge" or n.startswith("hipbridge.")]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in _modules().items():
        src = _part(module)
        if src is None:
            continue
        for target in _imports(path, module):
            dst = _part(target)
            if dst and dst != src:
                graph.setdefault(src, set()).add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def test_cycle_detection_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_new_import_cycle_between_parts_of_the_package():
    found = cycles(part_graph())
    new = [sorted(c) for c in found if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, f"import cycles between parts of hipbridge: {new}"
    stale = [sorted(known) for known in KNOWN_CYCLES if not any(c & known for c in found)]
    assert not stale, f"cycles broken but still listed in KNOWN_CYCLES (remove them): {stale}"
    graph = part_graph()
    assert "sharing" not in graph.get("platform", set()), "platform must not import sharing (the cycle is broken)"
    assert "io" not in graph.get("settings", set()) and "io" not in graph.get("spec", set()), \
        "settings and spec sit below io"
    assert "recognition" not in graph.get("quality", set()), "the quality report's 互认 section lives in reporting/"
    assert found == [], f"import cycles between parts of hipbridge: {found}"
    assert "recognition" not in graph.get("display", set()), "the service serving both lives in workstation/"


def test_production_code_never_imports_the_demo():
    offenders = []
    for module, path in _modules().items():
        if _part(module) in ("demo", "cli"):
            continue
        offenders += [f"{module} -> {t}" for t in _imports(path, module) if _part(t) == "demo"]
    for path in DAGS.rglob("*.py"):
        offenders += [f"{path.name} -> {t}" for t in _imports(path, "dags") if _part(t) == "demo"]
    assert not offenders, offenders
    # the test-only sample specs are out of the package
    assert not (PACKAGE / "sharing" / "sample_specs.py").exists()
    assert not (PACKAGE / "platform" / "simulator.py").exists()

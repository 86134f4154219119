"""The import graph between subpackages follows the layering: infrastructure never imports algorithms, the loop
never imports models, and models never import the agents that compose them."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "worldmodels"
HIGHER = {"agents", "run", "cli", "analysis"}
FORBIDDEN = {
    "agents": {"run", "cli", "analysis"},  # an agent never reaches into the loop
    "run": {"models", "behaviours", "planning", "reports"},  # the loop only writes what agents give it
    "models": HIGHER | {"behaviours"},
    "behaviours": HIGHER | {"models"},  # behaviours take any model through a contract
    "planning": HIGHER | {"models", "behaviours"},  # planners take the model as callables
    "reports": HIGHER,
    "nets": HIGHER | {"models", "behaviours", "planning", "reports", "envs", "replay"},
    "envs": HIGHER | {"models", "behaviours", "planning", "reports", "replay", "nets"},
    "replay": HIGHER | {"models", "behaviours", "planning", "reports", "envs", "nets"},
}


def import_graph() -> dict[str, set[str]]:
    """subpackage -> the worldmodels subpackages its modules import."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) < 2:
            continue
        imported = graph.setdefault(parts[0], set())
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                bits = name.split(".")
                if bits[0] == "worldmodels" and len(bits) > 1 and bits[1] != parts[0]:
                    imported.add(bits[1])
    return graph


def test_no_subpackage_imports_across_the_layering():
    graph = import_graph()
    assert {"agents", "run", "models", "behaviours", "planning", "reports"} <= set(graph)
    crossings = {pkg: sorted(graph[pkg] & forbidden) for pkg, forbidden in FORBIDDEN.items() if graph[pkg] & forbidden}
    assert not crossings, f"imports against the layering: {crossings}"

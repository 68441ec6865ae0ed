"""The package's modules import one another without cycles.

Every `import` and `from ... import` in the package counts, including the
ones inside functions (a deferred import hides a cycle; it does not
remove it). A package's `__init__` importing its own children is not a
cycle; a child importing something that imports it back is.
"""

import ast
import os

import pixel_models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pixel_models.__file__)))


def package_modules():
    """Maps each module's dotted name to its file."""
    found = {}
    top = os.path.dirname(pixel_models.__file__)
    for folder, _, files in os.walk(top):
        for file in files:
            if not file.endswith(".py"):
                continue
            path = os.path.join(folder, file)
            name = os.path.relpath(path, ROOT)[: -len(".py")].replace(
                os.sep, "."
            )
            found[name.removesuffix(".__init__")] = path
    return found


def imported_names(node, module, is_package):
    """The dotted names one import statement of `module` asks for."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".")
        if not is_package:
            parts = parts[:-1]
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
    return [f"{base}.{alias.name}" for alias in node.names]


def import_graph(found):
    """Module -> the package's modules it imports, anywhere in its file."""
    graph = {name: set() for name in found}
    for name, path in found.items():
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in imported_names(
                node, name, path.endswith("__init__.py")
            ):
                while target and target not in found:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph):
    """One cycle of `graph` as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_the_checker_finds_a_cycle_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [
        "a",
        "b",
        "c",
        "a",
    ]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_relative_imports_resolve_to_package_modules():
    tree = ast.parse("from ..inputs import image_shape\nfrom . import base")
    first, second = tree.body
    assert "pixel_models.inputs.image_shape" in imported_names(
        first, "pixel_models.models.pixelcnn", False
    )
    assert "pixel_models.models.base" in imported_names(
        second, "pixel_models.models", True
    )


def test_the_package_has_no_import_cycle():
    found = package_modules()
    graph = import_graph(found)
    assert "pixel_models.models.base" in graph["pixel_models.models.pixelcnn"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)

"""The package's shape: no import cycle, no private name used outside
its module, no function over 80 lines of code.

Every `import` and `from ... import` in the package counts, including the
ones inside functions (a deferred import hides a cycle; it does not
remove it). A package's `__init__` importing its own children is not a
cycle; a child importing something that imports it back is.
"""

import ast
import io
import os
import tokenize

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


def readme_layers(text):
    """The package layout block of README: a list of lines, each a list
    of module patterns (`name` or `package.*`, relative to the package)."""
    block = text.split("### Package layout", 1)[1].split("```")[1]
    return [
        line.split("|")[0].split()
        for line in block.strip().splitlines()
        if line.strip()
    ]


def layer_of(module, layers):
    """The index of the README line naming `module` (exact names before
    `package.*` patterns), or None."""
    name = module.removeprefix("pixel_models.")
    for exact in (True, False):
        for index, patterns in enumerate(layers):
            for pattern in patterns:
                if exact and pattern == name:
                    return index
                package = pattern.removesuffix(".*")
                if (
                    not exact
                    and pattern.endswith(".*")
                    and (name == package or name.startswith(package + "."))
                ):
                    return index
    return None


def upward_imports(graph, layers):
    """`(module, imported)` for each import from a line of the layout to a
    line above it; modules the layout does not name raise ValueError."""
    missing = [
        m for m in graph if m != "pixel_models" and layer_of(m, layers) is None
    ]
    if missing:
        raise ValueError(f"modules missing from README's layout: {missing}")
    return sorted(
        (module, target)
        for module, targets in graph.items()
        if module != "pixel_models"
        for target in targets
        if target != "pixel_models"
        and layer_of(target, layers) < layer_of(module, layers)
    )


def test_the_layering_check_finds_an_upward_import():
    layers = [["cli.*"], ["a", "b.*"], ["b.low"]]
    graph = {
        "pixel_models.cli.train": {"pixel_models.a"},
        "pixel_models.a": {"pixel_models.b.x", "pixel_models.b.low"},
        "pixel_models.b.x": {"pixel_models.a"},  # same line: allowed
        "pixel_models.b.low": {"pixel_models.b.x"},  # upwards
    }
    assert upward_imports(graph, layers) == [
        ("pixel_models.b.low", "pixel_models.b.x")
    ]
    graph["pixel_models.new"] = set()
    try:
        upward_imports(graph, layers)
    except ValueError as error:
        assert "pixel_models.new" in str(error)
    else:
        raise AssertionError("a module missing from the layout passed")


def test_readme_draws_the_real_layering():
    with open(os.path.join(ROOT, "README.md")) as f:
        layers = readme_layers(f.read())
    assert ["runs"] == [p for p in layers[-1] if p == "runs"]
    graph = import_graph(package_modules())
    assert upward_imports(graph, layers) == []


def private_uses(found):
    """`(module, name)` for each private name a module takes from another
    of the package's modules, by import or as `module._name`."""
    uses = []
    for name, path in found.items():
        with open(path) as f:
            tree = ast.parse(f.read())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                is_package = path.endswith("__init__.py")
                for alias, full in zip(
                    node.names,
                    imported_names(node, name, is_package),
                    strict=True,
                ):
                    if full in found:
                        aliases[alias.asname or alias.name] = full
                    elif alias.name.startswith("_") and full.startswith(
                        "pixel_models"
                    ):
                        uses.append((name, full))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in found and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                uses.append((name, f"{aliases[node.value.id]}.{node.attr}"))
    return uses


def test_no_module_uses_another_modules_private_names():
    found = package_modules()
    assert private_uses(found) == []


def test_the_private_name_check_sees_both_forms(tmp_path):
    found = {
        "pixel_models.a": str(tmp_path / "a.py"),
        "pixel_models.b": str(tmp_path / "b.py"),
    }
    (tmp_path / "a.py").write_text("def _hidden():\n    pass\n")
    (tmp_path / "b.py").write_text(
        "from pixel_models.a import _hidden\n"
        "from pixel_models import a\n"
        "a._hidden()\n"
    )
    assert sorted(private_uses(found)) == [
        ("pixel_models.b", "pixel_models.a._hidden"),
        ("pixel_models.b", "pixel_models.a._hidden"),
    ]


# The numba kernels of the fused scans: each is one compiled parallel loop
# whose arrays shared by the threads are indexed, never passed on (see
# their docstrings: a slice or call took an atomic reference count that
# made two threads slower than one).
LONG_KERNELS = {
    ("pixel_models/layers/fused_scan.py", "_forward"),
    ("pixel_models/layers/fused_scan.py", "_backward"),
}
MAX_LINES = 80


def code_lines(source, node):
    """Lines of function `node` that hold code: not blank, not comments,
    not its docstring."""
    text = "\n".join(source.splitlines()[node.lineno - 1 : node.end_lineno])
    lines = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT}
    skip |= {tokenize.DEDENT, tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(text + "\n").readline):
        if token.type not in skip:
            lines.update(range(token.start[0], token.end[0] + 1))
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        start = first.lineno - node.lineno + 1
        lines -= set(range(start, first.end_lineno - node.lineno + 2))
    return len(lines)


def long_functions(folders):
    """`(path, name, lines)` of every function over `MAX_LINES`."""
    found = []
    for top in folders:
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for file in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(folder, file)
                with open(path) as f:
                    source = f.read()
                for node in ast.walk(ast.parse(source)):
                    if isinstance(
                        node, (ast.FunctionDef, ast.AsyncFunctionDef)
                    ):
                        n = code_lines(source, node)
                        if n > MAX_LINES:
                            rel = os.path.relpath(path, ROOT)
                            found.append((rel, node.name, n))
    return found


def test_line_counting_skips_docstrings_comments_and_blanks():
    source = (
        'def f(x):\n    """Doc.\n\n    More.\n    """\n\n'
        "    # note\n    y = (\n        x\n    )\n    return y\n"
    )
    (node,) = ast.parse(source).body
    assert code_lines(source, node) == 5


def test_no_function_is_over_80_lines_of_code():
    folders = ["pixel_models", "tuning", "examples", "benchmarks"]
    found = long_functions(folders)
    kernels = {(path, name) for path, name, _ in found}
    assert kernels <= LONG_KERNELS, [
        f for f in found if f[:2] not in LONG_KERNELS
    ]

"""lessonlib's modules in layers: each imports only modules below it, so there is no circle.

Every import counts, at the top of a file or inside a function (an import inside a function is still an
import: it can hide a circle or an upward dependency). A new module must be given its place in LAYERS.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lessonlib"

# lowest first; a module may import any module of a lower layer, none of its own or a higher one
LAYERS = [
    ["settings"],                                 # the environment variables, read in one place
    ["storage", "runtime", "snapshot"],           # files shared safely; where lessonlib runs; putting state back
    ["policy"],                                   # how a run uses the hardware, decided once
    ["models", "metrics", "schedules", "recorder", "viz"],
    ["weights", "distributed", "transforms", "steps"],   # weights; several processes; how a step runs here
    ["data"],
    ["datasets", "training"],
    ["precompute", "lr_finder", "checkpoints", "convviz", "interpret"],
    ["learner"],
    ["keras_compare", "widgets", "doctor", "glossary"],
    ["exercises", "__init__"],
    ["__main__"],
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _reexports():
    """{name: module} for what `lessonlib/__init__.py` re-exports (`from lessonlib import ConvLearner`)."""
    found = {}
    for node in ast.parse((PACKAGE / "__init__.py").read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lessonlib."):
            found.update({a.asname or a.name: node.module.split(".")[1] for a in node.names})
    return found


def imports(path):
    """The lessonlib modules that `path` imports, anywhere in the file: {module: line}."""
    modules, reexports, found = {p.stem for p in PACKAGE.glob("*.py")}, _reexports(), {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "lessonlib":
            for a in node.names:
                target = a.name if a.name in modules else reexports.get(a.name, "__init__")
                found.setdefault(target, node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lessonlib."):
            found.setdefault(node.module.split(".")[1], node.lineno)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("lessonlib."):
                    found.setdefault(a.name.split(".")[1], node.lineno)
    found.pop(path.stem, None)
    return found


def test_every_module_has_a_layer():
    missing = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in LEVEL)
    assert not missing, f"give these modules a place in LAYERS: {missing}"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_imports_go_only_downward(path):
    upward = {m: line for m, line in imports(path).items() if LEVEL.get(m, 99) >= LEVEL[path.stem]}
    assert not upward, (f"{path.name} (layer {LEVEL[path.stem]}) imports from its own layer or above: "
                        + ", ".join(f"{m} (layer {LEVEL.get(m)}, line {line})" for m, line in upward.items()))


def test_there_is_no_circle():
    graph = {p.stem: set(imports(p)) for p in PACKAGE.glob("*.py")}
    done, path = set(), []

    def visit(node):
        if node in path:
            raise AssertionError("a circle of imports: " + " -> ".join(path[path.index(node):] + [node]))
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_the_checks_see_imports_inside_functions(tmp_path):
    module = tmp_path / "policy.py"
    module.write_text("def f():\n    from lessonlib.models import batchnorm_layers\n    import lessonlib.learner\n")
    assert imports(module) == {"models": 2, "learner": 3}


def test_only_the_settings_module_reads_the_environment():
    """Every environment variable lessonlib uses is read (and checked) in `settings`, nowhere else."""
    readers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                     if p.name != "settings.py" and ("os.environ" in p.read_text() or "getenv" in p.read_text()))
    assert readers == []


def test_settings_name_every_bad_value_at_once():
    from lessonlib.settings import Settings, SettingsError
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({"LESSONLIB_SMOKE": "ja", "LESSONLIB_PRECISION": "fp8", "LESSONLIB_HOME": "/x"})
    assert "LESSONLIB_SMOKE='ja'" in str(caught.value) and "LESSONLIB_PRECISION='fp8'" in str(caught.value)
    ok = Settings.from_environ({"LESSONLIB_PRECISION": " BF16 ", "LESSONLIB_IMAGE_CACHE_MB": "0", "OTHER": "x"})
    assert (ok.precision, ok.image_cache_mb, ok.smoke, ok.weights) == ("bf16", 0.0, False, "imagenet")


def test_settings_follow_a_change_of_the_environment(monkeypatch):
    """A notebook's `%env LESSONLIB_SMOKE=1` after lessonlib was imported takes effect at the next call."""
    from lessonlib.settings import settings
    monkeypatch.setenv("LESSONLIB_SMOKE", "0")
    first = settings()
    assert first.smoke is False and settings() is first   # parsed once while nothing changes
    monkeypatch.setenv("LESSONLIB_SMOKE", "1")
    assert settings().smoke is True

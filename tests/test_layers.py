"""The engine imports nothing outside `lessonlib.engine`; the lesson imports the engine, never the other way.

That is the sentence of the docs (DESIGN.md, `lessonlib/engine/__init__.py`) and what these tests enforce:
every module of `lessonlib/engine/` imports only modules of `lessonlib/engine/` (no allowance), and lessonlib's
modules sit in layers, the engine's all below the lesson's, each importing only modules below it, so there is
no circle. Every import counts, at the top of a file or inside a function (an import inside a function is still
an import: it can hide a circle or an upward dependency). A new module must be given its place in LAYERS.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lessonlib"
ENGINE = ["engine.fonts", "engine.settings", "engine.interrupts", "engine.language", "engine.classlog", "engine.storage", "engine.runtime",
          "engine.snapshot", "engine.networks", "engine.policy",
          "engine.weights", "engine.distributed", "engine.steps", "engine.checkpoints", "engine.doctor", "engine.tables"]

# lowest first; a module may import any module of a lower layer, none of its own or a higher one
ENGINE_LAYERS = [
    ["engine.settings", "engine.fonts", "engine.interrupts"], # the environment variables; fonts; what Ctrl-C does
    ["engine.language", "engine.tables"],                     # messages and tables in the reader's language
    ["engine.storage", "engine.runtime", "engine.snapshot",   # files shared safely; where it runs; state put back;
     "engine.networks"],                                      # the networks' plumbing (lessonlib.models's code)
    ["engine.classlog", "engine.policy"],                     # the class log; how a run uses the hardware, decided once
    ["engine.weights", "engine.distributed", "engine.steps"], # weights; processes; how a step runs here
    ["engine.checkpoints", "engine.doctor"],                  # learn.save/load; python -m lessonlib doctor
]
LESSON_LAYERS = [
    ["metrics"],                                              # the lesson's measures and the notes' numbers
    ["models", "schedules", "recorder", "viz", "images"],
    ["transforms", "folders"],
    ["data"],
    ["datasets", "training"],
    ["precompute", "lr_finder", "convviz", "interpret", "export"],
    ["learner"],
    ["keras_compare", "widgets", "glossary", "photos"],
    ["exercise_bank"],
    ["exercises", "__init__", "app"],
    ["class_report"],
    ["__main__"],
]
LAYERS = ENGINE_LAYERS + LESSON_LAYERS
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def module_name(path):
    """"training" for lessonlib/training.py, "engine.policy" for lessonlib/engine/policy.py."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts) if parts != ("engine", "__init__") else "engine.__init__"


def _modules():
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def _reexports():
    """{name: module} for what `lessonlib/__init__.py` re-exports (`from lessonlib import ConvLearner`)."""
    found = {}
    for node in ast.parse((PACKAGE / "__init__.py").read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lessonlib."):
            found.update({a.asname or a.name: node.module[len("lessonlib."):] for a in node.names})
    return found


def imports(path):
    """The lessonlib modules that `path` imports, anywhere in the file: {module: line}."""
    modules, reexports, found = set(_modules()), _reexports(), {}

    def add(dotted, line, names=()):
        inner = dotted[len("lessonlib."):] if dotted.startswith("lessonlib.") else ""
        for a in names:   # `from lessonlib import training`, `from lessonlib.engine import policy`
            candidate = f"{inner}.{a}" if inner else a
            if candidate in modules:
                found.setdefault(candidate, line)
            elif not inner:
                found.setdefault(reexports.get(a, "__init__"), line)
        if inner and inner in modules:
            found.setdefault(inner, line)

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and (node.module == "lessonlib"
                                                                  or node.module.startswith("lessonlib.")):
            add(node.module, node.lineno, [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("lessonlib."):
                    add(a.name, node.lineno)
    found.pop(module_name(path) if path.is_relative_to(PACKAGE) else path.stem, None)
    found.pop("engine.__init__", None)   # the engine's __init__ holds no code
    return found


def test_every_module_has_a_layer():
    missing = sorted(m for m in _modules() if m not in LEVEL and m != "engine.__init__")
    assert not missing, f"give these modules a place in LAYERS: {missing}"


def test_the_engine_holds_the_machinery():
    assert sorted(m for m in _modules() if m.startswith("engine.") and m != "engine.__init__") == sorted(ENGINE)


@pytest.mark.parametrize("name", sorted(ENGINE))
def test_the_engine_imports_nothing_outside_the_engine(name):
    outside = {m: line for m, line in imports(_modules()[name]).items() if not m.startswith("engine.")}
    assert not outside, (f"{name} imports from outside lessonlib.engine: "
                         + ", ".join(f"{m} (line {line})" for m, line in outside.items()))


def test_the_engine_layers_hold_the_engine_and_only_it():
    assert sorted(m for layer in ENGINE_LAYERS for m in layer) == sorted(ENGINE)
    assert not any(m.startswith("engine.") for layer in LESSON_LAYERS for m in layer)


@pytest.mark.parametrize("name", sorted(m for m in _modules() if m != "engine.__init__"))
def test_imports_go_only_downward(name):
    path = _modules()[name]
    upward = {m: line for m, line in imports(path).items() if LEVEL.get(m, 99) >= LEVEL[name]}
    assert not upward, (f"{name} (layer {LEVEL[name]}) imports from its own layer or above: "
                        + ", ".join(f"{m} (layer {LEVEL.get(m)}, line {line})" for m, line in upward.items()))


def test_there_is_no_circle():
    graph = {name: set(imports(p)) for name, p in _modules().items()}
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
    module.write_text("def f():\n    from lessonlib.models import batchnorm_layers\n    import lessonlib.learner\n"
                      "    from lessonlib.engine import storage\n")
    assert imports(module) == {"models": 2, "learner": 3, "engine.storage": 4}


def test_only_the_settings_module_reads_the_environment():
    """Every environment variable lessonlib uses is read (and checked) in `settings`, nowhere else."""
    readers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                     if p.name != "settings.py" and "__pycache__" not in p.parts and ("os.environ" in p.read_text() or "getenv" in p.read_text()))
    assert readers == []


def test_settings_name_every_bad_value_at_once():
    from lessonlib.engine.settings import Settings, SettingsError
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({"LESSONLIB_SMOKE": "ja", "LESSONLIB_PRECISION": "fp8", "LESSONLIB_HOME": "/x"})
    assert "LESSONLIB_SMOKE='ja'" in str(caught.value) and "LESSONLIB_PRECISION='fp8'" in str(caught.value)
    ok = Settings.from_environ({"LESSONLIB_PRECISION": " BF16 ", "LESSONLIB_IMAGE_CACHE_MB": "0", "OTHER": "x"})
    assert (ok.precision, ok.image_cache_mb, ok.smoke, ok.weights) == ("bf16", 0.0, False, "imagenet")


def test_doctor_names_a_bad_setting_instead_of_failing(monkeypatch, capsys):
    from lessonlib.__main__ import main
    monkeypatch.setenv("LESSONLIB_SMOKE", "maybe")
    assert main(["doctor"]) == 1
    assert "PROBLEM: LESSONLIB_SMOKE='maybe': use 1 (yes) or 0 (no)" in capsys.readouterr().out


def test_settings_follow_a_change_of_the_environment(monkeypatch):
    """A notebook's `%env LESSONLIB_SMOKE=1` after lessonlib was imported takes effect at the next call."""
    from lessonlib.engine.settings import settings
    monkeypatch.setenv("LESSONLIB_SMOKE", "0")
    first = settings()
    assert first.smoke is False and settings() is first   # parsed once while nothing changes
    monkeypatch.setenv("LESSONLIB_SMOKE", "1")
    assert settings().smoke is True

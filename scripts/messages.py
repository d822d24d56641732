"""Every message lessonlib can show, and its translations (lessonlib/locale/<lang>.json).

A message is an English template passed to `say(...)` or `problem(...)` (lessonlib.engine.language). This script
finds them all: the literal templates of those calls in lessonlib's source, and the texts that reach them through
a name (exercise hints, the finder's rules and region labels, Pillow plug-in advice, the layout help); then it
says which have no translation, which translations are left over, and which do not keep the English fields.

    python scripts/messages.py check           # exit status 1 when a translation is missing, stale or wrong
    python scripts/messages.py missing zh      # the templates without a translation, as JSON to fill in
"""
import ast
import json
import re
import string
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "lessonlib"
LOCALE = LIBRARY / "locale"
CALLS = ("say", "problem")

# The calls whose template is not written where they are: where each one's texts come from.
DYNAMIC = {
    ("exercises.py", "PREDICTIONS[key].question"): "PREDICTIONS questions",
    ("exercises.py", "prediction.why"): "PREDICTIONS explanations",
    ("exercises.py", "exercise.hint"): "EXERCISES hints",
    ("lr_finder.py", "RULES[name]"): "lr_finder.RULES",
    ("widgets.py", "self.label"): "lr_finder region labels",
    ("widgets.py", "describe_region(self.lrf, lr)[0]"): "lr_finder region labels",
    ("folders.py", "PLUGIN_HELP[p.suffix.lower()]"): "images.PLUGIN_HELP",
    ("folders.py", "LAYOUT_HELP"): "folders.LAYOUT_HELP",
    ("photos.py", "what"): "Cleaner decisions",
    ("interpret.py", "title"): "interpret.TITLES",
    ("viz.py", "name"): "viz.RUN_NAMES",
    ("viz.py", "suptitle"): "viz.SUPTITLES",
    ("viz.py", "when"): "metrics.NOTES_TEXTS",
    ("metrics.py", "text"): "metrics.NOTES_TEXTS",
    ("metrics.py", "name"): "metrics.ACCURACY_NAMES",
}


def calls():
    """[(file, line, template or None, the first argument's source)] of every say/problem call in lessonlib."""
    found = []
    for path in sorted(LIBRARY.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CALLS and node.args:
                first = node.args[0]
                literal = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
                found.append((path.relative_to(LIBRARY).as_posix(), node.lineno, literal,
                              ast.get_source_segment(source, first), sorted(k.arg for k in node.keywords)))
    return found


def dynamic_texts():
    """{source name: [templates]} for the DYNAMIC calls."""
    from lessonlib import exercise_bank, folders, images, interpret, lr_finder, metrics, viz
    return {
        "PREDICTIONS questions": [p.question for p in exercise_bank.PREDICTIONS.values()],
        "PREDICTIONS explanations": [p.why for p in exercise_bank.PREDICTIONS.values()],
        "EXERCISES hints": [e.hint for e in exercise_bank.EXERCISES.values()],
        "lr_finder.RULES": list(lr_finder.RULES.values()),
        "lr_finder region labels": list(lr_finder.REGIONS),
        "images.PLUGIN_HELP": sorted(set(images.PLUGIN_HELP.values())),
        "folders.LAYOUT_HELP": [folders.LAYOUT_HELP],
        "Cleaner decisions": ["keep", "set aside", "relabel"],
        "interpret.TITLES": list(interpret.TITLES),
        "viz.RUN_NAMES": list(viz.RUN_NAMES),
        "viz.SUPTITLES": list(viz.SUPTITLES),
        "metrics.NOTES_TEXTS": list(metrics.NOTES_TEXTS),
        "metrics.ACCURACY_NAMES": list(metrics.ACCURACY_NAMES),
    }


def templates():
    """{template: [where it is used]} for every message lessonlib can show."""
    found, dynamic = {}, dynamic_texts()
    for file, line, literal, source, _ in calls():
        if literal is not None:
            found.setdefault(literal, []).append(f"{file}:{line}")
        elif (file.split("/")[-1], source) in DYNAMIC:
            for text in dynamic[DYNAMIC[file.split("/")[-1], source]]:
                found.setdefault(text, []).append(f"{file}:{line} ({DYNAMIC[file.split('/')[-1], source]})")
    return found


def fields(template):
    """The sorted replacement fields of a template, with conversion and format spec: ['n', 'path!r', 'x:.2f']."""
    return sorted(f"{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}"
                  for _, name, spec, conv in string.Formatter().parse(template) if name is not None)


def kept_literally(template):
    """What a translation must keep as written: backticked names, names with a dot or an underscore (LESSONLIB_
    variables too), `name=value` settings, and numbers (outside the fields)."""
    bare = re.sub(r"\{[^{}]*\}", " ", template)
    words = set(re.findall(r"`[^`]+`", bare))
    words |= {w for w in re.findall(r"[A-Za-z_][\w.]*[_.][\w.]*\w|[A-Za-z_]\w*\(\)", re.sub(r"`[^`]+`", " ", bare))
              if w not in ("e.g", "i.e")}
    words |= set(re.findall(r"\b[A-Za-z_]\w*=[\w.'\"-]*\w", re.sub(r"`[^`]+`", " ", bare)))   # precompute=True
    words |= set(re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.])", re.sub(r"`[^`]+`", " ", bare)))
    return sorted(words)


def problems(lang):
    """Everything that keeps the `lang` catalog from covering every message exactly."""
    catalog = json.loads((LOCALE / f"{lang}.json").read_text(encoding="utf-8"))
    found, used = [], templates()
    for file, line, literal, source, _ in calls():
        if literal is None and (file.split("/")[-1], source) not in DYNAMIC:
            found.append(f"{file}:{line}: say/problem of {source!r}: write the template there, or list where its "
                         f"texts come from in scripts/messages.py DYNAMIC")
    for template, where in sorted(used.items()):
        if template not in catalog:
            found.append(f"{where[0]}: no {lang} translation of {template!r}")
            continue
        text = catalog[template]
        if fields(text) != fields(template):
            found.append(f"{where[0]}: the {lang} text of {template!r} has fields {fields(text)}, the English "
                         f"{fields(template)}")
        missing = [w for w in kept_literally(template) if w not in text]
        if missing:
            found.append(f"{where[0]}: the {lang} text of {template!r} lacks {missing}")
        try:
            text.format(**{f.split("!")[0].split(":")[0]: 1.5 for f in fields(text)})
        except (ValueError, IndexError, KeyError) as e:
            if "format code" not in str(e) and "Unknown format" not in str(e):
                found.append(f"{where[0]}: the {lang} text of {template!r} is not a valid template: {e}")
    for template in sorted(set(catalog) - set(used)):
        found.append(f"{lang}: {template!r} is no longer used by lessonlib: remove it")
    return found


def main(argv):
    command = argv[0] if argv else "check"
    if command == "missing":
        lang = argv[1] if len(argv) > 1 else "zh"
        path = LOCALE / f"{lang}.json"
        catalog = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        todo = {t: "" for t in sorted(templates()) if t not in catalog}
        print(json.dumps(todo, ensure_ascii=False, indent=1))
        return 0
    if command == "check":
        found = [p for lang in sorted(p.stem for p in LOCALE.glob("*.json")) for p in problems(lang)]
        for p in found:
            print(p)
        print(f"{len(templates())} messages; " + ("every one translated" if not found else f"{len(found)} problem(s)"))
        return 1 if found else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

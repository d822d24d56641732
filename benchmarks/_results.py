"""Print a benchmark's numbers and keep them as JSON in benchmarks/results/."""
import json
from pathlib import Path


def save_result(name, result):
    """Print `result` (a dict) and write it to benchmarks/results/<name>.json; returns the path."""
    print(json.dumps(result, indent=2))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path

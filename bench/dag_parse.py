"""Benchmark: DAG parse time of `dags/` (every spec validated), this tree against a baseline commit.

The baseline is another commit of the same repository (default `main`), extracted with `git archive`
into a temporary folder, parsed with the same `table_specs/` as this tree. Each parse is a fresh
process building Airflow's own DagBag over the whole `dags/` folder; the two trees alternate so
machine load hits both alike. Reported: the median over --repeat parses of the sum of per-file parse
durations Airflow records (what `airflow dags report` prints), and the ratio this / baseline.
Writes bench/results/dag_parse.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
stats = {s.file.rsplit('/', 1)[-1]: s.duration.total_seconds() for s in bag.dagbag_stats}
print(json.dumps({"dags": len(bag.dags), "errors": len(bag.import_errors), "files": stats}))
"""


def extract(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "plugins", "dags"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def parse_once(tree: Path, airflow_home: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "plugins"), "AIRFLOW_HOME": str(airflow_home),
           "HIPBRIDGE_SPECS": str(ROOT / "table_specs"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", PARSE, str(tree / "dags")], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--baseline", default="main", help="git ref to compare with (default main)")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = extract(args.baseline, Path(tmp) / "baseline")
        runs: dict[str, list[dict]] = {"this": [], "baseline": []}
        for _ in range(args.repeat):
            runs["this"].append(parse_once(ROOT, Path(tmp) / "af"))
            runs["baseline"].append(parse_once(base, Path(tmp) / "af"))
    out = {"repeat": args.repeat, "baseline_ref": args.baseline}
    for name, rs in runs.items():
        totals = [sum(r["files"].values()) for r in rs]
        tables = [r["files"].get("hipbridge_tables.py", 0.0) for r in rs]
        out[name] = {"dags": rs[0]["dags"], "import_errors": rs[0]["errors"],
                     "total_s_median": round(statistics.median(totals), 4),
                     "total_s_range": [round(min(totals), 4), round(max(totals), 4)],
                     "tables_file_s_median": round(statistics.median(tables), 4)}
    out["ratio_total"] = round(out["this"]["total_s_median"] / out["baseline"]["total_s_median"], 3)
    out["ratio_tables_file"] = round(out["this"]["tables_file_s_median"] / out["baseline"]["tables_file_s_median"], 3)
    print(json.dumps(out, indent=2))
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "dag_parse.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

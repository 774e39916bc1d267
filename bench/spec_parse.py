"""Benchmark: loading every table spec (what each DAG file does at parse time) as the standard grew.

Baseline in the same run: the same loader over the specs as they were before issue 15 (git commit
160175c, 610 columns), against the working tree's specs (every column of the collection standard).
Best of `--repeat` loads each. Output: bench/results/spec_parse.json with milliseconds, columns and
the ratio; the per-column cost is printed too, so a non-linear growth shows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from hipbridge.spec import load_specs

BASELINE_COMMIT = "160175c"


def best_of(paths: list[Path], repeat: int) -> list[tuple[float, int]]:
    """Best time per path; the loads alternate between the paths so machine load hits both alike."""
    best = [float("inf")] * len(paths)
    columns = [0] * len(paths)
    for _ in range(repeat):
        for i, path in enumerate(paths):
            t0 = time.perf_counter()
            specs = load_specs(path)
            best[i] = min(best[i], time.perf_counter() - t0)
            columns[i] = sum(len(s.columns) for s in specs.specs.values())
    return list(zip(best, columns, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(f"git -C {ROOT} archive {BASELINE_COMMIT} table_specs | tar -x -C {tmp}", shell=True,
                       check=True)
        (base_s, base_cols), (now_s, now_cols) = best_of([Path(tmp) / "table_specs", ROOT / "table_specs"],
                                                         args.repeat)
    out = {"baseline": {"commit": BASELINE_COMMIT, "ms": round(base_s * 1000, 1), "columns": base_cols},
           "now": {"ms": round(now_s * 1000, 1), "columns": now_cols},
           "ratio": round(now_s / base_s, 2), "per_column_ratio": round((now_s / now_cols) / (base_s / base_cols), 2)}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "spec_parse.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""Benchmark: `Catalog.apply` on 1,000,000 values (200,000 rows × 5 coded columns) vs plain `Series.map`.

The baseline maps each column with `Series.map(dict)` from the same approved mappings — the least a
hand-written conform step would do. `apply` additionally fills the five standard-name columns,
classifies every unmapped value under its column's policy and counts it. Best of --repeat runs.
Writes bench/results/mapping.json: {"values", "seconds", "pandas_map_seconds", "ratio_vs_pandas_map"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from hipbridge.mapping import load_catalog
from hipbridge.spec import TableSpec

ROOT = Path(__file__).resolve().parents[1]
# (target column, name column, local set, unmapped policy)
COLUMNS = [
    ("XBDM", "XBMC", "his_sex", "quarantine"),
    ("MZDM", "MZMC", "his_nation", "keep"),
    ("HYZKDM", "HYZKMC", "his_marital", "other"),
    ("YYTJDM", "YYTJMC", "his_route", "keep"),
    ("ZDDM", "ZDMC", "his_diag", "keep"),
]


def build_spec() -> TableSpec:
    cols = [{"name": "ID", "label": "流水号", "type": "varchar(32)", "from": "id"}]
    for name, name_col, local, policy in COLUMNS:
        cols.append({"name": name, "label": name, "type": "varchar(64)", "from": name.lower(),
                     "codes": {"local": local, "name_column": name_col, "unmapped": policy}})
        cols.append({"name": name_col, "label": name_col, "type": "varchar(200)"})
    return TableSpec.model_validate({
        "table": "bench_mapping", "label": "对码基准", "source": {"system": "his", "connection": "his", "query": "x"},
        "target": {"name": "BENCH", "primary_key": ["ID"]}, "columns": cols})


def build_frame(catalog, rows: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {"ID": [f"R{i}" for i in range(rows)]}
    for name, _, local, _ in COLUMNS:
        codes = [r.local_code for r in catalog.sets[local].rows] + ["??"]   # one unmapped value
        p = np.full(len(codes), 0.999 / (len(codes) - 1))
        p[-1] = 0.001
        values = rng.choice(np.array(codes, dtype=object), size=rows, p=p)
        values[rng.random(rows) < 0.01] = None                                # some empty cells
        data[name] = pd.array(values, dtype="str")
    return pd.DataFrame(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--values", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "mapping.json"))
    args = ap.parse_args(argv)
    rows = args.values // len(COLUMNS)
    catalog = load_catalog(ROOT / "mappings", "demo")
    spec = build_spec()
    frame = build_frame(catalog, rows)
    lookups = {name: catalog.sets[local].lookup(catalog.apply_statuses) for name, _, local, _ in COLUMNS}

    def run_pandas() -> pd.DataFrame:
        out = frame.copy(deep=False)
        for name, *_ in COLUMNS:
            out[name] = frame[name].map(lookups[name])
        return out

    def run_apply():
        return catalog.apply(frame, spec)

    run_apply(), run_pandas()  # warm caches (resolvers, pyarrow kernels)
    ours, base = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        result = run_apply()
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_pandas()
        base.append(time.perf_counter() - t)
    seconds, pandas_seconds = min(ours), min(base)
    out = {"values": rows * len(COLUMNS), "seconds": round(seconds, 4), "pandas_map_seconds": round(pandas_seconds, 4),
           "ratio_vs_pandas_map": round(seconds / pandas_seconds, 3)}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"apply: {seconds:.3f}s for {out['values']:,} values ({out['values'] / seconds / 1e6:.1f} M/s); "
          f"Series.map: {pandas_seconds:.3f}s; ratio {out['ratio_vs_pandas_map']:.2f}× (target ≤ 1.5×)")
    print("counts:", {k: {kk: vv for kk, vv in v.items() if vv} for k, v in result.counts.items()})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the quality engine on the demo hospital.

1. Builds the demo (HIS/LIS/PACS SQLite) at --scale (default 1), runs every table's pipeline
   (`hipbridge.pipeline.run.sync_table`) into a fresh front-end, timing the quality gate inside it.
   The pipeline has no switch to disable the gate, so the gate call is timed separately and
   gate_overhead_ratio = pipeline time / (pipeline time − gate time)  (target ≤ 1.3).
2. Runs the whole report (every rule over every front-end table + HTML + XLSX) in a child
   process, so its peak RSS is the report's own.

Writes bench/results/quality.json: {"report_seconds", "report_peak_rss_mb", "gate_overhead_ratio", …}.
    python bench/quality.py [--scale 1] [--days 3] [--db URL] [--gx]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "quality.json"


def _peak_rss_mb() -> float:
    """This process's own peak RSS. Not getrusage: Linux carries ru_maxrss over execve, so a child
    would report the parent's peak (the pipeline's pandas frames); VmHWM belongs to the new image."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _report_child(engine_kind: str) -> None:
    """Runs in a child process: the whole report over the front-end; prints its JSON timing line."""
    from hipbridge.io.engines import default_frontend_url, engine_for, home
    from hipbridge.quality.config import load_config
    from hipbridge.reporting.quality import write_report
    from hipbridge.settings import ops_schema_name
    from hipbridge.spec import load_specs

    t0 = time.perf_counter()
    specs = load_specs().require_valid()
    cfg = load_config()
    engine = engine_for(default_frontend_url(), ops_schema_name(specs.defaults, default_frontend_url()))
    if engine_kind == "gx":
        from hipbridge.quality.gx import check_database_gx

        outcome = check_database_gx(engine, specs, cfg=cfg, kind="report")
    else:
        from hipbridge.quality.check import check_database

        outcome = check_database(engine, specs, cfg=cfg, kind="report")
    t_check = time.perf_counter() - t0
    paths = write_report(engine, specs, outcome, cfg, home() / "reports")
    seconds = time.perf_counter() - t0
    rss_mb = _peak_rss_mb()
    print(json.dumps({"seconds": round(seconds, 3), "check_seconds": round(t_check, 3),
                      "peak_rss_mb": round(rss_mb, 1), "rules": len(outcome.results),
                      "failed": sum(1 for r in outcome.results if r.status == "Failed"),
                      "overall": outcome.scores.get("overall"), "html": str(paths["html"])}))


def _report(env: dict, engine_kind: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--report-child", engine_kind], env=env, capture_output=True,
                         text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"report child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--db", default=None, help="front-end URL (default: embedded SQLite in a temporary home)")
    ap.add_argument("--gx", action="store_true", help="also time the report through Great Expectations")
    ap.add_argument("--home", default=None, help="hipbridge home to use (default: a temporary folder)")
    ap.add_argument("--results", default=str(RESULTS), help="where to write the JSON (default bench/results/quality.json)")
    ap.add_argument("--report-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.report_child:
        _report_child(args.report_child)
        return 0

    home = Path(args.home or tempfile.mkdtemp(prefix="hb_bench_quality_"))
    os.environ["HIPBRIDGE_HOME"] = str(home)
    if args.db:
        os.environ["HIPBRIDGE_FRONTEND_URL"] = args.db
    env = dict(os.environ)

    from hipbridge.airflow.embedded import dependency_order
    from hipbridge.demo import build
    from hipbridge.pipeline import run as pipeline
    from hipbridge.pipeline.context import Context

    t0 = time.perf_counter()
    build(home / "demo", days=args.days, scale=args.scale)
    build_s = time.perf_counter() - t0
    ctx = Context.create()
    ctx.ensure_frontend()

    gate_seconds: dict[str, float] = {}
    real_gate = pipeline.gate

    def timed_gate(c, batch):
        t = time.perf_counter()
        try:
            return real_gate(c, batch)
        finally:
            gate_seconds[batch.table_id] = gate_seconds.get(batch.table_id, 0.0) + time.perf_counter() - t

    pipeline.gate = timed_gate   # measure only; the pipeline's behaviour is unchanged
    per_table = {}
    failed: dict[str, str] = {}
    for table in dependency_order(ctx.specs):
        t = time.perf_counter()
        try:
            res = pipeline.sync_table(table, ctx=ctx)
        except Exception as exc:  # noqa: BLE001 - a table the pipeline cannot load is reported, not fatal
            failed[table] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            gate_seconds.pop(table, None)
            print(f"{table}: pipeline failed: {failed[table]}", flush=True)
            continue
        per_table[table] = {"seconds": round(time.perf_counter() - t, 3), "status": res.status,
                            "extracted": res.extracted, "published": res.published,
                            "gate_seconds": round(gate_seconds.get(table, 0.0), 3)}
        print(f"{table}: {res.summary()} gate {gate_seconds.get(table, 0):.2f}s", flush=True)
    pipe_s = sum(t["seconds"] for t in per_table.values())   # tables that ran end to end
    pipeline.gate = real_gate
    gate_s = sum(gate_seconds.values())
    ratio = pipe_s / (pipe_s - gate_s) if pipe_s > gate_s else None

    report = _report(env, "sql")
    result = {
        "report_seconds": report["seconds"],
        "report_peak_rss_mb": report["peak_rss_mb"],
        "gate_overhead_ratio": round(ratio, 3) if ratio else None,
        "scale": args.scale, "days": args.days, "tables": len(per_table),
        "rows_extracted": sum(t["extracted"] for t in per_table.values()),
        "pipeline_seconds": round(pipe_s, 3), "gate_seconds": round(gate_s, 3),
        "report_check_seconds": report["check_seconds"], "report_rules": report["rules"],
        "report_failed_rules": report["failed"], "report_overall": report["overall"],
        "demo_build_seconds": round(build_s, 3), "frontend": ctx.engine.url.get_backend_name(),
        "per_table": per_table, "pipeline_failures": failed,
    }
    if args.gx:
        gx = _report(env, "gx")
        result["report_seconds_gx"] = gx["seconds"]
        result["report_peak_rss_mb_gx"] = gx["peak_rss_mb"]
    out_path = Path(args.results)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "per_table"}, ensure_ascii=False, indent=2))
    print(f"gate overhead ratio {result['gate_overhead_ratio']} (target ≤ 1.3); written to {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

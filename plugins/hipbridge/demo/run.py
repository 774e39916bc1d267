"""`make demo` / `hipbridge demo run`: build the demo hospital and run every table DAG through embedded Airflow.

Demo only: production code never imports `hipbridge.demo` (tests/test_layering.py).
"""

from __future__ import annotations

from hipbridge.airflow.embedded import airflow_env, run_dags
from hipbridge.demo import build
from hipbridge.demo.build import reset_demo_frontend
from hipbridge.io.engines import home
from hipbridge.pipeline.context import Context
from hipbridge.redact import mask_url
from hipbridge.status import format_table, table_status


def run_demo(days: int, scale: float, seed: int = 7, env: dict | None = None, tables: list[str] | None = None) -> int:
    """`make demo`: build the demo hospital, create the front-end, run every table DAG (or `tables`), print a summary."""
    out = home() / "demo"
    print(f"building the demo hospital in {out} (days={days}, scale={scale}, seed={seed}) …", flush=True)
    summary = build(out, seed=seed, days=days, scale=scale, register=True)
    reset = reset_demo_frontend()
    if reset:
        print(f"a new demo source: the demo front-end and its operations state start again "
              f"({', '.join(p.name for p in reset)} removed)", flush=True)
    ctx = Context.create()
    ctx.ensure_frontend()
    conf = None
    if reset is None:  # a configured front-end is never deleted: read the new source in full instead
        print("HIPBRIDGE_FRONTEND_URL is set: that front-end is not reset; every table runs in full mode", flush=True)
        conf = {"run": {"mode": "full"}}

    print(f"front-end: {mask_url(ctx.engine.url)}; running the table DAGs through "
          f"Airflow (AIRFLOW_HOME={airflow_env(env)['AIRFLOW_HOME']}) …", flush=True)
    rc = run_dags(tables, env=env, conf=conf, reconcile=(summary["window"]["start"], summary["window"]["end"]))
    print()
    print(format_table(table_status(ctx)))
    print(f"\n数据量记录汇总 / 数据对账表: {summary['window']['start']} … {summary['window']['end']} "
          f"(hipbridge reconcile 可重算)")
    return rc

"""Run the table DAGs through Airflow on the embedded default (SQLite metadata, no server).

`airflow standalone` forks a scheduler, API server and 32 workers (about 5 GB here); a demo on a
hospital's modest front-end machine needs none of that. We run each DAG with `DAG.test()` in one
process: real Airflow DAG runs, recorded in Airflow's metadata database, visible later in the UI
(`airflow api-server` with the same AIRFLOW_HOME), at a few seconds per DAG instead of ~18 s.

Run as `python -m hipbridge.airflow.embedded [table …]`; the caller sets AIRFLOW_HOME first (see
`airflow_env`), because Airflow reads its configuration when it is imported.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from hipbridge.io.engines import PROJECT_ROOT, home


def airflow_env(base: dict | None = None) -> dict:
    env = dict(base if base is not None else os.environ)
    af_home = Path(env.get("AIRFLOW_HOME") or home() / "airflow")
    env.setdefault("AIRFLOW_HOME", str(af_home))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    env.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__CORE__PARALLELISM", "4")  # a front-end machine has 2–4 cores
    env.setdefault("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    env.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    bin_dir = str(Path(sys.executable).parent)  # airflow spawns `airflow …` subprocesses
    if bin_dir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def migrate(env: dict) -> None:
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stderr[-3000:]}")


def run_dags(tables: list[str] | None = None, conf: dict | None = None, env: dict | None = None,
             reconcile: tuple[str, str] | None = None) -> int:
    """Migrate the metadata DB, then run the table DAGs in a child process with that environment.

    `reconcile=(from, to)` also runs the control-table DAG for those hospital days afterwards.
    """
    env = airflow_env(env)
    migrate(env)
    cmd = [sys.executable, "-m", "hipbridge.airflow.embedded", *(tables or [])]
    if conf:
        cmd += ["--conf", json.dumps(conf)]
    if reconcile:
        cmd += ["--reconcile", json.dumps({"from": reconcile[0], "to": reconcile[1]})]
    return subprocess.run(cmd, env=env, check=False).returncode


def dependency_order(specs) -> list[str]:
    """Parents before children (by `references`), so referential checks see loaded parents."""
    deps = {t: {c.reference_target[0] for c in s.columns if c.reference_target} - {t}
            for t, s in specs.specs.items()}
    order: list[str] = []
    seen: set[str] = set()

    def visit(t: str, path: tuple = ()) -> None:
        if t in seen or t in path or t not in deps:
            return
        for d in sorted(deps[t]):
            visit(d, path + (t,))
        seen.add(t)
        order.append(t)

    for t in sorted(deps):
        visit(t)
    return order


def _main(argv: list[str]) -> int:
    def option(name: str) -> dict | None:
        nonlocal argv
        if name not in argv:
            return None
        i = argv.index(name)
        value = json.loads(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
        return value

    conf = option("--conf") or {"run": {"mode": "incremental"}}
    reconcile = option("--reconcile")
    from hipbridge.airflow.factory import build_all, build_reconciliation_dag, load_for_dags

    specs = load_for_dags()
    for err in specs.errors:
        print(f"spec error: {err}", file=sys.stderr)
    dags = build_all(specs)
    tables = argv or dependency_order(specs)
    logging.getLogger("airflow").setLevel(logging.WARNING)
    failed = []
    for table in tables:
        dag = dags.get(f"hipbridge_{table}")
        if dag is None:
            print(f"{table}: no DAG (invalid or unknown spec)", file=sys.stderr)
            failed.append(table)
            continue
        run = dag.test(logical_date=None, run_conf=conf)
        state = str(getattr(run, "state", "unknown"))
        print(f"[airflow] {dag.dag_id}: {state}", flush=True)
        if not state.endswith("success"):
            failed.append(table)
    if reconcile:
        run = build_reconciliation_dag(specs).test(logical_date=None, run_conf=reconcile)
        print(f"[airflow] hipbridge_reconciliation: {run.state}", flush=True)
        if not str(run.state).endswith("success"):
            failed.append("reconciliation")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


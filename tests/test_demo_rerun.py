"""The demo's knobs work a second time: a rebuilt demo source resets the demo front-end (issue 11.9).

Before, a second `make demo DEMO_DAYS=… DEMO_SCALE=…` kept the first run's watermark (the time it
ran) and read none of the new, older demo rows. Both through the CLI as a subprocess, at a tiny scale.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HIPBRIDGE_CONN_", "HIPBRIDGE_FRONTEND_URL", "HIPBRIDGE_OPS_SCHEMA", "HIPBRIDGE_SPECS",
                                "AIRFLOW"))}
    return {**env, "HIPBRIDGE_HOME": str(tmp_path / "home"), "AIRFLOW_HOME": str(tmp_path / "airflow")}


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "hipbridge.cli", *args], env=env, capture_output=True, text=True,
                          check=False, cwd=ROOT)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    return done


def _source_rows(home: Path, table: str) -> int:
    from hipbridge.spec import load_specs

    specs = load_specs(ROOT / "table_specs")
    spec = specs.get(table)
    sql = specs.query_text(spec).strip().rstrip(";")
    eng = create_engine(f"sqlite:///{home / 'demo' / (spec.source.connection + '.db')}")
    with eng.connect() as c:
        n = c.execute(text(f"SELECT COUNT(*) FROM ({sql}) src")).scalar()
    eng.dispose()
    return int(n)


def _status(env: dict, table: str) -> dict:
    rows = json.loads(_cli(env, "status", "--json").stdout)["tables"]
    return next(r for r in rows if r["table"] == table)


def test_second_demo_run_with_other_knobs_uploads_the_new_demo_data(tmp_path):
    env = _env(tmp_path)
    home = tmp_path / "home"
    first = _cli(env, "demo", "run", "--days", "1", "--scale", "0.002", "--tables", "op_visit")
    assert "[airflow] hipbridge_op_visit: " in first.stdout
    one_day = _status(env, "op_visit")["rows"]
    assert one_day == _source_rows(home, "op_visit") > 0
    again = _cli(env, "demo", "run", "--days", "3", "--scale", "0.002", "--tables", "op_visit")
    assert "the demo front-end and its operations state start again" in again.stdout
    three_days = _source_rows(home, "op_visit")
    status = _status(env, "op_visit")
    assert three_days > one_day
    assert status["rows"] == three_days, status
    assert status["last_run"]["extracted"] == three_days


def test_demo_init_resets_the_embedded_front_end(tmp_path):
    env = _env(tmp_path)
    home = tmp_path / "home"
    _cli(env, "demo", "init", "--days", "1", "--scale", "0.002")
    _cli(env, "run", "op_visit")
    assert _status(env, "op_visit")["rows"] == _source_rows(home, "op_visit")
    init = _cli(env, "demo", "init", "--days", "2", "--scale", "0.002")
    assert "演示前置机及其运行状态已重置" in init.stdout
    status = _status(env, "op_visit")
    assert status["last_run"] is None and not status["rows"]  # front-end and ops state start again

"""History backfill: windows from the command line (with a progress bar) and as mapped Airflow tasks."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime

import pytest
from hipbridge.airflow.embedded import airflow_env, migrate
from hipbridge.cli import main as cli_main
from hipbridge.io import state
from hipbridge.pipeline.backfill import Window, split_windows
from hipbridge.pipeline.context import Context
from hipbridge.pipeline.failures import PipelineError
from sqlalchemy import create_engine, text

from tests.minihospital import MiniHospital


def test_split_windows_covers_the_range_in_order():
    ws = split_windows(date(2026, 11, 1), date(2026, 11, 10), days=3)
    assert ws == [Window(date(2026, 11, 1), date(2026, 11, 3)), Window(date(2026, 11, 4), date(2026, 11, 6)),
                  Window(date(2026, 11, 7), date(2026, 11, 9)), Window(date(2026, 11, 10), date(2026, 11, 10))]
    assert split_windows(date(2026, 11, 1), date(2026, 11, 1)) == [Window(date(2026, 11, 1), date(2026, 11, 1))]
    assert Window.from_dict(ws[0].to_dict()) == ws[0]
    with pytest.raises(PipelineError):
        split_windows(date(2026, 11, 2), date(2026, 11, 1))


def test_cli_backfill_runs_one_batch_per_window_and_carries_the_watermark(tmp_path, hb_home, monkeypatch, capsys):
    mini = MiniHospital(tmp_path / "mini")
    monkeypatch.setenv("HIPBRIDGE_CONN_MINI", mini.url)
    db = f"sqlite:///{tmp_path / 'frontend.db'}"
    code = cli_main(["backfill", "visit", "--from", "2026-11-19", "--to", "2026-11-21", "--specs", str(mini.specs),
                     "--db", db])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "3/3 window(s) published, rows extracted 4" in out.out
    assert "window" in out.err and "rows=4" in out.err  # the progress bar
    ctx = Context.create(mini.specs, db)
    t = ctx.ops.table("batch_log")
    with ctx.engine.connect() as c:
        batches = c.execute(t.select().order_by(t.c.window_start)).mappings().all()
        assert c.execute(text("SELECT COUNT(*) FROM MZJZJL")).scalar() == 3  # V3: voided before its upload
    assert [(b["mode"], b["status"], b["extracted"]) for b in batches] == [
        ("window", "published", 0), ("window", "published", 3), ("window", "published", 1)]
    # windows published in order carry the watermark to the highest change time of the range (V4's)
    assert state.get_watermark(ctx.engine, ctx.ops, "visit") == datetime(2026, 11, 21, 10, 30)


def test_backfill_windows_run_as_mapped_airflow_tasks(tmp_path):
    mini = MiniHospital(tmp_path / "mini")
    frontend = tmp_path / "frontend.db"
    env = airflow_env({**os.environ, "HIPBRIDGE_SPECS": str(mini.specs), "HIPBRIDGE_CONN_MINI": mini.url,
                       "HIPBRIDGE_HOME": str(tmp_path / "home"), "HIPBRIDGE_FRONTEND_URL": f"sqlite:///{frontend}",
                       "AIRFLOW_HOME": str(tmp_path / "airflow")})
    migrate(env)
    code = ("import json, sys; from hipbridge.airflow.factory import build_backfill_dag;"
            "dag = build_backfill_dag();"
            "run = dag.test(logical_date=None, run_conf={'table': 'visit', 'window_start': '2026-11-19',"
            " 'window_end': '2026-11-21', 'days': 1});"
            "print('STATE', run.state)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert "STATE success" in done.stdout or "STATE DagRunState.SUCCESS" in done.stdout, done.stderr[-3000:]
    meta = create_engine(f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}")
    with meta.connect() as c:
        mapped = c.execute(text("SELECT map_index, state FROM task_instance WHERE task_id = 'sync_window' "
                                "ORDER BY map_index")).all()
    assert [(i, s) for i, s in mapped] == [(0, "success"), (1, "success"), (2, "success")]
    eng = create_engine(f"sqlite:///{frontend}")
    with eng.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM MZJZJL")).scalar() == 3  # V3: voided before its upload
    ops = create_engine(f"sqlite:///{tmp_path / 'frontend_hipbridge_ops.db'}")
    with ops.connect() as c:
        runs = c.execute(text("SELECT mode, status FROM batch_log")).all()
    assert sorted(runs) == [("window", "published")] * 3

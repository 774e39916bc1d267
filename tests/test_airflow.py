"""Real Airflow DAG runs of a table spec (embedded metadata DB), including a manual run without a logical date."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from hipbridge.airflow.embedded import dependency_order, run_dags
from hipbridge.airflow.factory import build_all, scheduled_high_watermark
from hipbridge.spec import load_specs
from sqlalchemy import create_engine, text

from tests.minihospital import MiniHospital


def test_manual_run_without_logical_date_publishes_through_airflow(tmp_path):
    mini = MiniHospital(tmp_path / "mini")
    frontend = tmp_path / "frontend.db"
    env = {**os.environ, "HIPBRIDGE_SPECS": str(mini.specs), "HIPBRIDGE_CONN_MINI": mini.url,
           "HIPBRIDGE_HOME": str(tmp_path / "home"), "HIPBRIDGE_FRONTEND_URL": f"sqlite:///{frontend}",
           "AIRFLOW_HOME": str(tmp_path / "airflow")}
    assert run_dags(["visit", "diag"], env=env) == 0
    eng = create_engine(f"sqlite:///{frontend}")
    with eng.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM MZJZJL")).scalar() == 3  # V3: voided before its first upload
        assert c.execute(text("SELECT COUNT(*) FROM ZDMXBG")).scalar() == 2
    ops = create_engine(f"sqlite:///{tmp_path / 'frontend_hipbridge_ops.db'}")
    with ops.connect() as c:
        runs = c.execute(text("SELECT table_id, status, run_id FROM batch_log")).all()
    assert {(t, s) for t, s, _ in runs} == {("visit", "published"), ("diag", "published")}
    assert all(r.startswith("manual__") for _, _, r in runs)
    # Airflow recorded the runs in its own metadata database
    meta = create_engine(f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}")
    with meta.connect() as c:
        recorded = c.execute(text("SELECT dag_id, state, logical_date FROM dag_run")).all()
    assert {(d, s) for d, s, _ in recorded} == {("hipbridge_visit", "success"), ("hipbridge_diag", "success")}
    assert all(ld is None for _, _, ld in recorded)
    # the steps' typed results crossed XCom as JSON with the keys a running DAG of an earlier version reads
    with meta.connect() as c:
        xcoms = c.execute(text("SELECT dag_id, task_id, value FROM xcom WHERE key = 'return_value'")).all()
    values = {(d, t): json.loads(v) if isinstance(v, str) else v for d, t, v in xcoms}
    visit = {t: v for (d, t), v in values.items() if d == "hipbridge_visit"}
    assert set(visit) == {"plan", "transfer", "quality_gate", "publish"}
    assert visit["plan"]["table_id"] == "visit"
    assert set(visit["transfer"]) == {"extracted", "staged", "quarantined", "duplicates", "skipped"}
    assert visit["transfer"]["extracted"] == visit["transfer"]["staged"] + visit["transfer"]["quarantined"] > 0
    assert visit["quality_gate"] == {"blocked": False, "message": None, "results": visit["quality_gate"]["results"]}
    assert set(visit["publish"]) == {"inserted", "updated", "voided", "unchanged", "staged"}
    assert visit["publish"]["staged"] == visit["transfer"]["staged"]


def test_dags_have_params_tags_docs_and_assets(tmp_path):
    mini = MiniHospital(tmp_path / "mini")
    dags = build_all(load_specs(mini.specs))
    dag = dags["hipbridge_visit"]
    assert [t.task_id for t in dag.topological_sort()] == ["plan", "transfer", "quality_gate", "publish"]
    assert set(dag.params.keys()) == {"run"}
    assert {"hipbridge", "his", "phase1"} <= set(dag.tags)
    assert "门诊就诊记录" in dag.doc_md and "| JZLSH | 门诊就诊流水号 |" in dag.doc_md
    outlets = dag.get_task("publish").outlets
    assert [a.uri for a in outlets] == ["hipbridge://frontend/MZJZJL"]


def test_scheduled_run_covers_whole_hospital_days():
    # 2026-11-20 16:30 UTC is 2026-11-21 00:30 in Asia/Shanghai: the run covers up to local midnight
    fired = datetime(2026, 11, 20, 16, 30, tzinfo=UTC)
    assert scheduled_high_watermark("scheduled", fired, "Asia/Shanghai") == datetime(2026, 11, 21)
    assert scheduled_high_watermark("DagRunType.SCHEDULED", fired, "Asia/Shanghai") == datetime(2026, 11, 21)
    assert scheduled_high_watermark("manual", fired, "Asia/Shanghai") is None
    assert scheduled_high_watermark("scheduled", None, "Asia/Shanghai") is None


def test_dependency_order_puts_parents_first(tmp_path):
    mini = MiniHospital(tmp_path / "mini")
    order = dependency_order(load_specs(mini.specs))
    assert order.index("visit") < order.index("diag")

"""Through a real Airflow (api-server, scheduler, dag-processor; REST API): issue 11, items 5 and 6.

One deployment for the module, over a small hospital whose spec folder holds:

- `visit.yaml` with a misspelled key (broken): it has no DAG and is listed as an import error;
- `diag.yaml`, healthy, which references `visit`: its DAG exists and, at run time, its tasks run
  and publish although the spec they reference is broken;
- `badcol.yaml`, healthy as YAML, whose `from` names a column its SQL does not return: the
  zero-row probe fails the transfer task at once, with `file:line: key:`, and Airflow does not
  retry it;

and the table DAGs' `run` param refuses a window without its first day, or of 0 days, at trigger
time (HTTP 400 from the api-server), so no run is created at all.
"""

from __future__ import annotations

import os
import textwrap

import pytest
from sqlalchemy import create_engine, text

from tests.airflow_server import AirflowServer
from tests.minihospital import MiniHospital

BADCOL = textwrap.dedent("""\
    table: badcol
    label: 诊断明细报告（列名写错）
    source:
      system: his
      connection: mini
      query: "SELECT d.DIAG_ID AS id, d.VISIT_NO AS visit_id, d.ICD AS icd, d.UPDATE_TIME AS upd FROM CLINIC_DIAG d"
      watermark: {column: upd}
    target: {name: ZDMXBGX, primary_key: [ZDLSH, YLJGDM]}
    columns:
      - {name: ZDLSH, label: 诊断流水号, type: varchar(32), required: true, from: id}
      - {name: JZLSH, label: 就诊流水号, type: varchar(32), required: true, from: visit_id}
      - {name: XYZDDM, label: 西医诊断代码, type: varchar(20), required: true, from: icd_code}
    """)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("airflow_server")
    mini = MiniHospital(root / "mini")
    visit = mini.specs / "visit.yaml"
    visit.write_text(visit.read_text(encoding="utf-8").replace("lookback: 10m", "lookbak: 10m"), encoding="utf-8")
    (mini.specs / "badcol.yaml").write_text(BADCOL, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HIPBRIDGE_"))}
    frontend = root / "frontend.db"
    env.update({"HIPBRIDGE_SPECS": str(mini.specs), "HIPBRIDGE_CONN_MINI": mini.url,
                "HIPBRIDGE_HOME": str(root / "home"), "HIPBRIDGE_FRONTEND_URL": f"sqlite:///{frontend}",
                "HIPBRIDGE_RETRY_ATTEMPTS": "2", "HIPBRIDGE_RETRY_DELAY": "0.2"})
    server = AirflowServer(root / "airflow", env)
    try:
        server.start()
        server.wait(lambda: {"hipbridge_diag", "hipbridge_badcol"} <= server.dag_ids() and server.import_errors(),
                    300, "the dag-processor to parse dags/")
        yield server, mini, frontend
    finally:
        server.stop()


def test_broken_spec_is_an_import_error_and_its_dependants_keep_their_dags(airflow):
    server, mini, _ = airflow
    dags = server.dag_ids()
    assert {"hipbridge_diag", "hipbridge_badcol"} <= dags and "hipbridge_visit" not in dags
    (err,) = [e for e in server.import_errors() if e["filename"].endswith("hipbridge_spec_errors.py")]
    trace = err["stack_trace"]
    assert f"{mini.specs / 'visit.yaml'}:7: source.watermark.lookbak: unknown key" in trace
    assert "diag.yaml:11: columns[1] (JZLSH).references: warning: references table visit" in trace


def test_a_healthy_table_referencing_the_broken_spec_runs_and_publishes(airflow):
    server, _, frontend = airflow
    r = server.trigger("hipbridge_diag")
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    assert server.wait_run("hipbridge_diag", run_id) == "success", server.task_instances("hipbridge_diag", run_id)
    tis = server.task_instances("hipbridge_diag", run_id)
    assert {t: ti["state"] for t, ti in tis.items()} == {
        "plan": "success", "transfer": "success", "quality_gate": "success", "publish": "success"}
    eng = create_engine(f"sqlite:///{frontend}")
    with eng.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM ZDMXBG")).scalar() == 2
    eng.dispose()


def test_a_from_column_the_sql_does_not_return_fails_at_once_without_retries(airflow):
    server, mini, frontend = airflow
    r = server.trigger("hipbridge_badcol")
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    # DEFAULT_ARGS give a task 2 retries, 2 min apart: a retried task would keep the run running here
    assert server.wait_run("hipbridge_badcol", run_id, timeout=240) == "failed"
    transfer = server.task_instances("hipbridge_badcol", run_id)["transfer"]
    assert (transfer["state"], transfer["try_number"]) == ("failed", 1)
    message = None
    for ops_file in frontend.parent.glob(f"{frontend.stem}_*.db"):  # the embedded front-end's attached files
        ops = create_engine(f"sqlite:///{ops_file}")
        with ops.connect() as c:
            if c.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'batch_log'")).scalar():
                message = c.execute(text("SELECT message FROM batch_log WHERE table_id = 'badcol'")).scalar()
        ops.dispose()
    assert f"{mini.specs / 'badcol.yaml'}:12: columns[2] (XYZDDM).from: the source query" in message
    assert "returns no column 'icd_code'" in message
    front = create_engine(f"sqlite:///{frontend}")
    with front.connect() as c:  # the probe ran before anything was written
        assert c.execute(text("SELECT COUNT(*) FROM ZDMXBGX")).scalar() == 0
    front.dispose()


@pytest.mark.parametrize("run, why", [
    ({"mode": "window"}, "'first_day' is a required property"),
    ({"mode": "window", "first_day": "2026-11-20"}, "'days' is a required property"),
    ({"mode": "window", "first_day": "2026-11-20", "days": 0}, "0 is less than the minimum of 1"),
    ({"mode": "window", "first_day": "2026-11-31", "days": 1}, "is not a 'date'"),
    ({"mode": "incremental", "days": 3}, "should not be valid"),
    ({"mode": "rerun"}, "is not one of"),
])
def test_bad_run_params_are_refused_at_trigger_time(airflow, run, why):
    server, _, _ = airflow
    before = server.api("GET", "/dags/hipbridge_diag/dagRuns").json()["total_entries"]
    r = server.trigger("hipbridge_diag", {"run": run})
    assert r.status_code == 400, r.text
    assert "Invalid input for param run" in r.text and why in r.text
    assert server.api("GET", "/dags/hipbridge_diag/dagRuns").json()["total_entries"] == before  # no run created


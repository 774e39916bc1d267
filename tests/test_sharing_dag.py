"""The sharing DAG file parses cheaply (three DAGs; of hipbridge only the leaf `hipbridge.settings`, no pandas,
FastAPI or gmssl) and Airflow loads what it says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sharing_dags_parse_without_heavy_imports(tmp_path):
    code = (
        "import sys, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('d', {str(ROOT / 'dags' / 'hipbridge_sharing.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(sorted(d.dag_id for d in (m.verify_dag, m.purge_dag, m.outbox_dag)))\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('hipbridge', 'pandas', 'fastapi', 'gmssl')))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    dags, heavy = out.stdout.strip().splitlines()[-2:]
    assert dags == "['hipbridge_platform_outbox', 'hipbridge_push_verify', 'hipbridge_share_purge']"
    # the schedules are HIPBRIDGE_* settings: the typed settings module is the one hipbridge import, and a leaf
    assert heavy == "['hipbridge', 'hipbridge.settings']"


def test_airflow_loads_the_sharing_dags_with_their_tasks_and_schedules(tmp_path):
    """Airflow's own DagBag reads the file: no import error, the task order, schedules in hospital time, params."""
    code = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag({str(ROOT / 'dags' / 'hipbridge_sharing.py')!r})\n"
        "print(json.dumps({'errors': sorted(bag.import_errors), 'dags': {i: {\n"
        "    'tasks': {t.task_id: sorted(t.downstream_task_ids) for t in d.tasks},\n"
        "    'schedule': [d.timetable.serialize()[k] for k in ('expression', 'timezone')],\n"
        "    'catchup': d.catchup, 'max_active_runs': d.max_active_runs,\n"
        "    'retries': sorted({t.retries for t in d.tasks}), 'params': {k: d.params[k] for k in d.params},\n"
        "} for i, d in bag.dags.items()}}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    bag = json.loads(out.stdout.strip().splitlines()[-1])
    assert bag["errors"] == []
    dags = bag["dags"]
    assert sorted(dags) == ["hipbridge_platform_outbox", "hipbridge_push_verify", "hipbridge_share_purge"]
    verify, purge, outbox = dags["hipbridge_push_verify"], dags["hipbridge_share_purge"], dags["hipbridge_platform_outbox"]
    # verification runs before the verified rows move into the encrypted tables
    assert verify["tasks"] == {"verify_new_batches": ["ingest_encrypted"], "ingest_encrypted": []}
    assert verify["schedule"] == ["*/5 * * * *", "Asia/Shanghai"] and verify["params"] == {"quality": True}
    # the purge: daily at 02:00 hospital time, a dry-run switch, retried twice
    assert purge["tasks"] == {"purge_shared": []}
    assert purge["schedule"] == ["0 2 * * *", "Asia/Shanghai"]
    assert purge["params"] == {"dry_run": False, "max_share_pct": None} and purge["retries"] == [2]
    # the outbox does its own back-off: Airflow does not retry it
    assert outbox["tasks"] == {"drain_outbox": ["reconcile_authorizations"], "reconcile_authorizations": []}
    assert outbox["schedule"] == ["*/5 * * * *", "Asia/Shanghai"] and outbox["retries"] == [0]
    assert all(d["catchup"] is False and d["max_active_runs"] == 1 for d in dags.values())

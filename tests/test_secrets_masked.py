"""Secrets and personal data never in output (issue 12 item 7): connection passwords masked in Airflow
task logs (through Airflow's secrets masker), CLI output and `status --json`; database errors and
web errors carry no row values."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from hipbridge.demo.simulator import ServerThread, free_port
from sqlalchemy import text

from tests.minihospital import MiniHospital

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Pw-S3cret-q7319"          # in the URL's query string, where render_as_string does not look
USER_PASSWORD = "Up-S3cret-k2846"     # in the URL's user-info part

RUNNER = textwrap.dedent("""
    from hipbridge.airflow.factory import build_all, load_for_dags

    dag = build_all(load_for_dags())["hipbridge_visit"]
    for t in dag.tasks:
        t.retries = 0                    # one attempt: the failure itself is what is looked at
    run = dag.test(logical_date=None, run_conf={"run": {"mode": "incremental"}})
    print("[visit]", run.state, flush=True)
""")


@pytest.fixture
def leaky_env(tmp_path):
    mini = MiniHospital(tmp_path / "mini")
    port = free_port()                   # nothing listens there: a connection error
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "HIPBRIDGE_SPECS": str(mini.specs),
           "HIPBRIDGE_CONN_MINI": f"mysql+pymysql://hisreader@127.0.0.1:{port}/his?password={PASSWORD}",
           "HB_SECOND_URL": f"postgresql+psycopg2://lisreader:{USER_PASSWORD}@127.0.0.1:{port}/lis",
           "HIPBRIDGE_HOME": str(tmp_path / "home"), "HIPBRIDGE_FRONTEND_URL": f"sqlite:///{tmp_path / 'fe.db'}",
           "AIRFLOW_HOME": str(tmp_path / "airflow"), "HIPBRIDGE_RETRY_ATTEMPTS": "1"}
    return env


def _files_containing(folder: Path, needle: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_a_task_failing_to_connect_logs_no_password(leaky_env, tmp_path):
    from hipbridge.airflow.embedded import airflow_env, migrate

    env = airflow_env(leaky_env)
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
    migrate(env)
    done = subprocess.run([sys.executable, "-c", RUNNER], env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    out = done.stdout + done.stderr
    assert "[visit] failed" in out, out[-3000:]
    assert "Can't connect to MySQL server" in out and "hisreader@127.0.0.1" in out   # the error itself is shown
    assert PASSWORD not in out, [line for line in out.splitlines() if PASSWORD in line][:3]
    assert _files_containing(tmp_path / "airflow", PASSWORD) == []
    assert _files_containing(tmp_path / "home", PASSWORD) == []     # the batch log's error text too
    assert "password=***" in out


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "hipbridge.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_cli_output_and_status_json_show_no_password(leaky_env):
    run = _cli(leaky_env, "run", "visit")
    assert run.returncode != 0 and "unavailable" in run.stderr, run.stderr[-2000:]
    assert "hisreader@127.0.0.1" in run.stderr and "password=***" in run.stderr
    status = _cli(leaky_env, "status", "--json")
    assert status.returncode == 0, status.stderr
    for out in (run.stdout + run.stderr, status.stdout + status.stderr):
        assert PASSWORD not in out


def test_database_errors_carry_no_row_values(mariadb_url):
    from hipbridge.io.engines import engine_for
    from sqlalchemy.exc import IntegrityError

    eng = engine_for(mariadb_url)
    with eng.begin() as c:
        c.execute(text("CREATE TABLE person (id VARCHAR(8) PRIMARY KEY, name VARCHAR(20), id_no VARCHAR(18))"))
        c.execute(text("INSERT INTO person VALUES ('1', :n, :i)"), {"n": "欧阳娜娜", "i": "451002198001011232"})
    with pytest.raises(IntegrityError) as info, eng.begin() as c:
        c.execute(text("INSERT INTO person VALUES ('1', :n, :i)"), {"n": "欧阳娜娜", "i": "451002198001011232"})
    message = str(info.value)
    assert "Duplicate entry" in message
    assert "欧阳娜娜" not in message and "451002198001011232" not in message


def test_a_web_error_answers_and_logs_no_personal_data(hb_home, caplog):
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.sharing.callers import CallerStore, secure_app

    store = CallerStore.for_keys(KeyStore(hb_home / "keys"))
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    secure_app(app, store, rules={"/x": ["workstation"]})

    @app.get("/x/boom")
    def boom() -> dict:
        raise ValueError("patient 欧阳娜娜 451002198001011232 13800000000 not found")

    token = store.create("ws", ["workstation"])
    caplog.set_level(logging.INFO)
    with ServerThread(app) as srv:
        r = httpx.get(srv.url + "/x/boom", headers={"Authorization": f"Bearer {token}"}, trust_env=False)
    assert r.status_code == 500 and r.json()["code"] == "INTERNAL"
    logged = caplog.text
    assert "ValueError" in logged and "test_secrets_masked.py" in logged            # type and place are kept
    for value in ("欧阳娜娜", "451002198001011232", "13800000000"):
        assert value not in r.text and value not in logged


PROBE_DAG = textwrap.dedent('''
    import logging
    import os
    from datetime import datetime

    from airflow.sdk import DAG, task

    with DAG("hb_print_urls", schedule="@once", start_date=datetime(2026, 1, 1), catchup=False):
        @task(retries=0)
        def print_urls():
            from hipbridge.io.engines import engine_for, source_engine

            source_engine("mini")                 # hipbridge resolves the connection (registers its secrets)
            engine_for(os.environ["HB_SECOND_URL"])
            # code that is careless with the raw URLs: a debug line, a print, an exception text
            logging.getLogger("hb.probe").warning("raw url %s", os.environ["HIPBRIDGE_CONN_MINI"])
            print("raw url", os.environ["HB_SECOND_URL"], flush=True)
            raise RuntimeError("cannot connect to " + os.environ["HIPBRIDGE_CONN_MINI"])

        print_urls()
''')


def test_airflow_task_logs_mask_resolved_passwords_under_a_real_scheduler(leaky_env, tmp_path):
    """A real deployment (api-server, scheduler, dag-processor of `airflow standalone`, LocalExecutor): the
    task runner's log goes through Airflow's secrets masker, which hipbridge told about the passwords."""
    import signal
    import sqlite3
    import time

    home, dags = tmp_path / "airflow", tmp_path / "dags"
    dags.mkdir()
    port = free_port()
    env = {**leaky_env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp_path / "no_plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "1",
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__WORKERS": "1",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5", "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    (tmp_path / "no_plugins").mkdir()
    with open(tmp_path / "standalone.log", "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 420

        def healthy() -> bool:
            try:
                h = httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=10).json()
            except (httpx.HTTPError, ValueError):
                return False
            return h["scheduler"]["status"] == "healthy" and (h.get("dag_processor") or {}).get("status") == "healthy"

        while not healthy():   # the DAG appears only once the workers can reach the execution API
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "standalone.log").read_text(errors="replace")[-3000:]
            time.sleep(3)
        (dags / "hb_probe.py").write_text(PROBE_DAG, encoding="utf-8")
        state = None
        while time.monotonic() < deadline and state not in ("success", "failed"):
            assert proc.poll() is None, (tmp_path / "standalone.log").read_text(errors="replace")[-3000:]
            time.sleep(3)
            db = home / "airflow.db"
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=5) as c:
                        row = c.execute("SELECT state FROM dag_run WHERE dag_id = 'hb_print_urls'").fetchone()
                    state = row[0] if row else None
                except sqlite3.OperationalError:   # tables not migrated yet
                    state = None
        assert state == "failed", (state, (tmp_path / "standalone.log").read_text(errors="replace")[-3000:])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    logs = [p for p in (home / "logs").rglob("*.log") if "hb_print_urls" in str(p)]
    task_log = "\n".join(p.read_text(errors="replace") for p in logs)
    assert "raw url" in task_log and "cannot connect to" in task_log, logs
    assert "***" in task_log
    for secret in (PASSWORD, USER_PASSWORD):
        assert secret not in task_log, [line for line in task_log.splitlines() if secret in line][:3]
        assert _files_containing(home, secret) == []

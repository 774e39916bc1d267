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
from hipbridge.platform.simulator import ServerThread, free_port
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
    run = dag.test(logical_date=None, run_conf={"mode": "incremental"})
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

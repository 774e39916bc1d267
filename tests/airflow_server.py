"""A real Airflow 3 deployment for tests: api-server, scheduler and dag-processor as separate processes.

Each test module that needs Airflow's own behaviour (the dag-processor's import errors, the
api-server's param validation at trigger time, the scheduler's retries) starts one of these on a
free port with its own AIRFLOW_HOME and its own PostgreSQL metadata database (LocalExecutor with 2
slots) and talks to it through the public REST API, as an operator's tools would. Nothing is mocked.

PostgreSQL, as in the deployment, not SQLite: with three processes writing one SQLite file, the
api-server now and then answered a REST call with HTTP 500 ("database is locked") while the
scheduler held the write lock, which failed a CI run on a test that had nothing to do with it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN = os.environ.get("HIPBRIDGE_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AirflowServer:
    def __init__(self, home: Path, env: dict):
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        plugins = home / "no_plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**env, "AIRFLOW_HOME": str(home),
                    "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
                    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                    "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "AIRFLOW__CORE__PARALLELISM": "2",
                    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                    "AIRFLOW__API__PORT": str(self.port),
                    "AIRFLOW__API__HOST": "127.0.0.1",
                    "AIRFLOW__API__WORKERS": "1",
                    "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
                    "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
        self.metadata_db = f"hb_airflow_{os.getpid()}_{secrets.token_hex(4)}"
        self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + self.metadata_db
        self.procs: list[subprocess.Popen] = []
        self._token: str | None = None

    def _admin(self, sql: str) -> None:
        admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as c:
                c.execute(text(sql))
        finally:
            admin.dispose()

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 300) -> AirflowServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self._admin(f'CREATE DATABASE "{self.metadata_db}"')
        done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=self.env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{done.stderr[-3000:]}")
        for name, args in (("api-server", ["api-server", "--port", str(self.port), "--host", "127.0.0.1"]),
                           ("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"])):
            log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            self.procs.append(subprocess.Popen([sys.executable, "-m", "airflow", *args], env=self.env,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        self.wait(lambda: self._healthy(), timeout, "the api-server, scheduler and dag-processor to be healthy")
        return self

    def stop(self) -> None:
        for p in self.procs:  # each started in its own session: stop it and the workers it forked
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        self._admin(f'DROP DATABASE IF EXISTS "{self.metadata_db}" WITH (FORCE)')

    def logs(self) -> str:
        out = []
        for name in ("api-server", "scheduler", "dag-processor"):
            f = self.home / f"{name}.log"
            if f.exists():
                out.append(f"--- {name}\n" + f.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    def wait(self, condition, timeout: float, what: str, every: float = 2.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"an Airflow process exited ({p.args[3:]}) while waiting for {what}\n"
                                       + self.logs())
            try:
                value = condition()
            except httpx.HTTPError:
                value = None
            if value:
                return value
            time.sleep(every)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")

    def _healthy(self) -> bool:
        h = httpx.get(f"{self.base}/api/v2/monitor/health", timeout=10).json()
        return (h["metadatabase"]["status"] == "healthy" and h["scheduler"]["status"] == "healthy"
                and (h.get("dag_processor") or {}).get("status") == "healthy")

    # ------------------------------------------------------------ REST API
    def token(self) -> str:
        if self._token is None:
            r = httpx.get(f"{self.base}/auth/token", timeout=30)
            r.raise_for_status()
            self._token = r.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return httpx.request(method, f"{self.base}/api/v2{path}", headers=headers, timeout=60, **kw)

    def dag_ids(self) -> set[str]:
        r = self.api("GET", "/dags", params={"limit": 200})
        r.raise_for_status()
        return {d["dag_id"] for d in r.json()["dags"]}

    def import_errors(self) -> list[dict]:
        r = self.api("GET", "/importErrors", params={"limit": 100})
        r.raise_for_status()
        return r.json()["import_errors"]

    def trigger(self, dag_id: str, conf: dict | None = None) -> httpx.Response:
        dag = self.api("GET", f"/dags/{dag_id}")
        dag.raise_for_status()
        if dag.json()["is_paused"]:  # table DAGs start paused
            self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})

    def run_state(self, dag_id: str, run_id: str) -> str:
        r = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        r.raise_for_status()
        return r.json()["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        return self.wait(lambda: (s := self.run_state(dag_id, run_id)) in ("success", "failed") and s, timeout,
                         f"{dag_id} run {run_id} to finish")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        r = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        r.raise_for_status()
        return {t["task_id"]: t for t in r.json()["task_instances"]}

"""The production layout of docker-compose.yml, run as local processes: CeleryExecutor on Redis, two workers.

PostgreSQL (a fresh database on this machine's server) is Airflow's metadata database, Redis (this
machine's server, a database number of its own) the broker, MariaDB (a fresh database and user,
granted by deploy/mariadb/) the front-end. Airflow's api-server, scheduler, dag-processor,
triggerer and two Celery workers run the compose file's commands with the environment the compose
file gives them (tests/compose_env.py: only hosts, ports, paths and three timings change — a
killed worker's task is failed after 30 s without a heartbeat instead of 300 s and retried after
2 s instead of 120 s). Everything is driven through Airflow's REST API (v2, a JWT from the
api-server's /auth/token) and checked in MariaDB against a reference load of the same demo
hospital made by `hipbridge run all` in another database.

The second step of `make test` (and so of .ci/run): `pytest -m distributed tests`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from hipbridge.deploy import read_env_file
from hipbridge.spec import load_specs
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.compose_env import (
    ROOT,
    free_port,
    healthcheck,
    localize,
    relocate_url,
    service_command,
    service_env,
)
from tests.conftest import MARIADB_ADMIN, POSTGRES_ADMIN

pytestmark = pytest.mark.distributed

BIN = Path(sys.executable).parent
SPECS = load_specs(ROOT / "table_specs")
TABLES = sorted(SPECS.specs)
KILL_TABLE = "lab_result"        # hipbridge_backfill with a worker killed mid-window (the most rows per day)
AF_BACKFILL_TABLE = "diagnosis_detail"  # Airflow's own Backfill (REST POST /api/v2/backfills)
RERUN_TABLE = "op_visit"         # a window rerun with params
DEMO_DAYS, DEMO_SCALE = 2, 0.005
PROCESS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "TMPDIR")  # of this process, not config


def _unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


class Stack:
    """Processes started from the venv; all of them are stopped (process trees, SIGKILL last) at the end."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = self.workdir / f"{name}.log"
        self.logs[name] = log
        fh = open(log, "ab")  # noqa: SIM115 - closed when the process is stopped
        proc = subprocess.Popen(argv, env=env, cwd=self.workdir, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc._log = fh  # type: ignore[attr-defined]
        self.procs[name] = proc
        return proc

    def tail(self, name: str, n: int = 4000) -> str:
        return self.logs[name].read_text(errors="replace")[-n:] if name in self.logs else ""

    def check_alive(self, names=None) -> None:
        for name, p in self.procs.items():
            if (names is None or name in names) and p.poll() is not None and not getattr(p, "_killed", False):
                raise AssertionError(f"{name} exited with {p.returncode}:\n{self.tail(name)}")

    def kill_tree(self, name: str, sig=signal.SIGKILL) -> list[int]:
        proc = self.procs[name]
        proc._killed = True  # type: ignore[attr-defined]
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        for p in tree:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        return [p.pid for p in tree]

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                self.kill_tree(name, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            self.kill_tree(name, signal.SIGKILL)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            proc._log.close()  # type: ignore[attr-defined]


def _wait(predicate, timeout: float, what: str, stack: Stack | None = None, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        if stack is not None:
            stack.check_alive()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def _claim_redis_db() -> int:
    import redis

    r0 = redis.Redis(host="127.0.0.1", port=6379, db=0)
    for n in range(15, 0, -1):
        if r0.set(f"hipbridge:test:redis-db:{n}", os.getpid(), nx=True, ex=1800) and \
                redis.Redis(host="127.0.0.1", port=6379, db=n).dbsize() == 0:
            return n
    raise AssertionError("no free Redis database number (1-15) on 127.0.0.1:6379")


def _release_redis_db(n: int) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=n).flushdb()
    redis.Redis(host="127.0.0.1", port=6379, db=0).delete(f"hipbridge:test:redis-db:{n}")


class Api:
    """Airflow's REST API v2 with a JWT from the api-server's auth endpoint."""

    def __init__(self, base: str, user: str, password: str):
        self.base = base
        resp = httpx.post(f"{base}/auth/token", json={"username": user, "password": password}, timeout=30)
        assert resp.status_code in (200, 201), resp.text
        self.client = httpx.Client(base_url=f"{base}/api/v2", timeout=60,
                                   headers={"Authorization": f"Bearer {resp.json()['access_token']}"})

    def get(self, path: str, **params) -> dict:
        r = self.client.get(path, params=params)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        return r.json()

    def post(self, path: str, body: dict) -> dict:
        r = self.client.post(path, json=body)
        assert r.status_code in (200, 201), f"POST {path}: {r.status_code} {r.text}"
        return r.json()

    def trigger(self, dag_id: str, conf: dict) -> str:
        return self.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns", limit=100)["dag_runs"]

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        r = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                            params={"full_content": True})
        assert r.status_code == 200, r.text
        return json.dumps(r.json(), ensure_ascii=False)


def _finished(api: Api, dag_id: str, run_id: str) -> str | None:
    state = api.run_state(dag_id, run_id)
    return state if state in ("success", "failed") else None


# ------------------------------------------------------------------------------------------ the stack

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("distributed")
    airflow_home = work / "airflow"
    airflow_home.mkdir()
    stack = Stack(work)
    admin_my = create_engine(MARIADB_ADMIN)
    admin_pg = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    my, pg = make_url(MARIADB_ADMIN), make_url(POSTGRES_ADMIN)
    names = {"fe": _unique("hbdfe"), "ref": _unique("hbdref"), "user": _unique("hbdu")[:32],
             "share": _unique("hbdshare"), "pgdb": _unique("hbdaf"), "pgrole": _unique("hbdaf_r")}
    pw = uuid.uuid4().hex
    redis_db = None
    started = time.monotonic()
    try:
        # the env file, as an operator makes it
        env_file = work / "hipbridge.env"
        subprocess.run([str(BIN / "hipbridge"), "deploy", "env", "--out", str(env_file)], check=True,
                       capture_output=True)
        secrets = read_env_file(env_file)
        # databases as the images create them: Airflow's owned by its role, the front-end user's only own db
        with admin_pg.connect() as c:
            c.execute(text(f"CREATE ROLE \"{names['pgrole']}\" LOGIN PASSWORD '{pw}'"))
            c.execute(text(f"CREATE DATABASE \"{names['pgdb']}\" OWNER \"{names['pgrole']}\""))
        with admin_my.begin() as c:
            for db in (names["fe"], names["ref"]):
                c.execute(text(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
            c.execute(text(f"CREATE USER '{names['user']}'@'%' IDENTIFIED BY '{pw}'"))
            c.execute(text(f"GRANT ALL PRIVILEGES ON `{names['fe']}`.* TO '{names['user']}'@'%'"))
        subprocess.run([str(ROOT / "deploy" / "mariadb" / "10-hipbridge-grants.sh")], check=True, env={
            **os.environ, "MARIADB_USER": names["user"], "MARIADB_DATABASE": names["fe"],
            "HIPBRIDGE_SHARE_SCHEMA": names["share"], "MARIADB_ROOT_PASSWORD": my.password or ""})
        redis_db = _claim_redis_db()
        api_port = free_port()
        api_base = f"http://127.0.0.1:{api_port}"

        def env_for(service: str, **ports) -> dict:
            base = service_env(service, env_file)
            changes = {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": relocate_url(
                    base["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], host=pg.host, port=pg.port, database=names["pgdb"],
                    username=names["pgrole"], password=pw),
                "AIRFLOW__CELERY__RESULT_BACKEND": relocate_url(
                    base["AIRFLOW__CELERY__RESULT_BACKEND"], host=pg.host, port=pg.port, database=names["pgdb"],
                    username=names["pgrole"], password=pw),
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
                "HIPBRIDGE_FRONTEND_URL": relocate_url(
                    base["HIPBRIDGE_FRONTEND_URL"], host=my.host, port=my.port or 3306, database=names["fe"],
                    username=names["user"], password=pw),
                "HIPBRIDGE_SHARE_SCHEMA": names["share"],
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_base}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(api_port),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(ports.get("health", free_port())),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports.get("log", free_port())),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                # the three timings (see the module docstring)
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
            }
            env = localize(base, changes, ROOT, airflow_home)
            env.update({k: os.environ[k] for k in PROCESS_ENV if k in os.environ})
            env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
            return env

        init_env = env_for("airflow-init")
        home = Path(init_env["HIPBRIDGE_HOME"])
        assert str(home).startswith(str(airflow_home))  # the compose volume's path, relocated
        # the demo hospital (sources) the connections fall back to, and a reference load of it
        built = subprocess.run(
            [sys.executable, "-c", ("import json; from hipbridge.demo import build; from hipbridge.io.engines import home; "
                                    f"print(json.dumps(build(home() / 'demo', days={DEMO_DAYS}, scale={DEMO_SCALE}, "
                                    "register=True)['window']))")],
            env={**os.environ, "HIPBRIDGE_HOME": str(home)}, check=True, capture_output=True, text=True)
        window = json.loads(built.stdout.strip().splitlines()[-1])
        ref_url = (f"mysql+pymysql://{my.username}:{my.password or ''}@{my.host}:{my.port or 3306}/{names['ref']}"
                   f"?charset=utf8mb4&local_infile=1")
        reference = subprocess.Popen(
            [str(BIN / "hipbridge"), "run", "all", "--db", ref_url], cwd=work,
            env={**{k: v for k, v in os.environ.items() if k != "HIPBRIDGE_OPS_SCHEMA"}, "HIPBRIDGE_HOME": str(home)},
            stdout=open(work / "reference.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
        # airflow-init: the compose file's command as it is
        init = subprocess.run(service_command("airflow-init"), env=init_env, cwd=work, capture_output=True,
                              text=True, timeout=600, check=False)
        assert init.returncode == 0, f"airflow-init failed:\n{init.stdout[-3000:]}\n{init.stderr[-3000:]}"
        envs = {}
        for service in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
            envs[service] = env_for(service)
            stack.start(service, service_command(service), envs[service])
        workers = {}
        for service in ("airflow-worker-1", "airflow-worker-2"):
            node = _unique(service)
            envs[service] = {**env_for(service), "HOSTNAME": node}
            workers[service] = node
            # two workers on one host need distinct Celery node names (containers have their own hostname)
            stack.start(service, [*service_command(service), "--celery-hostname", f"celery@{node}"], envs[service])

        def healthy() -> bool:
            try:
                return httpx.get(f"{api_base}/api/v2/monitor/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(healthy, 240, "the api-server", stack)
        api = Api(api_base, secrets["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(":")[0],
                  secrets["HIPBRIDGE_AIRFLOW_ADMIN_PASSWORD"])
        expected = {f"hipbridge_{t}" for t in TABLES} | {"hipbridge_backfill"}
        _wait(lambda: expected <= {d["dag_id"] for d in api.get("/dags", limit=200)["dags"]}, 240,
              "the dag-processor to parse every DAG", stack, every=3)
        reference.wait(600)
        assert reference.returncode == 0, (work / "reference.log").read_text()[-3000:]
        info = {"api": api, "stack": stack, "envs": envs, "workers": workers, "names": names, "work": work,
                "frontend": envs["airflow-scheduler"]["HIPBRIDGE_FRONTEND_URL"], "ref_url": ref_url,
                "home": home, "admin": admin_my, "window": window, "env_for": env_for, "started": started,
                "boot_seconds": time.monotonic() - started}
        yield info
    finally:
        stack.stop_all()
        from hipbridge.io.engines import dispose_all

        dispose_all()
        if redis_db is not None:
            _release_redis_db(redis_db)
        with admin_my.begin() as c:
            dbs = c.execute(text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :a "
                                 "OR schema_name LIKE :b OR schema_name = :s"),
                            {"a": f"{names['fe']}%", "b": f"{names['ref']}%", "s": names["share"]}).scalars().all()
            for db in dbs:
                c.execute(text(f"DROP DATABASE `{db}`"))
            c.execute(text(f"DROP USER IF EXISTS '{names['user']}'@'%'"))
        with admin_pg.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS \"{names['pgdb']}\" WITH (FORCE)"))
            c.execute(text(f"DROP ROLE IF EXISTS \"{names['pgrole']}\""))
        admin_my.dispose()
        admin_pg.dispose()
        print(f"\n[distributed] boot + tests + teardown: {time.monotonic() - started:.0f} s", file=sys.stderr)


# ------------------------------------------------------------------------------------------ helpers

def _ops_schema(s) -> str:
    """The operations schema hipbridge created for the stack's front-end (whatever its naming rule)."""
    with s["admin"].connect() as c:
        names = c.execute(text("SELECT table_schema FROM information_schema.tables WHERE table_name = 'batch_log' "
                               "AND table_schema LIKE :p"), {"p": f"{s['names']['fe']}%"}).scalars().all()
    assert len(names) == 1, names
    return names[0]


def _batches(s, table: str) -> list[dict]:
    with s["admin"].connect() as c:
        return [dict(r) for r in c.execute(text(
            f"SELECT * FROM `{_ops_schema(s)}`.batch_log WHERE table_id = :t ORDER BY started_at"),
            {"t": table}).mappings()]


def _watermark(s, table: str):
    with s["admin"].connect() as c:
        return c.execute(text(f"SELECT watermark FROM `{_ops_schema(s)}`.watermark WHERE table_id = :t"),
                         {"t": table}).scalar()


def _differences(s, table: str) -> tuple[int, int, int, int]:
    """(rows in the stack's front-end, in the reference, stack-only rows, reference-only rows)."""
    spec = SPECS.specs[table]
    target = spec.target.name
    collected = SPECS.defaults.audit("extracted_at").name  # 数据采集时间: when each load extracted the row
    with s["admin"].connect() as c:
        cols = [r[0] for r in c.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = :d AND table_name = :t "
            "ORDER BY ordinal_position"), {"d": s["names"]["fe"], "t": target}) if r[0] != collected]
        sel = ", ".join(f"`{x}`" for x in cols)
        fe, ref = f"`{s['names']['fe']}`.`{target}`", f"`{s['names']['ref']}`.`{target}`"
        n_fe = c.execute(text(f"SELECT COUNT(*) FROM {fe}")).scalar()
        n_ref = c.execute(text(f"SELECT COUNT(*) FROM {ref}")).scalar()
        only_fe = c.execute(text(f"SELECT COUNT(*) FROM (SELECT {sel} FROM {fe} EXCEPT SELECT {sel} FROM {ref}) x")).scalar()
        only_ref = c.execute(text(f"SELECT COUNT(*) FROM (SELECT {sel} FROM {ref} EXCEPT SELECT {sel} FROM {fe}) x")).scalar()
    return n_fe, n_ref, only_fe, only_ref


def _demo_days(s) -> tuple[date, date]:
    return date.fromisoformat(s["window"]["start"]), date.fromisoformat(s["window"]["end"])


# ------------------------------------------------------------------------------------------ the tests
# Unpausing a daily DAG makes the scheduler start the run of the last hospital midnight at once
# (catchup is off). So the runs under test are created while the DAGs are still paused: Airflow
# backfills first, then one REST-triggered run per table for the logical date of that scheduled
# run (Airflow creates no second run for a logical date that has one), then the README's unpause
# command starts them all at once on the two workers.

def _window_conf(first: date, last: date) -> dict:
    return {"run": {"mode": "window", "first_day": str(first), "days": (last - first).days + 1}}


def _backfill_conf(table: str, first: date, last: date) -> dict:
    return {"table": table, "window_start": str(first), "window_end": str(last), "days": 1}


def test_table_dags_start_paused(stack):
    api = stack["api"]
    dags = {d["dag_id"]: d for d in api.get("/dags", limit=200, dag_id_pattern="hipbridge_")["dags"]}
    table_dags = [f"hipbridge_{t}" for t in TABLES]
    assert all(dags[d]["is_paused"] for d in table_dags), [d for d in table_dags if not dags[d]["is_paused"]]
    assert api.get("/importErrors")["total_entries"] == 0


def test_healthchecks_of_the_compose_file_pass_against_the_running_processes(stack):
    for service in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker-1"):
        done = subprocess.run(healthcheck(service), env=stack["envs"][service], cwd=stack["work"],
                              capture_output=True, text=True, timeout=240, check=False)
        assert done.returncode == 0, f"{service}: {done.stdout[-2000:]}{done.stderr[-2000:]}"


def test_runs_triggered_through_the_rest_api_start_when_the_documented_command_unpauses(stack):
    api = stack["api"]
    first, last = _demo_days(stack)
    af = f"hipbridge_{AF_BACKFILL_TABLE}"
    # Airflow's own Backfill: a daily DAG's run of logical date D covers hospital day D (Asia/Shanghai)
    stack["backfill"] = api.post("/backfills", {"dag_id": af, "from_date": f"{first}T00:00:00+08:00",
                                                "to_date": f"{last}T00:00:00+08:00", "max_active_runs": 2})
    runs = {}
    for t in TABLES:
        dag_id = f"hipbridge_{t}"
        slot = api.get(f"/dags/{dag_id}")["next_dagrun_logical_date"]
        taken = {r["logical_date"] for r in api.runs(dag_id)}
        body = {"logical_date": slot if slot and slot not in taken else None, "conf": {"run": {"mode": "incremental"}}}
        runs[t] = api.post(f"/dags/{dag_id}/dagRuns", body)["dag_run_id"]
    stack["table_runs"] = runs
    # README: airflow dags unpause --treat-dag-id-as-regex --yes '^hipbridge_'  (here only the DAGs under test)
    pattern = "^hipbridge_(" + "|".join([*TABLES, "backfill"]) + ")$"
    done = subprocess.run(["airflow", "dags", "unpause", "--treat-dag-id-as-regex", "--yes", pattern],
                          env=stack["envs"]["airflow-scheduler"], cwd=stack["work"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    dags = {d["dag_id"]: d for d in api.get("/dags", limit=200, dag_id_pattern="hipbridge_")["dags"]}
    assert not any(dags[f"hipbridge_{d}"]["is_paused"] for d in [*TABLES, "backfill"])


def test_all_27_table_dags_run_on_the_celery_workers_and_load_what_a_reference_run_loads(stack):
    api, st = stack["api"], stack["stack"]
    assert len(TABLES) == 27
    runs = stack["table_runs"]
    pending = dict(runs)

    def all_done():
        for t, rid in list(pending.items()):
            if _finished(api, f"hipbridge_{t}", rid):
                pending.pop(t)
        return not pending

    _wait(all_done, 900, "the 27 table DAG runs", st, every=3)
    states = {t: api.run_state(f"hipbridge_{t}", rid) for t, rid in runs.items()}
    assert set(states.values()) == {"success"}, {t: s for t, s in states.items() if s != "success"}
    for t in TABLES:
        n_fe, n_ref, only_fe, only_ref = _differences(stack, t)
        assert (n_fe, only_fe, only_ref) == (n_ref, 0, 0), f"{t}: {n_fe} rows vs reference {n_ref}"
        assert any(b["run_id"] == runs[t] and b["status"] == "published" for b in _batches(stack, t)), t
    assert sum(_differences(stack, t)[0] for t in TABLES) > 1000
    # every task ran on a Celery worker (the scheduler's executor), none in the scheduler itself
    tis = [ti for t, rid in runs.items() for ti in api.task_instances(f"hipbridge_{t}", rid)]
    assert len(tis) == 4 * 27 and {ti["executor"] or "CeleryExecutor" for ti in tis} == {"CeleryExecutor"}


def test_airflow_backfill_is_a_window_over_each_runs_data_interval_and_never_moves_the_watermark(stack):
    api, table = stack["api"], AF_BACKFILL_TABLE
    dag_id = f"hipbridge_{table}"
    first, _ = _demo_days(stack)

    def backfill_runs(backfill_id):
        """The runs of one backfill once it is complete. A run does not name its backfill in the REST API
        (DAGRunResponse has no backfill_id): they are the backfill runs whose logical date lies in its range."""
        bf = api.get(f"/backfills/{backfill_id}")
        if bf["completed_at"] is None:  # set by the scheduler when every run has finished
            return None
        lo, hi = (datetime.fromisoformat(bf[k]) for k in ("from_date", "to_date"))
        rs = [r for r in api.runs(dag_id) if r["run_type"] == "backfill" and r["logical_date"]
              and lo <= datetime.fromisoformat(r["logical_date"]) <= hi]
        return rs if rs and all(r["state"] in ("success", "failed") for r in rs) else None

    runs = _wait(lambda: backfill_runs(stack["backfill"]["id"]), 300, "the backfill runs", stack["stack"], every=3)
    assert len(runs) == DEMO_DAYS and {r["state"] for r in runs} == {"success"}, runs
    batches = [b for b in _batches(stack, table) if b["run_id"] in {r["dag_run_id"] for r in runs}]
    day = lambda i: datetime.combine(first + timedelta(days=i), datetime.min.time())
    assert sorted((b["window_start"], b["window_end"]) for b in batches) == [(day(i), day(i + 1))
                                                                             for i in range(DEMO_DAYS)]
    assert {b["mode"] for b in batches} == {"window"} and {b["status"] for b in batches} == {"published"}
    assert all(b["extracted"] > 0 for b in batches)  # each run read its own hospital day from the source
    with stack["admin"].connect() as c:
        setter = c.execute(text(f"SELECT batch_id FROM `{_ops_schema(stack)}`.watermark WHERE table_id = :t"),
                           {"t": table}).scalar()
    assert setter not in {b["batch_id"] for b in batches}  # only the incremental run moved the watermark
    assert setter in {b["batch_id"] for b in _batches(stack, table) if b["run_id"] == stack["table_runs"][table]}

    # refused, with the reason, when the backfill's conf asks for a full reload: no batch, no retry
    # (one backfill per DAG at a time: this one after the first has finished)
    day_before = first - timedelta(days=1)
    again = api.post("/backfills", {"dag_id": dag_id, "from_date": f"{day_before}T00:00:00+08:00",
                                    "to_date": f"{day_before}T00:00:00+08:00", "dag_run_conf": {"run": {"mode": "full"}}})
    (refused,) = _wait(lambda: backfill_runs(again["id"]), 180, "the refused backfill run", stack["stack"], every=3)
    assert refused["state"] == "failed"
    plan = next(t for t in api.task_instances(dag_id, refused["dag_run_id"]) if t["task_id"] == "plan")
    assert plan["state"] == "failed" and plan["try_number"] == 1
    assert "Airflow 回填" in api.log(dag_id, refused["dag_run_id"], "plan", 1)
    assert not [b for b in _batches(stack, table) if b["run_id"] == refused["dag_run_id"]]


def test_hipbridge_backfill_survives_a_worker_killed_mid_window(stack):
    api, st = stack["api"], stack["stack"]
    first, last = _demo_days(stack)
    run_id = api.trigger("hipbridge_backfill", _backfill_conf(KILL_TABLE, first, last))
    workers = ("airflow-worker-1", "airflow-worker-2")

    def worker_of(ti: dict) -> str | None:
        """The worker whose process tree runs this task instance (Celery picks the worker, not the test)."""
        try:
            chain = {p.pid for p in psutil.Process(ti["pid"]).parents()}
        except (psutil.NoSuchProcess, TypeError):
            return None
        return next((w for w in workers if st.procs[w].pid in chain), None)

    def killed_mid_window():
        """Freeze the worker running a window, make sure the window has not finished (a frozen task
        reports nothing, so after the pause Airflow's state is final), then kill the worker's whole tree.
        A window that finished in between: thaw the worker and wait for the next one."""
        for ti in api.task_instances("hipbridge_backfill", run_id):
            if ti["task_id"] != "sync_window" or ti["state"] != "running" or not ti.get("pid"):
                continue
            name = worker_of(ti)
            if name is None:
                continue
            root = psutil.Process(st.procs[name].pid)
            frozen = [root, *root.children(recursive=True)]
            for p in frozen:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.suspend()
            time.sleep(3)  # a success report already on its way lands meanwhile
            now = {(t["task_id"], t["map_index"]): t for t in api.task_instances("hipbridge_backfill", run_id)}
            same = now[("sync_window", ti["map_index"])]
            if same["state"] == "running" and same["try_number"] == ti["try_number"]:
                st.kill_tree(name)
                return name, ti
            for p in frozen:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.resume()
        return None

    victim_worker, victim = _wait(killed_mid_window, 240, "a backfill window running on a worker", st, every=0.2)
    survivor = next(w for w in workers if w != victim_worker)
    state = _wait(lambda: _finished(api, "hipbridge_backfill", run_id), 300, "the backfill run after the kill", st,
                  every=2)
    tis = {(t["task_id"], t["map_index"]): t for t in api.task_instances("hipbridge_backfill", run_id)}
    retried = tis[("sync_window", victim["map_index"])]
    assert state == "success", tis
    assert retried["state"] == "success" and retried["try_number"] == victim["try_number"] + 1  # the try died
    assert st.procs[victim_worker].poll() is not None and st.procs[survivor].poll() is None
    # so the retry ran on the survivor, the only worker left; its log says so
    attempt = f"run_id={run_id}/task_id=sync_window/map_index={victim['map_index']}/attempt={retried['try_number']}.log"
    assert any("Executing workload" in line and attempt in line
               for line in st.logs[survivor].read_text(errors="replace").splitlines()), attempt
    batches = [b for b in _batches(stack, KILL_TABLE) if b["run_id"] == run_id]
    assert {b["status"] for b in batches} >= {"published"} and all(b["extracted"] > 0 for b in batches
                                                                   if b["status"] == "published")
    n_fe, n_ref, only_fe, only_ref = _differences(stack, KILL_TABLE)
    assert (n_fe, only_fe, only_ref) == (n_ref, 0, 0)  # the data is right: nothing lost, doubled or changed
    # docker-compose restarts a dead worker (restart: unless-stopped): so does the test
    st.start(victim_worker, [*service_command(victim_worker), "--celery-hostname",
                             f"celery@{stack['workers'][victim_worker]}-2"], stack["envs"][victim_worker])


def test_a_window_rerun_with_params_rewrites_nothing_and_keeps_the_watermark(stack):
    api = stack["api"]
    first, last = _demo_days(stack)
    before = _watermark(stack, RERUN_TABLE)
    rid = api.trigger(f"hipbridge_{RERUN_TABLE}", _window_conf(first, last))
    assert _wait(lambda: _finished(api, f"hipbridge_{RERUN_TABLE}", rid), 240, "the window rerun",
                 stack["stack"]) == "success"
    (batch,) = [b for b in _batches(stack, RERUN_TABLE) if b["run_id"] == rid]
    assert batch["mode"] == "window" and batch["status"] == "published"
    # every row read again, none written (batch_log.published counts rows written: new + changed + voided)
    assert (batch["published"], batch["inserted"], batch["updated"], batch["voided"]) == (0, 0, 0, 0)
    assert batch["unchanged"] == batch["extracted"] > 0
    n_fe, n_ref, only_fe, only_ref = _differences(stack, RERUN_TABLE)
    assert (n_fe, only_fe, only_ref) == (n_ref, 0, 0)
    assert _watermark(stack, RERUN_TABLE) == before
    print(f"\n[distributed] stack ready after {stack['boot_seconds']:.0f} s; all tests done after "
          f"{time.monotonic() - stack['started']:.0f} s", file=sys.stderr)

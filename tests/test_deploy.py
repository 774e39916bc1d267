"""The compose stack's files: one env file with the keys, a compose file that validates, grants that
let the hipbridge user create what hipbridge creates, and the image's commands working with the
compose file's environment (against this machine's real MariaDB and PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from hipbridge.deploy import (
    EXAMPLE_FILE,
    PLACEHOLDER,
    Secrets,
    read_env_file,
    render_env,
    share_schema,
    source_connections,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.compose_env import ROOT, compose, localize, relocate_url, service_command, service_env
from tests.conftest import MARIADB_ADMIN, POSTGRES_ADMIN

BIN = Path(sys.executable).parent
AIRFLOW_SERVICES = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker-1", "airflow-worker-2"]


def _cli(*args, env=None, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "hipbridge"), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"hipbridge {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def test_env_file_is_written_once_with_fresh_matching_secrets(tmp_path):
    out = tmp_path / "hipbridge.env"
    _cli("deploy", "env", "--out", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    env = read_env_file(out)
    Fernet(env["AIRFLOW__CORE__FERNET_KEY"].encode())  # a valid Fernet key, or this raises
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 32 and len(env["AIRFLOW__API__SECRET_KEY"]) >= 32
    # the passwords the database containers are created with are the ones inside the URLs
    meta = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (meta.drivername, meta.username, meta.password, meta.database) == (
        "postgresql+psycopg2", env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    fe = make_url(env["HIPBRIDGE_FRONTEND_URL"])
    assert (fe.username, fe.password, fe.database) == (env["MARIADB_USER"], env["MARIADB_PASSWORD"],
                                                       env["MARIADB_DATABASE"])
    # URLs name services of the compose file
    assert {meta.host, fe.host} <= set(compose()["services"])
    # the operations schema hipbridge derives for this front-end falls under the grants' `<database>_%`
    from hipbridge.settings import ops_schema_name
    from hipbridge.spec import load_specs

    assert "HIPBRIDGE_OPS_SCHEMA" not in env
    assert ops_schema_name(load_specs().defaults, env["HIPBRIDGE_FRONTEND_URL"]).startswith(env["MARIADB_DATABASE"] + "_")
    assert env["HIPBRIDGE_SHARE_SCHEMA"] == share_schema()
    assert {f"HIPBRIDGE_CONN_{c.upper()}" for c in source_connections()} <= set(env)
    secrets_ = [env[k] for k in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
                                 "POSTGRES_PASSWORD", "MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD",
                                 "HIPBRIDGE_AIRFLOW_ADMIN_PASSWORD")]
    assert len(set(secrets_)) == len(secrets_) and PLACEHOLDER not in secrets_

    again = _cli("deploy", "env", "--out", str(out), check=False)
    assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr
    assert read_env_file(out) == env  # untouched: the keys in use are kept
    _cli("deploy", "env", "--out", str(out), "--force")
    assert read_env_file(out)["AIRFLOW__CORE__FERNET_KEY"] != env["AIRFLOW__CORE__FERNET_KEY"]


def test_shipped_example_is_the_generators_output():
    expected = render_env(Secrets.placeholders(), connections=source_connections(), share=share_schema())
    assert EXAMPLE_FILE.read_text(encoding="utf-8") == expected, "run `hipbridge deploy env --example`"


def test_airflow_init_writes_the_ui_password_file(tmp_path):
    target = tmp_path / "home" / "passwords.json"
    env = {"HIPBRIDGE_AIRFLOW_ADMIN_PASSWORD": "s3cret-Pw", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target)}
    _cli("deploy", "airflow-passwords", env=env)
    import json

    assert json.loads(target.read_text()) == {"admin": "s3cret-Pw"}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    refused = _cli("deploy", "airflow-passwords", env={**env, "HIPBRIDGE_AIRFLOW_ADMIN_PASSWORD": PLACEHOLDER},
                   check=False)
    assert refused.returncode == 2 and "hipbridge deploy env" in refused.stderr


# ------------------------------------------------------------------ docker-compose config

def _compose_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "deploy").mkdir(parents=True)
    shutil.copy(ROOT / "docker-compose.yml", project)
    shutil.copytree(ROOT / "deploy" / "mariadb", project / "deploy" / "mariadb")
    _cli("deploy", "env", "--out", str(project / "deploy" / "hipbridge.env"))
    return project


def _compose_config(project: Path, **env) -> dict:
    exe = shutil.which("docker-compose")
    if exe is None:  # on a developer's machine a skip; in CI (.ci/run installs it) a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)("docker-compose is not installed (.ci/run installs it)")
    done = subprocess.run([exe, "-f", str(project / "docker-compose.yml"), "config"], capture_output=True,
                          text=True, env={**os.environ, **env}, check=False)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_config_validates_and_the_stack_is_production_shaped(tmp_path):
    project = _compose_project(tmp_path)
    cfg = _compose_config(project)
    services = cfg["services"]
    assert set(AIRFLOW_SERVICES) | {"frontend-db", "airflow-db", "redis"} <= set(services)
    for name, svc in services.items():
        assert "restart" in svc, f"{name}: no restart policy"
        if name == "airflow-init":  # one-shot: the others wait for it to exit 0
            assert svc["restart"] == "no" and svc["healthcheck"] in ({"disable": True}, {"test": ["NONE"]})
        else:
            assert svc["restart"] == "unless-stopped", name
            assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
    # databases: the front-end on the host's loopback by default, the others not published at all
    assert _host_ips(services["frontend-db"]["ports"]) == ["127.0.0.1"]
    assert "ports" not in services["airflow-db"] and "ports" not in services["redis"]
    opened = _compose_config(project, FRONTEND_DB_BIND="10.20.30.40")["services"]["frontend-db"]["ports"]
    assert _host_ips(opened) == ["10.20.30.40"]
    assert _host_ips(services["airflow-apiserver"]["ports"]) == [None]  # the UI, on every interface
    # one set of keys, one log folder, Celery on Redis with two workers
    keys = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")
    generated = read_env_file(project / "deploy" / "hipbridge.env")
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert {k: env[k] for k in keys} == {k: generated[k] for k in keys}, name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
        assert any(str(v).endswith(":/opt/airflow/logs:rw") and str(v).startswith("airflow-logs:")
                   for v in services[name]["volumes"]), f"{name}: no shared log volume"
    assert [n for n in services if service_command_of(services[n]) == "airflow celery worker"] == \
        ["airflow-worker-1", "airflow-worker-2"]
    # the grants script is mounted where the MariaDB image runs it
    mounts = services["frontend-db"]["volumes"]
    assert any(str(v).endswith("/deploy/mariadb:/docker-entrypoint-initdb.d:ro") for v in mounts)


def _host_ips(ports: list) -> list[str | None]:
    """The host address of each published port, None for every interface (short or long syntax)."""
    out = []
    for p in ports:
        if isinstance(p, dict):
            out.append(p.get("host_ip") or None)
        else:
            parts = str(p).split(":")
            out.append(":".join(parts[:-2]) if len(parts) > 2 else None)
    return out


def service_command_of(svc: dict) -> str:
    cmd = svc.get("command")
    return cmd if isinstance(cmd, str) else " ".join(cmd or [])


def test_compose_config_accepts_the_shipped_example(tmp_path):
    project = tmp_path / "example"
    (project / "deploy").mkdir(parents=True)
    shutil.copy(ROOT / "docker-compose.yml", project)
    shutil.copy(EXAMPLE_FILE, project / "deploy" / "hipbridge.env")
    assert "frontend-db" in _compose_config(project)["services"]


# ------------------------------------------------------------------ grants (real MariaDB)

def _unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


@pytest.fixture
def image_like_mariadb():
    """A database and user as the MariaDB image creates them (ALL on MARIADB_DATABASE, nothing else)."""
    db, user, pw, share = _unique("hbfe"), _unique("hbu")[:32], uuid.uuid4().hex, _unique("hbshare")
    admin = create_engine(MARIADB_ADMIN)
    with admin.begin() as c:
        c.execute(text(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        c.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{pw}'"))
        c.execute(text(f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'%'"))
    yield {"MARIADB_DATABASE": db, "MARIADB_USER": user, "MARIADB_PASSWORD": pw, "HIPBRIDGE_SHARE_SCHEMA": share}
    from hipbridge.io.engines import dispose_all

    dispose_all()
    with admin.begin() as c:
        names = c.execute(text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p "
                               "OR schema_name = :s"), {"p": f"{db}%", "s": share}).scalars().all()
        for name in names:
            c.execute(text(f"DROP DATABASE `{name}`"))
        c.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
    admin.dispose()


def test_grants_let_the_hipbridge_user_create_what_hipbridge_creates(tmp_path, image_like_mariadb):
    m = image_like_mariadb
    admin_url = make_url(MARIADB_ADMIN)
    url = (f"mysql+pymysql://{m['MARIADB_USER']}:{m['MARIADB_PASSWORD']}@{admin_url.host}:{admin_url.port or 3306}/"
           f"{m['MARIADB_DATABASE']}?charset=utf8mb4&local_infile=1")
    # the operations schema: hipbridge's own name for it (no HIPBRIDGE_OPS_SCHEMA, as in the env file)
    env = {"HIPBRIDGE_FRONTEND_URL": url, "HIPBRIDGE_SHARE_SCHEMA": m["HIPBRIDGE_SHARE_SCHEMA"],
           "HIPBRIDGE_HOME": str(tmp_path / "home")}
    env_without_override = {k: v for k, v in os.environ.items() if not k.startswith("HIPBRIDGE_")}
    # without the script the operations schema cannot be created: the user owns only its database
    denied = subprocess.run([str(BIN / "hipbridge"), "frontend", "init"], capture_output=True, text=True,
                            env={**env_without_override, **env}, check=False)
    assert denied.returncode != 0 and "denied" in denied.stderr.lower(), denied.stderr[-2000:]

    script = ROOT / "deploy" / "mariadb" / "10-hipbridge-grants.sh"
    subprocess.run([str(script)], env={**os.environ, **m, "MARIADB_ROOT_PASSWORD": admin_url.password or ""},
                   check=True)
    # the front-end tables, the operations schema, then a real table run (LOAD DATA LOCAL, publish)
    demo = subprocess.run([str(BIN / "hipbridge"), "demo", "init", "--days", "1", "--scale", "0.005"],
                          capture_output=True, text=True, env={**env_without_override, **env}, check=False)
    assert demo.returncode == 0, demo.stderr[-2000:]
    for args in (["frontend", "init"], ["run", "op_visit"]):
        done = subprocess.run([str(BIN / "hipbridge"), *args], capture_output=True, text=True,
                              env={**env_without_override, **env}, check=False)
        assert done.returncode == 0, f"hipbridge {args}: {done.stderr[-3000:]}"
    # and the shared store, in its own database
    from hipbridge.sharing.store import open_store
    from hipbridge.spec import load_specs

    os.environ["HIPBRIDGE_SHARE_SCHEMA"] = m["HIPBRIDGE_SHARE_SCHEMA"]
    try:
        store = open_store(url, load_specs())
        assert store.tables
    finally:
        os.environ.pop("HIPBRIDGE_SHARE_SCHEMA", None)
    with create_engine(MARIADB_ADMIN).connect() as c:
        created = set(c.execute(text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p "
                                     "OR schema_name = :s"),
                                {"p": f"{m['MARIADB_DATABASE']}%", "s": m["HIPBRIDGE_SHARE_SCHEMA"]}).scalars())
    assert len(created) == 3, created  # front-end, operations schema, shared store


# ------------------------------------------------------------------ the image's commands, compose env

@pytest.fixture
def compose_style_postgres():
    """A database owned by its own role with a password, as the postgres image creates it."""
    db, role, pw = _unique("hbaf"), _unique("hbaf_r"), uuid.uuid4().hex
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{pw}'"))
        c.execute(text(f'CREATE DATABASE "{db}" OWNER "{role}"'))
    yield db, role, pw
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        c.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    admin.dispose()


def test_airflow_commands_of_the_image_run_with_the_compose_environment(tmp_path, compose_style_postgres):
    db, role, pw = compose_style_postgres
    env_file = tmp_path / "hipbridge.env"
    _cli("deploy", "env", "--out", str(env_file))
    base = service_env("airflow-scheduler", env_file)
    pg = make_url(POSTGRES_ADMIN)
    env = localize(base, {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": relocate_url(base["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], host=pg.host,
                                                            port=pg.port, database=db, username=role, password=pw),
    }, ROOT, tmp_path / "airflow")
    assert make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).drivername == "postgresql+psycopg2"
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    for k in ("PYTHONPATH",):
        if k in os.environ:
            env[k] = os.environ[k]
    (tmp_path / "airflow").mkdir()
    for cmd in (["airflow", "version"], ["airflow", "db", "check"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=300)
        assert done.returncode == 0, f"{cmd}: {done.stderr[-3000:]}"
    assert service_command("airflow-scheduler") == ["airflow", "scheduler"]

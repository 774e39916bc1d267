"""Database engines: source connections by id, the front-end database, and the embedded default.

Connections are never written in YAML. A spec names a connection id (`his`); the URL comes from
the environment variable `HIPBRIDGE_CONN_HIS`, or from the Airflow Connection `hipbridge_his`
when running inside Airflow. The front-end database is `HIPBRIDGE_FRONTEND_URL`, by default an
SQLite file under the hipbridge home (the embedded default, no server to install).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

_log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def home() -> Path:
    """Working folder for the embedded default (demo sources, front-end SQLite, Airflow home)."""
    path = Path(os.environ.get("HIPBRIDGE_HOME", PROJECT_ROOT / ".hipbridge"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_frontend_url() -> str:
    return os.environ.get("HIPBRIDGE_FRONTEND_URL") or f"sqlite:///{home() / 'frontend.db'}"


class ConnectionNotConfigured(LookupError):
    pass


def connection_url(conn_id: str) -> str:
    """Resolve a source connection id to an SQLAlchemy URL (env first, then Airflow)."""
    env_name = f"HIPBRIDGE_CONN_{conn_id.upper()}"
    url = os.environ.get(env_name)
    if url:
        return url
    demo = home() / "demo" / f"{conn_id}.db"
    try:  # inside Airflow: a Connection named hipbridge_<id>
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(f"hipbridge_{conn_id}")
        uri = conn.get_uri()
        return uri.replace("mysql://", "mysql+pymysql://", 1)
    except Exception as exc:  # noqa: BLE001 - Airflow absent or connection not defined: fall through
        _log.debug("no Airflow connection hipbridge_%s: %s", conn_id, exc)
    if demo.exists():
        return f"sqlite:///{demo}"
    raise ConnectionNotConfigured(
        f"source connection {conn_id!r} is not configured: set {env_name} to an SQLAlchemy URL "
        f"(e.g. oracle+oracledb://user:pw@host:1521/?service_name=HIS) or define the Airflow "
        f"Connection hipbridge_{conn_id}; for the demo run `hipbridge demo init`"
    )


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # Rollback journal, not WAL: a publish spans the front-end file and the attached ops file,
    # and only the rollback journal makes such a two-file commit atomic.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _attach_ops(url: str, ops_schema: str):
    """SQLite has no schemas: the operations schema is a second file ATTACHed under its name."""
    db = make_url(url).database or ""
    ops_file = f"{db.removesuffix('.db')}_{ops_schema}.db" if db and db != ":memory:" else ":memory:"

    def attach(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"ATTACH DATABASE '{ops_file}' AS {ops_schema}")
        cur.close()

    return attach


_ENGINES: dict[tuple[str, str | None], Engine] = {}


def _build_engine(url: str, ops_schema: str | None) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        eng = create_engine(url, connect_args={"timeout": 30})
        event.listen(eng, "connect", _sqlite_pragmas)
        if ops_schema:
            event.listen(eng, "connect", _attach_ops(url, ops_schema))
        return eng
    kwargs: dict = {"pool_pre_ping": True}
    if u.get_backend_name() in ("mysql", "mariadb"):
        query = dict(u.query)
        query.setdefault("charset", "utf8mb4")
        u = u.set(query=query)
        kwargs["connect_args"] = {"local_infile": True}
    return create_engine(u, **kwargs)


def engine_for(url: str, ops_schema: str | None = None) -> Engine:
    """One pooled engine per URL. Pass ops_schema for a front-end engine (attaches it on SQLite)."""
    key = (url, ops_schema)
    if key not in _ENGINES:
        _ENGINES[key] = _build_engine(url, ops_schema)
    return _ENGINES[key]


def source_engine(conn_id: str) -> Engine:
    return engine_for(connection_url(conn_id))


def dispose_all() -> None:
    """Forget pooled engines (after fork, or when a test drops a database)."""
    for eng in _ENGINES.values():
        eng.dispose()
    _ENGINES.clear()

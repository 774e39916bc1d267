"""Database engines: source connections by id, the front-end database, and the embedded default.

Connections are never written in YAML. A spec names a connection id (`his`); the URL comes from
the environment variable `HIPBRIDGE_CONN_HIS`, or from the Airflow Connection `hipbridge_his`
when running inside Airflow. The front-end database is `HIPBRIDGE_FRONTEND_URL`, by default an
SQLite file under the hipbridge home (the embedded default, no server to install).
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

from hipbridge.redact import register_url
from hipbridge.settings import settings

from .sources import airflow_conn_types, for_airflow_conn_type

# Airflow is imported only while resolving a connection: outside Airflow it is absent or not configured.

_log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def home() -> Path:
    """Working folder for the embedded default (demo sources, front-end SQLite, Airflow home)."""
    path = settings().home
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_frontend_url() -> str:
    return settings().frontend_url or f"sqlite:///{home() / 'frontend.db'}"


class ConnectionNotConfigured(LookupError):
    pass


REGISTRY_FILE = "connections.yaml"

def url_from_airflow_connection(conn) -> str:
    """An Airflow Connection (any object with Airflow's Connection fields) as an SQLAlchemy URL.

    Airflow's own URIs (`postgres://`, `mssql://`, `oracle://`, `mysql://`) name no driver, and
    SQLAlchemy 2 refuses `postgres://`: each source dialect (`sources.py`) names its driver and
    reads its Connection's extra.
    """
    dialect = for_airflow_conn_type(conn.conn_type or "")
    if dialect is None:
        raise ConnectionNotConfigured(
            f"Airflow Connection {conn.conn_id!r} has type {conn.conn_type!r}; hipbridge reads "
            f"{', '.join(airflow_conn_types())}")
    return dialect.airflow_url(conn)


def registered_connections() -> dict[str, str]:
    """`$HIPBRIDGE_HOME/connections.yaml`: connection ids this home registered explicitly.

    `hipbridge demo init` writes the demo hospital's SQLite sources here; nothing else is implied
    by a folder's contents. Secrets never go in this file: a URL with a password is refused.
    """
    path = home() / REGISTRY_FILE
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConnectionNotConfigured(f"{path}: expected a mapping of connection id to URL")
    for conn_id, url in data.items():
        if make_url(url).password:
            raise ConnectionNotConfigured(
                f"{path}: {conn_id}: a password does not belong in this file; set "
                f"HIPBRIDGE_CONN_{str(conn_id).upper()} or the Airflow Connection hipbridge_{conn_id}")
    return {str(k).lower(): v for k, v in data.items()}


def register_connections(urls: dict[str, str]) -> Path:
    """Add or replace entries of `$HIPBRIDGE_HOME/connections.yaml` (used by the demo builder)."""
    merged = {**registered_connections(), **{k.lower(): v for k, v in urls.items()}}
    path = home() / REGISTRY_FILE
    path.write_text("# Source connections registered for this hipbridge home (no secrets here).\n"
                    + yaml.safe_dump(merged, allow_unicode=True, sort_keys=True), encoding="utf-8")
    return path


def known_connection_url(conn_id: str) -> str | None:
    """A connection's URL where it is known without asking Airflow: `HIPBRIDGE_CONN_<ID>`, then
    `connections.yaml` (`hipbridge spec check` reads the source's dialect from it)."""
    return settings().source_url(conn_id) or registered_connections().get(conn_id.lower())


def connection_url(conn_id: str) -> str:
    """Resolve a source connection id to an SQLAlchemy URL.

    In order: `HIPBRIDGE_CONN_<ID>`, the Airflow Connection `hipbridge_<id>`, an entry of
    `$HIPBRIDGE_HOME/connections.yaml`. Nothing else: an unconfigured id is an error naming it.
    """
    env_name = f"HIPBRIDGE_CONN_{conn_id.upper()}"
    url = settings().source_url(conn_id)
    if url:
        return url
    try:  # inside Airflow (or with AIRFLOW_CONN_* set): a Connection named hipbridge_<id>
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(f"hipbridge_{conn_id}")
    except Exception as exc:  # noqa: BLE001 - Airflow absent or connection not defined: fall through
        _log.debug("no Airflow connection hipbridge_%s: %s", conn_id, exc)
    else:
        return url_from_airflow_connection(conn)
    registered = registered_connections().get(conn_id.lower())
    if registered:
        return registered
    raise ConnectionNotConfigured(
        f"source connection {conn_id!r} is not configured: set {env_name} to an SQLAlchemy URL "
        f"(e.g. oracle+oracledb://user:pw@host:1521/?service_name=HIS) or define the Airflow "
        f"Connection hipbridge_{conn_id}; the demo hospital registers its own with `hipbridge demo init`"
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
    register_url(url)   # its password is masked in our output and in Airflow's task logs
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        # hide_parameters: a database error never carries a row's values (personal data) into a message
        eng = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(eng, "connect", _sqlite_pragmas)
        if ops_schema:
            event.listen(eng, "connect", _attach_ops(url, ops_schema))
        return eng
    kwargs: dict = {"pool_pre_ping": True, "hide_parameters": True}
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

"""Source connections: Airflow Connections of every source dialect, and no silent demo fallback."""

from __future__ import annotations

import json

import pytest
from hipbridge.io.engines import (
    ConnectionNotConfigured,
    connection_url,
    register_connections,
    url_from_airflow_connection,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def _airflow_connection(**fields):
    from airflow.sdk import Connection

    return Connection(conn_id=fields.pop("conn_id", "hipbridge_x"), **fields)


@pytest.mark.parametrize("fields, drivername, database, query", [
    ({"conn_type": "mysql", "host": "pacs-db", "port": 3306, "login": "u", "password": "p@ss", "schema": "pacs"},
     "mysql+pymysql", "pacs", {"charset": "utf8mb4"}),
    ({"conn_type": "postgres", "host": "pg", "port": 5432, "login": "u", "password": "p", "schema": "his"},
     "postgresql+psycopg2", "his", {}),
    ({"conn_type": "mssql", "host": "lis-db", "port": 1433, "login": "sa", "password": "p/w", "schema": "LIS"},
     "mssql+pymssql", "LIS", {}),
    ({"conn_type": "oracle", "host": "10.0.0.5", "port": 1521, "login": "u", "password": "p",
          "extra": json.dumps({"service_name": "HIS"})}, "oracle+oracledb", None, {"service_name": "HIS"}),
    ({"conn_type": "oracle", "host": "10.0.0.5", "port": 1521, "login": "u", "password": "p",
          "extra": json.dumps({"sid": "ORCL"})}, "oracle+oracledb", "ORCL", {}),
])
def test_airflow_connection_types_become_sqlalchemy2_urls(fields, drivername, database, query):
    conn = _airflow_connection(**fields)
    url = make_url(url_from_airflow_connection(conn))
    assert url.drivername == drivername
    assert (url.database, dict(url.query)) == (database, query)
    assert (url.username, url.password, url.host, url.port) == (fields["login"], fields["password"],
                                                                  fields["host"], fields["port"])
    # SQLAlchemy 2 loads the dialect and its driver for every one (no connection is opened).
    create_engine(url).dispose()


def test_an_unknown_connection_type_is_named():
    with pytest.raises(ConnectionNotConfigured, match="'hipbridge_x' has type 'http'"):
        url_from_airflow_connection(_airflow_connection(conn_type="http", host="x"))


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_airflow_connection_reaches_the_real_server(kind, monkeypatch, hb_home):
    """Airflow's own lookup (AIRFLOW_CONN_*), then a real query through the URL we made of it."""
    if kind == "postgres":
        conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres",
                "schema": "postgres"}
    else:
        conn = {"conn_type": "mysql", "host": "127.0.0.1", "port": 3306, "login": "root", "schema": "mysql"}
    monkeypatch.setenv("AIRFLOW_CONN_HIPBRIDGE_SRC", json.dumps(conn))
    monkeypatch.delenv("HIPBRIDGE_CONN_SRC", raising=False)
    engine = create_engine(connection_url("src"))
    try:
        with engine.connect() as c:
            assert c.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_an_unconfigured_connection_never_falls_back_to_demo_files(hb_home, monkeypatch):
    monkeypatch.delenv("HIPBRIDGE_CONN_HIS", raising=False)
    (hb_home / "demo").mkdir()
    (hb_home / "demo" / "his.db").write_bytes(b"")     # what the old code silently picked up
    with pytest.raises(ConnectionNotConfigured) as err:
        connection_url("his")
    assert "HIPBRIDGE_CONN_HIS" in str(err.value) and "hipbridge_his" in str(err.value)


def test_registered_connections_are_used_and_refuse_secrets(hb_home, monkeypatch):
    monkeypatch.delenv("HIPBRIDGE_CONN_LIS", raising=False)
    register_connections({"lis": f"sqlite:///{hb_home / 'lis.db'}"})
    assert connection_url("lis") == f"sqlite:///{hb_home / 'lis.db'}"
    monkeypatch.setenv("HIPBRIDGE_CONN_LIS", "sqlite:///elsewhere.db")    # the environment wins
    assert connection_url("lis") == "sqlite:///elsewhere.db"
    (hb_home / "connections.yaml").write_text("his: mysql+pymysql://u:secret@h/his\n", encoding="utf-8")
    with pytest.raises(ConnectionNotConfigured, match="password does not belong"):
        connection_url("his")


def test_demo_build_registers_its_sources(hb_home, monkeypatch):
    from hipbridge.demo import build

    for conn in ("HIS", "LIS", "PACS"):
        monkeypatch.delenv(f"HIPBRIDGE_CONN_{conn}", raising=False)
    build(hb_home / "demo", seed=5, days=1, scale=0.002, register=True)
    for system in ("his", "lis", "pacs"):
        engine = create_engine(connection_url(system))
        try:
            with engine.connect() as c:
                assert c.execute(text("SELECT count(*) FROM sqlite_master")).scalar() > 0
        finally:
            engine.dispose()

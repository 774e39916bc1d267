"""Source dialects (`io/sources.py`): each class answers every question the read path, doctor and the
Airflow Connection lookup ask of a source, in its own database's spelling.

MariaDB, PostgreSQL and SQLite answers are run against the real databases; Oracle and SQL Server
(no server here) are parsed by sqlglot in their dialect, the same parser the read-only guard uses.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlglot
from hipbridge.io.extract import literal_window_sql, read_chunks
from hipbridge.io.sources import (
    _CLASSES,
    MySQLSource,
    OracleSource,
    PostgresSource,
    SourceDialect,
    SQLiteSource,
    SqlServerSource,
    airflow_conn_types,
    for_airflow_conn_type,
    source_dialect,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

URLS = {MySQLSource: "mysql+pymysql://u:p@h/db", PostgresSource: "postgresql+psycopg2://u:p@h/db",
        SqlServerSource: "mssql+pymssql://u:p@h/db", OracleSource: "oracle+oracledb://u:p@h:1521/?service_name=X",
        SQLiteSource: "sqlite:///x.db"}
SQLGLOT = {MySQLSource: "mysql", PostgresSource: "postgres", SqlServerSource: "tsql", OracleSource: "oracle",
           SQLiteSource: "sqlite"}
START, END = datetime(2026, 11, 20, 8, 0, 0), datetime(2026, 11, 21, 8, 0, 0)
ROWS = [(1, "2026-11-20 07:59:59"), (2, "2026-11-20 08:00:00"), (3, "2026-11-21 07:59:59"), (4, "2026-11-21 08:00:00")]


def test_every_source_kind_has_one_class_and_is_found_by_engine_url_dialect_and_name():
    assert set(_CLASSES) == set(URLS)
    backends = [b for cls in _CLASSES for b in cls.backends]
    assert len(backends) == len(set(backends))
    for cls, url in URLS.items():
        engine = create_engine(url)   # the driver loads; nothing connects
        try:
            for of in (engine, engine.dialect, engine.url, url, engine.dialect.name):
                assert type(source_dialect(of)) is cls, (cls, of)
        finally:
            engine.dispose()
    assert type(source_dialect("mariadb")) is MySQLSource
    # a database no class names streams through its driver, with plain quoted bounds
    generic = source_dialect("firebird")
    assert type(generic) is SourceDialect and generic.fast_read_url(make_url("firebird://u@h/db"), "all") is None


@pytest.mark.parametrize("cls", list(URLS), ids=lambda c: c.__name__)
def test_window_bounds_ping_and_clock_are_sql_of_their_own_dialect(cls):
    dialect = create_engine(URLS[cls]).dialect
    stmt = literal_window_sql("SELECT id, upd FROM visit", "upd", dialect, START, END)
    assert ":window" not in stmt
    tree = sqlglot.parse_one(stmt, read=SQLGLOT[cls])
    assert tree.find(sqlglot.exp.Select) is not None
    assert "2026-11-20 08:00:00" in stmt and "2026-11-21 08:00:00" in stmt
    sqlglot.parse_one(cls.ping_sql, read=SQLGLOT[cls])
    if cls.clock_sql is not None:
        assert len(sqlglot.parse_one(cls.clock_sql, read=SQLGLOT[cls]).expressions) == 2
    assert (cls.clock_sql is None) == (cls is SQLiteSource)   # SQLite: this machine's clock


def test_oracle_and_sql_server_spell_their_bounds_as_typed_timestamps():
    assert OracleSource().timestamp_literal(START) == "TIMESTAMP '2026-11-20 08:00:00'"
    assert SqlServerSource().timestamp_literal(START) == "CONVERT(DATETIME2, '2026-11-20 08:00:00', 120)"
    assert OracleSource.ping_sql == "SELECT 1 FROM DUAL"


def _window_rows(url: str, fast: bool) -> list[int]:
    """Rows of [START, END) read from a real database, through the literal SQL and through the binds."""
    engine = create_engine(url)
    try:
        with engine.begin() as c:
            c.execute(text("CREATE TABLE visit_src (id INT, upd TIMESTAMP NULL)" if "sqlite" not in url else
                           "CREATE TABLE visit_src (id INT, upd TEXT)"))
            c.execute(text("INSERT INTO visit_src VALUES (:i, :u)"), [{"i": i, "u": u} for i, u in ROWS])
            literal = literal_window_sql("SELECT id, upd FROM visit_src", "upd", engine.dialect, START, END)
            by_literal = sorted(r[0] for r in c.execute(text(literal)))
        by_binds = sorted(int(i) for frame in read_chunks(engine, "SELECT id, upd FROM visit_src", "upd", START, END,
                                                          100) for i in frame["id"])
        assert by_literal == by_binds, (by_literal, by_binds, fast)
        return by_literal
    finally:
        engine.dispose()


@pytest.mark.parametrize("fast", ["0", "1"])
def test_window_bounds_select_the_same_rows_on_real_databases(fast, mariadb_url, postgres_url, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("HIPBRIDGE_FAST_READ", fast)
    for url in (mariadb_url, postgres_url, f"sqlite:///{tmp_path / 'src.db'}"):
        assert _window_rows(url, fast == "1") == [2, 3], url


def test_clock_and_ping_run_on_the_real_servers(mariadb_url, postgres_url):
    for url in (mariadb_url, postgres_url):
        engine = create_engine(url)
        try:
            sd = source_dialect(engine)
            with engine.connect() as c:
                assert c.execute(text(sd.ping_sql)).scalar() == 1
                utc, local = c.execute(text(sd.clock_sql)).one()
            assert isinstance(utc, datetime) and isinstance(local, datetime)
            assert abs((local - utc).total_seconds()) <= 14 * 3600
        finally:
            engine.dispose()


def test_fast_read_eligibility_per_dialect():
    mode = {"default": "1", "off": "0", "all": "all"}   # HIPBRIDGE_FAST_READ
    want = {MySQLSource: ("mysql", None, "mysql"), PostgresSource: ("postgresql", None, "postgresql"),
            SqlServerSource: (None, None, "mssql"), OracleSource: (None, None, None),
            SQLiteSource: (None, None, None)}
    for cls, schemes in want.items():
        url = make_url(URLS[cls])
        urls = [cls().fast_read_url(url, m) for m in mode.values()]
        got = tuple(u and make_url(u).drivername for u in urls)
        assert got == schemes, cls
    pg = PostgresSource().fast_read_url(make_url("postgresql+psycopg2://u:p@h/db?sslmode=require&application_name=x"),
                                        "1")
    assert dict(make_url(pg).query) == {"sslmode": "require", "cxprotocol": "binary"}


def test_only_sqlite_lacks_a_date_type_and_binds_text_bounds():
    for cls in _CLASSES:
        assert cls.has_date_type is (cls is not SQLiteSource)
        binds = cls().bind_window(START, END)
        assert binds == ({"window_start": "2026-11-20 08:00:00", "window_end": "2026-11-21 08:00:00"}
                         if cls is SQLiteSource else {"window_start": START, "window_end": END})


def test_every_airflow_connection_type_names_a_loadable_driver():
    assert set(airflow_conn_types()) == {"mysql", "mariadb", "postgres", "postgresql", "mssql", "oracle", "sqlite"}
    for conn_type in airflow_conn_types():
        sd = for_airflow_conn_type(conn_type.upper())
        assert sd is not None and conn_type in type(sd).airflow_conn_types
        assert make_url(f"{sd.driver}://").get_dialect() is not None
    assert for_airflow_conn_type("http") is None


def test_an_oracle_stream_sets_its_driver_defaults_and_the_others_touch_no_driver(monkeypatch):
    oracledb = pytest.importorskip("oracledb")
    monkeypatch.setattr(oracledb.defaults, "fetch_lobs", True)
    monkeypatch.setattr(oracledb.defaults, "fetch_decimals", False)
    for cls in (MySQLSource, PostgresSource, SqlServerSource, SQLiteSource):
        cls().prepare_stream()
    assert (oracledb.defaults.fetch_lobs, oracledb.defaults.fetch_decimals) == (True, False)
    OracleSource().prepare_stream()
    assert (oracledb.defaults.fetch_lobs, oracledb.defaults.fetch_decimals) == (False, True)

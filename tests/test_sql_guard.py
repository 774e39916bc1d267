"""Source queries are read-only (issue 12 item 6): one SELECT per spec, parsed per source dialect with
sqlglot; `spec check` refuses DDL / DML / several statements with file:line, and the extract refuses
them again before anything reaches the source."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hipbridge.spec import load_specs
from hipbridge.spec.sql_guard import (
    DIALECTS,
    ReadOnlyQueryError,
    check_sql,
    require_read_only,
    spec_query_errors,
)

from tests.minihospital import MiniHospital

ROOT = Path(__file__).resolve().parents[1]
ALL = sorted(set(DIALECTS.values()))

GOOD = [
    "SELECT a, b FROM t WHERE u >= :window_start AND u < :window_end",
    "SELECT 1 AS x;",                                                   # a trailing semicolon is not a statement
    "WITH v AS (SELECT * FROM t) SELECT v.a FROM v JOIN w ON v.a = w.a",
    "SELECT a FROM t UNION ALL SELECT a FROM u -- ; DROP TABLE t\n",
]
BAD = [
    ("CREATE TABLE stolen AS SELECT * FROM t", 1, "CREATE"),
    ("SELECT a FROM t;\n\nDROP TABLE t", 3, "only one statement"),
    ("SELECT a FROM t;\nINSERT INTO log VALUES (1)", 2, "only one statement"),
    ("INSERT INTO t SELECT * FROM u", 1, "INSERT"),
    ("UPDATE t SET a = 1", 1, "UPDATE"),
    ("DELETE FROM t", 1, "DELETE"),
    ("SELECT a\nINTO copy_of_t\nFROM t", 2, "SELECT … INTO"),
    ("SELECT a FROM t\nFOR UPDATE", 2, "FOR UPDATE"),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", 1, "DELETE"),
    ("CALL purge_all()", 1, "read-only"),
    ("TRUNCATE TABLE t", 1, "read-only"),
]


@pytest.mark.parametrize("sql", GOOD)
@pytest.mark.parametrize("dialect", ALL)
def test_one_select_passes_in_every_dialect(sql, dialect):
    assert check_sql(sql, dialect) == ()


@pytest.mark.parametrize(("sql", "line", "what"), BAD)
def test_writes_and_several_statements_are_refused_with_their_line(sql, line, what):
    for dialect in ("mysql", "postgres", "sqlite", "oracle"):
        problems = check_sql(sql, dialect)
        assert problems, (dialect, sql)
        assert problems[0].line == line and what in problems[0].message, (dialect, problems)


def test_statement_splitting_follows_the_dialect():
    smuggled = "SELECT a FROM t # ; DROP TABLE t"     # a comment in MySQL, two statements in SQL Server
    assert check_sql(smuggled, "mysql") == ()
    assert "only one statement" in check_sql(smuggled, "tsql")[0].message
    with pytest.raises(ReadOnlyQueryError, match="nothing was sent"):
        require_read_only(smuggled, "mssql")
    require_read_only(smuggled, "mysql")


def test_every_real_spec_is_one_read_only_select():
    specs = load_specs(ROOT / "table_specs")
    assert len(specs.specs) == 27
    assert spec_query_errors(specs) == {}
    for table, spec in specs.specs.items():   # the demo runs them on SQLite: definitely fine there
        assert check_sql(specs.query_text(spec), "sqlite") == (), table


def _spec_check(specs: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hipbridge.cli", "spec", "check"], capture_output=True, text=True,
                          check=False, env={**os.environ, "HIPBRIDGE_SPECS": str(specs),
                                            "PYTHONPATH": str(ROOT / "plugins"), **env})


def test_spec_check_names_file_and_line(tmp_path):
    mini = MiniHospital(tmp_path / "mini")
    (mini.specs / "sql" / "visit.sql").write_text(
        "SELECT v.VISIT_NO AS id FROM CLINIC_VISIT v;\n-- cleanup\nDELETE FROM CLINIC_VISIT\n", encoding="utf-8")
    diag = (mini.specs / "diag.yaml").read_text(encoding="utf-8")
    (mini.specs / "diag.yaml").write_text(diag.replace(
        'query: "SELECT d.DIAG_ID', 'query: "CREATE TABLE stolen AS SELECT d.DIAG_ID'), encoding="utf-8")
    out = _spec_check(mini.specs)
    assert out.returncode == 1
    assert f"{mini.specs / 'sql' / 'visit.sql'}:3: source.query: only one statement may reach a source" in out.stderr
    assert f"{mini.specs / 'diag.yaml'}:6: source.query: source queries are read-only: one SELECT, found CREATE" \
        in out.stderr
    assert "2 error(s)" in out.stderr
    # with the connection's URL known, the check uses that dialect only
    (mini.specs / "sql" / "visit.sql").write_text("SELECT v.VISIT_NO AS id FROM CLINIC_VISIT v # ; DROP TABLE x\n",
                                                  encoding="utf-8")
    (mini.specs / "diag.yaml").write_text(diag, encoding="utf-8")
    assert _spec_check(mini.specs, HIPBRIDGE_CONN_MINI="mysql+pymysql://u@h/db").returncode == 0
    mssql = _spec_check(mini.specs, HIPBRIDGE_CONN_MINI="mssql+pymssql://u@h/db")
    assert mssql.returncode == 1 and "visit.sql:1: source.query: only one statement" in mssql.stderr


def test_the_extract_refuses_a_write_before_it_reaches_the_source(tmp_path, hb_home, monkeypatch):
    """A spec that slipped past `spec check`: the CREATE never runs on the HIS."""
    from hipbridge.pipeline.context import Context
    from hipbridge.pipeline.run import sync_table

    mini = MiniHospital(tmp_path / "mini")
    monkeypatch.setenv("HIPBRIDGE_CONN_MINI", mini.url)
    diag = (mini.specs / "diag.yaml").read_text(encoding="utf-8")
    (mini.specs / "diag.yaml").write_text(
        diag.replace('query: "SELECT d.DIAG_ID', 'query: "CREATE TABLE stolen AS SELECT d.DIAG_ID')
            .replace("  watermark: {column: upd}\n", ""), encoding="utf-8")
    ctx = Context.create(mini.specs, f"sqlite:///{tmp_path / 'frontend.db'}")
    with pytest.raises(Exception) as info:
        sync_table("diag", mode="full", ctx=ctx)
    assert "read-only" in str(info.value) and "nothing was sent" in str(info.value)
    with sqlite3.connect(mini.source) as c:
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "stolen" not in tables


def test_the_zero_row_probe_is_guarded_too(postgres_url):
    """The probe is the first SQL a run sends: a write is refused by the guard, not left to the server."""
    from sqlalchemy import create_engine, text

    from hipbridge.io.extract import probe_columns

    engine = create_engine(postgres_url)
    try:
        with engine.begin() as c:
            c.execute(text("CREATE TABLE visits (id int)"))
            c.execute(text("INSERT INTO visits VALUES (1)"))
        with pytest.raises(Exception) as info:
            probe_columns(engine, "WITH gone AS (DELETE FROM visits RETURNING *) SELECT * FROM gone")
        assert "read-only" in str(info.value)
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM visits")).scalar() == 1
        assert probe_columns(engine, "SELECT id AS visit_id FROM visits") == ["visit_id"]
    finally:
        engine.dispose()

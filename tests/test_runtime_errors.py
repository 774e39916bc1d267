"""Runtime mistakes named like spec mistakes, and never retried as outages (issue 11, item 6).

The zero-row probe finds a `from`, `void` or watermark column the SQL does not return before
anything is written, reported as `file:line: key: …`; an SQL error names the SQL file; a syntax
error, an unknown column and denied access (SQLite, MariaDB, PostgreSQL, for real) fail at once,
while a connection that is refused stays an outage worth retrying. The table DAG's `run` param is
checked by the same validation the api-server applies at trigger time (the REST API itself is
exercised in tests/test_airflow_server.py).
"""

from __future__ import annotations

import logging
import socket
import uuid

import pytest
from hipbridge.io.engines import dispose_all
from hipbridge.pipeline.context import Context
from hipbridge.pipeline.failures import SourceQueryError, is_deterministic
from hipbridge.pipeline.probe import SourceColumnsMissing
from hipbridge.pipeline.retry import is_transient
from hipbridge.pipeline.run import sync_table
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from tests.conftest import MARIADB_ADMIN, POSTGRES_ADMIN
from tests.minihospital import MiniHospital
from tests.transfer_helpers import SourceHospital


@pytest.fixture
def mini(tmp_path, hb_home, monkeypatch):
    m = MiniHospital(tmp_path / "mini")
    monkeypatch.setenv("HIPBRIDGE_CONN_MINI", m.url)
    monkeypatch.setenv("HIPBRIDGE_RETRY_ATTEMPTS", "3")
    monkeypatch.setenv("HIPBRIDGE_RETRY_DELAY", "0.1")
    return m


@pytest.fixture
def retry_log():
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("hipbridge.pipeline.retry")
    logger.addHandler(handler)
    logger.disabled = False
    yield seen
    logger.removeHandler(handler)


def _edit(path, old: str, new: str) -> None:
    body = path.read_text(encoding="utf-8")
    assert old in body, old
    path.write_text(body.replace(old, new), encoding="utf-8")


def _ops_tables(ctx) -> list[str]:
    return inspect(ctx.engine).get_table_names(schema=ctx.ops_schema)


def _last_batch(ctx, table: str) -> dict:
    log = ctx.ops.table("batch_log")
    with ctx.engine.connect() as c:
        return dict(c.execute(log.select().where(log.c.table_id == table)).mappings().all()[-1])


# ---------------------------------------------------------------- the zero-row probe


def test_a_from_column_the_sql_does_not_return_is_found_before_anything_is_written(mini, tmp_path):
    _edit(mini.specs / "diag.yaml", "required: true, from: icd}", "required: true, from: icd_code}")
    mini.execute("DELETE FROM CLINIC_DIAG")  # an empty window: without the probe this run "succeeds"
    ctx = Context.create(mini.specs, f"sqlite:///{tmp_path / 'fe.db'}")
    with pytest.raises(SourceColumnsMissing) as err:
        sync_table("diag", ctx=ctx)
    (e,) = err.value.errors
    assert str(e) == (f"{mini.specs / 'diag.yaml'}:12: columns[2] (XYZDDM).from: the source query "
                      f"({mini.specs / 'diag.yaml'}: source.query) returns no column 'icd_code' "
                      f"(it returns: id, visit_id, icd, upd) (got 'icd_code')")
    from hipbridge.io.staging import BATCH_TABLE_SEP

    assert not [t for t in _ops_tables(ctx) if BATCH_TABLE_SEP in t]  # no batch's staging table was created
    last = _last_batch(ctx, "diag")
    assert last["status"] == "failed" and "diag.yaml:12: columns[2] (XYZDDM).from" in last["message"]
    with ctx.engine.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM ZDMXBG")).scalar() == 0
    assert ctx.ops and _watermark(ctx, "diag") is None


def _watermark(ctx, table):
    from hipbridge.io import state

    return state.get_watermark(ctx.engine, ctx.ops, table)


def test_void_and_watermark_columns_are_probed_too(mini, tmp_path, retry_log):
    _edit(mini.specs / "visit.yaml", "void: {column: status,", "void: {column: state,")
    _edit(mini.specs / "visit.yaml", "watermark: {column: upd,", "watermark: {column: updated,")
    ctx = Context.create(mini.specs, f"sqlite:///{tmp_path / 'fe.db'}")
    with pytest.raises(SourceColumnsMissing) as err:
        sync_table("visit", ctx=ctx)
    shown = [(e.line, e.key, e.value) for e in err.value.errors]
    assert shown == [(8, "source.void.column", "state"), (7, "source.watermark.column", "updated")]
    assert "sql/visit.sql) returns no column 'state'" in str(err.value)
    assert not [m for m in retry_log if "retrying" in m]  # a mistake is not retried


def test_an_sql_error_names_the_sql_file_and_is_not_retried(mini, tmp_path, retry_log):
    sql = mini.specs / "sql" / "visit.sql"
    _edit(sql, "FROM CLINIC_VISIT v", "FROM CLINIC_VISITS v")
    ctx = Context.create(mini.specs, f"sqlite:///{tmp_path / 'fe.db'}")
    with pytest.raises(SourceQueryError) as err:
        sync_table("visit", ctx=ctx)
    assert str(err.value).startswith(f"{sql}: the source (mini) rejected the query: OperationalError: "
                                     "no such table: CLINIC_VISITS")
    assert not [m for m in retry_log if "retrying" in m]
    _edit(sql, "FROM CLINIC_VISITS v", "FROM CLINIC_VISIT v WHERE")
    # the read-only guard, which parses the query before the probe sends it, or the server itself
    with pytest.raises(SourceQueryError, match=f"{sql}: .*(syntax error|not a query sqlglot can read)"):
        sync_table("visit", ctx=ctx)
    assert not [m for m in retry_log if "retrying" in m]


def test_mariadb_unknown_column_and_denied_access_fail_at_once(tmp_path, hb_home, mariadb_url, monkeypatch,
                                                              retry_log):
    monkeypatch.setenv("HIPBRIDGE_RETRY_ATTEMPTS", "3")
    monkeypatch.setenv("HIPBRIDGE_RETRY_DELAY", "0.1")
    name = f"hbt_src_{uuid.uuid4().hex[:8]}"
    src = SourceHospital(MARIADB_ADMIN, name, tmp_path / "src", rows=50)
    user = f"hbu_{uuid.uuid4().hex[:8]}"
    admin = create_engine(MARIADB_ADMIN)
    try:
        spec = src.specs / "visit.yaml"
        _edit(spec, 'query: "SELECT * FROM visit_src"', 'query: "SELECT *, upd_time FROM visit_src"')
        monkeypatch.setenv("HIPBRIDGE_CONN_SRC", src.url)
        ctx = Context.create(src.specs, mariadb_url)
        with pytest.raises(SourceQueryError) as err:  # PyMySQL raises OperationalError (1054) for this
            sync_table("visit", ctx=ctx)
        assert str(err.value).startswith(f"{spec}: source.query: the source (src) rejected the query: "
                                         "OperationalError: (1054, \"Unknown column 'upd_time'")
        assert not [m for m in retry_log if "retrying" in m]
        _edit(spec, 'query: "SELECT *, upd_time FROM visit_src"', 'query: "SELECT * FROM visit_src"')
        with admin.begin() as c:  # an account that may log in but not read the source database
            c.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
        port = make_url(MARIADB_ADMIN).port or 3306
        monkeypatch.setenv("HIPBRIDGE_CONN_SRC", f"mysql+pymysql://{user}:pw@127.0.0.1:{port}/{name}")
        dispose_all()
        ctx = Context.create(src.specs, mariadb_url)
        with pytest.raises(SourceQueryError, match="Access denied for user"):
            sync_table("visit", ctx=ctx)
        assert not [m for m in retry_log if "retrying" in m]
    finally:
        with admin.begin() as c:
            c.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()
        dispose_all()
        src.drop()


# ---------------------------------------------------------------- classification, real errors of each server


def _error(engine, sql: str) -> Exception:
    try:
        with engine.connect() as c:
            c.execute(text(sql))
    except Exception as exc:  # noqa: BLE001 - the error is what we examine
        return exc
    raise AssertionError(f"{sql} did not fail")


def test_deterministic_errors_of_each_server(tmp_path, postgres_url, mariadb_url):
    lite = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with lite.begin() as c:
        c.execute(text("CREATE TABLE t (a INT)"))
    maria = create_engine(mariadb_url)
    with maria.begin() as c:
        c.execute(text("CREATE TABLE t (a INT)"))
    pg = create_engine(postgres_url)
    role = f"hbr_{uuid.uuid4().hex[:8]}"
    with pg.begin() as c:
        c.execute(text("CREATE TABLE t (a INT)"))
        c.execute(text(f"CREATE ROLE {role} LOGIN"))
    try:
        pg_denied = create_engine(make_url(postgres_url).set(username=role))
        mistakes = {
            "sqlite syntax": _error(lite, "SELEC a FROM t"),
            "sqlite unknown column": _error(lite, "SELECT b FROM t"),
            "mariadb syntax": _error(maria, "SELEC a FROM t"),
            "mariadb unknown column": _error(maria, "SELECT b FROM t"),
            "mariadb unknown table": _error(maria, "SELECT a FROM nope"),
            "postgres syntax": _error(pg, "SELEC a FROM t"),
            "postgres unknown column": _error(pg, "SELECT b FROM t"),
            "postgres permission denied": _error(pg_denied, "SELECT a FROM t"),
        }
        for what, exc in mistakes.items():
            assert is_deterministic(exc), (what, exc)
            assert not is_transient(exc), (what, exc)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        refused = _error(create_engine(f"mysql+pymysql://root@127.0.0.1:{dead}/x"), "SELECT 1")
        assert is_transient(refused) and not is_deterministic(refused)
        pg_denied.dispose()
    finally:
        lite.dispose()
        maria.dispose()
        pg.dispose()
        admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{make_url(postgres_url).database}" WITH (FORCE)'))
            c.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


# ---------------------------------------------------------------- DAG params, as Airflow validates them at trigger


def test_run_param_is_validated_as_the_api_server_does(tmp_path):
    from airflow.serialization.serialized_objects import DagSerialization
    from hipbridge.airflow.factory import build_all, run_window
    from hipbridge.spec import load_specs

    dag = build_all(load_specs(MiniHospital(tmp_path / "m").specs))["hipbridge_visit"]
    served = DagSerialization.from_dict(DagSerialization.to_dict(dag))  # what the api-server holds
    ok = served.params.deep_merge({"run": {"mode": "window", "first_day": "2026-11-20", "days": 2}}).validate()
    assert run_window(ok["run"])[1:] == (__import__("datetime").date(2026, 11, 20),
                                         __import__("datetime").date(2026, 11, 21))
    assert served.params.deep_merge(None).validate() == {"run": {"mode": "incremental"}}
    from airflow.exceptions import ParamValidationError

    for bad in ({"mode": "window"}, {"mode": "window", "first_day": "2026-11-20", "days": -2},
                {"mode": "full", "first_day": "2026-11-20"}, {"mode": "window", "first_day": "2026-11-20",
                                                               "days": 1, "last_day": "2026-11-19"}):
        with pytest.raises(ParamValidationError, match="Invalid input for param run"):
            served.params.deep_merge({"run": bad}).validate()


def test_backfill_dates_are_required_at_trigger(tmp_path):
    from airflow.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization
    from hipbridge.airflow.factory import build_backfill_dag
    from hipbridge.spec import load_specs

    dag = build_backfill_dag(load_specs(MiniHospital(tmp_path / "m").specs))
    served = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    with pytest.raises(ParamValidationError, match="window_start"):
        served.params.deep_merge({"table": "visit", "window_end": "2026-11-21"}).validate()
    ok = served.params.deep_merge({"table": "visit", "window_start": "2026-11-20", "window_end": "2026-11-21"})
    assert ok.validate()["days"] == 1

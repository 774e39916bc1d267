"""Upload correctness on real databases (issue 11): what decides 修改标志, the watermark and the counts.

- one operations schema per front-end database, never per server; ownership checked; an earlier
  version's server-wide schema migrated (MariaDB, HIPBRIDGE_OPS_SCHEMA unset);
- keys compared exactly on a case-insensitive front-end, utf8mb4 on a utf8mb3 one (MariaDB);
- the watermark follows the source's change times, with a default lookback; NULL change times
  are counted, read by full runs or through a fallback column; a text watermark is refused;
- a batch that read an older version of a row never overwrites a newer one (SQLite, MariaDB, PostgreSQL);
- counts say what happened (CLI `run`, `status`, `status --json`, task log);
- 数据采集时间 is the publish time; a key first seen voided is not sent as 3 (configurable).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hipbridge.io import state
from hipbridge.io.engines import dispose_all
from hipbridge.io.ops import OpsSchemaError, derive_ops_schema
from hipbridge.pipeline import gate, plan, publish, transfer
from hipbridge.pipeline.context import Context
from hipbridge.pipeline.failures import PipelineError
from hipbridge.pipeline.run import sync_table
from hipbridge.spec import load_specs
from sqlalchemy import create_engine, text

from tests.conftest import MARIADB_ADMIN, _unique
from tests.minihospital import MiniHospital
from tests.transfer_helpers import SourceHospital

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mini(tmp_path, monkeypatch):
    h = MiniHospital(tmp_path / "mini")
    monkeypatch.setenv("HIPBRIDGE_CONN_MINI", h.url)
    return h


def _url(name: str) -> str:
    return f"{MARIADB_ADMIN.rstrip('/')}/{name}?charset=utf8mb4&local_infile=1"


class Server:
    """Databases on this machine's MariaDB, all named with one unique prefix and dropped afterwards."""

    def __init__(self):
        self.prefix = _unique("hbo")
        self.admin = create_engine(MARIADB_ADMIN)

    def database(self, suffix: str, options: str = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin") -> str:
        name = f"{self.prefix}_{suffix}"
        with self.admin.begin() as c:
            c.execute(text(f"CREATE DATABASE `{name}` {options}"))
        return name

    def schemas(self) -> set[str]:
        with self.admin.connect() as c:
            return {r[0] for r in c.execute(text("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                                                 "WHERE SCHEMA_NAME LIKE :p"), {"p": self.prefix + "%"})}

    def execute(self, sql: str):
        with self.admin.begin() as c:
            return c.execute(text(sql))

    def drop(self) -> None:
        dispose_all()
        for name in self.schemas():
            self.execute(f"DROP DATABASE IF EXISTS `{name}`")
        self.admin.dispose()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.drop()


def _flags(ctx, key="JZLSH") -> dict:
    q = ctx.engine.dialect.identifier_preparer.quote
    table = ctx.specs.get("visit").target.name
    with ctx.engine.connect() as c:
        return dict(c.execute(text(f"SELECT {q(key)}, {q('XGBZ')} FROM {q(table)}")).all())


def _specs_with_defaults(mini: MiniHospital, target: str | None = None, **changes) -> Path:
    """The mini hospital's spec folder with lines of `_defaults.yaml` changed (key: new value).

    target: another physical name for the visit table (the migration looks for other databases
    holding the tables an earlier schema served; other tests on this server hold MZJZJL too).
    """
    if target:
        spec = mini.specs / "visit.yaml"
        spec.write_text(spec.read_text(encoding="utf-8").replace("name: MZJZJL", f"name: {target}"), encoding="utf-8")
    path = mini.specs / "_defaults.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    for key, value in changes.items():
        lines = [f"{key}: {value}" if ln.startswith(f"{key}:") else ln for ln in lines]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return mini.specs


# ---------------------------------------------------------------- 1. one operations schema per front-end


def test_each_front_end_on_one_server_has_its_own_operations_schema(mini, server, monkeypatch):
    monkeypatch.delenv("HIPBRIDGE_OPS_SCHEMA", raising=False)  # conftest's mariadb_url would set it
    base = f"{server.prefix}_ops"  # the `ops_schema` of _defaults.yaml: unique, so no real schema is touched
    specs = _specs_with_defaults(mini, ops_schema=base)
    a, b = server.database("a"), server.database("b")
    first = sync_table("visit", ctx=Context.create(specs, _url(a)))
    ctx_b = Context.create(specs, _url(b))
    second = sync_table("visit", ctx=ctx_b)
    # the second front-end's first upload goes out as new, not as changed
    assert (first.inserted, second.inserted, second.updated) == (3, 3, 0)
    assert set(_flags(ctx_b).values()) == {"1"}
    assert {f"{a}_{base}", f"{b}_{base}"} <= server.schemas() and base not in server.schemas()
    assert ctx_b.ops_schema == f"{b}_{base}"
    assert derive_ops_schema("mysql+pymysql://h/frontend", "hipbridge_ops") == "frontend_hipbridge_ops"
    assert derive_ops_schema("sqlite:////x/frontend.db", "hipbridge_ops") == "hipbridge_ops"  # a file beside it
    # an operations schema named explicitly is still checked against its owner
    monkeypatch.setenv("HIPBRIDGE_OPS_SCHEMA", f"{a}_{base}")
    dispose_all()
    with pytest.raises(OpsSchemaError, match=f"belongs to the front-end database '{a}'.*not to '{b}'"):
        sync_table("visit", ctx=Context.create(specs, _url(b)))


def _old_install(server, specs, frontends: list[str], legacy: str, monkeypatch) -> None:
    """What an earlier version left: one server-wide schema `legacy`, used by every front-end, no owner."""
    monkeypatch.setenv("HIPBRIDGE_OPS_SCHEMA", legacy)
    for fe in frontends:
        sync_table("visit", ctx=Context.create(specs, _url(fe)))
        server.execute(f"DROP TABLE `{legacy}`.ops_owner")
        dispose_all()
    monkeypatch.delenv("HIPBRIDGE_OPS_SCHEMA")


def test_an_earlier_server_wide_operations_schema_moves_to_its_only_front_end(mini, server, monkeypatch):
    legacy = f"{server.prefix}_ops"
    specs = _specs_with_defaults(mini, target=f"T{server.prefix[-6:]}", ops_schema=legacy)
    c = server.database("c")
    _old_install(server, specs, [c], legacy, monkeypatch)
    ctx = Context.create(specs, _url(c))
    again = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert legacy not in server.schemas() and f"{c}_{legacy}" in server.schemas()
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)  # its ledger came along
    with ctx.engine.connect() as conn:
        owner = conn.execute(text(f"SELECT frontend_database FROM `{c}_{legacy}`.ops_owner")).scalar()
    assert owner == c


def test_a_shared_earlier_schema_is_refused_until_an_operator_says_whose_it_is(mini, server, monkeypatch):
    legacy = f"{server.prefix}_ops"
    specs = _specs_with_defaults(mini, target=f"T{server.prefix[-6:]}", ops_schema=legacy)
    c, d = server.database("c"), server.database("d")
    _old_install(server, specs, [c, d], legacy, monkeypatch)
    assert set(_flags(Context.create(specs, _url(d))).values()) == {"2"}  # the bug this fixes
    dispose_all()
    with pytest.raises(OpsSchemaError, match=f"used by the front-end databases {c}, {d}.*--adopt-ops {legacy}"):
        sync_table("visit", ctx=Context.create(specs, _url(c)))
    env = {k: v for k, v in os.environ.items() if k != "HIPBRIDGE_OPS_SCHEMA"}
    env["PYTHONPATH"] = str(ROOT / "plugins")
    out = subprocess.run([sys.executable, "-m", "hipbridge.cli", "frontend", "init", "--db", _url(c), "--specs",
                          str(specs), "--adopt-ops", legacy], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert f"operations schema {c}_{legacy}" in out.stdout
    dispose_all()
    assert sync_table("visit", "full", ctx=Context.create(specs, _url(c))).unchanged == 3
    # the other front-end starts its own, empty ledger: its rows go out as new
    ctx_d = Context.create(specs, _url(d))
    r = sync_table("visit", "full", ctx=ctx_d)
    assert r.inserted == 3 and set(_flags(ctx_d).values()) == {"1"}


def test_fresh_ops_starts_an_empty_schema_and_leaves_the_shared_one_to_its_owner(mini, server, monkeypatch):
    """`frontend init --fresh-ops`, as a subprocess: the other way out of the refusal above."""
    legacy = f"{server.prefix}_ops"
    specs = _specs_with_defaults(mini, target=f"T{server.prefix[-6:]}", ops_schema=legacy)
    c, d = server.database("c"), server.database("d")
    _old_install(server, specs, [c, d], legacy, monkeypatch)
    dispose_all()
    env = {k: v for k, v in os.environ.items() if k != "HIPBRIDGE_OPS_SCHEMA"}
    env["PYTHONPATH"] = str(ROOT / "plugins")

    def init(db: str, *flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hipbridge.cli", "frontend", "init", "--db", _url(db), "--specs",
                               str(specs), *flags], env=env, capture_output=True, text=True, timeout=300, check=False)

    both = init(d, "--fresh-ops", "--adopt-ops", legacy)
    assert both.returncode != 0 and "--adopt-ops and --fresh-ops exclude each other" in both.stderr
    out = init(d, "--fresh-ops")
    assert out.returncode == 0, out.stderr
    assert f"operations schema {d}_{legacy}" in out.stdout
    assert legacy in server.schemas() and f"{d}_{legacy}" in server.schemas()   # the shared one is left alone
    dispose_all()
    ctx_d = Context.create(specs, _url(d))
    r = sync_table("visit", "full", ctx=ctx_d)                 # an empty ledger: every row goes out as new
    assert r.inserted == 3 and set(_flags(ctx_d).values()) == {"1"}
    dispose_all()
    with pytest.raises(OpsSchemaError, match=f"--adopt-ops {legacy}"):   # its owner still has to say so
        sync_table("visit", ctx=Context.create(specs, _url(c)))


# ---------------------------------------------------------------- 2. keys compared exactly


def test_keys_differing_in_case_stay_two_rows_on_a_case_insensitive_front_end(mini, server, monkeypatch):
    fe = server.database("ci", "")  # the server's default: utf8mb4_general_ci, case-insensitive
    monkeypatch.setenv("HIPBRIDGE_OPS_SCHEMA", f"{server.prefix}_ciops")
    mini.execute("INSERT INTO CLINIC_VISIT VALUES ('pcase1', 'P1', '2026-11-20 08:00:00', 1, '小写', 'N', "
                 "'2026-11-20 09:00:00')")
    mini.execute("INSERT INTO CLINIC_VISIT VALUES ('PCASE1', 'P2', '2026-11-20 08:00:00', 2, '大写', 'N', "
                 "'2026-11-20 09:00:00')")
    ctx = Context.create(mini.specs, _url(fe))
    first = sync_table("visit", ctx=ctx)
    assert first.inserted == 5
    with ctx.engine.connect() as c:
        got = dict(c.execute(text("SELECT JZLSH, XM FROM MZJZJL WHERE JZLSH IN ('pcase1', 'PCASE1')")).all())
    assert got == {"pcase1": "小写", "PCASE1": "大写"}
    again = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert (again.published, again.unchanged) == (0, 5)  # a rerun re-sends nothing


def test_a_four_byte_character_on_a_utf8mb3_front_end_is_published(mini, server, monkeypatch):
    fe = server.database("mb3", "CHARACTER SET utf8mb3")
    monkeypatch.setenv("HIPBRIDGE_OPS_SCHEMA", f"{server.prefix}_mb3ops")
    mini.execute("INSERT INTO CLINIC_VISIT VALUES ('V8', 'P8', '2026-11-20 08:00:00', 1, '𠀀𠀁', 'N', "
                 "'2026-11-20 09:00:00')")  # CJK Extension B: four bytes in UTF-8
    ctx = Context.create(mini.specs, _url(fe))
    r = sync_table("visit", ctx=ctx)
    assert (r.status, r.inserted, r.quarantined) == ("published", 4, 0)
    with ctx.engine.connect() as c:
        assert c.execute(text("SELECT XM FROM MZJZJL WHERE JZLSH = 'V8'")).scalar() == "𠀀𠀁"
    # a table an earlier version created with the database's utf8mb3 is converted by `frontend init`
    from hipbridge.io.frontend import create_frontend

    with ctx.engine.begin() as c:
        c.execute(text("DELETE FROM MZJZJL WHERE JZLSH = 'V8'"))
        c.execute(text("ALTER TABLE MZJZJL CONVERT TO CHARACTER SET utf8mb3"))
    report = create_frontend(ctx.engine, ctx.specs, ["visit"])
    assert report.converted["MZJZJL"][0] == "utf8mb4"
    with ctx.engine.connect() as c:
        cols = dict(c.execute(text("SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE "
                                   "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'MZJZJL' AND "
                                   "COLLATION_NAME IS NOT NULL")).all())
        comment = c.execute(text("SELECT COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                                 "DATABASE() AND TABLE_NAME = 'MZJZJL' AND COLUMN_NAME = 'JZLSH'")).scalar()
    assert cols["JZLSH"] == cols["YLJGDM"] == "utf8mb4_bin" and all(v.startswith("utf8mb4") for v in cols.values())
    assert comment == "门诊就诊流水号"
    mini.execute("INSERT INTO CLINIC_VISIT VALUES ('V9', 'P9', '2026-11-21 08:00:00', 1, '𠀂', 'N', "
                 "'2026-11-21 10:40:00')")
    assert sync_table("visit", ctx=ctx).inserted == 1


# ---------------------------------------------------------------- 3. the watermark follows the source


@pytest.fixture(params=["sqlite", "mariadb"])
def frontend_url(request, tmp_path, hb_home):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'frontend.db'}"
    return request.getfixturevalue("mariadb_url")


def test_a_source_clock_behind_ours_and_a_late_commit_lose_no_row(mini, frontend_url):
    ctx = Context.create(mini.specs, frontend_url)
    # our clock says 12:00; the HIS's newest change is 10:30 (its clock runs behind, or rows commit late)
    sync_table("visit", ctx=ctx, high_watermark=datetime(2026, 11, 21, 12, 0))
    assert state.get_watermark(ctx.engine, ctx.ops, "visit") == datetime(2026, 11, 21, 10, 30)
    # a transaction that began at 10:25 by the HIS's clock commits only now
    mini.execute("INSERT INTO CLINIC_VISIT VALUES ('V10', 'P10', '2026-11-21 10:00:00', 3, '迟到', 'N', "
                 "'2026-11-21 10:25:00')")
    r = sync_table("visit", ctx=ctx, high_watermark=datetime(2026, 11, 21, 12, 30))
    assert r.window_start == datetime(2026, 11, 21, 10, 20)  # 10:30 minus the spec's 10-minute lookback
    assert (r.inserted, _flags(ctx)["V10"]) == (1, "1")
    # a spec without a lookback takes the default of _defaults.yaml (10 minutes), not zero
    sync_table("diag", ctx=ctx, high_watermark=datetime(2026, 11, 21, 12, 0))
    nxt = sync_table("diag", ctx=ctx, high_watermark=datetime(2026, 11, 21, 13, 0))
    assert nxt.window_start == datetime(2026, 11, 20, 9, 5) - timedelta(minutes=10)


def test_rows_without_a_change_time_are_counted_and_read_by_full_runs(mini, frontend_url, tmp_path):
    mini.execute("INSERT INTO CLINIC_VISIT VALUES ('V11', 'P11', '2026-11-21 09:00:00', 3, '无时', 'N', NULL)")
    ctx = Context.create(mini.specs, frontend_url)
    r = sync_table("visit", ctx=ctx, high_watermark=datetime(2026, 11, 22))
    assert (r.skipped, r.inserted) == (1, 3) and "V11" not in _flags(ctx)
    assert state.batch_row(ctx.engine, ctx.ops, r.batch_id)["skipped"] == 1
    full = sync_table("visit", "full", ctx=ctx)
    assert (full.skipped, full.inserted) == (0, 1) and _flags(ctx)["V11"] == "1"
    # with a fallback column the incremental run takes it (here: the visit's start time)
    spec = mini.specs / "visit.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("watermark: {column: upd, lookback: 10m}",
                                                             "watermark: {column: upd, lookback: 10m, "
                                                             "fallback: start_time}"), encoding="utf-8")
    mini.execute("INSERT INTO CLINIC_VISIT VALUES ('V12', 'P12', '2026-11-21 09:30:00', 3, '无时', 'N', NULL)")
    ctx2 = Context.create(mini.specs, frontend_url)
    r2 = sync_table("visit", "window", date(2026, 11, 21), date(2026, 11, 21), ctx=ctx2)
    assert r2.skipped == 0 and r2.inserted == 1 and _flags(ctx2)["V12"] == "1"
    with ctx2.engine.connect() as c:
        upd = c.execute(text("SELECT SJGXSJ FROM MZJZJL WHERE JZLSH = 'V12'")).scalar()
    assert str(upd)[:19] == "2026-11-21 09:30:00"


def test_a_text_watermark_column_is_a_spec_error(mini):
    spec = mini.specs / "visit.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "  - {name: GXSJ, label: 更新时间, type: varchar(19), "
                                                       "from: upd}\n", encoding="utf-8")
    errors = [str(e) for e in load_specs(mini.specs).errors]
    assert any("visit.yaml:7: source.watermark.column: a watermark must be a date/time column" in e
               and "varchar(19)" in e for e in errors), errors


def test_a_source_returning_the_watermark_as_text_is_refused_before_anything_is_written(tmp_path, monkeypatch,
                                                                                           mariadb_url):
    h = SourceHospital(MARIADB_ADMIN, _unique("hbsrc"), tmp_path, rows=50, chunk=400)
    monkeypatch.setenv("HIPBRIDGE_CONN_SRC", h.url)
    try:
        spec = h.specs / "visit.yaml"
        spec.write_text(spec.read_text(encoding="utf-8").replace("column: upd", "column: start_time"),
                        encoding="utf-8")  # start_time is VARCHAR in this source
        dispose_all()
        ctx = Context.create(h.specs, mariadb_url)
        with pytest.raises(PipelineError, match="visit.yaml: source.watermark.column: a watermark must be a "
                                                "date/time column; the source returns start_time as string"):
            sync_table("visit", "full", ctx=ctx)
        with ctx.engine.connect() as c:
            assert c.execute(text("SELECT COUNT(*) FROM MZJZJL")).scalar() == 0
    finally:
        dispose_all()
        h.drop()


# ---------------------------------------------------------------- 4. concurrent windows


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
def any_frontend(request, tmp_path, hb_home):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'frontend.db'}"
    return request.getfixturevalue("mariadb_url" if request.param == "mariadb" else "postgres_url")


def test_a_window_that_read_an_older_version_never_overwrites_a_newer_one(mini, any_frontend):
    ctx = Context.create(mini.specs, any_frontend)
    # a backfill window reads V1 as it was at 09:00 …
    backfill = plan.plan(ctx, "visit", "window", date(2026, 11, 20), date(2026, 11, 21))
    transfer.transfer(ctx, backfill)
    # … the HIS changes V1, and the daily run publishes the new version first
    mini.execute("UPDATE CLINIC_VISIT SET FEE = 99, UPDATE_TIME = '2026-11-21 12:00:00' WHERE VISIT_NO = 'V1'")
    daily = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert daily.inserted == 3
    assert not gate.gate(ctx, backfill).blocked
    late = publish.publish(ctx, backfill)  # the backfill window publishes last
    assert (late.older, late.updated, late.written) == (1, 0, 0)
    q = ctx.engine.dialect.identifier_preparer.quote
    with ctx.engine.connect() as c:
        fee, flag = c.execute(text(f"SELECT {q('JE')}, {q('XGBZ')} FROM {q('MZJZJL')} WHERE {q('JZLSH')} = 'V1'")).one()
    assert (float(fee), flag) == (99.0, "1")
    assert state.batch_row(ctx.engine, ctx.ops, backfill.batch_id)["older"] == 1
    # and the next run finds everything as published
    again = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert again.published == 0


# ---------------------------------------------------------------- 7. counts that say what happened


def _cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hipbridge.cli", *args], env=env, capture_output=True, text=True,
                          check=False,
                          timeout=300)


def test_run_status_and_task_log_show_every_count_and_why_a_table_failed(mini, tmp_path, hb_home, caplog):
    fe = f"sqlite:///{tmp_path / 'frontend.db'}"
    mini.execute("INSERT INTO CLINIC_VISIT VALUES ('V11', 'P11', '2026-11-21 09:00:00', 3, '无时', 'N', NULL)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "HIPBRIDGE_CONN_MINI": mini.url,
           "HIPBRIDGE_RETRY_ATTEMPTS": "1"}
    out = _cli(["run", "visit", "--db", fe, "--specs", str(mini.specs)], env)
    assert out.returncode == 0, out.stderr
    assert ("extracted 4, published 3 (new 3, changed 0, voided 0), unchanged 0, quarantined 0, skipped 2 "
            "(change time NULL 1, older than published 0, first seen voided 1)") in out.stdout
    mini.execute("DROP TABLE CLINIC_DIAG")
    failed = _cli(["run", "diag", "--db", fe, "--specs", str(mini.specs)], env)
    assert failed.returncode != 0
    status = _cli(["status", "--db", fe, "--specs", str(mini.specs)], env)
    assert "published: extracted 4, published 3 (new 3" in status.stdout
    assert "why: " in status.stdout and "no such table: CLINIC_DIAG" in status.stdout, status.stdout
    js = json.loads(_cli(["status", "--json", "--db", fe, "--specs", str(mini.specs)], env).stdout)
    last = {t["table"]: t["last_run"] for t in js["tables"]}
    assert {k: last["visit"][k] for k in ("published", "inserted", "updated", "voided", "unchanged", "quarantined",
                                          "skipped", "older", "unsent")} == {
        "published": 3, "inserted": 3, "updated": 0, "voided": 0, "unchanged": 0, "quarantined": 0, "skipped": 1,
        "older": 0, "unsent": 1}
    assert last["diag"]["status"] == "failed" and "no such table" in last["diag"]["message"]
    # the task log (publish, as Airflow's task runs it) carries the same line
    ctx = Context.create(mini.specs, fe)
    with caplog.at_level(logging.INFO, logger="hipbridge.pipeline.publish"):
        sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert any("published 0 (new 0, changed 0, voided 0), unchanged 3, quarantined 0, skipped 2" in m
               for m in caplog.messages), caplog.messages


# ---------------------------------------------------------------- 8. audit columns


def test_collection_time_is_the_publish_time_not_the_extraction_time(mini, frontend_url):
    ctx = Context.create(mini.specs, frontend_url)
    extracted, published = datetime(2026, 11, 21, 23, 0), datetime(2026, 11, 22, 1, 30)
    ctx.now = lambda: extracted
    batch = plan.plan(ctx, "visit", "full")
    transfer.transfer(ctx, batch)
    gate.gate(ctx, batch)
    ctx.now = lambda: published  # a long gate, or a publish task retried later
    publish.publish(ctx, batch)
    with ctx.engine.connect() as c:
        stamps = {str(v)[:19] for v in c.execute(text("SELECT SJCJSJ FROM MZJZJL")).scalars()}
    assert stamps == {"2026-11-22 01:30:00"}


def test_a_key_first_seen_voided_can_be_sent_as_3_when_configured(mini, tmp_path, hb_home):
    specs = _specs_with_defaults(mini, first_seen_voided="send")
    ctx = Context.create(specs, f"sqlite:///{tmp_path / 'frontend.db'}")
    r = sync_table("visit", ctx=ctx)
    assert (r.inserted, r.voided, r.unsent) == (3, 1, 0) and _flags(ctx)["V3"] == "3"


def test_key_reconciliation_sends_rows_deleted_at_the_source_as_3(mini, any_frontend):
    spec = mini.specs / "visit.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("  void: {column: status", "  reconcile_keys: true\n"
                                                             "  void: {column: status"), encoding="utf-8")
    ctx = Context.create(mini.specs, any_frontend)
    assert sync_table("visit", "full", ctx=ctx).inserted == 3
    mini.execute("DELETE FROM CLINIC_VISIT WHERE VISIT_NO = 'V2'")
    incremental = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert incremental.deleted == 0 and _flags(ctx)["V2"] == "1"  # a window is not the whole source
    full = sync_table("visit", "full", ctx=ctx)
    assert (full.deleted, full.published, _flags(ctx)["V2"]) == (1, 1, "3")
    assert sync_table("visit", "full", ctx=ctx).published == 0  # sent once
    # a full run with quarantined rows does not reconcile: their keys are missing without being deleted
    mini.execute("DELETE FROM CLINIC_VISIT WHERE VISIT_NO = 'V4'")
    mini.add_bad_rows()
    r = sync_table("visit", "full", ctx=ctx)
    assert r.quarantined == 5 and r.deleted == 0 and _flags(ctx)["V4"] == "1"


def test_a_later_publish_classifies_the_staged_rows_in_key_order(mini, mariadb_url, hb_home):
    """MariaDB: against a non-empty ledger, publish first rewrites the Aria staging heap in primary-key
    order (its key lookups into ledger and target then visit each page once, docs/transfer.md);
    what it decides is the same as for the rows in the order they were read."""
    from hipbridge.pipeline.publish import publish_batch

    ctx = Context.create(mini.specs, mariadb_url)
    assert sync_table("visit", ctx=ctx).inserted == 3
    # V0 comes last from the source (SQLite returns rowid order), so the batch is staged out of key order
    mini.execute("INSERT INTO CLINIC_VISIT VALUES ('V0', 'P0', '2026-11-20 08:00:00', 3, '李四', 'N', "
                 "'2026-11-20 09:30:00')")
    mini.execute("UPDATE CLINIC_VISIT SET FEE = 99, UPDATE_TIME = '2026-11-20 11:00:00' WHERE VISIT_NO = 'V2'")
    batch = plan.plan(ctx, "visit", "window", date(2026, 11, 20), date(2026, 11, 21))
    transfer.transfer(ctx, batch)
    assert not gate.gate(ctx, batch).blocked
    spec = ctx.specs.get("visit")
    staging, ledger = ctx.tables_for(spec, batch)
    physical = f"SELECT JZLSH, hb_flag FROM {ledger.schema}.{staging.name}"  # no ORDER BY: the heap's own order
    with ctx.engine.connect() as c:
        staged = [k for k, _ in c.execute(text(physical)).all()]
    assert staged != sorted(staged) and staged[-1] == "V0"
    with ctx.engine.begin() as conn:
        counts = publish_batch(conn, spec, ctx.defaults, staging, ledger, batch.batch_id, clock=ctx.now)
    with ctx.engine.connect() as c:
        after = c.execute(text(physical)).all()
    assert [k for k, _ in after] == sorted(staged)
    flags = dict(after)
    assert (flags["V0"], flags["V1"], flags["V2"], flags["V3"]) == ("1", None, "2", "-u")
    assert (counts.inserted, counts.updated, counts.unsent) == (1, 1, 1)
    q = ctx.engine.dialect.identifier_preparer.quote
    with ctx.engine.connect() as c:
        got = dict(c.execute(text(f"SELECT {q('JZLSH')}, {q('JE')} FROM {q('MZJZJL')}")).all())
    assert float(got["V0"]) == 3 and float(got["V2"]) == 99 and "V3" not in got


@pytest.mark.parametrize("dialect", ["mariadb", "postgresql"])
def test_two_publishes_at_once_keep_the_newer_row(mini, dialect, request, tmp_path, hb_home):
    """The daily run's publish holds its transaction open while a backfill window with an older V1 publishes."""
    import threading
    import time

    from hipbridge.pipeline.publish import publish_batch

    url = request.getfixturevalue("mariadb_url" if dialect == "mariadb" else "postgres_url")
    ctx = Context.create(mini.specs, url)
    backfill = plan.plan(ctx, "visit", "window", date(2026, 11, 20), date(2026, 11, 21))
    transfer.transfer(ctx, backfill)
    assert not gate.gate(ctx, backfill).blocked
    mini.execute("UPDATE CLINIC_VISIT SET FEE = 99, UPDATE_TIME = '2026-11-21 12:00:00' WHERE VISIT_NO = 'V1'")
    daily = plan.plan(ctx, "visit", "window", date(2026, 11, 20), date(2026, 11, 21))
    transfer.transfer(ctx, daily)
    spec = ctx.specs.get("visit")
    staging, ledger = ctx.tables_for(spec, daily)
    conn = ctx.engine.connect()
    tx = conn.begin()
    publish_batch(conn, spec, ctx.defaults, staging, ledger, daily.batch_id, clock=ctx.now)
    done: dict = {}
    worker = threading.Thread(target=lambda: done.update(counts=publish.publish(ctx, backfill)))
    worker.start()
    waiting = ("SELECT COUNT(*) FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p "
               "ON p.ID = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND p.DB = DATABASE()"
               if dialect == "mariadb" else
               "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
    probe = create_engine(url)
    for _ in range(600):  # until the backfill's publish waits for the daily run's locks (at most a minute)
        with probe.connect() as c:
            if c.execute(text(waiting)).scalar():
                break
        time.sleep(0.1)
    else:
        pytest.fail("the second publish never waited for the first")
    tx.commit()
    conn.close()
    worker.join(120)
    probe.dispose()
    q = ctx.engine.dialect.identifier_preparer.quote
    with ctx.engine.connect() as c:
        fee = c.execute(text(f"SELECT {q('JE')} FROM {q('MZJZJL')} WHERE {q('JZLSH')} = 'V1'")).scalar()
        led = c.execute(text(f"SELECT hb_changed_at FROM {ledger.schema}.ledger_visit WHERE "
                             f"{q('JZLSH')} = 'V1'")).scalar()
    assert float(fee) == 99.0 and str(led)[:19] == "2026-11-21 12:00:00"
    assert "counts" in done

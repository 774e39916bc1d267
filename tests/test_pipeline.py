"""The table pipeline end to end on real databases: SQLite (embedded default) and MariaDB."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from hipbridge.io import state
from hipbridge.pipeline.context import Context
from hipbridge.pipeline.failures import PipelineError
from hipbridge.pipeline.plan import hospital_day_bounds
from hipbridge.pipeline.run import sync_table
from sqlalchemy import text

from tests.minihospital import MiniHospital


@pytest.fixture(params=["sqlite", "mariadb"])
def frontend_url(request, tmp_path, hb_home):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'frontend.db'}"
    return request.getfixturevalue("mariadb_url")


@pytest.fixture
def mini(tmp_path, monkeypatch):
    h = MiniHospital(tmp_path / "mini")
    monkeypatch.setenv("HIPBRIDGE_CONN_MINI", h.url)
    return h


@pytest.fixture
def ctx(mini, frontend_url):
    return Context.create(mini.specs, frontend_url)


def _plain(v):
    # SQLite returns text for raw SELECTs; compare every dialect in the province's text form
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return v


def rows(ctx, table="MZJZJL"):
    with ctx.engine.connect() as c:
        result = c.execute(text(f"SELECT * FROM {table} ORDER BY 3"))
        return [{k: _plain(v) for k, v in r.items()} for r in result.mappings()]


def by_key(ctx, key_col="JZLSH", table="MZJZJL"):
    return {r[key_col]: r for r in rows(ctx, table)}


def test_first_run_loads_rows_with_audit_columns(ctx):
    r = sync_table("visit", ctx=ctx)
    assert (r.status, r.extracted, r.published, r.quarantined) == ("published", 4, 3, 0)
    assert (r.inserted, r.voided, r.unsent) == (3, 0, 1)
    got = by_key(ctx)
    assert set(got) == {"V1", "V2", "V4"}  # V3 was voided before its first upload: never sent, so not as 3
    v1 = got["V1"]
    assert v1["YLJGDM"] == ctx.defaults.institution.code and v1["YLJGMC"] == "百色市人民医院"
    assert v1["XGBZ"] == "1" and v1["MJ"] == "0"
    assert v1["SJGXSJ"] == "2026-11-20 09:00:00"  # the source row's last change
    assert v1["SJCJSJ"] >= v1["SJGXSJ"]  # when we published it
    assert v1["ZYJZLSH"] == "-"
    assert float(v1["JE"]) == 12.5


def test_rerun_of_same_window_leaves_identical_rows(ctx):
    sync_table("visit", ctx=ctx)
    before = rows(ctx)
    again = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert again.extracted == 4 and again.unchanged == 3 and again.unsent == 1
    assert again.inserted == again.updated == again.voided == again.published == 0
    assert rows(ctx) == before  # not even 数据采集时间 moved: the platform will not re-extract them


def test_changed_row_is_flagged_2_and_only_it_is_rewritten(ctx, mini):
    sync_table("visit", ctx=ctx)
    before = by_key(ctx)
    later = (ctx.now() + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    mini.execute("UPDATE CLINIC_VISIT SET FEE = 15, UPDATE_TIME = ? WHERE VISIT_NO = 'V2'", (later,))
    r = sync_table("visit", ctx=ctx, high_watermark=ctx.now() + timedelta(minutes=1))
    # V2, and V4 again: the window starts at V4's change time (the watermark) minus the lookback
    assert (r.extracted, r.updated, r.inserted, r.unchanged) == (2, 1, 0, 1)
    after = by_key(ctx)
    assert after["V2"]["XGBZ"] == "2" and float(after["V2"]["JE"]) == 15
    assert after["V1"] == before["V1"]


def test_void_after_upload_is_flag_3_and_the_row_stays(ctx, mini):
    sync_table("visit", ctx=ctx)
    mini.execute("UPDATE CLINIC_VISIT SET STATUS = 'C' WHERE VISIT_NO = 'V1'")
    r = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 20), ctx=ctx)
    assert r.voided == 1
    assert by_key(ctx)["V1"]["XGBZ"] == "3"  # voided at the source after its upload: sent as revoked, never deleted
    assert len(rows(ctx)) == 3


def test_a_key_repeated_in_one_batch_publishes_its_last_row_once(ctx, mini):
    # e.g. a source query that joins and returns a visit twice: the later row wins, once
    mini.execute("INSERT INTO CLINIC_VISIT VALUES ('V2', 'P2', '2026-11-20 08:10:00', 33, '李四', 'N', "
                 "'2026-11-20 09:06:00')")
    r = sync_table("visit", ctx=ctx)
    assert (r.status, r.extracted, r.published, r.quarantined) == ("published", 5, 3, 0)
    assert r.inserted == 3 and r.unsent == 1 and r.unchanged == 1  # the superseded row counts as unchanged
    got = by_key(ctx)
    assert len(rows(ctx)) == 3 and float(got["V2"]["JE"]) == 33
    assert state.batch_row(ctx.engine, ctx.ops, r.batch_id)["duplicates"] == 1
    before = rows(ctx)
    again = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert again.inserted == again.updated == 0 and rows(ctx) == before


def test_bad_rows_are_quarantined_with_reasons_and_counts_reconcile(ctx, mini):
    mini.add_bad_rows()
    r = sync_table("visit", ctx=ctx)
    assert r.extracted == 9 and r.quarantined == 5 and r.published == 3 and r.unsent == 1
    assert r.extracted == r.published + r.unchanged + r.unsent + r.older + r.quarantined
    q = ctx.ops.table("quarantine")
    from hipbridge.crypto.atrest import reveal_quarantine

    with ctx.engine.connect() as c:
        stored = c.execute(q.select().where(q.c.batch_id == r.batch_id)).mappings().all()
    assert all(f["raw"].startswith("v1:") for f in stored)   # SM4 at rest (issue 12)
    found = [reveal_quarantine(ctx.engine, ctx.ops_schema, dict(f)) for f in stored]
    reasons = {json.loads(f["raw"])["id"]: f["reason"] for f in found}
    assert "日期时间无效" in reasons["V5"]
    assert "数值溢出decimal(6,2)" in reasons["V6"]
    assert "长度5字符超过varchar(4)" in reasons["V7"]
    assert "主键JZLSH为空" in reasons[None]
    assert "UTF-8" in reasons["V9"]
    assert json.loads(next(f["raw"] for f in found if "UTF-8" in f["reason"]))["name"] == {
        "hex": "张三".encode("gbk").hex()}  # nothing lost: the raw bytes are kept


def test_watermark_advances_and_window_rerun_never_moves_it_back(ctx):
    high = datetime(2026, 11, 22, 0, 0)
    sync_table("visit", ctx=ctx, high_watermark=high)
    # the highest change time published (V4, by the source's clock), not the window's end
    newest = datetime(2026, 11, 21, 10, 30)
    assert state.get_watermark(ctx.engine, ctx.ops, "visit") == newest
    sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 20), ctx=ctx)
    assert state.get_watermark(ctx.engine, ctx.ops, "visit") == newest
    # the next incremental run starts at the watermark minus the spec's 10-minute lookback
    nxt = sync_table("visit", ctx=ctx, high_watermark=datetime(2026, 11, 23))
    assert nxt.window_start == newest - timedelta(minutes=10)


def test_full_reload_restores_a_row_deleted_from_the_front_end(ctx):
    sync_table("visit", ctx=ctx)
    with ctx.engine.begin() as c:
        c.execute(text("DELETE FROM MZJZJL WHERE JZLSH = 'V4'"))
    r = sync_table("visit", "full", ctx=ctx)
    assert r.updated == 1 and "V4" in by_key(ctx)


def test_window_rerun_needs_both_ends(ctx):
    with pytest.raises(PipelineError, match="window_start and window_end"):
        sync_table("visit", "window", date(2026, 11, 20), None, ctx=ctx)


def test_child_table_and_status_json(ctx, capsys):
    sync_table("visit", ctx=ctx)
    r = sync_table("diag", ctx=ctx)
    assert r.published == 2
    assert set(by_key(ctx, "ZDLSH", "ZDMXBG")) == {"D1", "D2"}
    from hipbridge.status import table_status

    status = {s["table"]: s for s in table_status(ctx)}
    assert status["visit"]["rows"] == 3 and status["visit"]["last_run"]["status"] == "published"
    assert status["diag"]["watermark"] is not None


def test_hospital_day_bounds_are_local_midnights():
    assert hospital_day_bounds(date(2026, 11, 20)) == (datetime(2026, 11, 20), datetime(2026, 11, 21))


def test_gate_in_two_parallel_halves_counts_like_one_scan(ctx, mini, monkeypatch):
    if ctx.engine.dialect.name == "sqlite":
        pytest.skip("halves run on server databases only")
    import hipbridge.quality.gate as qgate
    from hipbridge.pipeline import plan, transfer

    mini.execute("INSERT INTO CLINIC_VISIT VALUES ('V8', 'P8', '2099-01-01 08:00:00', 3, '周八', 'N', "
                 "'2026-11-21 12:00:00')")  # a visit in the future: P02 fails, not fatal
    batch = plan.plan(ctx, "visit", "full")
    transfer.transfer(ctx, batch)
    spec = ctx.specs.get("visit")
    staging, _ = ctx.tables_for(spec, batch)
    one = qgate.run_gate(ctx.engine, spec, ctx.specs, batch.batch_id, staging, store=False)
    monkeypatch.setattr(qgate, "PARALLEL_FROM_ROWS", 1)
    halves = qgate.run_gate(ctx.engine, spec, ctx.specs, batch.batch_id, staging, store=False, rows=5)
    counts = [(r.rule_id, r.status, r.violated, r.denominator) for r in one.results]
    assert counts == [(r.rule_id, r.status, r.violated, r.denominator) for r in halves.results]
    assert ("P02.visit.JZKSSJ", "Failed", 1, 5) in counts


def test_an_operations_schema_from_an_older_version_gains_new_columns(ctx):
    from hipbridge.io.ops import ensure_ops

    sync_table("visit", ctx=ctx)
    log_t = ctx.ops.table("batch_log")
    prep = ctx.engine.dialect.identifier_preparer
    with ctx.engine.begin() as c:  # batch_log as the previous version created it
        c.exec_driver_sql(f"ALTER TABLE {prep.format_table(log_t)} DROP COLUMN duplicates")
    ensure_ops(ctx.engine, ctx.ops_schema)
    r = sync_table("visit", "full", ctx=ctx)
    assert state.batch_row(ctx.engine, ctx.ops, r.batch_id)["duplicates"] == 0

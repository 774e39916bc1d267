"""All 27 tables from the demo hospital into a front-end: keys, references, totals, control tables.

One module-scoped load (SQLite front-end, the embedded default) of a small demo; each test reads it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest
from hipbridge.airflow.embedded import dependency_order
from hipbridge.io.engines import dispose_all, source_engine
from hipbridge.pipeline.context import Context
from hipbridge.pipeline.reconcile import load_control, reconcile
from hipbridge.pipeline.run import sync_table
from sqlalchemy import text


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    import os

    home = tmp_path_factory.mktemp("demo_e2e")
    old = os.environ.get("HIPBRIDGE_HOME")
    os.environ["HIPBRIDGE_HOME"] = str(home)
    dispose_all()
    from hipbridge.demo import build

    summary = build(home / "demo", seed=11, days=2, scale=0.01, register=True)
    ctx = Context.create(None, f"sqlite:///{home / 'frontend.db'}")
    results = {t: sync_table(t, ctx=ctx) for t in dependency_order(ctx.specs)}
    yield ctx, results, summary
    dispose_all()
    if old is None:
        os.environ.pop("HIPBRIDGE_HOME", None)
    else:
        os.environ["HIPBRIDGE_HOME"] = old


def _query(engine, sql: str):
    with engine.connect() as c:
        return c.execute(text(sql)).all()


def test_every_table_published_and_counts_reconcile(loaded):
    _, results, _ = loaded
    assert len(results) == 27
    for table, r in results.items():
        assert r.status == "published", (table, r.message)
        assert r.extracted == r.published + r.unsent + r.unchanged + r.quarantined, table
        assert r.extracted > 0, f"{table}: the demo produced no rows"


def test_published_keys_equal_the_source_keys(loaded):
    ctx, results, _ = loaded
    org = ctx.defaults.audit("org_code").name
    for table, spec in ctx.specs.specs.items():
        key_cols = [k for k in spec.target.primary_key if k != org]
        sql = ctx.specs.query_text(spec).strip().rstrip(";")
        if not key_cols:  # keyed by the institution alone (医疗服务机构): one row each side
            n_src = _query(source_engine(spec.source.connection), f"SELECT COUNT(*) FROM ({sql}) src")[0][0]
            assert _query(ctx.engine, f"SELECT COUNT(*) FROM {spec.target.name}")[0][0] == n_src == 1
            continue
        sources = [spec.column(k).source for k in key_cols]
        void = spec.source.void
        # a row voided before its first upload is never sent (first_seen_voided: skip)
        where = (f" WHERE src.{void.column} IS NULL OR src.{void.column} NOT IN "
                 f"({', '.join(repr(str(v)) for v in void.values)})" if void else "")
        raw = _query(source_engine(spec.source.connection), f"SELECT {', '.join(sources)} FROM ({sql}) src{where}")
        frame = pd.DataFrame([[None if v is None else str(v) for v in row] for row in raw], columns=key_cols)
        if any(spec.column(k).codes for k in key_cols):  # coded key columns are compared as published: mapped
            frame = ctx.catalog.apply(frame, spec).frame
        src = {tuple(str(v) for v in row) for row in frame.itertuples(index=False)}
        tgt = {tuple(str(v) for v in row) for row in _query(
            ctx.engine, f"SELECT {', '.join(key_cols)} FROM {spec.target.name}")}
        if spec.column(key_cols[-1]).ctype.is_temporal:  # text forms differ by driver; compare the first 19 chars
            src = {tuple(v[:19] for v in t) for t in src}
            tgt = {tuple(v[:19] for v in t) for t in tgt}
        assert results[table].quarantined == 0, f"{table}: {results[table].quarantined} quarantined"
        assert tgt == src, f"{table}: {len(src - tgt)} source keys missing, {len(tgt - src)} extra"


def test_every_reference_resolves_in_the_loaded_data(loaded):
    ctx, _, _ = loaded
    checked = 0
    for spec in ctx.specs.specs.values():
        for col in spec.columns:
            if not col.reference_target:
                continue
            parent_id, parent_col = col.reference_target
            parent = ctx.specs.get(parent_id).target.name
            dangling = _query(ctx.engine, (
                f"SELECT COUNT(*) FROM {spec.target.name} c WHERE c.{col.name} IS NOT NULL AND c.{col.name} <> '-' "
                f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{parent_col} = c.{col.name})"))[0][0]
            assert dangling == 0, f"{spec.table}.{col.name} → {col.references}: {dangling} dangling"
            checked += 1
    assert checked >= 20


def test_header_totals_equal_the_sum_of_their_details(loaded):
    ctx, _, _ = loaded
    fee = _query(ctx.engine, """
        SELECT s.JSLSH, s.ZFY, COALESCE((SELECT SUM(d.JE) FROM FYMX d WHERE d.JSLSH = s.JSLSH), 0)
        FROM FYJS s""")
    assert fee and all(abs(float(total) - float(detail)) < 0.005 for _, total, detail in fee)
    rx = _query(ctx.engine, """
        SELECT h.CFBH, h.CFJE, (SELECT SUM(i.JE) FROM MZCFMX i WHERE i.CFBH = h.CFBH) FROM MZCF h""")
    assert rx and all(abs(float(total) - float(items or 0)) < 0.005 for _, total, items in rx)


def test_control_tables_match_the_published_data(loaded):
    ctx, _, summary = loaded
    start, end = (date.fromisoformat(summary["window"][k]) for k in ("start", "end"))
    result = reconcile(ctx.engine, ctx.specs, start, end, ctx.now())
    assert result.volume_rows == 27 * result.days
    control = load_control(ctx.specs)
    vol = control.volume
    rows = _query(ctx.engine, f"SELECT {vol.columns.platform_table.name}, SUM({vol.columns.expected.name}) "
                              f"FROM {vol.name} GROUP BY {vol.columns.platform_table.name}")
    counted = {t: int(n) for t, n in rows}
    # every row whose source change falls in the demo window is counted once
    for spec in ctx.specs.specs.values():
        in_window = _query(ctx.engine, f"SELECT COUNT(*) FROM {spec.target.name} WHERE SJGXSJ >= '{start}' "
                                       f"AND SJGXSJ < date('{end}', '+1 day')")[0][0]
        assert counted[spec.target.name] == in_window, spec.table
    recon = control.reconciliation
    settled = _query(ctx.engine, f"SELECT SUM(ZYJSZE) FROM (SELECT DISTINCT {recon.columns.period_start.name}, "
                                 f"ZYJSZE FROM {recon.name})")[0][0]
    direct = _query(ctx.engine, f"SELECT COALESCE(SUM(ZFY), 0) FROM FYJS WHERE JZSJLXDM = '3' AND XGBZ <> '3' "
                                f"AND JSSJ >= '{start}' AND JSSJ < date('{end}', '+1 day')")[0][0]
    assert abs(float(settled or 0) - float(direct)) < 0.005
    # idempotent: recomputing the same days replaces, never duplicates
    again = reconcile(ctx.engine, ctx.specs, start, end, ctx.now())
    assert again.volume_rows == result.volume_rows
    assert _query(ctx.engine, f"SELECT COUNT(*) FROM {vol.name}")[0][0] == result.volume_rows


# Elements the demo hospital has no case for; each stays empty for the reason given (every other column of
# every table holds a value somewhere in the demo)
EMPTY_IN_DEMO = {
    ("mr_homepage", "XSERYTZ"): "新生儿入院体重: no newborn is admitted (the demo has no 新生儿科)",
    ("mr_homepage", "ZKKB"): "转科科别: a demo stay never changes department",
    ("mr_homepage", "LNSSHZRYQHMSJ"): "颅脑损伤昏迷时间: no 颅脑损伤 (S06) stay in the demo departments",
    ("mr_homepage", "LNSSHZRYHHMSJ"): "颅脑损伤昏迷时间: no 颅脑损伤 (S06) stay in the demo departments",
    ("org_info", "SJYYDM"): "上级医院代码: 百色市人民医院 heads its 医联体; it has no 上级医院",
    ("op_registration", "THSJ"): "退号时间: only a 退号 registration has one, and a registration withdrawn "
                                 "before its first upload is not sent (first_seen_voided: skip)",
}


def test_the_demo_produces_every_column_of_every_table(loaded):
    ctx, _, _ = loaded
    empty = set()
    for spec in ctx.specs.specs.values():
        for col in spec.columns:
            n = _query(ctx.engine, f"SELECT COUNT(*) FROM {spec.target.name} WHERE {col.name} IS NOT NULL")[0][0]
            if n == 0:
                empty.add((spec.table, col.name))
    assert empty == set(EMPTY_IN_DEMO)


def test_tcm_diagnoses_are_uploaded_as_tcm(loaded):
    """诊断分类 / 疾病诊断代码类型 come from the source: a TCM row is 中医疾病 (2), 中医国标-95 (02), with its
    病名 and 证候 mapped to GB/T 15657 and named from the domain; a western row stays 1 / 01."""
    ctx, _, _ = loaded
    t = ctx.specs.get("diagnosis_detail").target.name
    tcm = _query(ctx.engine, f"SELECT ZDFLDM, JBZDDMLX, ZYBMDM, ZYBMMC, ZYZHDM, ZYZHMC, XYZDDM FROM {t} "
                             "WHERE ZYBMDM IS NOT NULL")
    assert tcm
    assert {r[:2] for r in tcm} == {("2", "02")}
    assert {r[2] for r in tcm} <= {"BNS150", "BNX030"} and all(r[3] and r[5] for r in tcm)
    assert {r[4] for r in tcm} <= {"ZBQX60", "ZZXPX0", "ZZSGS0"}
    assert all(r[6] for r in tcm)           # paired with its ICD-10 diagnosis (中西医结合)
    western = _query(ctx.engine, f"SELECT DISTINCT ZDFLDM, JBZDDMLX FROM {t} WHERE ZYBMDM IS NULL")
    assert western == [("1", "01")]
    assert {r[0] for r in _query(ctx.engine, "SELECT DISTINCT JBZDDMLX FROM MZJZJL")} == {"01"}


def test_recognised_reports_carry_the_province_item_code(loaded):
    """省互认项目代码 / 名称 on lab_report, lab_result and exam_report, from the 互认 catalog (GX.HRXM)."""
    import csv

    ctx, _, _ = loaded
    root = ctx.specs.directory.parent / "mappings"
    with (root / "standard" / "gx_recognition_items.csv").open(encoding="utf-8") as fh:
        catalog = {r["code"]: r["name"] for r in csv.DictReader(fh)}
    for table in ("lab_report", "exam_report"):
        t = ctx.specs.get(table).target.name
        rows = _query(ctx.engine, f"SELECT HRBZ, SHRXMDM, SHRXMMC FROM {t}")
        recognised = [r for r in rows if r[0] == "1"]
        assert recognised and all(r[1] in catalog and r[2] == catalog[r[1]] for r in recognised), table
        assert all(r[1] is None and r[2] is None for r in rows if r[0] != "1"), table
    results = _query(ctx.engine, "SELECT r.SHRXMDM, h.SHRXMDM, h.HRBZ FROM JYMXB r JOIN JYJLB h "
                                 "ON h.JYJLLSH = r.JYBGLSH AND h.YLJGDM = r.YLJGDM")
    assert results and all(r[0] == r[1] for r in results)
    assert any(r[2] == "1" for r in results)


VOIDABLE = ["diagnosis_detail", "surgery_record", "mr_homepage", "mr_homepage_diagnosis", "mr_homepage_operation",
            "discharge_summary", "fee_detail", "fee_settlement"]


@pytest.mark.parametrize("table", VOIDABLE)
def test_a_record_the_source_cancels_is_not_sent_before_its_first_upload(loaded, table):
    """Each source that can cancel a record (CANCEL_FLAG = '1') has a void rule: the demo cancels some rows
    before their first upload, and those are not sent (`first_seen_voided: skip`); every other row is."""
    ctx, _, _ = loaded
    spec = ctx.specs.get(table)
    void = spec.source.void
    assert void is not None and void.column == "cancel_flag"
    sql = ctx.specs.query_text(spec).strip().rstrip(";")
    keys = [spec.column(k) for k in spec.target.primary_key if k != "YLJGDM"]
    picked = ", ".join(f"src.{c.source}" for c in keys)
    cancelled = {tuple(map(str, r)) for r in _query(source_engine(spec.source.connection),
                                                    f"SELECT {picked} FROM ({sql}) src WHERE src.cancel_flag = '1'")}
    assert cancelled, f"{table}: the demo cancels no record"
    published = {tuple(map(str, r)) for r in _query(
        ctx.engine, f"SELECT {', '.join(c.name for c in keys)} FROM {spec.target.name}")}
    assert published and not cancelled & published


def test_a_record_cancelled_after_its_upload_goes_up_voided(loaded):
    """An uploaded 诊断 the doctor then deletes (CANCEL_FLAG = '1', a later change time) is re-sent with
    修改标志 = 3 and keeps its row; the other rows are not re-sent. Runs last: it changes the demo HIS."""
    import sqlite3

    ctx, _, summary = loaded
    spec = ctx.specs.get("diagnosis_detail")
    diag_id = _query(ctx.engine, f"SELECT ZDLSH FROM {spec.target.name} WHERE ZDLSH LIKE 'MD%' AND XGBZ = '1' "
                                 "ORDER BY ZDLSH LIMIT 1")[0][0]
    his = source_engine("his").url.database
    with sqlite3.connect(his) as conn:
        old = conn.execute("SELECT UPDATE_TIME FROM OUTP_DIAGNOSIS WHERE DIAG_ID = ?", (diag_id,)).fetchone()[0]
        later = (datetime.fromisoformat(old) + timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
        conn.execute("UPDATE OUTP_DIAGNOSIS SET CANCEL_FLAG = '1', UPDATE_TIME = ? WHERE DIAG_ID = ?", (later, diag_id))
    start, end = (date.fromisoformat(summary["window"][k]) for k in ("start", "end"))
    result = sync_table("diagnosis_detail", "window", start, end, ctx=ctx)   # the rerun of the demo's days
    assert result.status == "published", result.message
    rows = _query(ctx.engine, f"SELECT XGBZ, COUNT(*) FROM {spec.target.name} WHERE ZDLSH = '{diag_id}' GROUP BY XGBZ")
    assert rows == [("3", 1)]

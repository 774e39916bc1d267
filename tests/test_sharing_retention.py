"""Retention rules: purge times per situation, and the same mechanism on uploaded tables (spec `retention:`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from hipbridge.platform.config import RetentionConfig, retention_config
from hipbridge.sharing.retention import purge_time
from sqlalchemy import insert, select, text

NOW = datetime(2026, 4, 1, 2, 0)
CFG = retention_config()


def _rec(**kw):
    base = {"status": "ACTIVE", "legal_hold": False, "purged_at": None, "revoked_at": None, "visit_end": None,
            "visit_start": None, "expire_time": NOW + timedelta(days=1), "updated_at": NOW}
    return base | kw


def test_purge_times():
    end = datetime(2026, 3, 10, 11, 0)
    assert purge_time(_rec(visit_end=end), NOW, CFG, 15) == (end + timedelta(days=15), "visit_end")
    assert purge_time(_rec(revoked_at=NOW - timedelta(hours=1), status="REVOKED"), NOW, CFG, 15)[1] == "revoked"
    assert purge_time(_rec(), NOW, CFG, 15) == (None, "active")
    exp = NOW - timedelta(days=1)
    assert purge_time(_rec(expire_time=exp), NOW, CFG, 15) == (exp, "no_show")
    assert purge_time(_rec(visit_start=NOW - timedelta(days=2), expire_time=exp), NOW, CFG, 15) == (None, "in_visit")
    start = NOW - timedelta(days=CFG.shared.stale_open_visit_days)
    due, why = purge_time(_rec(visit_start=start), NOW, CFG, 15)
    assert why == "stale_visit" and due == start.replace(hour=0, minute=0) + timedelta(days=16)
    assert purge_time(_rec(visit_end=end, legal_hold=True), NOW, CFG, 15) == (None, "legal_hold")


def _filled(table, rows: list[dict]) -> list[dict]:
    """Rows with every NOT NULL column the test does not care about given a value of its type."""
    from sqlalchemy import Date, DateTime, Numeric

    def filler(col):
        if isinstance(col.type, DateTime):
            return NOW
        if isinstance(col.type, Date):
            return NOW.date()
        if isinstance(col.type, Numeric):
            return 0
        return "1"

    need = [c for c in table.columns if not c.nullable and c.server_default is None and c.autoincrement is not True]
    return [{c.name: filler(c) for c in need} | row for row in rows]


def test_uploaded_tables_follow_their_spec_retention(mariadb_url):
    """The province may later ask to purge uploaded tables: visit_end via the visit table, details with the header.

    The real table specs (`table_specs/`): each table's `retention:` and its links as the hospital configures them.
    """
    import hipbridge.sharing.state  # noqa: F401 - registers the deletion tables
    from hipbridge.io.engines import engine_for
    from hipbridge.io.frontend import create_frontend
    from hipbridge.io.ops import ensure_ops
    from hipbridge.settings import ops_schema_name
    from hipbridge.sharing.retention import purge_uploaded
    from hipbridge.spec import load_specs

    specs = load_specs(Path(__file__).resolve().parents[1] / "table_specs")
    visit_spec, report_spec, result_spec = (specs.get(t) for t in ("op_visit", "lab_report", "lab_result"))
    # the links this test exercises, read from the specs (a spec change that moves them fails here, by name)
    assert visit_spec.retention.visit_link == "MZJZLSH" and report_spec.retention.visit_link == "MZJZLSH"
    assert result_spec.retention.header == "lab_report"
    schema = ops_schema_name(specs.defaults, mariadb_url)
    fe = engine_for(mariadb_url, schema)
    create_frontend(fe, specs, ["op_visit", "lab_report", "lab_result"])
    ops = ensure_ops(fe, schema)
    common = {"YLJGDM": "451002000001", "XGBZ": "1", "SJCJSJ": NOW, "SJGXSJ": NOW}
    from sqlalchemy import MetaData, Table

    meta = MetaData()
    visit, report, result = (Table(s.target.name, meta, autoload_with=fe)
                             for s in (visit_spec, report_spec, result_spec))
    report_key = report_spec.target.primary_key[-1]            # JYJLLSH, which lab_result's JYBGLSH references
    with fe.begin() as c:
        c.execute(insert(visit), _filled(visit, [common | {"MZJZLSH": f"V{i}", "JZJSSJ": NOW - timedelta(days=d)}
                                                 for i, d in enumerate([30, 20, 16, 14, 3])]))
        c.execute(insert(report), _filled(report, [common | {report_key: f"R{i}", "MZJZLSH": f"V{i}", "BGSJ": NOW}
                                                   for i in range(5)]))
        c.execute(insert(result), _filled(result, [common | {"JYMXLSH": f"M{i}{j}", "JYBGLSH": f"R{i}"}
                                                   for i in range(5) for j in range(3)]))
    cfg = RetentionConfig.model_validate(CFG.model_dump() | {
        "uploaded": {"tables": ["lab_result", "lab_report", "op_visit"]},
        "visit_end_sources": [{"table": "op_visit", "visit_column": "MZJZLSH", "end_column": "JZJSSJ",
                               "visit_type": "outpatient"}]})
    dry = purge_uploaded(fe, ops, specs, NOW, dry_run=True, cfg=cfg, cap_min_rows=10_000)
    assert dry.per_table == {result.name: 9, report.name: 3, visit.name: 3} and dry.deleted == 0
    capped = purge_uploaded(fe, ops, specs, NOW, cfg=cfg, max_share_pct=50, cap_min_rows=1)
    assert capped.status == "ABORTED"
    rep = purge_uploaded(fe, ops, specs, NOW, cfg=cfg, cap_min_rows=10_000, batch_rows=2)
    assert rep.status == "OK" and rep.deleted == 15
    with fe.connect() as c:
        assert sorted(c.execute(select(visit.c.MZJZLSH)).scalars()) == ["V3", "V4"]
        assert c.execute(select(result.c.JYMXLSH).where(result.c.JYBGLSH == "R0")).first() is None
        assert c.execute(text(f"SELECT COUNT(*) FROM `{schema}`.deletion_log")).scalar() == 3

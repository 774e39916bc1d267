"""All 27 tables from the demo hospital into a front-end: keys, references, totals, control tables.

One module-scoped load (SQLite front-end, the embedded default) of a small demo; each test reads it.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hipbridge.airflow.embedded import dependency_order
from hipbridge.io.engines import dispose_all, source_engine
from hipbridge.pipeline.reconcile import load_control, reconcile
from hipbridge.pipeline.run import Context, sync_table
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

"""数据量记录汇总 and 数据对账表: the province's control tables, computed from what was published.

The platform compares them with what it extracted from the front-end: 数据量记录汇总 holds, per
hospital day and front-end table, the number of rows that changed that day (应传总数量); 数据对账表
holds period totals of visits and settlements. Both are recomputed for a day range and replaced
idempotently, so a rerun after corrections leaves exactly one set of rows per day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import (
    Column,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    and_,
    column,
    func,
    inspect,
    select,
    table,
)
from sqlalchemy.engine import Engine

from hipbridge.io.frontend import sa_type
from hipbridge.settings import org_code, org_name
from hipbridge.spec import SpecSet, parse_type
from hipbridge.spec.control import CONTROL_FILE, ControlSpec, load_control  # noqa: F401 - re-exported


def _t(declared: str):
    return sa_type(parse_type(declared))



def control_tables(control: ControlSpec, specs: SpecSet, md: MetaData | None = None) -> tuple[Table, Table]:
    md = md if md is not None else MetaData()
    d = specs.defaults
    org = [Column(d.audit(r).name, sa_type(d.audit(r).ctype), nullable=r != "org_name", comment=d.audit(r).label)
           for r in ("org_code", "org_name")]
    tail = [Column(d.audit("extracted_at").name, _t("timestamp"), comment=d.audit("extracted_at").label)]
    v, vc = control.volume, control.volume.columns
    volume = Table(
        v.name, md, *[c.copy() for c in org],
        Column(vc.business_start.name, _t("timestamp"), nullable=False, comment=vc.business_start.label),
        Column(vc.business_end.name, _t("timestamp"), nullable=False, comment=vc.business_end.label),
        Column(vc.platform_table.name, _t("varchar(64)"), nullable=False, comment=vc.platform_table.label),
        Column(vc.expected.name, _t("decimal(10)"), comment=vc.expected.label),
        Column(vc.detail_flag.name, _t("varchar(1)"), comment=vc.detail_flag.label),
        *[c.copy() for c in tail],
        PrimaryKeyConstraint(*v.primary_key), comment=v.label,
    )
    r, rc = control.reconciliation, control.reconciliation.columns
    recon = Table(
        r.name, md, *[c.copy() for c in org],
        Column(rc.key.name, _t("varchar(64)"), nullable=False, comment=rc.key.label),
        Column(rc.period_start.name, _t("date"), comment=rc.period_start.label),
        Column(rc.period_end.name, _t("date"), comment=rc.period_end.label),
        Column(rc.table_label.name, _t("varchar(50)"), comment=rc.table_label.label),
        Column(rc.sent.name, _t("decimal(10)"), comment=rc.sent.label),
        *[Column(m.name, _t("decimal(16,2)" if m.sum else "decimal(10)"), comment=m.label) for m in r.measures],
        *[c.copy() for c in tail],
        PrimaryKeyConstraint(*r.primary_key), comment=r.label,
    )
    return volume, recon


@dataclass
class ReconcileResult:
    days: int
    volume_rows: int
    reconciliation_rows: int


def _day_range(start: date, end: date):
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def reconcile(engine: Engine, specs: SpecSet, start: date, end: date, now: datetime) -> ReconcileResult:
    """Recompute both control tables for hospital days start…end (inclusive) from the front-end."""
    control = load_control(specs)
    d = specs.defaults
    volume, recon = control_tables(control, specs)
    volume.create(engine, checkfirst=True)
    recon.create(engine, checkfirst=True)
    code, name = org_code(d), org_name(d)
    updated, flag = d.audit("source_updated_at").name, d.audit("change_flag").name
    org_col, extracted = d.audit("org_code").name, d.audit("extracted_at").name
    existing = set(inspect(engine).get_table_names())
    published = {t: s for t, s in sorted(specs.specs.items()) if s.target.name in existing}
    vc, rc = control.volume.columns, control.reconciliation.columns
    vol_rows, rec_rows = [], []
    with engine.begin() as conn:
        for day in _day_range(start, end):
            lo, hi = datetime.combine(day, time.min), datetime.combine(day + timedelta(days=1), time.min)
            totals = {}
            for m in control.reconciliation.measures:
                spec = specs.get(m.table)
                t = table(spec.target.name, *[column(c) for c in {m.date, flag, org_col, m.sum, *m.where} if c])
                agg = func.coalesce(func.sum(t.c[m.sum]), 0) if m.sum else func.count()
                conds = [t.c[m.date] >= lo, t.c[m.date] < hi, t.c[org_col] == code,
                         func.coalesce(t.c[flag], "") != d.change_flags.voided]
                conds += [t.c[col].in_(values) for col, values in m.where.items()]
                totals[m.name] = conn.execute(select(agg).where(and_(*conds))).scalar() or 0
            for spec in published.values():
                t = table(spec.target.name, column(updated), column(org_col))
                n = conn.execute(select(func.count()).where(
                    t.c[updated] >= lo, t.c[updated] < hi, t.c[org_col] == code)).scalar() or 0
                base = {d.audit("org_code").name: code, d.audit("org_name").name: name, extracted: now}
                vol_rows.append({**base, vc.business_start.name: lo, vc.business_end.name: hi - timedelta(seconds=1),
                                 vc.platform_table.name: spec.target.name, vc.expected.name: n,
                                 vc.detail_flag.name: control.volume.detail_flag_value})
                rec_rows.append({**base, rc.key.name: f"{day:%Y%m%d}-{spec.target.name}",
                                 rc.period_start.name: day, rc.period_end.name: day,
                                 rc.table_label.name: spec.label, rc.sent.name: n, **totals})
        first, last = datetime.combine(start, time.min), datetime.combine(end + timedelta(days=1), time.min)
        conn.execute(volume.delete().where(volume.c[org_col] == code, volume.c[vc.business_start.name] >= first,
                                           volume.c[vc.business_start.name] < last))
        conn.execute(recon.delete().where(recon.c[org_col] == code, recon.c[rc.period_start.name] >= start,
                                          recon.c[rc.period_start.name] <= end))
        if vol_rows:
            conn.execute(volume.insert(), vol_rows)
            conn.execute(recon.insert(), rec_rows)
    return ReconcileResult((end - start).days + 1, len(vol_rows), len(rec_rows))

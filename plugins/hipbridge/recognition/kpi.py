"""Monthly 互认 KPI (interfaces.md §A10 Audit): reminded, recognised, not recognised by reason, 互认率.

The unit is a reminded report: one (visit, source institution, report number, doctor), however many
cards showed it, in the month its first reminder was shown (北京时间), with its current decision.
互认率 = recognised / (reminded − declined with a reason that is not counted, 98 / 99).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine

from hipbridge.io.ops import Ops

from .catalog import Recognition


def month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise ValueError(f"--month: expected YYYY-MM (got {month!r})") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def monthly_kpi(engine: Engine, ops: Ops, rec: Recognition, org_code: str, month: str) -> dict[str, Any]:
    start, end = month_bounds(month)
    rem, dec = ops.table("recognition_reminder"), ops.table("recognition_decision")
    with engine.connect() as conn:
        reminded = conn.execute(select(rem.c.visit_id, rem.c.report_org_code, rem.c.report_no, rem.c.doctor_id,
                                       rem.c.created_at)
                                .where(and_(rem.c.org_code == org_code))).all()
        decisions = {(d.visit_id, d.report_org_code, d.report_no, d.doctor_id): d for d in conn.execute(
            select(dec.c.visit_id, dec.c.report_org_code, dec.c.report_no, dec.c.doctor_id, dec.c.status,
                   dec.c.reason_code).where(dec.c.org_code == org_code))}
    first: dict[tuple, datetime] = {}
    for r in reminded:
        k = (r[0], r[1], r[2], r[3])
        first[k] = min(first.get(k, r[4]), r[4])
    units = [k for k, t in first.items() if start <= t < end]
    recognised = 0
    by_reason: dict[str, int] = {}
    for k in units:
        d = decisions.get(k)
        if d is None:
            continue
        if d.status == "1":
            recognised += 1
        elif d.status == "0":
            by_reason[d.reason_code] = by_reason.get(d.reason_code, 0) + 1
    reasons = rec.reasons
    excluded = sum(n for c, n in by_reason.items() if c in reasons and not reasons[c].counted)
    refused = sum(n for c, n in by_reason.items() if not (c in reasons and not reasons[c].counted))
    denominator = len(units) - excluded
    return {
        "month": month, "timezone": "Asia/Shanghai", "orgCode": org_code, "reminded": len(units),
        "recognised": recognised, "notRecognised": refused, "excluded": excluded,
        "undecided": len(units) - recognised - refused - excluded,
        "byReason": [{"code": c, "name": reasons[c].name if c in reasons else c, "count": n,
                      "counted": bool(reasons[c].counted) if c in reasons else True}
                     for c, n in sorted(by_reason.items())],
        "rate": round(recognised / denominator, 4) if denominator > 0 else None,
    }

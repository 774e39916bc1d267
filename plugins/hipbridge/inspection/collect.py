"""Read one ISO week back from what hipbridge recorded: the batch log, quarantine, quality runs, the
outbox and authorizations, deletion runs and their log (删除证明), the front-end tables, the databases
and the disks. One function per area; each returns plain data for the report.

Times are the hospital's, naive, as hipbridge records them. An area whose tables do not exist (sharing
not in use yet) is reported as 未启用, never silently as zero; an area that cannot be read is reported
with the error.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Engine

# imported for their ops tables: alert_state, outbox and auth_record, quality_run, deletion_run and deletion_log
import hipbridge.monitor.alerts
import hipbridge.platform.state
import hipbridge.quality.store
import hipbridge.sharing.state  # noqa: F401
from hipbridge.io.dialects import frontend_dialect
from hipbridge.io.ops import ops_for
from hipbridge.spec import SpecSet
from hipbridge.statuses import BatchStatus

FAILED_STATES = BatchStatus.unsuccessful()


@dataclass(frozen=True)
class Week:
    label: str            # 2026-W49
    start: datetime       # Monday 00:00, hospital time
    end: datetime         # next Monday 00:00
    as_of: datetime       # min(end, now): 统计截至

    @property
    def days(self) -> list[date]:
        """The week's days up to 统计截至 (a report on Thursday does not draw Friday as a gap)."""
        last = (self.as_of - timedelta(microseconds=1)).date()
        return [d for d in (self.start.date() + timedelta(days=i) for i in range(7)) if d <= last]

    def shifted(self, weeks: int) -> Week:
        start = self.start + timedelta(weeks=weeks)
        return Week(iso_label(start.date()), start, start + timedelta(weeks=1), start + timedelta(weeks=1))


def iso_label(d: date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def parse_week(label: str | None, now: datetime) -> Week:
    """`2026-W49` → that week; None → the week holding yesterday (on a Monday morning: the week just ended)."""
    if label is None:
        d = (now - timedelta(days=1)).date()
        monday = d - timedelta(days=d.weekday())
    else:
        try:
            year, week = label.upper().split("-W")
            monday = date.fromisocalendar(int(year), int(week), 1)
        except ValueError as exc:
            raise ValueError(f"--week: expected an ISO week such as 2026-W49 (got {label!r})") from exc
    start = datetime.combine(monday, datetime.min.time())
    end = start + timedelta(weeks=1)
    return Week(iso_label(monday), start, end, min(end, now))


def _tables(engine: Engine, schema: str | None) -> set[str]:
    return set(inspect(engine).get_table_names(schema=schema))


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a and b else None


# ---------------------------------------------------------------- runs, volumes, errors


def runs(engine: Engine, schema: str, week: Week, labels: dict[str, str]) -> dict[str, Any]:
    """Batches started in the week: per table counts, rows, durations; per day; failed batches."""
    if "batch_log" not in _tables(engine, schema):
        return {"enabled": False, "tables": [], "daily": {}, "failures": [], "total": {}}
    bl = ops_for(schema).table("batch_log")
    with engine.connect() as conn:
        rows = conn.execute(select(bl).where(bl.c.started_at >= week.start, bl.c.started_at < week.end)
                            .order_by(bl.c.started_at)).mappings().all()
    per: dict[str, dict[str, Any]] = {}
    daily: dict[str, dict[str, int]] = {str(d): {"batches": 0, "published": 0, "failed": 0} for d in week.days}
    failures = []
    for r in rows:
        t = per.setdefault(r["table_id"], {"table": r["table_id"], "label": labels.get(r["table_id"], r["table_id"]),
                                           "batches": 0, "failed": 0, "statuses": Counter(), "durations": [],
                                           **{k: 0 for k in _COUNTS}})
        _add_batch(t, r)
        day = daily.get(str(r["started_at"].date()))
        if day is not None:
            day["batches"] += 1
            day["published"] += int(r.get("published") or 0)
            day["failed"] += r["status"] in FAILED_STATES
        if r["status"] in FAILED_STATES:
            failures.append({"table": r["table_id"], "label": t["label"], "batch_id": r["batch_id"],
                             "status": r["status"], "started_at": r["started_at"],
                             "message": (r.get("message") or "")[:300]})
    tables = [_table_summary(t) for t in sorted(per.values(), key=lambda t: t["table"])]
    return {"enabled": True, "tables": tables, "daily": daily, "failures": failures, "total": _totals(tables)}


# skipped: source rows without a change time (read by full runs only); deleted: keys the source no longer returns
_COUNTS = ("extracted", "published", "inserted", "updated", "voided", "unchanged", "quarantined", "skipped", "deleted")


def _add_batch(t: dict[str, Any], r) -> None:
    t["batches"] += 1
    t["failed"] += r["status"] in FAILED_STATES
    t["statuses"][r["status"]] += 1
    for k in _COUNTS:
        t[k] += int(r.get(k) or 0)
    s = _seconds(r["started_at"], r.get("finished_at"))
    if s is not None:
        t["durations"].append(s)


def _table_summary(t: dict[str, Any]) -> dict[str, Any]:
    d = t.pop("durations")
    t["statuses"] = dict(t["statuses"])
    t["avg_seconds"] = round(sum(d) / len(d), 1) if d else None
    t["max_seconds"] = round(max(d), 1) if d else None
    t["total_seconds"] = round(sum(d), 1)
    return t


def _totals(tables: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: sum(t[k] for t in tables) for k in ("batches", "failed", *_COUNTS)}
    out["total_seconds"] = round(sum(t["total_seconds"] for t in tables), 1)
    maxes = [t["max_seconds"] for t in tables if t["max_seconds"] is not None]
    out["max_seconds"] = max(maxes) if maxes else None
    out["failure_pct"] = round(100.0 * out["failed"] / out["batches"], 2) if out["batches"] else None
    return out


def table_state(engine: Engine, schema: str, specs: SpecSet, week: Week) -> list[dict[str, Any]]:
    """Per table: rows in the front-end now, the last published batch, days since (数据断传)."""
    present = _tables(engine, None)
    last: dict[str, datetime] = {}
    if "batch_log" in _tables(engine, schema):
        bl = ops_for(schema).table("batch_log")
        with engine.connect() as conn:
            last = {r[0]: r[1] for r in conn.execute(
                select(bl.c.table_id, func.max(bl.c.finished_at)).where(
                    bl.c.status == BatchStatus.PUBLISHED, bl.c.finished_at < week.end).group_by(bl.c.table_id))}
    out = []
    with engine.connect() as conn:
        for tid, spec in sorted(specs.specs.items()):
            rows = None
            if spec.target.name in present:
                rows = conn.execute(text(f"SELECT COUNT(*) FROM {_q(engine, spec.target.name)}")).scalar()
            seen = last.get(tid)
            out.append({"table": tid, "label": spec.label, "target": spec.target.name, "rows": rows,
                        "last_published": seen,
                        "days_since": None if seen is None else round((week.as_of - seen).total_seconds() / 86400, 1)})
    return out


def _q(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def quarantine(engine: Engine, schema: str, week: Week, labels: dict[str, str]) -> dict[str, Any]:
    """Quarantined rows of the week by table and the most frequent reasons."""
    if "quarantine" not in _tables(engine, schema):
        return {"enabled": False, "by_table": [], "reasons": []}
    q = ops_for(schema).table("quarantine")
    in_week = (q.c.created_at >= week.start, q.c.created_at < week.end)
    with engine.connect() as conn:
        by_table = conn.execute(select(q.c.table_id, func.count()).where(*in_week).group_by(q.c.table_id)
                                .order_by(func.count().desc())).all()
        reasons = conn.execute(select(q.c.table_id, q.c.reason, func.count()).where(*in_week)
                               .group_by(q.c.table_id, q.c.reason).order_by(func.count().desc()).limit(15)).all()
    return {"enabled": True, "by_table": [{"table": t, "label": labels.get(t, t), "rows": int(n)} for t, n in by_table],
            "reasons": [{"table": t, "label": labels.get(t, t), "reason": (r or "")[:200], "rows": int(n)}
                        for t, r, n in reasons]}


def alerts(engine: Engine, schema: str, week: Week) -> dict[str, Any]:
    """Monitoring alerts open at some point in the week (raised before its end, not resolved before its start)."""
    if "alert_state" not in _tables(engine, schema):
        return {"enabled": False, "rows": [], "open": 0}
    a = ops_for(schema).table("alert_state")
    with engine.connect() as conn:
        rows = conn.execute(select(a.c.rule, a.c.severity, a.c.title, a.c.first_seen, a.c.last_seen, a.c.resolved_at,
                                   a.c.sent_count, a.c.last_error)
                            .where(a.c.first_seen < week.end, (a.c.resolved_at.is_(None)) | (a.c.resolved_at >= week.start))
                            .order_by(a.c.first_seen)).mappings().all()
    rows = [dict(r) for r in rows]
    still_open = [r for r in rows if r["resolved_at"] is None or r["resolved_at"] >= week.as_of]
    return {"enabled": True, "rows": rows, "open": len(still_open)}


# ---------------------------------------------------------------- quality


def quality(engine: Engine, schema: str, week: Week, trend_weeks: int) -> dict[str, Any]:
    """Report runs of the week (last one's scores), gate runs and blocked batches, weekly trend of scores."""
    if "quality_run" not in _tables(engine, schema):
        return {"enabled": False, "runs": [], "trend": {}, "gates": 0, "blocked": 0, "last": None}
    qr = ops_for(schema).table("quality_run")
    first = week.shifted(-(trend_weeks - 1)).start
    with engine.connect() as conn:
        reports = conn.execute(select(qr.c.run_id, qr.c.started_at, qr.c.overall, qr.c.grade, qr.c.scores)
                               .where(qr.c.kind == "report", qr.c.started_at >= first, qr.c.started_at < week.end)
                               .order_by(qr.c.started_at)).mappings().all()
        gates = conn.execute(select(qr.c.blocked, func.count()).where(
            qr.c.kind == "gate", qr.c.started_at >= week.start, qr.c.started_at < week.end).group_by(qr.c.blocked)).all()
    trend: dict[str, float | None] = {week.shifted(-k).label: None for k in range(trend_weeks - 1, -1, -1)}
    for r in reports:
        if r["overall"] is not None:
            trend[iso_label(r["started_at"].date())] = r["overall"]    # the week's last run wins
    this_week = [dict(r) for r in reports if r["started_at"] >= week.start]
    last = this_week[-1] if this_week else None
    dims = {}
    if last:
        dims = {d: v.get("rate") for d, v in (json.loads(last["scores"] or "{}").get("dimensions") or {}).items()}
    counts = {b: int(n) for b, n in gates}
    return {"enabled": True, "runs": [{k: r[k] for k in ("run_id", "started_at", "overall", "grade")} for r in this_week],
            "trend": trend, "last": last and {k: last[k] for k in ("run_id", "started_at", "overall", "grade")},
            "dimensions": dims, "gates": sum(counts.values()), "blocked": counts.get("1", 0)}


# ---------------------------------------------------------------- sharing: outbox, authorizations, deletions


def sharing(engine: Engine, schema: str, week: Week) -> dict[str, Any]:
    """Outbox by status (backlog at the end of the week, oldest unacknowledged), failures, authorizations."""
    present = _tables(engine, schema)
    if "outbox" not in present:
        return {"enabled": False}
    ops = ops_for(schema)
    ob = ops.table("outbox")
    in_week = (ob.c.created_at >= week.start, ob.c.created_at < week.end)
    with engine.connect() as conn:
        created = dict(conn.execute(select(ob.c.status, func.count()).where(*in_week).group_by(ob.c.status)).all())
        backlog = conn.execute(select(func.count(), func.min(ob.c.created_at)).where(
            ob.c.status.in_(("NEW", "SENT")), ob.c.created_at < week.end)).one()
        failed = conn.execute(select(ob.c.kind, ob.c.appointment_id, ob.c.attempts, ob.c.last_code, ob.c.last_error,
                                     ob.c.updated_at).where(ob.c.status == "FAILED", *in_week)
                              .order_by(ob.c.updated_at.desc()).limit(20)).mappings().all()
        auth: dict[str, int] = {}
        if "auth_record" in present:
            ar = ops.table("auth_record")
            auth = dict(conn.execute(select(ar.c.status, func.count()).where(
                ar.c.created_at >= week.start, ar.c.created_at < week.end).group_by(ar.c.status)).all())
    oldest = backlog[1]
    return {"enabled": True, "created": {k: int(v) for k, v in created.items()}, "backlog": int(backlog[0] or 0),
            "oldest_pending": oldest,
            "oldest_hours": None if oldest is None else round((week.as_of - oldest).total_seconds() / 3600, 1),
            "failed": [dict(r) for r in failed], "authorizations": {k: int(v) for k, v in auth.items()}}


def deletions(engine: Engine, schema: str, week: Week) -> dict[str, Any]:
    """Deletion runs of the week and their log (删除证明: counts and hashed keys only)."""
    present = _tables(engine, schema)
    if "deletion_run" not in present:
        return {"enabled": False, "runs": [], "by_reason": {}, "certificates": 0}
    ops = ops_for(schema)
    dr, dl = ops.table("deletion_run"), ops.table("deletion_log")
    with engine.connect() as conn:
        run_rows = conn.execute(select(dr).where(dr.c.started_at >= week.start, dr.c.started_at < week.end)
                                .order_by(dr.c.started_at)).mappings().all()
        log = conn.execute(select(dl.c.result, dl.c.reason, func.count(), func.sum(dl.c.rows_deleted)).where(
            dl.c.executed_at >= week.start, dl.c.executed_at < week.end).group_by(dl.c.result, dl.c.reason)).all()
    by_reason: dict[str, dict[str, int]] = defaultdict(dict)
    for result, reason, n, rows_deleted in log:
        by_reason[result][reason or "—"] = int(n)
        by_reason[result].setdefault("_rows", 0)
        by_reason[result]["_rows"] += int(rows_deleted or 0)
    return {"enabled": True, "runs": [dict(r) for r in run_rows], "by_reason": dict(by_reason),
            "certificates": sum(v for k, v in by_reason.get("DELETED", {}).items() if k != "_rows"),
            "failed_runs": [dict(r) for r in run_rows if r["status"] in ("FAILED", "ABORTED")],
            "purge_failed": sum(v for k, v in by_reason.get("PURGE_FAILED", {}).items() if k != "_rows")}


# ---------------------------------------------------------------- health: databases and disks

def database_health(engine: Engine, schema: str) -> dict[str, Any]:
    """Reachable, server version, sizes of the front-end and the ops schema."""
    dialect = frontend_dialect(engine)
    out: dict[str, Any] = {"dialect": engine.dialect.name, "url": engine.url.render_as_string(hide_password=True)}
    try:
        with engine.connect() as conn:
            out["version"] = str(conn.execute(text(dialect.version_sql)).scalar())[:80]
            out["sizes"] = {("前置机库" if db is None else f"运行库 {db}"): n
                            for db, n in dialect.database_sizes(conn, engine, schema)}
        out["ok"] = True
    except Exception as exc:  # noqa: BLE001 - reported in the report, not raised
        out.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
    return out


def disk_health(paths: dict[str, Path]) -> list[dict[str, Any]]:
    """Free space of each named folder's disk."""
    out = []
    for label, path in paths.items():
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        u = shutil.disk_usage(probe)
        out.append({"label": label, "path": str(path), "total": u.total, "used": u.used, "free": u.free,
                    "free_pct": round(100.0 * u.free / u.total, 1) if u.total else None})
    return out

"""15-day deletion of shared data (interfaces.md §A12) and the same mechanism for uploaded tables.

A patient's shared rows are deleted when *every* authorization of that patient has reached its
purge time (so a later, overlapping authorization keeps them):

| situation                                  | purge time                                   |
|--------------------------------------------|----------------------------------------------|
| consent withdrawn (cancel, refund, patient)| at once (revoked_at)                         |
| visit ended (门急诊结束 / 出院)             | visit_end + days (config, spec retention wins)|
| visit started, never closed                | start date + 1 day + days, after stale days  |
| no-show                                    | expire_time                                  |
| legal hold (医疗纠纷封存)                   | never, until cleared                          |

A patient's rows are found by the authIds of their authorizations and, in the encrypted tables
(`secure.py`), through the patient blind index (`patient_bi` = the authorization's patient_key):
rows of the patient pushed under an authId we do not hold are deleted with the rest. Landing and
encrypted tables are purged alike. Deletes run in batches (`batch_rows` per statement, one short transaction each), children before
headers; a safety cap aborts the whole run, before deleting anything, when a table would lose
more than `max_share_pct`; `dry_run` computes and logs the same numbers without deleting. The
deletion log holds counts and hashed keys only. Time is injected (`now`), never read here.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, select, text, update
from sqlalchemy.engine import Connection, Engine

from hipbridge.crypto.keys import KeyStore
from hipbridge.io.dialects import frontend_dialect
from hipbridge.io.ops import Ops
from hipbridge.platform.config import RetentionConfig, retention_config
from hipbridge.platform.state import audit, audit_many
from hipbridge.spec import SpecSet

from .secure import auth_ids_by_patient
from .store import SharedStore

log = logging.getLogger("hipbridge.sharing.retention")
_IN_CHUNK = 500
_PURGE_COLUMNS = ("id", "patient_key", "status", "auth_id", "visit_start", "visit_end", "expire_time", "revoked_at",
                  "legal_hold", "purged_at", "updated_at")


@dataclass
class PurgeReport:
    run_id: str
    scope: str
    dry_run: bool
    status: str = "OK"
    candidates: int = 0
    deleted: int = 0
    per_table: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    message: str | None = None
    patients: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)   # seconds per phase (select, count, delete …)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "patients"} | {"patients": len(self.patients)}


# ---------------------------------------------------------------- purge times


def purge_time(rec: dict[str, Any], now: datetime, cfg: RetentionConfig, days: int) -> tuple[datetime | None, str]:
    """When this authorization stops needing the shared data; None = still needed (or on hold)."""
    if rec.get("legal_hold"):
        return None, "legal_hold"
    if rec.get("purged_at"):
        return rec["purged_at"], "purged"
    if rec.get("revoked_at"):
        return rec["revoked_at"], "revoked"
    if rec["status"] == "FAILED":
        return rec["updated_at"], "failed"
    if rec.get("visit_end"):
        return rec["visit_end"] + timedelta(days=days), "visit_end"
    start = rec.get("visit_start")
    if start is not None:
        if now >= start + timedelta(days=cfg.shared.stale_open_visit_days):
            end = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            return end + timedelta(days=days), "stale_visit"
        return None, "in_visit"
    if rec.get("expire_time") and now >= rec["expire_time"]:
        return rec["expire_time"], "no_show"
    return None, "active"


def shared_days(store: SharedStore, cfg: RetentionConfig) -> int:
    """A shared table's spec `retention.days` wins over the default; the strictest (largest) applies."""
    days = [s.retention.days for s in store.specs.values() if s.retention is not None]
    return max(days) if days else cfg.shared.days


def resolve_visit_ends(frontend: Engine, ops: Ops, specs: SpecSet, cfg: RetentionConfig, now: datetime) -> int:
    """Fill auth_record.visit_end from the uploaded visit tables named in retention.yaml (if any)."""
    if not cfg.visit_end_sources:
        return 0
    ar = ops.table("auth_record")
    q = frontend.dialect.identifier_preparer
    filled = 0
    with frontend.begin() as conn:
        open_recs = conn.execute(select(ar.c.id, ar.c.visit_no, ar.c.visit_type).where(and_(
            ar.c.visit_end.is_(None), ar.c.visit_no.is_not(None), ar.c.purged_at.is_(None)))).all()
        for rid, visit_no, vtype in open_recs:
            for src in cfg.visit_end_sources:
                if src.visit_type != vtype or src.table not in specs.specs:
                    continue
                t = specs.specs[src.table].target.name
                end = conn.execute(text(f"SELECT MAX({q.quote(src.end_column)}) FROM {q.quote(t)} "
                                        f"WHERE {q.quote(src.visit_column)} = :v"), {"v": visit_no}).scalar()
                if end is not None:
                    conn.execute(update(ar).where(ar.c.id == rid).values(visit_end=end, updated_at=now))
                    filled += 1
                    break
    return filled


# ---------------------------------------------------------------- batched deletes


def _qualified(engine: Engine, table) -> str:
    return engine.dialect.identifier_preparer.format_table(table)


def delete_batched(engine: Engine, table, where_sql: str, params: dict[str, Any], batch_rows: int,
                   expanding: tuple[str, ...] = ()) -> int:
    """DELETE … WHERE <where> in batches of `batch_rows`, each its own short transaction."""
    name = _qualified(engine, table) if not isinstance(table, str) else table
    sql = frontend_dialect(engine).delete_limited(name, where_sql, ":_n")
    stmt = text(sql).bindparams(*[bindparam(k, expanding=True) for k in expanding])
    total = 0
    while True:
        with engine.begin() as conn:
            n = conn.execute(stmt, {**params, "_n": batch_rows}).rowcount
        total += n
        if n < batch_rows:
            return total


def _groups(auth_ids: list[str], counts: dict[str, int], batch_rows: int) -> list[list[str]]:
    out: list[list[str]] = []
    group: list[str] = []
    n = 0
    for a in auth_ids:
        c = counts.get(a, 0)
        if not c:
            continue
        if group and n + c > batch_rows:
            out.append(group)
            group, n = [], 0
        group.append(a)
        n += c
    if group:
        out.append(group)
    return out


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    return [items[i:i + n] for i in range(0, len(items), n)]


def _count_by_auth(conn: Connection, table, auth_col: str, auth_ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    col = table.c[auth_col]
    for chunk in _chunks(auth_ids, _IN_CHUNK):
        for a, n in conn.execute(select(col, func.count()).where(col.in_(chunk)).group_by(col)):
            out[a] = n
    return out


# ---------------------------------------------------------------- shared store


def purge_shared(frontend: Engine, ops: Ops, store: SharedStore, keys: KeyStore, now: datetime, *,
                 dry_run: bool = False, patient_keys: list[str] | None = None, batch_rows: int | None = None,
                 max_share_pct: float | None = None, cap_min_rows: int | None = None,
                 cfg: RetentionConfig | None = None, run_id: str | None = None) -> PurgeReport:
    """Delete the shared rows of every patient whose authorizations have all reached their purge time."""
    cfg = cfg or retention_config()
    batch_rows = batch_rows or cfg.run.batch_rows
    max_pct = cfg.run.max_share_pct if max_share_pct is None else max_share_pct
    min_rows = cfg.run.cap_min_rows if cap_min_rows is None else cap_min_rows
    days = shared_days(store, cfg)
    report = PurgeReport(run_id or f"purge-{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}", "shared", dry_run)
    t_start = time.perf_counter()
    ar, runs, dlog = ops.table("auth_record"), ops.table("deletion_run"), ops.table("deletion_log")
    auth_col = store.cols["auth_id"]
    with frontend.begin() as conn:
        conn.execute(runs.insert().values(run_id=report.run_id, scope="shared", dry_run=dry_run, status="RUNNING",
                                          started_at=now, candidates=0, deleted_rows=0))
        q = select(ar.c.patient_key).where(ar.c.purged_at.is_(None)).distinct()
        if patient_keys is not None:
            q = q.where(ar.c.patient_key.in_(patient_keys))
        pending = conn.execute(q).scalars().all()
        recs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for chunk in _chunks(list(pending), _IN_CHUNK):
            for r in conn.execute(select(*[ar.c[c] for c in _PURGE_COLUMNS])
                                  .where(ar.c.patient_key.in_(chunk))).mappings():
                recs[r["patient_key"]].append(dict(r))
    due: list[dict[str, Any]] = []
    for pkey, rs in recs.items():
        times = [purge_time(r, now, cfg, days) for r in rs]
        if any(t is None or t > now for t, _ in times):
            continue
        latest = max(range(len(rs)), key=lambda i: times[i][0])
        due.append({"patient_key": pkey, "records": rs, "purge_due": times[latest][0], "reason": times[latest][1],
                    "reasons": [t[1] for t in times]})
    report.candidates = len(due)
    _add_indexed_auths(store, due)
    auth_ids = sorted({a for d in due for a in d["auth_ids"]})

    report.timings["select"] = time.perf_counter() - t_start
    # counts first: they feed the safety cap, the dry run and the per-patient certificates
    t0 = time.perf_counter()
    by_table: dict[str, dict[str, int]] = {}
    targets = store.purge_targets()
    for _tid, label, table, engine in targets:
        with engine.connect() as sconn:
            by_table[label] = _count_by_auth(sconn, table, auth_col, auth_ids) if auth_ids else {}
            report.per_table[label] = sum(by_table[label].values())
            report.totals[label] = (sconn.execute(select(func.count()).select_from(table)).scalar_one()
                                    if report.per_table[label] else 0)
    report.timings["count"] = time.perf_counter() - t0
    over = [(n, report.per_table[n], report.totals[n]) for n in report.per_table
            if report.totals[n] >= min_rows and report.totals[n]
            and 100.0 * report.per_table[n] / report.totals[n] > max_pct]
    if over:
        report.status = "ABORTED"
        report.message = "安全上限触发, 本次删除已中止: " + "; ".join(
            f"{n} 将删除 {d}/{t} 行 ({100.0 * d / t:.1f}% > {max_pct}%)" for n, d, t in over)
        log.error(report.message)
        _finish(frontend, runs, report, now)
        return report

    for chunk in _chunks(due, _IN_CHUNK):
        chunk_auths = sorted({a for d in chunk for a in d["auth_ids"]})
        failed_auths: set[str] = set()
        if chunk_auths and not dry_run:
            t0 = time.perf_counter()
            quoted = store.engine.dialect.identifier_preparer.quote(auth_col)
            for _tid, label, table, engine in reversed(targets):   # details before their headers
                if not any(by_table[label].get(a) for a in chunk_auths):
                    continue
                # pack authorizations so one statement removes about `batch_rows` rows, known from the counts:
                # no statement re-scans entries an earlier batch already removed
                for group in _groups(chunk_auths, by_table[label], batch_rows):
                    delete_batched(engine, table, f"{quoted} IN :ids", {"ids": group},
                                   batch_rows, expanding=("ids",))
            report.timings["delete"] = report.timings.get("delete", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            for _tid, _label, table, engine in targets:   # verify: nothing left for these authorizations
                with engine.connect() as sconn:
                    failed_auths |= set(_count_by_auth(sconn, table, auth_col, chunk_auths))
            report.timings["verify"] = report.timings.get("verify", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        logs, events, purged_ids = [], [], []
        for d in chunk:
            ids = d["auth_ids"]
            counts = {label: sum(by_table[label].get(a, 0) for a in ids) for _t, label, _tb, _e in targets}
            failed = bool(failed_auths & set(ids))
            result = "PURGE_FAILED" if failed else ("WOULD_DELETE" if dry_run else "DELETED")
            n = sum(counts.values())
            logs.append({"run_id": report.run_id, "scope": "shared", "patient_key": d["patient_key"],
                         "auth_keys": json.dumps(sorted(keys.hashed_key(a) for a in ids)), "reason": d["reason"],
                         "purge_due": d["purge_due"], "table_counts": json.dumps(counts, sort_keys=True),
                         "rows_deleted": n, "dry_run": dry_run, "result": result, "executed_at": now})
            report.patients.append({"patient_key": d["patient_key"], "reason": d["reason"], "rows": n,
                                    "result": result})
            if dry_run:
                continue
            if failed:
                report.status = "FAILED"
                log.error("共享数据删除后复核仍有残留 (PURGE_FAILED), patient_key=%s", d["patient_key"][:12])
                continue
            report.deleted += n
            purged_ids += [r["id"] for r in d["records"] if r["purged_at"] is None]
            events.append({"ts": now, "actor_type": "job", "actor_id": report.run_id, "patient_key": d["patient_key"],
                           "action": "PURGE_SHARED", "object_type": "patient", "result_code": result,
                           "detail": {"reason": d["reason"], "counts": counts}})
        with frontend.begin() as conn:
            conn.execute(dlog.insert(), logs)
            for ids in _chunks(purged_ids, _IN_CHUNK):
                # forward only: a live authorization whose data is gone has expired; revoked stays revoked
                conn.execute(update(ar).where(and_(ar.c.id.in_(ids), ar.c.purged_at.is_(None))).values(
                    purged_at=now, updated_at=now,
                    status=case((ar.c.status.in_(["ACTIVE", "PENDING"]), "EXPIRED"), else_=ar.c.status)))
            audit_many(conn, ops, keys, events)
        report.timings["log"] = report.timings.get("log", 0.0) + time.perf_counter() - t0
    _finish(frontend, runs, report, now)
    return report


def _add_indexed_auths(store: SharedStore, due: list[dict[str, Any]]) -> None:
    """Each due patient's authIds: their authorizations', plus those the blind index finds in the encrypted store."""
    found = auth_ids_by_patient(store.secure, [d["patient_key"] for d in due]) if store.secure is not None else {}
    for d in due:
        ids = {r["auth_id"] for r in d["records"] if r["auth_id"]} | found.get(d["patient_key"], set())
        d["auth_ids"] = sorted(ids)


def _finish(frontend: Engine, runs, report: PurgeReport, now: datetime) -> None:
    with frontend.begin() as conn:
        conn.execute(update(runs).where(runs.c.run_id == report.run_id).values(
            status=report.status, finished_at=now, candidates=report.candidates,
            deleted_rows=report.deleted if not report.dry_run else sum(report.per_table.values()),
            message=report.message))


def purge_orphans(frontend: Engine, ops: Ops, store: SharedStore, keys: KeyStore, now: datetime,
                  batch_rows: int = 5000) -> dict[str, int]:
    """Privacy guard (A8 Q01): delete shared rows whose authId is unknown here or already purged."""
    ar = ops.table("auth_record")
    auth_col = store.cols["auth_id"]
    with frontend.connect() as conn:
        live = set(conn.execute(select(ar.c.auth_id).where(and_(ar.c.auth_id.is_not(None),
                                                                ar.c.purged_at.is_(None)))).scalars())
    out: dict[str, int] = {}
    q = store.engine.dialect.identifier_preparer.quote(auth_col)
    for _tid, label, table, engine in reversed(store.purge_targets()):
        with engine.connect() as sconn:
            present = set(sconn.execute(select(table.c[auth_col]).distinct()).scalars())
        n = 0
        for ids in _chunks(sorted(present - live), _IN_CHUNK):
            n += delete_batched(engine, table, f"{q} IN :ids", {"ids": ids}, batch_rows, expanding=("ids",))
        if n:
            out[label] = n
    if out:
        with frontend.begin() as conn:
            audit(conn, ops, keys, ts=now, actor_type="job", actor_id="push-verify", action="PURGE_ORPHAN",
                  object_type="shared_store", result_code="DELETED", detail={"counts": out})
            conn.execute(ops.table("deletion_log").insert().values(
                run_id=f"orphan-{now:%Y%m%d%H%M%S}", scope="shared", reason="orphan",
                table_counts=json.dumps(out, sort_keys=True), rows_deleted=sum(out.values()), dry_run=False,
                result="DELETED", executed_at=now))
    return out


# ---------------------------------------------------------------- uploaded tables (province request)


def purge_uploaded(frontend: Engine, ops: Ops, specs: SpecSet, now: datetime, *, dry_run: bool = False,
                   batch_rows: int | None = None, max_share_pct: float | None = None,
                   cap_min_rows: int | None = None, cfg: RetentionConfig | None = None) -> PurgeReport:
    """Apply each listed table's spec `retention:` (own-date anchor, visit_end via visit tables, or header)."""
    cfg = cfg or retention_config()
    batch_rows = batch_rows or cfg.run.batch_rows
    max_pct = cfg.run.max_share_pct if max_share_pct is None else max_share_pct
    min_rows = cfg.run.cap_min_rows if cap_min_rows is None else cap_min_rows
    report = PurgeReport(f"purge-up-{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}", "uploaded", dry_run)
    q = frontend.dialect.identifier_preparer
    runs, dlog = ops.table("deletion_run"), ops.table("deletion_log")
    with frontend.begin() as conn:
        conn.execute(runs.insert().values(run_id=report.run_id, scope="uploaded", dry_run=dry_run, status="RUNNING",
                                          started_at=now, candidates=0, deleted_rows=0))

    def condition(table_id: str, depth: int = 0) -> tuple[str, dict[str, Any]]:
        spec = specs.get(table_id)
        r = spec.retention
        if r is None or depth > 3:
            raise ValueError(f"{table_id}: 表规格没有 retention: 段, 不能按保留策略删除")
        cutoff = now - timedelta(days=r.days)
        p = f"c{depth}"
        if r.header:
            hspec = specs.get(r.header)
            col = next((c for c in spec.columns if c.reference_target and c.reference_target[0] == r.header), None)
            if col is None:
                raise ValueError(f"{table_id}: retention.header={r.header} 但没有列 references 该表")
            hcond, hparams = condition(r.header, depth + 1)
            return (f"{q.quote(col.name)} IN (SELECT {q.quote(col.reference_target[1])} FROM "
                    f"{q.quote(hspec.target.name)} WHERE {hcond})"), hparams
        if r.anchor == "visit_end":
            link = spec.column(r.visit_link) if r.visit_link else None
            ref = link.reference_target if link is not None else None
            srcs = [s for s in cfg.visit_end_sources
                    if (ref and (s.table, s.visit_column) == ref) or s.visit_column == r.visit_link
                    or r.visit_link in s.links]
            srcs = [s for s in srcs if s.table in specs.specs]
            if not srcs:
                raise ValueError(f"{table_id}: 找不到 visit_link={r.visit_link} 的就诊结束时间来源 (retention.yaml "
                                 "visit_end_sources)")
            parts = []
            for s in srcs:
                vt = specs.get(s.table).target.name
                if vt == spec.target.name:
                    parts.append(f"{q.quote(s.end_column)} < :{p}")
                else:
                    parts.append(f"{q.quote(r.visit_link)} IN (SELECT {q.quote(s.visit_column)} FROM {q.quote(vt)} "
                                 f"WHERE {q.quote(s.end_column)} < :{p})")
            return "(" + " OR ".join(parts) + ")", {p: cutoff}
        return f"{q.quote(r.anchor)} < :{p}", {p: cutoff}

    ordered = sorted(cfg.uploaded.tables, key=lambda t: 0 if specs.get(t).retention and specs.get(t).retention.header
                     else 1)
    plans = []
    with frontend.connect() as conn:
        for t in ordered:
            where, params = condition(t)
            name = q.quote(specs.get(t).target.name)
            n = conn.execute(text(f"SELECT COUNT(*) FROM {name} WHERE {where}"), params).scalar_one()
            total = conn.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
            report.per_table[specs.get(t).target.name] = n
            report.totals[specs.get(t).target.name] = total
            plans.append((t, name, where, params, n))
    over = [n for n in report.per_table if report.totals[n] >= min_rows and report.totals[n]
            and 100.0 * report.per_table[n] / report.totals[n] > max_pct]
    if over:
        report.status, report.message = "ABORTED", f"安全上限触发, 本次删除已中止: {', '.join(over)}"
        log.error(report.message)
    elif not dry_run:
        for _t, name, where, params, _n in plans:
            report.deleted += delete_batched(frontend, name, where, params, batch_rows)
    with frontend.begin() as conn:
        conn.execute(dlog.insert().values(
            run_id=report.run_id, scope="uploaded", reason="policy", table_counts=json.dumps(report.per_table),
            rows_deleted=report.deleted, dry_run=dry_run,
            result="WOULD_DELETE" if dry_run else ("DELETED" if report.status == "OK" else report.status),
            executed_at=now))
    _finish(frontend, runs, report, now)
    return report

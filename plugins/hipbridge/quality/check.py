"""Check whole front-end tables (the periodic report, `hipbridge quality run`).

Works on any database that holds the standard front-end tables — ours, or data the platform
pushed back — by physical table name from the specs. A missing table makes its rules Not
Applicable (and its coverage rule C04 Failed); a missing column makes the rules on it Error.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from hipbridge.io.dialects import frontend_dialect
from hipbridge.redact import mask_url
from hipbridge.settings import hospital_now, ops_schema_name, org_code, org_name
from hipbridge.spec import SpecSet

from .config import QualityConfig, cached_config
from .engine import ERROR, Evaluator, RuleResult, Scope, _result, physical_names
from .rules import DomainCodes, Rule, build_rules, catalog_domains
from .scoring import score
from .store import save_run

_TABLE_REF = re.compile(r"\{@([a-z][a-z0-9_]*)\}")


@dataclass
class RunOutcome:
    run_id: str
    kind: str
    tables: list[str]
    results: list[RuleResult]
    scores: dict[str, Any]
    started: datetime
    finished: datetime
    extra: dict[str, Any] = field(default_factory=dict)
    as_of: datetime | None = None    # the rules' "now" (hospital time): the report's period ends on its day

    def as_json(self) -> dict[str, Any]:
        """The CLI contract: run_id, tables, results (rule_id, table, target, columns, …), scores."""
        keys = ("rule_id", "template", "table", "target", "columns", "dimension", "severity", "status", "violated",
                "denominator", "pct", "threshold", "message", "samples", "error")
        return {"run_id": self.run_id, "kind": self.kind, "tables": self.tables,
                "started_at": self.started.isoformat(sep=" ", timespec="seconds"),
                "finished_at": self.finished.isoformat(sep=" ", timespec="seconds"),
                "results": [{k: getattr(r, k) for k in keys} for r in self.results],
                "scores": self.scores, **self.extra}


def local_now(specs: SpecSet) -> datetime:
    return hospital_now(specs.defaults.timezone)


def clock(specs: SpecSet) -> datetime:
    """Run start / finish stamps: the hospital's local time (naive, like every time hipbridge records),
    never the machine's zone, so a run recorded at 02:40 Shanghai is not shown as 18:40 of the day before."""
    return hospital_now(specs.defaults.timezone, precise=True)


def base_params(specs: SpecSet, cfg: QualityConfig, now: datetime) -> dict[str, Any]:
    limit = now + cfg.future_tolerance
    return {"org_code": org_code(specs.defaults), "org_name": org_name(specs.defaults),
            "now": now.strftime("%Y-%m-%d %H:%M:%S"), "hb_future_limit": limit.strftime("%Y-%m-%d %H:%M:%S"),
            "hb_today": now.date()}


def new_run_id(prefix: str = "q", at: datetime | None = None) -> str:
    """`q-20261205T024000-1a2b3c`; `at` is the run's local start (the hospital's clock)."""
    return f"{prefix}-{at or hospital_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def safe_url(engine: Engine) -> str:
    return mask_url(engine.url)   # no password, no password-like query parameters


def _timeliness(ev: Evaluator, rules: list[Rule], scope: Scope, cfg: QualityConfig) -> dict[str, Any] | None:
    rule = next((r for r in rules if r.template == "T01"), None)
    if rule is None or not scope.exists:
        return None
    buckets = [int(b.total_seconds()) for b in cfg.timeliness_buckets]
    diff = rule.extra["lag_diff"]
    cases = []
    lo = None
    for b in buckets:
        cond = f"{diff} <= {b}" + (f" AND {diff} > {lo}" if lo is not None else "")
        cases.append(f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)")
        lo = b
    cases.append(f"SUM(CASE WHEN {diff} > {lo} THEN 1 ELSE 0 END)")
    sql = f"SELECT {', '.join(cases)} FROM {scope.from_sql} t{ev._where(scope, rule.filter)}"
    try:
        row = ev._exec(sql, ev._params(scope)).one()
    except Exception:  # noqa: BLE001 - the distribution is informative only
        ev._rollback()
        return None
    labels, prev = [], 0
    for b in buckets:
        labels.append(f"{prev // 3600}–{b // 3600}小时" if prev else f"≤{b // 3600}小时")
        prev = b
    labels.append(f">{prev // 3600}小时")
    return {"event": rule.extra["event"], "buckets": dict(zip(labels, [int(x or 0) for x in row]))}


def check_database(engine: Engine, specs: SpecSet, tables: list[str] | None = None, *, kind: str = "report",
                   run_id: str | None = None, cfg: QualityConfig | None = None, domains: DomainCodes | None = None,
                   store: bool = True, now: datetime | None = None) -> RunOutcome:
    """Run every rule of the chosen tables over the whole tables and (optionally) store the results."""
    cfg = cfg or cached_config()
    started = clock(specs)
    now = now or local_now(specs)
    sql = frontend_dialect(engine)
    chosen = tables or sorted(specs.specs)
    for t in chosen:
        specs.get(t)   # KeyError naming the known tables
    insp = inspect(engine)
    existing = set(insp.get_table_names())
    physical = physical_names(sql, specs)
    present = {tid for tid, s in specs.specs.items() if s.target.name in existing}
    if domains is None:
        domains = catalog_domains()
    results: list[RuleResult] = []
    timeliness: dict[str, Any] = {}
    from hipbridge.crypto.frontend import frontend_columns

    encrypted = frontend_columns(specs)
    with engine.connect() as conn:
        ev = Evaluator(conn, cfg, sql, base_params(specs, cfg, now))
        for tid in chosen:
            spec = specs.get(tid)
            rules = [r for r in build_rules(spec, specs, cfg, sql, domains=domains) if not r.gate_only]
            exists = spec.target.name in existing
            cols = {c["name"] for c in insp.get_columns(spec.target.name)} if exists else set()
            scope = Scope(from_sql=sql.table(spec.target.name), pk=list(spec.target.primary_key), physical=physical,
                          exists=exists, columns=cols,
                          sensitive={c.name for c in spec.columns if c.sensitive},
                          encrypted=encrypted.get(tid, frozenset()))
            runnable, early = [], []
            for r in rules:
                refs = set(_TABLE_REF.findall((r.violation or "") + " " + (r.filter or "")))
                absent = sorted(x for x in refs if x not in present)
                if exists and absent:
                    early.append((r, f"被引用的表不存在: {', '.join(absent)}"))
                else:
                    runnable.append(r)
            got = {x.rule_id: x for x in ev.run(runnable, scope)}
            for r, msg in early:
                got[r.rule_id] = _result(r, ERROR, error=msg)
            results.extend(got[r.rule_id] for r in rules)
            tl = _timeliness(ev, rules, scope, cfg)
            if tl:
                timeliness[tid] = tl
    scores = score(results, cfg.scoring)
    scores["timeliness"] = timeliness
    finished = clock(specs)
    outcome = RunOutcome(run_id or new_run_id(at=started), kind, chosen, results, scores, started, finished)
    outcome.extra["database"] = safe_url(engine)
    outcome.as_of = now
    if store:
        try:
            save_run(engine, ops_schema_name(specs.defaults, engine), outcome.run_id, kind, started, finished, results,
                     scores, chosen, database=safe_url(engine))
            outcome.extra["stored"] = True
        except Exception as exc:  # noqa: BLE001 - a read-only database still gets its results (JSON, report)
            outcome.extra["stored"] = False
            outcome.extra["store_error"] = f"{type(exc).__name__}: {exc}"[:500]
    return outcome


def period_volume(engine: Engine, specs: SpecSet, tables: list[str], days: int = 30,
                  now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Rows per day of 数据采集时间 for the trend of uploads and gap days (断档日)."""
    sql = frontend_dialect(engine)
    col = specs.defaults.audit("extracted_at").name
    now = now or local_now(specs)
    since = (now - timedelta(days=days)).strftime("%Y-%m-%d 00:00:00")
    existing = set(inspect(engine).get_table_names())
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for tid in tables:
            spec = specs.get(tid)
            if spec.target.name not in existing:
                continue
            c = f"t.{sql.q(col)}"
            d = sql.day(c)
            q = (f"SELECT {d} AS d, COUNT(*) FROM {sql.table(spec.target.name)} t WHERE {c} >= :since "
                 f"GROUP BY {d} ORDER BY 1")
            try:
                rows = conn.execute(text(q), {"since": since}).all()
            except Exception:  # noqa: BLE001
                conn.rollback()
                continue
            out[tid] = {str(r[0])[:10]: int(r[1]) for r in rows}
    return out

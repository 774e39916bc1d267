"""Quality results in the operations schema: one `quality_run` row per run, one `quality_result` per rule.

The report's trend charts read past runs from here; nothing depends on Airflow's database.
Sample keys are stored as JSON and hold primary-key columns only (no names, no ID numbers).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Float, Index, MetaData, String, Table, Text, select
from sqlalchemy.engine import Engine

from hipbridge.io.ops import ensure_schema, ops_for, register_ops_tables

from .engine import RuleResult

RUN, RESULT = "quality_run", "quality_result"


@register_ops_tables
def _quality_tables(md: MetaData) -> None:
    Table(
        RUN, md,
        Column("run_id", String(64), primary_key=True),
        Column("kind", String(16), nullable=False, comment="gate | report | check"),
        Column("started_at", DateTime, nullable=False),
        Column("finished_at", DateTime),
        Column("database", String(255), comment="checked database (URL without password)"),
        Column("tables", Text, comment="JSON list of table ids"),
        Column("overall", Float),
        Column("grade", String(16)),
        Column("blocked", String(1)),
        Column("scores", Text, comment="JSON: dimensions, tables, timeliness"),
        Column("message", Text),
        Index("ix_quality_run_kind", "kind", "started_at"),
        comment="质控运行: one row per quality run (gate = one batch)",
    )
    Table(
        RESULT, md,
        Column("run_id", String(64), primary_key=True),
        Column("rule_id", String(160), primary_key=True),
        Column("template", String(32), nullable=False),
        Column("table_id", String(64), nullable=False),
        Column("target", String(64), nullable=False),
        Column("columns", Text),
        Column("dimension", String(16), nullable=False),
        Column("severity", String(16), nullable=False),
        Column("status", String(20), nullable=False),
        Column("violated", BigInteger),
        Column("denominator", BigInteger),
        Column("pct", Float),
        Column("threshold", Float),
        Column("samples", Text, comment="JSON: primary keys of up to N violating rows"),
        Column("message", Text),
        Column("advice", Text),
        Column("error", Text),
        Column("sql_text", Text),
        Index("ix_quality_result_table", "table_id", "run_id"),
        comment="质控结果: one row per rule and run (OHDSI DQD style)",
    )


_READY: set[tuple[int, str]] = set()


def ensure_tables(engine: Engine, schema: str) -> tuple[Table, Table]:
    ops = ops_for(schema)
    run, res = ops.table(RUN), ops.table(RESULT)
    key = (id(engine), schema)
    if key not in _READY:
        ensure_schema(engine, schema)
        run.create(engine, checkfirst=True)
        res.create(engine, checkfirst=True)
        _READY.add(key)
    return run, res


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str)


def save_run(engine: Engine, schema: str, run_id: str, kind: str, started: datetime, finished: datetime,
             results: list[RuleResult], scores: dict | None, tables: list[str], database: str | None = None,
             blocked: bool | None = None, message: str | None = None) -> None:
    run, res = ensure_tables(engine, schema)
    rows = [{
        "run_id": run_id, "rule_id": r.rule_id, "template": r.template, "table_id": r.table, "target": r.target,
        "columns": _json(r.columns), "dimension": r.dimension, "severity": r.severity, "status": r.status,
        "violated": r.violated, "denominator": r.denominator, "pct": r.pct, "threshold": r.threshold,
        "samples": _json(r.samples), "message": r.message, "advice": r.advice, "error": r.error,
        "sql_text": r.sql,
    } for r in results]
    with engine.begin() as conn:   # a rerun of the same batch replaces its results
        # Only DELETE what exists: on InnoDB a DELETE that matches nothing takes a gap lock, and two
        # gates saving at once (two Celery workers) then deadlock on each other's INSERT into that gap
        # (MariaDB error 1213, seen in tests/test_distributed.py). A plain SELECT takes no lock.
        if conn.execute(select(run.c.run_id).where(run.c.run_id == run_id)).first() is not None:
            conn.execute(res.delete().where(res.c.run_id == run_id))
            conn.execute(run.delete().where(run.c.run_id == run_id))
        conn.execute(run.insert().values(
            run_id=run_id, kind=kind, started_at=started, finished_at=finished, database=database,
            tables=_json(tables), overall=(scores or {}).get("overall"), grade=(scores or {}).get("grade"),
            blocked=None if blocked is None else ("1" if blocked else "0"), scores=_json(scores or {}),
            message=message))
        if rows:
            conn.execute(res.insert(), rows)


def past_runs(engine: Engine, schema: str, kind: str = "report", limit: int = 30) -> list[dict[str, Any]]:
    """Most recent runs of a kind, oldest first, with their scores decoded."""
    run, _ = ensure_tables(engine, schema)
    with engine.connect() as conn:
        rows = conn.execute(select(run).where(run.c.kind == kind).order_by(run.c.started_at.desc())
                            .limit(limit)).mappings().all()
    out = []
    for r in reversed(rows):
        d = dict(r)
        d["scores"] = json.loads(d["scores"] or "{}")
        out.append(d)
    return out


def load_results(engine: Engine, schema: str, run_id: str) -> list[dict[str, Any]]:
    _, res = ensure_tables(engine, schema)
    with engine.connect() as conn:
        rows = conn.execute(select(res).where(res.c.run_id == run_id)).mappings().all()
    out = []
    for r in rows:
        d = dict(r)
        d["columns"] = json.loads(d["columns"] or "[]")
        d["samples"] = json.loads(d["samples"] or "[]")
        out.append(d)
    return out

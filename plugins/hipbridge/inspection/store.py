"""One `inspection_report` row per ISO week in the ops schema: the summary figures and the configuration
hashes, so next week's report can say what changed (drift) and draw the weekly trend."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, select
from sqlalchemy.engine import Engine

from hipbridge.io.ops import ensure_schema, ops_for, register_ops_tables

TABLE = "inspection_report"


@register_ops_tables
def _inspection_tables(md: MetaData) -> None:
    Table(
        TABLE, md,
        Column("week", String(8), primary_key=True, comment="ISO week, e.g. 2026-W49"),
        Column("generated_at", DateTime, nullable=False, comment="hospital local time"),
        Column("config_hash", String(64), nullable=False, comment="SHA-256 over every watched file's hash"),
        Column("config_files", Text, nullable=False, comment="JSON {path: sha256}"),
        Column("summary", Text, nullable=False, comment="JSON: the week's headline figures"),
        Column("html_path", Text),
        Column("xlsx_path", Text),
        comment="巡检报告: one row per ISO week (配置漂移 and the weekly trend read it)",
    )


def _table(engine: Engine, schema: str) -> Table:
    t = ops_for(schema).table(TABLE)
    ensure_schema(engine, schema)
    t.create(engine, checkfirst=True)
    return t


def previous_report(engine: Engine, schema: str, week: str) -> dict[str, Any] | None:
    """The latest stored report of an earlier week (weeks sort as text: 2026-W09 < 2026-W10)."""
    t = _table(engine, schema)
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.week < week).order_by(t.c.week.desc()).limit(1)).mappings().first()
    return _decode(row) if row else None


def past_reports(engine: Engine, schema: str, week: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` stored reports before `week`, oldest first."""
    t = _table(engine, schema)
    with engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.week < week).order_by(t.c.week.desc()).limit(limit)).mappings().all()
    return [_decode(r) for r in reversed(rows)]


def save_report(engine: Engine, schema: str, week: str, generated_at: datetime, config_hash: str,
                files: dict[str, str], summary: dict[str, Any], html_path: str, xlsx_path: str) -> None:
    """Replace the week's row (a rerun of the same week keeps one row, the latest)."""
    t = _table(engine, schema)
    with engine.begin() as conn:
        conn.execute(t.delete().where(t.c.week == week))
        conn.execute(t.insert().values(week=week, generated_at=generated_at, config_hash=config_hash,
                                       config_files=json.dumps(files, sort_keys=True),
                                       summary=json.dumps(summary, ensure_ascii=False, default=str),
                                       html_path=html_path, xlsx_path=xlsx_path))


def _decode(row) -> dict[str, Any]:
    d = dict(row)
    d["config_files"] = json.loads(d["config_files"] or "{}")
    d["summary"] = json.loads(d["summary"] or "{}")
    return d

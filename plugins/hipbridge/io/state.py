"""Watermarks, the batch log and quarantine rows in the operations schema.

The watermark is explicit state, not Airflow's data interval: a manual run has no logical date,
and a rerun must not move it backwards. It only changes inside the publish transaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from hipbridge.statuses import BatchStatus

from .ops import Ops


@dataclass
class Batch:
    batch_id: str
    table_id: str
    mode: str
    window_start: datetime | None
    window_end: datetime | None
    started_at: datetime
    advance_watermark: bool
    run_id: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("window_start", "window_end", "started_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Batch:
        d = dict(d)
        for k in ("window_start", "window_end", "started_at"):
            d[k] = datetime.fromisoformat(d[k]) if d.get(k) else None
        return cls(**d)


def get_watermark(engine: Engine | Connection, ops: Ops, table_id: str) -> datetime | None:
    t = ops.table("watermark")
    stmt = select(t.c.watermark).where(t.c.table_id == table_id)
    if isinstance(engine, Connection):
        return engine.execute(stmt).scalar()
    with engine.connect() as conn:
        return conn.execute(stmt).scalar()


def get_covered(engine: Engine | Connection, ops: Ops, table_id: str) -> datetime | None:
    """End of the windows published without a gap (NULL for a schema of an earlier version: use the watermark)."""
    t = ops.table("watermark")
    stmt = select(t.c.covered_to, t.c.watermark).where(t.c.table_id == table_id)
    if isinstance(engine, Connection):
        row = engine.execute(stmt).first()
    else:
        with engine.connect() as conn:
            row = conn.execute(stmt).first()
    return None if row is None else (row[0] or row[1])


def set_watermark(conn: Connection, ops: Ops, table_id: str, value: datetime, batch_id: str,
                  now: datetime, covered_to: datetime | None = None) -> None:
    t = ops.table("watermark")
    done = conn.execute(update(t).where(t.c.table_id == table_id)
                        .values(watermark=value, batch_id=batch_id, updated_at=now, covered_to=covered_to))
    if done.rowcount == 0:
        conn.execute(t.insert().values(table_id=table_id, watermark=value, batch_id=batch_id, updated_at=now,
                                       covered_to=covered_to))


def open_batch(engine: Engine, ops: Ops, batch: Batch) -> None:
    t = ops.table("batch_log")
    with engine.begin() as conn:
        conn.execute(t.insert().values(
            batch_id=batch.batch_id, table_id=batch.table_id, mode=batch.mode,
            window_start=batch.window_start, window_end=batch.window_end, status=BatchStatus.PLANNED,
            started_at=batch.started_at, run_id=batch.run_id,
            extracted=0, published=0, inserted=0, updated=0, voided=0, unchanged=0, quarantined=0,
        ))


def update_batch(conn: Connection | Engine, ops: Ops, batch_id: str, **values) -> None:
    t = ops.table("batch_log")
    stmt = update(t).where(t.c.batch_id == batch_id).values(**values)
    if isinstance(conn, Connection):
        conn.execute(stmt)
    else:
        with conn.begin() as c:
            c.execute(stmt)


def batch_row(engine: Engine, ops: Ops, batch_id: str) -> dict | None:
    t = ops.table("batch_log")
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.batch_id == batch_id)).mappings().first()
    return dict(row) if row else None


def last_batch(engine: Engine, ops: Ops, table_id: str) -> dict | None:
    t = ops.table("batch_log")
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.table_id == table_id)
                           .order_by(t.c.started_at.desc(), t.c.batch_id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def add_quarantine(conn: Connection, ops: Ops, batch_id: str, table_id: str, rows: list[dict],
                   now: datetime) -> None:
    if rows:
        conn.execute(ops.table("quarantine").insert(),
                     [{**r, "batch_id": batch_id, "table_id": table_id, "created_at": now} for r in rows])

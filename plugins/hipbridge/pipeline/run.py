"""The table pipeline without Airflow: plan → transfer → gate → publish.

Each step is a function of (context, batch) so the Airflow DAG can run them as separate tasks
(retried independently) and the CLI/tests can run them in one process. Data never passes
between steps in memory: the batch is staged in the operations schema.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import MetaData
from sqlalchemy.engine import Engine

from hipbridge.io import engines, state
from hipbridge.io.extract import read_chunks
from hipbridge.io.frontend import create_frontend, ledger_table, staging_table
from hipbridge.io.load import PublishCounts, publish_batch, stage_rows
from hipbridge.io.ops import Ops, ensure_ops
from hipbridge.settings import ops_schema_name, org_code, org_name
from hipbridge.spec import SpecSet, TableSpec, load_specs

from .conform import conform_chunk

EPOCH = datetime(1900, 1, 1)
MODES = ("incremental", "window", "full")


class PipelineError(RuntimeError):
    pass


@dataclass
class BatchResult:
    table: str
    batch_id: str
    mode: str
    window_start: datetime | None
    window_end: datetime | None
    status: str
    extracted: int = 0
    published: int = 0
    quarantined: int = 0
    inserted: int = 0
    updated: int = 0
    voided: int = 0
    unchanged: int = 0
    mapping_counts: dict = field(default_factory=dict)
    message: str | None = None

    def summary(self) -> str:
        return (f"{self.table}: {self.status} extracted={self.extracted} published={self.published} "
                f"(new={self.inserted} changed={self.updated} voided={self.voided} unchanged={self.unchanged}) "
                f"quarantined={self.quarantined}")


@dataclass
class Context:
    """What every step needs: the specs, the front-end engine and the operations schema."""

    specs: SpecSet
    frontend_url: str
    mappings_dir: Path | None = None

    @classmethod
    def create(cls, specs_dir: str | Path | None = None, frontend_url: str | None = None,
               mappings_dir: Path | None = None) -> "Context":
        specs = load_specs(specs_dir).require_valid()
        return cls(specs, frontend_url or engines.default_frontend_url(), mappings_dir)

    @property
    def defaults(self):
        return self.specs.defaults

    @cached_property
    def ops_schema(self) -> str:
        return ops_schema_name(self.defaults)

    @cached_property
    def engine(self) -> Engine:
        return engines.engine_for(self.frontend_url, self.ops_schema)

    @cached_property
    def ops(self) -> Ops:
        return ensure_ops(self.engine, self.ops_schema)

    @cached_property
    def catalog(self):
        from hipbridge.mapping import load_catalog  # noqa: PLC0415 - heavy, only when transferring

        return load_catalog(self.mappings_dir)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.defaults.timezone)

    def now(self) -> datetime:
        """Hospital-local wall time, naive like the source systems' timestamps."""
        return datetime.now(self.tz).replace(tzinfo=None, microsecond=0)

    def ensure_frontend(self, tables: list[str] | None = None) -> None:
        _ = self.ops
        create_frontend(self.engine, self.specs, tables)

    def tables_for(self, spec: TableSpec):
        dialect = self.engine.dialect.name
        md = MetaData()
        return (staging_table(spec, self.defaults, self.ops_schema, md, dialect),
                ledger_table(spec, self.defaults, self.ops_schema, md))


# ---------------------------------------------------------------- plan


def hospital_day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min)
    return start, start + timedelta(days=1)


def plan(ctx: Context, table: str, mode: str = "incremental", window_start: date | datetime | None = None,
         window_end: date | datetime | None = None, high_watermark: datetime | None = None,
         run_id: str | None = None) -> state.Batch:
    """Fix the batch's window now, so everything later in the run reads the same rows.

    incremental: [watermark − lookback, high_watermark) — high_watermark defaults to now, and a
    scheduled daily run passes the end of the hospital's calendar day it covers.
    window: a rerun of [window_start, window_end] (dates are whole hospital days, end inclusive).
    full: everything up to now.
    """
    if mode not in MODES:
        raise PipelineError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    spec = ctx.specs.get(table)
    ctx.ensure_frontend([table])
    now = ctx.now()
    current = state.get_watermark(ctx.engine, ctx.ops, table)
    wm = spec.source.watermark
    advance = True
    if wm is None:
        start, end = EPOCH, now  # no change column: a full read each run, unchanged rows are skipped
    elif mode == "full":
        start, end = EPOCH, high_watermark or now
    elif mode == "window":
        if window_start is None or window_end is None:
            raise PipelineError("a window rerun needs both window_start and window_end")
        start = window_start if isinstance(window_start, datetime) else hospital_day_bounds(window_start)[0]
        end = window_end if isinstance(window_end, datetime) else hospital_day_bounds(window_end)[1]
        if end <= start:
            raise PipelineError(f"empty window: {start} … {end}")
        # A rerun never moves the watermark back, and only moves it on if it leaves no gap.
        advance = current is None or start <= current
    else:
        end = high_watermark or now
        start = (current - wm.lookback) if current else EPOCH
        if end <= start:
            end = start  # nothing new yet: an empty, successful batch
    batch = state.Batch(
        batch_id=f"{table}-{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}", table_id=table, mode=mode,
        window_start=start, window_end=end, started_at=now, advance_watermark=advance, run_id=run_id,
    )
    state.open_batch(ctx.engine, ctx.ops, batch)
    return batch


# ---------------------------------------------------------------- transfer


def transfer(ctx: Context, batch: state.Batch) -> dict:
    """Extract in chunks, conform and map, stage; quarantine what cannot be loaded."""
    spec = ctx.specs.get(batch.table_id)
    staging, _ = ctx.tables_for(spec)
    source = engines.source_engine(spec.source.connection)
    sql = ctx.specs.query_text(spec)
    extracted_at = ctx.now()
    code, name = org_code(ctx.defaults), org_name(ctx.defaults)
    totals = {"extracted": 0, "staged": 0, "quarantined": 0}
    mapping_totals: dict[str, dict[str, int]] = {}
    with ctx.engine.begin() as conn:  # a retried task starts its batch again from nothing
        conn.execute(staging.delete().where(staging.c.hb_batch == batch.batch_id))
        q = ctx.ops.table("quarantine")
        conn.execute(q.delete().where(q.c.batch_id == batch.batch_id))
    wm_col = spec.source.watermark.column if spec.source.watermark else None
    catalog = ctx.catalog if any(c.codes for c in spec.columns) else None
    rownum = 0
    for chunk in read_chunks(source, sql, wm_col, batch.window_start, batch.window_end, spec.source.chunk_rows):
        conformed = conform_chunk(chunk, spec, ctx.defaults, catalog=catalog, extracted_at=extracted_at,
                                  org_code=code, org_name=name)
        frame = conformed.frame
        frame.insert(0, "hb_batch", batch.batch_id)
        frame.insert(1, "hb_rownum", range(rownum, rownum + len(frame)))
        rownum += len(chunk)
        with ctx.engine.begin() as conn:
            stage_rows(conn, staging, frame)
            state.add_quarantine(conn, ctx.ops, batch.batch_id, batch.table_id, conformed.quarantine,
                                 extracted_at)
        totals["extracted"] += len(chunk)
        totals["staged"] += len(frame)
        totals["quarantined"] += len(conformed.quarantine)
        for col, counts in conformed.mapping_counts.items():
            agg = mapping_totals.setdefault(col, {})
            for k, v in counts.items():
                agg[k] = agg.get(k, 0) + int(v)
    if totals["extracted"] != totals["staged"] + totals["quarantined"]:
        raise PipelineError(f"{batch.table_id}: rows lost in transfer: {totals}")
    state.update_batch(ctx.engine, ctx.ops, batch.batch_id, status="staged", extracted=totals["extracted"],
                       quarantined=totals["quarantined"])
    return {**totals, "mapping": mapping_totals}


# ---------------------------------------------------------------- gate and publish


def gate(ctx: Context, batch: state.Batch) -> dict:
    """Run the quality gate on the staged batch; a fatal failure blocks publishing."""
    from hipbridge.pipeline.gate import check_batch  # noqa: PLC0415

    spec = ctx.specs.get(batch.table_id)
    staging, _ = ctx.tables_for(spec)
    outcome = check_batch(ctx, spec, batch, staging)
    if outcome["blocked"]:
        state.update_batch(ctx.engine, ctx.ops, batch.batch_id, status="blocked", finished_at=ctx.now(),
                           message=outcome["message"])
    return outcome


def publish(ctx: Context, batch: state.Batch) -> PublishCounts:
    """Upsert changed rows, record digests, advance the watermark, close the batch: one transaction."""
    spec = ctx.specs.get(batch.table_id)
    staging, ledger = ctx.tables_for(spec)
    row = state.batch_row(ctx.engine, ctx.ops, batch.batch_id)
    if row is None:
        raise PipelineError(f"unknown batch {batch.batch_id}")
    if row["status"] == "published":
        return PublishCounts()  # a retried publish task after a successful commit
    if row["status"] != "staged":
        raise PipelineError(f"batch {batch.batch_id} is {row['status']}, not staged: it cannot be published")
    with ctx.engine.begin() as conn:
        counts = publish_batch(conn, spec, ctx.defaults, staging, ledger, batch.batch_id)
        if batch.advance_watermark and batch.window_end is not None:
            current = state.get_watermark(conn, ctx.ops, batch.table_id)
            if current is None or batch.window_end > current:
                state.set_watermark(conn, ctx.ops, batch.table_id, batch.window_end, batch.batch_id, ctx.now())
        state.update_batch(conn, ctx.ops, batch.batch_id, status="published", finished_at=ctx.now(),
                           published=counts.staged, inserted=counts.inserted, updated=counts.updated,
                           voided=counts.voided, unchanged=counts.unchanged + counts.superseded)
    return counts


def fail(ctx: Context, batch: state.Batch, exc: BaseException) -> None:
    state.update_batch(ctx.engine, ctx.ops, batch.batch_id, status="failed", finished_at=ctx.now(),
                       message=f"{type(exc).__name__}: {exc}"[:4000])


def sync_table(table: str, mode: str = "incremental", window_start=None, window_end=None, *,
               ctx: Context | None = None, high_watermark: datetime | None = None,
               run_id: str | None = None) -> BatchResult:
    """Run one table's whole pipeline in this process (CLI, tests, the embedded demo)."""
    ctx = ctx or Context.create()
    batch = plan(ctx, table, mode, window_start, window_end, high_watermark, run_id)
    try:
        moved = transfer(ctx, batch)
        outcome = gate(ctx, batch)
        if outcome["blocked"]:
            return BatchResult(table, batch.batch_id, mode, batch.window_start, batch.window_end, "blocked",
                               extracted=moved["extracted"], quarantined=moved["quarantined"],
                               mapping_counts=moved["mapping"], message=outcome["message"])
        counts = publish(ctx, batch)
    except Exception as exc:
        fail(ctx, batch, exc)
        raise
    return BatchResult(table, batch.batch_id, mode, batch.window_start, batch.window_end, "published",
                       extracted=moved["extracted"], published=counts.staged, quarantined=moved["quarantined"],
                       inserted=counts.inserted, updated=counts.updated, voided=counts.voided,
                       unchanged=counts.unchanged + counts.superseded, mapping_counts=moved["mapping"])

"""Transfer: read the source in chunks, conform and map, stage the batch; quarantine what cannot be loaded.

The batch is staged in its own table in the operations schema (`stg_<table>__<hash>`, dropped
after publishing). The watermark is never touched here: only publish moves it.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from pandas.api.types import infer_dtype, is_datetime64_any_dtype
from sqlalchemy import and_, inspect, select, text
from sqlalchemy.engine import Engine

from hipbridge.crypto.atrest import quarantine_protector
from hipbridge.crypto.frontend import FrontendEncryptor
from hipbridge.io import engines, state
from hipbridge.io.extract import filters_own_window, read_chunks
from hipbridge.io.load import StagingWriter
from hipbridge.io.sources import source_dialect
from hipbridge.io.spool import clear_stale_spool
from hipbridge.io.staging import BATCH_TABLE_SEP, batch_table_name, drop_table, staging_name
from hipbridge.settings import org_code, org_name
from hipbridge.spec import TableSpec
from hipbridge.statuses import BatchStatus

from .batch_lock import try_lock
from .bookkeeping import KeyTracker, release_free_memory
from .conform import EMPTY_MARKERS, conform_chunk
from .context import Context
from .failures import DeterministicError, PipelineError, source_query_error
from .probe import probe_source
from .results import TransferResult
from .retry import (
    FrontendUnavailable,
    SourceFailure,
    SourceUnavailable,
    is_transient,
    retry_policy,
    safe_url,
    source_chunks,
    with_retries,
)

log = logging.getLogger(__name__)


ABANDONED_AFTER = timedelta(hours=24)


def housekeeping(ctx: Context, spec: TableSpec, batch: state.Batch) -> None:
    """Drop the staging tables of this table's finished batches and of batches a killed process abandoned.

    A batch still planned or staged (another backfill window, a gate waiting) keeps its table;
    one with no progress for ABANDONED_AFTER is marked failed first.
    """
    clear_stale_spool()

    prefix_name, schema = staging_name(spec), ctx.ops_schema
    log_t = ctx.ops.table("batch_log")
    stale = ctx.now() - ABANDONED_AFTER
    with ctx.engine.begin() as conn:
        running = conn.execute(select(log_t.c.batch_id, log_t.c.started_at, log_t.c.status).where(and_(
            log_t.c.table_id == batch.table_id, log_t.c.status.in_((BatchStatus.PLANNED, BatchStatus.STAGED))))).all()
        for b, started, _status in running:
            if b != batch.batch_id and started < stale:
                state.update_batch(conn, ctx.ops, b, status=BatchStatus.FAILED, finished_at=ctx.now(),
                                   message=f"abandoned: no progress since {started:%Y-%m-%d %H:%M} (process killed?)")
    keep = {batch_table_name(prefix_name, b) for b, started, _s in running if b == batch.batch_id or started >= stale}
    prefix = prefix_name + BATCH_TABLE_SEP
    names = inspect(ctx.engine).get_table_names(schema=schema)
    for name in names:
        if name.startswith(prefix) and name not in keep:
            drop_table(ctx.engine, schema, name)
    for b, _started, status in running:  # killed mid-transfer: its lock died with it (batch_lock.py)
        name = batch_table_name(prefix_name, b)
        if b != batch.batch_id and status == BatchStatus.PLANNED and name in names and name in keep:
            with try_lock(ctx.engine, b) as nobody:
                if nobody:
                    drop_table(ctx.engine, schema, name)


def transfer(ctx: Context, batch: state.Batch) -> TransferResult:
    """Extract in chunks, conform and map, stage; quarantine what cannot be loaded.

    A source or front-end that goes away is retried with backoff (the batch starts again from
    nothing); after the last attempt the error names the connection. The watermark is never
    touched here: only publish moves it.
    """
    spec = ctx.specs.get(batch.table_id)
    source = engines.source_engine(spec.source.connection)
    attempts, _ = retry_policy()
    try:
        return with_retries(f"transfer {batch.table_id}", _transfer_once, ctx, batch, spec, source)
    except SourceFailure as failure:
        exc = failure.exc
        if is_transient(exc):
            raise SourceUnavailable(
                f"{batch.table_id}: source connection {spec.source.connection!r} ({safe_url(source)}) "
                f"unavailable after {attempts} attempt(s): {type(exc).__name__}: {str(exc).splitlines()[0][:500]}"
            ) from exc
        if isinstance(exc, DeterministicError):
            raise exc from None
        raise source_query_error(ctx.specs, spec, exc) from exc
    except Exception as exc:
        if is_transient(exc):
            raise FrontendUnavailable(
                f"{batch.table_id}: front-end database ({safe_url(ctx.engine)}) unavailable after "
                f"{attempts} attempt(s): {type(exc).__name__}: {str(exc).splitlines()[0][:500]}") from exc
        raise


def _batch_constants(ctx: Context, spec: TableSpec, extracted_at: datetime, code: str, name: str) -> dict:
    """Values every row of the batch shares, as conform writes them (see batch_staging_table)."""
    d = ctx.defaults
    out = {d.audit("org_code").name: code, d.audit("org_name").name: name,
           d.audit("confidentiality").name: d.confidentiality, d.audit("extracted_at").name: extracted_at}
    encrypted = ctx.encrypted.get(spec.table, frozenset())   # ciphertext differs per row: never a constant
    for col in spec.columns:  # constant text values; anything typed is left to the loader
        v = col.value
        if (isinstance(v, str) and col.codes is None and col.ctype.kind == "varchar" and v.strip() == v
                and col.name not in encrypted
                and v not in EMPTY_MARKERS and len(v) <= (col.ctype.length or 0)):
            out[col.name] = v
    return {k: v for k, v in out.items() if v is not None}


def _transfer_once(ctx: Context, batch: state.Batch, spec: TableSpec, source: Engine) -> TransferResult:
    with try_lock(ctx.engine, batch.batch_id) as mine:  # held while the staging table fills
        if not mine:
            raise PipelineError(f"batch {batch.batch_id} is being transferred by another process")
        return _transfer_locked(ctx, batch, spec, source)


def _transfer_locked(ctx: Context, batch: state.Batch, spec: TableSpec, source: Engine) -> TransferResult:
    sql = ctx.specs.query_text(spec)
    try:  # before anything is written: every column the spec names must come back from the query
        probe_source(ctx.specs, spec, source, sql)
    except DeterministicError:
        raise
    except Exception as exc:
        raise SourceFailure(exc) from exc
    extracted_at = ctx.now().replace(microsecond=0)
    code, name = org_code(ctx.defaults), org_name(ctx.defaults)
    staging, _ = ctx.tables_for(spec, batch, constants=_batch_constants(ctx, spec, extracted_at, code, name))
    totals = {"extracted": 0, "staged": 0, "quarantined": 0}
    mapping_totals: dict[str, dict[str, int]] = {}
    housekeeping(ctx, spec, batch)
    # a retried task starts its batch again from nothing
    drop_table(ctx.engine, staging.schema, staging.name)
    staging.create(ctx.engine)
    with ctx.engine.begin() as conn:
        q = ctx.ops.table("quarantine")
        conn.execute(q.delete().where(q.c.batch_id == batch.batch_id))
    read = _read_plan(ctx, spec, batch, sql, source)
    catalog = ctx.catalog if any(c.codes for c in spec.columns) else None

    protect = quarantine_protector(ctx.engine, ctx.ops_schema, spec)
    enc_columns = ctx.encrypted.get(spec.table)
    encrypt = FrontendEncryptor(ctx.engine, ctx.ops_schema, enc_columns) if enc_columns else None

    def write_quarantine(conn, rows):
        state.add_quarantine(conn, ctx.ops, batch.batch_id, batch.table_id, protect(rows), extracted_at)

    writer = StagingWriter(ctx.engine, staging, write_quarantine)
    keys = KeyTracker(list(spec.target.primary_key))
    rownum = 0
    max_changed: datetime | None = None
    chunks = read_chunks(source, read.sql, read.column, batch.window_start, batch.window_end, spec.source.chunk_rows)
    if read.null_rows_sql:  # a full run also reads the rows whose change time is NULL
        chunks = itertools.chain(chunks, read_chunks(source, read.null_rows_sql, None, batch.window_start,
                                                     batch.window_end, spec.source.chunk_rows))
    try:
        for chunk in source_chunks(chunks):
            if rownum == 0 and read.column:
                _check_watermark_type(ctx, spec, chunk, read.column, source)
            conformed = conform_chunk(chunk, spec, ctx.defaults, catalog=catalog, extracted_at=extracted_at,
                                      org_code=code, org_name=name, changed_column=read.column,
                                      encrypt=encrypt)
            if conformed.max_changed_at is not None:
                max_changed = max(max_changed or conformed.max_changed_at, conformed.max_changed_at)
            frame = conformed.frame
            frame.insert(0, "hb_batch", batch.batch_id)
            frame.insert(1, "hb_rownum", np.arange(rownum, rownum + len(frame), dtype=np.int64))
            rownum += len(chunk)
            keys.add(frame)
            writer.submit(frame, conformed.quarantine)
            totals["extracted"] += len(chunk)
            totals["staged"] += len(frame)
            totals["quarantined"] += len(conformed.quarantine)
            for col, counts in conformed.mapping_counts.items():
                agg = mapping_totals.setdefault(col, {})
                for k, v in counts.items():
                    agg[k] = agg.get(k, 0) + int(v)
            del chunk, conformed, frame
            release_free_memory()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    if totals["extracted"] != totals["staged"] + totals["quarantined"]:
        raise PipelineError(f"{batch.table_id}: rows lost in transfer: {totals}")
    totals["duplicates"] = keys.duplicates()
    totals["skipped"] = _count_null_rows(source, read.null_count_sql) if read.null_count_sql else 0
    if totals["skipped"]:
        log.warning("%s: %d source row(s) have no change time (%s is NULL): not read by this %s run; a full "
                    "run reads them, or name a fallback column (source.watermark.fallback)", batch.table_id,
                    totals["skipped"], spec.source.watermark.column, batch.mode)
    state.update_batch(ctx.engine, ctx.ops, batch.batch_id, status=BatchStatus.STAGED, extracted=totals["extracted"],
                       quarantined=totals["quarantined"], duplicates=totals["duplicates"],
                       skipped=totals["skipped"], max_changed_at=max_changed)
    return TransferResult(**totals, mapping=mapping_totals)


CHANGED_AT_ALIAS = "hb_changed_at"


@dataclass
class _ReadPlan:
    sql: str                          # the query to window
    column: str | None                # the column windows and slices are cut on (None: no watermark)
    null_rows_sql: str | None = None  # full runs: the rows whose change time is NULL
    null_count_sql: str | None = None  # other runs: how many rows that skips


def _read_plan(ctx: Context, spec: TableSpec, batch: state.Batch, sql: str, source: Engine) -> _ReadPlan:
    """How to read the window, and what to do about rows whose change time is NULL.

    A window `[start, end)` on the change time never holds a row whose change time is NULL, so such
    rows would be invisible forever. With `watermark.fallback` the change time is
    COALESCE(column, fallback) (an index on the column alone then no longer narrows the read);
    rows still without one are read by full runs, and every other run counts them as skipped.
    A query that places :window_start / :window_end itself decides this on its own.
    """
    wm = spec.source.watermark
    if wm is None:
        return _ReadPlan(sql, None)
    if filters_own_window(sql):
        return _ReadPlan(sql, wm.column)
    q = source.dialect.identifier_preparer.quote
    body = sql.strip().rstrip(";")
    column = wm.column
    if wm.fallback:
        body = (f"SELECT src.*, COALESCE(src.{q(wm.column)}, src.{q(wm.fallback)}) AS {CHANGED_AT_ALIAS} "
                f"FROM ({body}) src")
        column = CHANGED_AT_ALIAS
    nulls = f"SELECT * FROM ({body}) src WHERE src.{q(column)} IS NULL"
    if batch.mode == "full":
        return _ReadPlan(body, column, null_rows_sql=nulls)
    return _ReadPlan(body, column, null_count_sql=f"SELECT COUNT(*) FROM ({nulls}) hb_nulls")


def _count_null_rows(source: Engine, sql: str) -> int:
    try:
        with source.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    except Exception as exc:
        raise SourceFailure(exc) from exc


def _check_watermark_type(ctx: Context, spec: TableSpec, chunk, column: str, source: Engine) -> None:
    """A text change-time column compares as text ('2026-9-1' > '2026-10-01'): refuse it, naming the spec key.

    SQLite has no date type (its timestamps are text), so there the spec check is all there is.
    """
    if not source_dialect(source).has_date_type or chunk.empty:
        return
    lookup = {str(c).lower(): c for c in chunk.columns}
    values = chunk[lookup[column.lower()]] if column.lower() in lookup else None
    if values is None or is_datetime64_any_dtype(values.dtype):
        return
    kind = infer_dtype(values, skipna=True)
    if kind in ("string", "bytes", "mixed", "integer", "floating"):
        path = ctx.specs.paths.get(spec.table, f"{spec.table}.yaml")
        raise PipelineError(f"{path}: source.watermark.column: a watermark must be a date/time column; the "
                            f"source returns {column} as {kind} (got {values.dropna().iloc[0]!r} …)"
                            if values.notna().any() else
                            f"{path}: source.watermark.column: the source returns {column} as {kind}, "
                            f"not a date/time column")

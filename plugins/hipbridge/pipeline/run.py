"""The table pipeline without Airflow: plan → transfer → gate → publish.

Each step is a function of (context, batch) so the Airflow DAG can run them as separate tasks
(retried independently) and the CLI/tests can run them in one process. Data never passes
between steps in memory: the batch is staged in its own table in the operations schema
(`stg_<table>__<hash>`, dropped after publishing). Sources and the front-end that go away are
retried with backoff; only publish moves the watermark. Design and figures: docs/transfer.md.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from time import sleep
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import MetaData
from sqlalchemy.engine import Engine

from hipbridge.crypto.atrest import quarantine_protector
from hipbridge.io import engines, state
from hipbridge.io.extract import filters_own_window, read_chunks
from hipbridge.io.frontend import create_frontend, ledger_table, staging_table
from hipbridge.io.load import PublishCounts, publish_batch
from hipbridge.io.ops import Ops, ensure_ops
from hipbridge.settings import hospital_now, ops_schema_name, org_code, org_name, settings
from hipbridge.spec import SpecSet, TableSpec, load_specs

from .batch_lock import try_lock
from .bookkeeping import KeyTracker, release_free_memory
from .conform import EMPTY_MARKERS, conform_chunk
from .failures import DeterministicError, is_deterministic, source_query_error
from .probe import probe_source

log = logging.getLogger(__name__)

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
    skipped: int = 0   # source rows not read: change time NULL (full runs read them)
    older: int = 0     # older than the version already published: not written
    unsent: int = 0    # first seen already voided: not sent
    deleted: int = 0   # keys the source no longer returns (full run, reconcile_keys): sent as voided
    mapping_counts: dict = field(default_factory=dict)
    message: str | None = None

    def summary(self) -> str:
        return f"{self.table}: {self.status} " + counts_text(vars(self))


def counts_text(c: dict) -> str:
    """One line of a batch's counts, the same in `hipbridge run`, `status` and task logs.

    published = rows written (new + changed + voided); skipped = not read (change time NULL) +
    older than what is published + first seen already voided.
    """
    def n(k: str) -> int:
        return int(c.get(k) or 0)

    skipped = n("skipped") + n("older") + n("unsent")
    deleted = f", deleted at the source {n('deleted')}" if n("deleted") else ""
    line = (f"extracted {n('extracted')}, published {n('published')} (new {n('inserted')}, changed {n('updated')}, "
            f"voided {n('voided')}{deleted}), unchanged {n('unchanged')}, quarantined {n('quarantined')}, "
            f"skipped {skipped}")
    if skipped:
        line += (f" (change time NULL {n('skipped')}, older than published {n('older')}, "
                 f"first seen voided {n('unsent')})")
    return line


@dataclass
class Context:
    """What every step needs: the specs, the front-end engine and the operations schema."""

    specs: SpecSet
    frontend_url: str
    mappings_dir: Path | None = None

    @classmethod
    def create(cls, specs_dir: str | Path | None = None, frontend_url: str | None = None,
               mappings_dir: Path | None = None) -> Context:
        # Only _defaults.yaml must be valid here: a table's own spec is required when it runs
        # (`specs.get(table)`), so one broken file never stops the other tables (README, design decisions).
        specs = load_specs(specs_dir).require_defaults()
        return cls(specs, frontend_url or engines.default_frontend_url(), mappings_dir)

    @property
    def defaults(self):
        return self.specs.defaults

    @cached_property
    def ops_schema(self) -> str:
        return ops_schema_name(self.defaults, self.frontend_url)

    @cached_property
    def engine(self) -> Engine:
        return engines.engine_for(self.frontend_url, self.ops_schema)

    @cached_property
    def ops(self) -> Ops:
        return ensure_ops(self.engine, self.ops_schema)

    @cached_property
    def catalog(self):
        from hipbridge.mapping import load_catalog

        return load_catalog(self.mappings_dir)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.defaults.timezone)

    def now(self) -> datetime:
        """Hospital-local wall time, naive like the source systems' timestamps."""
        return hospital_now(self.defaults.timezone)

    def ensure_frontend(self, tables: list[str] | None = None) -> None:
        _ = self.ops
        create_frontend(self.engine, self.specs, tables)

    def tables_for(self, spec: TableSpec, batch: state.Batch | None = None, constants: dict | None = None):
        """(staging, ledger) of a table; with a batch, the batch's own staging table.

        constants: per-batch column values the staging table gets as defaults (transfer creates
        the table with them; the other steps only need its name and columns).
        """
        from hipbridge.io.load import batch_staging_table

        dialect = self.engine.dialect.name
        md = MetaData()
        staging = staging_table(spec, self.defaults, self.ops_schema, md, dialect)
        if batch is not None:
            staging = batch_staging_table(staging, batch.batch_id, list(spec.target.primary_key), dialect,
                                          mariadb=bool(getattr(self.engine.dialect, "is_mariadb", False)),
                                          constants=constants)
        return staging, ledger_table(spec, self.defaults, self.ops_schema, md, dialect)


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
        # A rerun never moves the watermark back, and only moves it on if it leaves no gap after
        # the windows already published.
        covered = state.get_covered(ctx.engine, ctx.ops, table)
        advance = covered is None or start <= covered
    else:
        end = high_watermark or now
        lookback = wm.lookback if wm.lookback is not None else ctx.defaults.watermark_lookback
        start = (current - lookback) if current else EPOCH
        end = max(start, end)  # nothing new yet: an empty, successful batch
    batch = state.Batch(
        batch_id=f"{table}-{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}", table_id=table, mode=mode,
        window_start=start, window_end=end, started_at=now, advance_watermark=advance, run_id=run_id,
    )
    state.open_batch(ctx.engine, ctx.ops, batch)
    return batch


# ---------------------------------------------------------------- retries


class SourceUnavailable(PipelineError):
    """The source database could not be reached (after retries); nothing was published."""


class FrontendUnavailable(PipelineError):
    """The front-end database could not be reached (after retries); nothing was published."""


_TRANSIENT_TEXT = ("can't connect", "lost connection", "server has gone away", "connection refused",
                   "connection reset", "broken pipe", "timed out", "timeout", "unknown database",
                   "could not connect", "connection closed", "deadlock", "lock wait timeout",
                   "terminating connection", "server closed the connection")


def is_transient(exc: BaseException) -> bool:
    """A connection that went away (or a deadlock): worth retrying with backoff."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, _SourceFailure):
        exc = exc.exc
    if is_deterministic(exc):  # a syntax error, unknown column, denied access: the same on every attempt
        return False
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                        ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    text = str(exc).lower()
    # connectorx raises RuntimeError with the driver's message
    return isinstance(exc, RuntimeError) and any(t in text for t in _TRANSIENT_TEXT)


def retry_policy() -> tuple[int, float]:
    """(attempts, first delay in seconds): HIPBRIDGE_RETRY_ATTEMPTS (4), HIPBRIDGE_RETRY_DELAY (2 s, doubling)."""
    return max(1, settings().retry_attempts), settings().retry_delay


def with_retries(what: str, fn, *args, **kwargs):
    """Run fn, retrying transient failures with exponential backoff (capped at 60 s)."""
    attempts, delay = retry_policy()
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            log.warning("%s: attempt %d of %d failed (%s: %s); retrying in %.1fs", what, attempt, attempts,
                        type(exc).__name__, str(exc).splitlines()[0][:300], delay)
            sleep(delay)
            delay = min(delay * 2, 60.0)
    raise AssertionError("unreachable")


def _safe_url(engine: Engine) -> str:
    from hipbridge.redact import mask_url

    return mask_url(engine.url)   # no password, no password-like query parameters


class _SourceFailure(Exception):
    def __init__(self, exc: BaseException):
        super().__init__(str(exc))
        self.exc = exc


def _source_chunks(chunks):
    """Mark errors raised while reading the source, so they are reported against it."""
    it = iter(chunks)
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            return
        except Exception as exc:
            raise _SourceFailure(exc) from exc
        yield chunk


# ---------------------------------------------------------------- transfer


ABANDONED_AFTER = timedelta(hours=24)


def _housekeeping(ctx: Context, spec: TableSpec, batch: state.Batch) -> None:
    """Drop the staging tables of this table's finished batches and of batches a killed process abandoned.

    A batch still planned or staged (another backfill window, a gate waiting) keeps its table;
    one with no progress for ABANDONED_AFTER is marked failed first.
    """
    from sqlalchemy import and_, inspect, select

    from hipbridge.io.load import BATCH_TABLE_SEP, batch_table_name, clear_stale_spool

    clear_stale_spool()

    template, _ = ctx.tables_for(spec)
    log_t = ctx.ops.table("batch_log")
    stale = ctx.now() - ABANDONED_AFTER
    with ctx.engine.begin() as conn:
        running = conn.execute(select(log_t.c.batch_id, log_t.c.started_at, log_t.c.status).where(and_(
            log_t.c.table_id == batch.table_id, log_t.c.status.in_(("planned", "staged"))))).all()
        for b, started, _status in running:
            if b != batch.batch_id and started < stale:
                state.update_batch(conn, ctx.ops, b, status="failed", finished_at=ctx.now(),
                                   message=f"abandoned: no progress since {started:%Y-%m-%d %H:%M} (process killed?)")
    keep = {batch_table_name(template.name, b) for b, started, _s in running if b == batch.batch_id or started >= stale}
    prefix = template.name + BATCH_TABLE_SEP
    names = inspect(ctx.engine).get_table_names(schema=template.schema)
    for name in names:
        if name.startswith(prefix) and name not in keep:
            _drop_table(ctx, template.schema, name)
    for b, _started, status in running:  # killed mid-transfer: its lock died with it (batch_lock.py)
        name = batch_table_name(template.name, b)
        if b != batch.batch_id and status == "planned" and name in names and name in keep:
            with try_lock(ctx.engine, b) as nobody:
                if nobody:
                    _drop_table(ctx, template.schema, name)


def _drop_table(ctx: Context, schema: str | None, name: str) -> None:
    prep = ctx.engine.dialect.identifier_preparer
    full = f"{prep.quote_schema(schema)}.{prep.quote(name)}" if schema else prep.quote(name)
    with ctx.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {full}")


def transfer(ctx: Context, batch: state.Batch) -> dict:
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
    except _SourceFailure as failure:
        exc = failure.exc
        if is_transient(exc):
            raise SourceUnavailable(
                f"{batch.table_id}: source connection {spec.source.connection!r} ({_safe_url(source)}) "
                f"unavailable after {attempts} attempt(s): {type(exc).__name__}: {str(exc).splitlines()[0][:500]}"
            ) from exc
        if isinstance(exc, DeterministicError):
            raise exc from None
        raise source_query_error(ctx.specs, spec, exc) from exc
    except Exception as exc:
        if is_transient(exc):
            raise FrontendUnavailable(
                f"{batch.table_id}: front-end database ({_safe_url(ctx.engine)}) unavailable after "
                f"{attempts} attempt(s): {type(exc).__name__}: {str(exc).splitlines()[0][:500]}") from exc
        raise


def _batch_constants(ctx: Context, spec: TableSpec, extracted_at: datetime, code: str, name: str) -> dict:
    """Values every row of the batch shares, as conform writes them (see batch_staging_table)."""
    d = ctx.defaults
    out = {d.audit("org_code").name: code, d.audit("org_name").name: name,
           d.audit("confidentiality").name: d.confidentiality, d.audit("extracted_at").name: extracted_at}
    for col in spec.columns:  # constant text values; anything typed is left to the loader
        v = col.value
        if (isinstance(v, str) and col.codes is None and col.ctype.kind == "varchar" and v.strip() == v
                and v not in EMPTY_MARKERS and len(v) <= (col.ctype.length or 0)):
            out[col.name] = v
    return {k: v for k, v in out.items() if v is not None}


def _transfer_once(ctx: Context, batch: state.Batch, spec: TableSpec, source: Engine) -> dict:
    with try_lock(ctx.engine, batch.batch_id) as mine:  # held while the staging table fills
        if not mine:
            raise PipelineError(f"batch {batch.batch_id} is being transferred by another process")
        return _transfer_locked(ctx, batch, spec, source)


def _transfer_locked(ctx: Context, batch: state.Batch, spec: TableSpec, source: Engine) -> dict:
    from hipbridge.io.load import StagingWriter

    sql = ctx.specs.query_text(spec)
    try:  # before anything is written: every column the spec names must come back from the query
        probe_source(ctx.specs, spec, source, sql)
    except DeterministicError:
        raise
    except Exception as exc:
        raise _SourceFailure(exc) from exc
    extracted_at = ctx.now().replace(microsecond=0)
    code, name = org_code(ctx.defaults), org_name(ctx.defaults)
    staging, _ = ctx.tables_for(spec, batch, constants=_batch_constants(ctx, spec, extracted_at, code, name))
    totals = {"extracted": 0, "staged": 0, "quarantined": 0}
    mapping_totals: dict[str, dict[str, int]] = {}
    _housekeeping(ctx, spec, batch)
    # a retried task starts its batch again from nothing
    _drop_table(ctx, staging.schema, staging.name)
    staging.create(ctx.engine)
    with ctx.engine.begin() as conn:
        q = ctx.ops.table("quarantine")
        conn.execute(q.delete().where(q.c.batch_id == batch.batch_id))
    read = _read_plan(ctx, spec, batch, sql, source)
    catalog = ctx.catalog if any(c.codes for c in spec.columns) else None

    protect = quarantine_protector(ctx.engine, ctx.ops_schema, spec)

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
        for chunk in _source_chunks(chunks):
            if rownum == 0 and read.column:
                _check_watermark_type(ctx, spec, chunk, read.column, source)
            conformed = conform_chunk(chunk, spec, ctx.defaults, catalog=catalog, extracted_at=extracted_at,
                                      org_code=code, org_name=name, changed_column=read.column)
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
    state.update_batch(ctx.engine, ctx.ops, batch.batch_id, status="staged", extracted=totals["extracted"],
                       quarantined=totals["quarantined"], duplicates=totals["duplicates"],
                       skipped=totals["skipped"], max_changed_at=max_changed)
    return {**totals, "mapping": mapping_totals}


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
    from sqlalchemy import text

    try:
        with source.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    except Exception as exc:
        raise _SourceFailure(exc) from exc


def _check_watermark_type(ctx: Context, spec: TableSpec, chunk, column: str, source: Engine) -> None:
    """A text change-time column compares as text ('2026-9-1' > '2026-10-01'): refuse it, naming the spec key.

    SQLite has no date type (its timestamps are text), so there the spec check is all there is.
    """
    from pandas.api.types import infer_dtype, is_datetime64_any_dtype

    if source.dialect.name == "sqlite" or chunk.empty:
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


# ---------------------------------------------------------------- gate and publish


def gate(ctx: Context, batch: state.Batch) -> dict:
    """Run the quality gate on the staged batch; a fatal failure blocks publishing."""
    from hipbridge.pipeline.gate import check_batch

    spec = ctx.specs.get(batch.table_id)
    staging, _ = ctx.tables_for(spec, batch)
    outcome = check_batch(ctx, spec, batch, staging)
    if outcome["blocked"]:
        state.update_batch(ctx.engine, ctx.ops, batch.batch_id, status="blocked", finished_at=ctx.now(),
                           message=outcome["message"])
        _drop_table(ctx, staging.schema, staging.name)  # the batch is over: its plaintext rows go with it
    return outcome


def publish(ctx: Context, batch: state.Batch) -> PublishCounts:
    """Upsert changed rows, record digests, advance the watermark, close the batch: one transaction."""
    counts = with_retries(f"publish {batch.table_id}", _publish_once, ctx, batch)
    spec = ctx.specs.get(batch.table_id)
    staging, _ = ctx.tables_for(spec, batch)
    row = state.batch_row(ctx.engine, ctx.ops, batch.batch_id) or {}
    log.info("%s: published batch %s: %s", batch.table_id, batch.batch_id, counts_text(row))
    try:  # housekeeping after the commit; the next transfer of this table retries it
        _drop_table(ctx, staging.schema, staging.name)
    except Exception as exc:  # noqa: BLE001
        log.warning("%s: staged rows of %s not cleared yet: %s", batch.table_id, batch.batch_id, exc)
    return counts


def _publish_once(ctx: Context, batch: state.Batch) -> PublishCounts:
    spec = ctx.specs.get(batch.table_id)
    staging, ledger = ctx.tables_for(spec, batch)
    row = state.batch_row(ctx.engine, ctx.ops, batch.batch_id)
    if row is None:
        raise PipelineError(f"unknown batch {batch.batch_id}")
    if row["status"] == "published":
        return PublishCounts()  # a retried publish task after a successful commit
    if row["status"] != "staged":
        raise PipelineError(f"batch {batch.batch_id} is {row['status']}, not staged: it cannot be published")
    with ctx.engine.begin() as conn:
        staged = int(row["extracted"] or 0) - int(row["quarantined"] or 0)
        # transfer counted duplicate keys (NULL: it could not, e.g. too many keys to track)
        unique = None if row.get("duplicates") is None else int(row["duplicates"]) == 0
        # a full read with nothing quarantined holds every key the source still has
        reconcile = spec.source.reconcile_keys and batch.mode == "full" and not int(row["quarantined"] or 0)
        if spec.source.reconcile_keys and batch.mode == "full" and not reconcile:
            log.warning("%s: keys not reconciled: %s row(s) of this full run were quarantined, so their keys "
                        "are missing from the batch without being deleted at the source", batch.table_id,
                        row["quarantined"])
        counts = publish_batch(conn, spec, ctx.defaults, staging, ledger, batch.batch_id, clear=False,
                               unique=unique, clock=ctx.now, reconcile=reconcile)
        if counts.staged != staged or counts.latest > staged:
            raise PipelineError(f"batch {batch.batch_id}: {staged} rows were staged but the staging table "
                                f"holds {counts.staged} ({counts.latest} keys): not published")
        new_mark = next_watermark(spec, batch, row.get("max_changed_at"))
        if batch.advance_watermark and batch.window_end is not None:
            current = state.get_watermark(conn, ctx.ops, batch.table_id)
            covered = state.get_covered(conn, ctx.ops, batch.table_id)
            mark = max(m for m in (current, new_mark) if m is not None) if (current or new_mark) else None
            reach = max(batch.window_end, covered) if covered else batch.window_end
            if mark is not None and (mark != current or reach != covered):
                state.set_watermark(conn, ctx.ops, batch.table_id, mark, batch.batch_id, ctx.now(), reach)
        state.update_batch(conn, ctx.ops, batch.batch_id, status="published", finished_at=ctx.now(),
                           published=counts.written, inserted=counts.inserted, updated=counts.updated,
                           voided=counts.voided, unchanged=counts.unchanged + counts.superseded,
                           duplicates=counts.superseded, older=counts.older, unsent=counts.unsent,
                           deleted=counts.deleted)
    return counts


def next_watermark(spec: TableSpec, batch: state.Batch, max_changed_at: datetime | None) -> datetime | None:
    """Where the watermark moves after this batch: the highest change time it staged, by the source's clock.

    Not the window's end (our clock): a HIS clock a few minutes behind the front-end, or a row that
    commits after we read past its change time, would otherwise fall before the next window and be
    lost. The next window starts at this value minus the lookback. A table without a watermark
    column keeps the window end (it is read whole every time); a batch that staged nothing leaves
    the watermark where it is.
    """
    if batch.window_end is None:
        return None
    if spec.source.watermark is None:
        return batch.window_end
    if max_changed_at is None:
        return None
    return min(max_changed_at, batch.window_end) if batch.mode != "full" else max_changed_at


def fail(ctx: Context, batch: state.Batch, exc: BaseException) -> None:
    """Record the failure in the batch log (best effort: the front-end may be the thing that failed)."""
    try:
        state.update_batch(ctx.engine, ctx.ops, batch.batch_id, status="failed", finished_at=ctx.now(),
                           message=f"{type(exc).__name__}: {exc}"[:4000])
        staging, _ = ctx.tables_for(ctx.specs.get(batch.table_id), batch)
        _drop_table(ctx, staging.schema, staging.name)  # a retried transfer starts from nothing anyway
    except Exception as inner:  # noqa: BLE001
        log.error("%s: could not mark batch %s failed: %s", batch.table_id, batch.batch_id, inner)


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
                               skipped=moved.get("skipped", 0),
                               mapping_counts=moved["mapping"], message=outcome["message"])
        counts = publish(ctx, batch)
    except Exception as exc:
        fail(ctx, batch, exc)
        raise
    return BatchResult(table, batch.batch_id, mode, batch.window_start, batch.window_end, "published",
                       extracted=moved["extracted"], published=counts.written, quarantined=moved["quarantined"],
                       inserted=counts.inserted, updated=counts.updated, voided=counts.voided,
                       unchanged=counts.unchanged + counts.superseded, skipped=moved.get("skipped", 0),
                       older=counts.older, unsent=counts.unsent, deleted=counts.deleted,
                       mapping_counts=moved["mapping"])

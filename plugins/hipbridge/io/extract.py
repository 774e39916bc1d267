"""Chunked, windowed reads from a source system: never the whole table in memory.

The integrator's SQL is wrapped, not edited: `SELECT * FROM (<sql>) src WHERE src.<wm> >= :window_start
AND src.<wm> < :window_end`. A query that already uses `:window_start` / `:window_end` is run as it
is (for sources where the filter must sit inside a UNION or a hint).

Two ways to read, chosen per source dialect (`sources.py` says which dialect reads how):

- **fast read** (MySQL/MariaDB, PostgreSQL): connectorx fetches in Rust, about 8× faster than a
  Python driver. A window of up to 4 × `chunk_rows` rows (a daily increment) is one query,
  streamed as Arrow record batches of `chunk_rows` rows (connectorx's `arrow_stream`, which reads
  ahead, so only small windows). A bigger window, or a result connectorx cannot stream as Arrow,
  is cut into *slices* of about `chunk_rows` rows by the watermark column (a `COUNT(*)` per slice,
  cheap on an indexed change-time column), each slice one connectorx read; a slice that cannot be
  cut any finer (one timestamp holding more rows than the chunk allows) is streamed by the driver.
- **streaming** (SQLite, Oracle thin mode, SQL Server via pymssql, anything else, and tables
  without a watermark): SQLAlchemy with a server-side cursor, `chunk_rows` rows at a time.

`HIPBRIDGE_FAST_READ=0` turns the fast read off; `=all` also tries it on SQL Server.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Dialect, Engine

from hipbridge.settings import settings
from hipbridge.spec.sql_guard import require_read_only

from .arrow import pyarrow
from .sources import source_dialect

# connectorx and pyarrow are imported when a fast read happens: optional (a source that streams never
# needs them) and heavy for the DAG files and commands that import this module without reading.

log = logging.getLogger(__name__)

_HAS_WINDOW_PARAMS = re.compile(r":window_(start|end)\b")
_SQL_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def filters_own_window(sql: str) -> bool:
    """The query places :window_start / :window_end itself (a mention in a comment does not count)."""
    return bool(_HAS_WINDOW_PARAMS.search(_SQL_COMMENTS.sub(" ", sql)))
# a window of at most this many chunks is read as one streamed query (_fast says why)
_STREAM_CHUNKS = 4
# a slice may hold this many times chunk_rows before it is cut again (cuts aim at 80% of chunk_rows)
_SLICE_SLACK = 1.2
_SLICE_AIM = 0.8
_MIN_SLICE = timedelta(seconds=1)


def windowed_sql(sql: str, watermark_column: str | None, quote) -> str:
    """The statement to run for a window; `quote` is the source dialect's identifier quoter."""
    body = sql.strip().rstrip(";")
    if watermark_column is None or filters_own_window(body):
        return body
    wm = quote(watermark_column)
    return f"SELECT * FROM ({body}) src WHERE src.{wm} >= :window_start AND src.{wm} < :window_end"


def bind_window(engine: Engine, start: datetime, end: datetime) -> dict:
    """The window parameters of a streamed read, as the source's dialect binds them."""
    return source_dialect(engine).bind_window(start, end)


def timestamp_literal(dialect: str, value: datetime) -> str:
    """A window bound written into SQL text (connectorx takes no bind parameters), in `dialect`'s spelling."""
    return source_dialect(dialect).timestamp_literal(value)


def literal_window_sql(sql: str, watermark_column: str | None, dialect: Dialect, start: datetime,
                       end: datetime) -> str:
    """windowed_sql with the bounds inlined, for readers that take no parameters."""
    stmt = windowed_sql(sql, watermark_column, dialect.identifier_preparer.quote)
    source = source_dialect(dialect)
    stmt = re.sub(r":window_start\b", lambda _: source.timestamp_literal(start), stmt)
    return re.sub(r":window_end\b", lambda _: source.timestamp_literal(end), stmt)


def count_sql(windowed: str) -> str:
    return f"SELECT COUNT(*) AS n FROM ({windowed}) hb_count"


def connectorx_url(engine: Engine) -> str | None:
    """The connectorx URL for a source engine, or None where the fast read is not used."""
    cx_url = source_dialect(engine).fast_read_url(engine.url, settings().fast_read_mode.lower())
    if cx_url is None:
        return None
    try:
        import connectorx  # noqa: F401 - optional: without it every read streams
    except ImportError:
        return None
    return cx_url


def _stream(engine: Engine, sql: str, watermark_column: str | None, start: datetime, end: datetime,
            chunk_rows: int) -> Iterator[pd.DataFrame]:
    source_dialect(engine).prepare_stream()
    quote = engine.dialect.identifier_preparer.quote
    stmt = text(windowed_sql(sql, watermark_column, quote))
    params = bind_window(engine, start, end) if watermark_column or filters_own_window(sql) else {}
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(stmt, params)
        cursor = getattr(result, "cursor", None)
        keys = list(result.keys())
        try:
            for rows in result.partitions(chunk_rows):
                yield pd.DataFrame.from_records(rows, columns=keys, coerce_float=False)
        except Exception:
            _forget_unbuffered(cursor)
            raise


def _forget_unbuffered(cursor) -> None:
    """After a lost connection, stop PyMySQL from draining a streaming result it can no longer read
    (it would try when the result is garbage-collected, and fail there)."""
    for holder in (cursor, getattr(cursor, "connection", None)):
        res = getattr(holder, "_result", None)
        if res is not None and getattr(res, "unbuffered_active", False):
            res.unbuffered_active = False


def slices(count, start: datetime, end: datetime, chunk_rows: int) -> Iterator[tuple[datetime, datetime, bool]]:
    """Cut [start, end) into slices of at most ~chunk_rows rows: (start, end, fits).

    `count(a, b)` returns the rows in [a, b). Rows are assumed spread evenly inside a slice; a
    slice that turns out too big is counted and cut again. `fits` is False for a slice that is
    too big but cannot be cut any finer (it is streamed by the caller).
    """
    pending = [(start, end, None)]
    while pending:
        a, b, known = pending.pop()
        n = count(a, b) if known is None else known
        if n == 0:
            continue
        if n <= chunk_rows * _SLICE_SLACK:
            yield a, b, True
            continue
        if b - a <= _MIN_SLICE:
            yield a, b, False
            continue
        parts = min(math.ceil(n / (chunk_rows * _SLICE_AIM)), max(2, int((b - a) / _MIN_SLICE)))
        step = (b - a) / parts
        bounds = [a + step * i for i in range(parts)] + [b]
        bounds = [bounds[0]] + [x.replace(microsecond=0) for x in bounds[1:-1]] + [bounds[-1]]
        cuts = [(x, y) for x, y in itertools.pairwise(bounds) if y > x]
        # each cut is counted when it is reached (in order: pending is a stack)
        pending.extend((x, y, None) for x, y in reversed(cuts))


def _arrow_frame(table) -> pd.DataFrame:
    """An Arrow result as a DataFrame: text stays Arrow-backed (pandas' `str`), no Python object per value.

    Decimals become float64 and dates datetime64, as connectorx's own pandas output gives them.
    """
    import pyarrow.compute as pc

    pa = pyarrow()
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type):
            table = table.set_column(i, f.name, pc.cast(table.column(i), pa.float64()))
    return table.to_pandas(date_as_object=False)


def _read_fast(cx_url: str, query: str) -> pd.DataFrame:
    import connectorx as cx

    pyarrow()  # before connectorx allocates the result

    try:
        table = cx.read_sql(cx_url, query, return_type="arrow")
    except (RuntimeError, ValueError, TypeError) as exc:  # a type connectorx cannot give as Arrow
        if "connect" in str(exc).lower():
            raise
        log.info("Arrow read failed (%s): reading the slice into pandas", exc)
        return cx.read_sql(cx_url, query, return_type="pandas")
    return _arrow_frame(table)


_DONE = object()


def _prefetched(items: Iterator, depth: int = 1) -> Iterator:
    """Run an iterator in a background thread, one item ahead.

    connectorx reads in Rust without the GIL, so the next slice is fetched (and the source
    server works on it) while this thread conforms the current one. An error in the reader is
    raised here, at the item where it happened.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put((None, exc))

    thread = threading.Thread(target=run, name="source-read", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _open_stream(cx_url: str, query: str, chunk_rows: int):
    """connectorx's Arrow stream of one query (record batches of `chunk_rows` rows), or None when this
    result cannot be read as Arrow (then the window is read in counted slices instead)."""
    import connectorx as cx

    pyarrow()  # before connectorx allocates the result
    try:
        return cx.read_sql(cx_url, query, return_type="arrow_stream", batch_size=chunk_rows)
    except (RuntimeError, ValueError, TypeError) as exc:
        if "connect" in str(exc).lower():
            raise
        log.info("Arrow stream failed (%s): reading the window in counted slices", exc)
        return None


def _fast(engine: Engine, cx_url: str, sql: str, watermark_column: str, start: datetime, end: datetime,
          chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A window of up to _STREAM_CHUNKS chunks as one query, streamed as Arrow record batches of
    `chunk_rows` rows; a bigger one (or one connectorx cannot stream as Arrow) in counted slices.

    One query, not a slice per chunk_rows: a day's changed rows sit all over the table (100,000
    changed rows touch most pages of a table larger than the server's buffer pool), and every
    slice would read those pages again (docs/transfer.md: the 10 %-changed run and the rerun)."""
    dialect = engine.dialect

    def count(a: datetime, b: datetime) -> int:
        with engine.connect() as conn:
            return int(conn.execute(text(count_sql(literal_window_sql(sql, watermark_column, dialect, a, b))))
                       .scalar() or 0)

    total = count(start, end)
    if total == 0:
        return
    # connectorx's stream reads ahead of the consumer (measured: a 1,000,000-row window streamed peaked
    # at 499 MB against 317 MB in slices), so only a window of a few chunks is streamed; a bigger one
    # (a first load, a full reload) goes in counted slices, whose memory the chunk size bounds
    reader = None
    if total <= chunk_rows * _STREAM_CHUNKS:
        reader = _open_stream(cx_url, literal_window_sql(sql, watermark_column, dialect, start, end), chunk_rows)
    if reader is not None:
        pa = pyarrow()

        def frames():
            for batch in reader:
                if batch.num_rows:
                    yield _arrow_frame(pa.Table.from_batches([batch]))

        yield from _prefetched(frames())
        return

    def counted(a: datetime, b: datetime) -> int:
        return total if (a, b) == (start, end) else count(a, b)

    def reads():
        for a, b, fits in slices(counted, start, end, chunk_rows):
            if fits:
                yield _read_fast(cx_url, literal_window_sql(sql, watermark_column, dialect, a, b))
            else:
                yield (a, b)  # streamed by the consumer: a server-side cursor belongs to one thread

    for item in _prefetched(reads()):
        if isinstance(item, tuple):
            a, b = item
            log.info("slice %s … %s holds more than %s rows: streaming it", a, b, chunk_rows)
            yield from _stream(engine, sql, watermark_column, a, b, chunk_rows)
        else:
            yield item


def read_chunks(engine: Engine, sql: str, watermark_column: str | None, start: datetime, end: datetime,
                chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield DataFrames of about chunk_rows source rows (columns as the query names them)."""
    require_read_only(sql, engine.dialect.name)   # one read-only SELECT, or nothing reaches the source
    cx_url = connectorx_url(engine) if watermark_column else None
    if cx_url is not None and start < end:
        yield from _fast(engine, cx_url, sql, watermark_column, start, end, chunk_rows)
    else:
        yield from _stream(engine, sql, watermark_column, start, end, chunk_rows)


_PROBE_AT = datetime(1900, 1, 1)


def probe_sql(sql: str) -> str:
    """The integrator's query returning no rows (our window filter is left out: its column is what is checked)."""
    return f"SELECT * FROM ({sql.strip().rstrip(';')}) hb_probe WHERE 1 = 0"


def probe_columns(engine: Engine, sql: str) -> list[str]:
    """The column names the query returns, from a zero-row execution (nothing is read).

    A query that places :window_start / :window_end itself gets an empty window bound to them.
    """
    require_read_only(sql, engine.dialect.name)   # the probe too: nothing but one SELECT reaches a source
    stmt = text(probe_sql(sql))
    params = bind_window(engine, _PROBE_AT, _PROBE_AT) if filters_own_window(sql) else {}
    with engine.connect() as conn:
        result = conn.execute(stmt, params)
        try:
            return list(map(str, result.keys()))
        finally:
            result.close()

"""Chunked, windowed reads from a source system: never the whole table in memory.

The integrator's SQL is wrapped, not edited: `SELECT * FROM (<sql>) src WHERE src.<wm> >= :window_start
AND src.<wm> < :window_end`. A query that already uses `:window_start` / `:window_end` is run as it
is (for sources where the filter must sit inside a UNION or a hint). Rows stream through a
server-side cursor where the driver has one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Engine

_HAS_WINDOW_PARAMS = re.compile(r":window_(start|end)\b")
_TS = "%Y-%m-%d %H:%M:%S"


def windowed_sql(sql: str, watermark_column: str | None, quote) -> str:
    """The statement to run for a window; `quote` is the source dialect's identifier quoter."""
    body = sql.strip().rstrip(";")
    if watermark_column is None or _HAS_WINDOW_PARAMS.search(body):
        return body
    wm = quote(watermark_column)
    return f"SELECT * FROM ({body}) src WHERE src.{wm} >= :window_start AND src.{wm} < :window_end"


def bind_window(engine: Engine, start: datetime, end: datetime) -> dict:
    # SQLite stores local timestamps as 'YYYY-MM-DD HH:MM:SS' text: compare as text in that form.
    if engine.dialect.name == "sqlite":
        return {"window_start": start.strftime(_TS), "window_end": end.strftime(_TS)}
    return {"window_start": start, "window_end": end}


def read_chunks(engine: Engine, sql: str, watermark_column: str | None, start: datetime, end: datetime,
                chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield DataFrames of at most chunk_rows source rows (columns as the query names them)."""
    quote = engine.dialect.identifier_preparer.quote
    stmt = text(windowed_sql(sql, watermark_column, quote))
    params = bind_window(engine, start, end) if watermark_column or _HAS_WINDOW_PARAMS.search(sql) else {}
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(stmt, params)
        keys = list(result.keys())
        for rows in result.partitions(chunk_rows):
            yield pd.DataFrame.from_records(rows, columns=keys, coerce_float=False)

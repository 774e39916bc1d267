"""Writing the demo's vendor tables into SQLite, fast and in vendor style.

Why: the vendor tables must look like a real HIS (upper-case names, VARCHAR/NUMBER columns,
naive local 'YYYY-MM-DD HH:MM:SS' text timestamps) and be written in bulk with `executemany`
(row-by-row inserts would take minutes at scale 1).
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime

import numpy as np
import pandas as pd

EPOCH = np.datetime64("1970-01-01T00:00:00", "s")


def to_seconds(d: date | datetime) -> int:
    """Naive local time → integer seconds, the generator's internal clock."""
    if not isinstance(d, datetime):
        d = datetime(d.year, d.month, d.day)
    return int((np.datetime64(d, "s") - EPOCH).astype(np.int64))


def ts_text(sec: np.ndarray) -> np.ndarray:
    """Seconds → 'YYYY-MM-DD HH:MM:SS' text; NaN/negative sentinel → None."""
    sec = np.asarray(sec, dtype="float64")
    ok = np.isfinite(sec)
    out = np.full(len(sec), None, dtype=object)
    if ok.any():
        txt = np.datetime_as_string(EPOCH + sec[ok].astype(np.int64).astype("timedelta64[s]"), unit="s")
        out[ok] = np.char.replace(txt, "T", " ")
    return out


def date_text(sec_or_dates: np.ndarray) -> np.ndarray:
    arr = np.asarray(sec_or_dates)
    if np.issubdtype(arr.dtype, np.datetime64):
        return np.datetime_as_string(arr.astype("datetime64[D]"), unit="D").astype(object)
    return np.array([None if t is None else t[:10] for t in ts_text(arr)], dtype=object)


def _sql_type(series: pd.Series) -> str:
    if pd.api.types.is_integer_dtype(series):
        return "INTEGER"
    if pd.api.types.is_float_dtype(series):
        return "NUMERIC(14,4)"
    lengths = series.dropna().astype(str).str.len()
    width = int(lengths.max()) if len(lengths) else 10
    for n in (1, 2, 4, 8, 10, 16, 20, 32, 50, 64, 100, 200, 500, 1000, 4000):
        if width <= n:
            return f"VARCHAR({n})"
    return "TEXT"


def write_table(conn: sqlite3.Connection, name: str, frame: pd.DataFrame, primary_key: list[str],
                change_column: str | None = None) -> int:
    """Create `name` from the frame's columns (vendor-like types) and bulk insert every row."""
    cols = ", ".join(f"{c} {_sql_type(frame[c])}" for c in frame.columns)
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name} ({cols}, PRIMARY KEY ({', '.join(primary_key)}))")
    if change_column:
        conn.execute(f"CREATE INDEX IX_{name}_{change_column} ON {name} ({change_column})")
    rows = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    marks = ", ".join("?" * len(frame.columns))
    conn.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
    return len(rows)

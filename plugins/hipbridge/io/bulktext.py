"""The text bulk loaders read: one form for LOAD DATA (MySQL/MariaDB) and COPY (PostgreSQL).

Also the records an executemany takes (SQLite, or `HIPBRIDGE_BULK_LOAD=0`).
"""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pandas as pd
from pandas.api.types import is_datetime64_any_dtype

from .arrow import pyarrow

# pyarrow.csv is imported when a bulk file is written (a transfer), not when io/ is imported.


def frame_records(frame: pd.DataFrame, columns: list[str], date_columns: frozenset[str] = frozenset()) -> list[dict]:
    sub = frame[columns].astype(object)
    sub = sub.where(frame[columns].notna(), None)
    records = sub.to_dict("records")
    if date_columns:
        for r in records:
            for c in date_columns:
                v = r.get(c)
                if isinstance(v, datetime):
                    r[c] = v.date()
    return records


# ---------------------------------------------------------------- text for bulk loaders
#
# One text form serves LOAD DATA (MySQL/MariaDB) and COPY (PostgreSQL): tab-separated, every value
# in double quotes (a quote inside doubled), NULL as the bare word NULL — so the text "NULL" (quoted)
# and SQL NULL (bare) stay apart, and tabs, newlines and backslashes need no escaping. Arrow's CSV
# writer (C++) produces it; measured on a 50,000-row, 36-column conformed chunk it took 0.13 s
# against 0.26 s for per-row Python joins.

LOADER_NULL = "NULL"
MYSQL_LOAD_FORMAT = ("CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ENCLOSED BY '\"' ESCAPED BY '' "
                     "LINES TERMINATED BY '\\n'")
POSTGRES_COPY_FORMAT = f"(FORMAT csv, DELIMITER E'\\t', NULL '{LOADER_NULL}')"


def _arrow_column(series: pd.Series, date_only: bool = False):
    pa = pyarrow()

    dtype = series.dtype
    if is_datetime64_any_dtype(dtype):
        values = series.to_numpy(dtype="datetime64[s]")
        arr = pa.array(values, type=pa.timestamp("s"), mask=np.isnat(values))
        return arr.cast(pa.date32()) if date_only else arr
    if str(dtype) == "Int64" or dtype.kind in "iu":
        return pa.array(series, type=pa.int64(), from_pandas=True)
    if dtype.kind == "f":  # shortest round-trip form, e.g. 12.5; MariaDB and PostgreSQL read it exactly
        return pa.array(series, type=pa.float64(), from_pandas=True)
    try:
        return pa.array(series, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # numbers in a text column
        return pa.array([None if pd.isna(v) else str(v) for v in series.to_numpy(dtype=object)], type=pa.string())


def loader_table(frame: pd.DataFrame, columns: list[str], date_only: frozenset[str] = frozenset()):
    return pyarrow().table([_arrow_column(frame[c], c in date_only) for c in columns], names=columns)


def bulk_text(frame: pd.DataFrame, columns: list[str], date_only: frozenset[str] = frozenset()) -> bytes:
    """The loader text of a frame as bytes (see the format above)."""
    out = io.BytesIO()
    write_bulk_text(out, frame, columns, date_only)
    return out.getvalue()


def write_bulk_text(out, frame: pd.DataFrame, columns: list[str], date_only: frozenset[str] = frozenset()) -> None:
    """Write the loader text of a frame (or of an Arrow table with those columns) to a binary file."""
    import pyarrow.csv as pcsv

    table = frame if isinstance(frame, pyarrow().Table) else loader_table(frame, columns, date_only)
    if table.num_rows:
        pcsv.write_csv(table.select(columns), out, pcsv.WriteOptions(
            include_header=False, delimiter="\t", null_string=LOADER_NULL, quoting_style="all_valid"))

"""Turn one chunk of source rows into front-end rows, or into quarantine with a reason.

Order per chunk: pick columns (from / value) → conform types (length in characters, decimal
precision, real dates, UTF-8 text) → primary key present → map codes → audit columns → digest.
Every rejected row keeps its raw source values and every reason found, so nothing is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from hipbridge.spec import Defaults, TableSpec
from hipbridge.spec.types import ColumnType

_EMPTY_MARKERS = {"", "null", "NULL", "None"}


@dataclass
class ConformedChunk:
    frame: pd.DataFrame  # target columns + hb_void + hb_digest, only rows that passed
    quarantine: list[dict] = field(default_factory=list)  # {row_key, column_name, reason, raw}
    mapping_counts: dict[str, dict[str, int]] = field(default_factory=dict)


def _column_lookup(frame: pd.DataFrame) -> dict[str, str]:
    # Oracle returns upper-case aliases, others as written: match `from:` case-insensitively.
    return {str(c).lower(): c for c in frame.columns}


class _Reasons:
    """Collect per-row reasons; a row with any reason is quarantined."""

    def __init__(self, index: pd.Index):
        self.index = index
        self.by_row: dict = {}

    def add(self, mask: pd.Series, column: str | None, reason: str | pd.Series) -> None:
        if not mask.any():
            return
        rows = mask[mask].index
        texts = reason.loc[rows] if isinstance(reason, pd.Series) else None
        for r in rows:
            self.by_row.setdefault(r, []).append((column, texts.loc[r] if texts is not None else reason))

    @property
    def bad(self) -> pd.Series:
        return pd.Series(self.index.isin(list(self.by_row)), index=self.index)


def _as_text(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Values as str (None for empty); second value: rows whose bytes are not UTF-8 text."""
    undecodable = pd.Series(False, index=series.index)
    if series.dtype == object:
        is_bytes = series.map(lambda v: isinstance(v, (bytes, bytearray)))
        if is_bytes.any():
            def decode(v):
                try:
                    return bytes(v).decode("utf-8")
                except UnicodeDecodeError:
                    return None
            decoded = series[is_bytes].map(decode)
            undecodable.loc[decoded[decoded.isna()].index] = True
            series = series.copy()
            series.loc[is_bytes] = decoded
    out = series.map(_to_text, na_action="ignore")
    out = out.where(~out.isin(_EMPTY_MARKERS), None)
    # U+FFFD means a GBK/UTF-8 mix-up happened upstream: the text is already damaged.
    replacement = out.str.contains("\ufffd", regex=False, na=False)
    return out.astype(object).where(out.notna(), None), undecodable | replacement


def _to_text(v) -> str:
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (datetime, pd.Timestamp)):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return format(v.normalize(), "f") if v == v.to_integral_value() else str(v)
    return str(v)


def _conform_column(name: str, label: str, ct: ColumnType, raw: pd.Series, reasons: _Reasons) -> pd.Series:
    text, undecodable = _as_text(raw)
    reasons.add(undecodable, name, f"{label}({name}) 文本不是有效的UTF-8编码(疑似GBK)")
    present = text.notna()
    if ct.kind in ("varchar", "text"):
        if ct.kind == "varchar":
            lengths = text.str.len()
            too_long = present & (lengths > ct.length)
            reasons.add(too_long, name, lengths.map(
                lambda n: f"{label}({name}) 长度{int(n) if n == n else 0}字符超过{ct}"))
        return text
    if ct.kind in ("decimal", "integer"):
        numbers = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
        reasons.add(present & numbers.isna(), name, f"{label}({name}) 不是数值")
        if ct.kind == "integer":
            reasons.add(present & numbers.notna() & (numbers % 1 != 0), name, f"{label}({name}) 不是整数")
            return numbers.astype("Int64").astype(object).where(numbers.notna(), None)
        limit = 10 ** (ct.precision - ct.scale)
        rounded = numbers.round(ct.scale)
        reasons.add(present & (rounded.abs() >= limit), name, f"{label}({name}) 数值溢出{ct}")
        return rounded.astype(object).where(rounded.notna(), None)
    # date / timestamp
    parsed = pd.to_datetime(text, errors="coerce", format="mixed")
    bad = present & (parsed.isna() | (parsed.dt.year < 1900) | (parsed.dt.year > 2100))
    reasons.add(bad, name, f"{label}({name}) 日期时间无效")
    parsed = parsed.where(~bad)
    if ct.kind == "date":
        return parsed.dt.date.astype(object).where(parsed.notna(), None)
    return parsed.astype(object).where(parsed.notna(), None)


def digest_frame(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Stable content digest per row (hex), over the string form of the given columns."""
    as_text = frame[columns].astype(str).where(frame[columns].notna(), "\x00")
    hashed = pd.util.hash_pandas_object(as_text, index=False, categorize=False)
    return hashed.map(lambda h: f"{int(h):016x}")


def conform_chunk(source: pd.DataFrame, spec: TableSpec, defaults: Defaults, *, catalog, extracted_at: datetime,
                  org_code: str, org_name: str) -> ConformedChunk:
    lookup = _column_lookup(source)
    reasons = _Reasons(source.index)
    out: dict[str, pd.Series] = {}
    for col in spec.columns:
        if col.source is not None:
            raw = source[lookup[col.source.lower()]]
        elif col.value is not None:
            raw = pd.Series([col.value] * len(source), index=source.index, dtype=object)
        else:  # a name column filled by mapping
            raw = pd.Series([None] * len(source), index=source.index, dtype=object)
        out[col.name] = _conform_column(col.name, col.label, col.ctype, raw, reasons)
    frame = pd.DataFrame(out, index=source.index)

    for key in spec.target.primary_key:
        if key in frame:
            reasons.add(frame[key].isna(), key, f"主键{key}为空")

    mapped = catalog.apply(frame, spec) if catalog is not None else None
    counts: dict[str, dict[str, int]] = {}
    if mapped is not None:
        frame = mapped.frame
        counts = mapped.counts
        errs = mapped.row_errors
        reasons.add(errs.notna(), None, errs.fillna(""))

    src = spec.source
    if src.void is not None:
        values = {str(v) for v in src.void.values}
        void_raw = source[lookup[src.void.column.lower()]]
        frame["hb_void"] = void_raw.map(lambda v: int(v is not None and _to_text(v) in values)).astype(int)
    else:
        frame["hb_void"] = 0

    business = [c.name for c in spec.columns]
    frame["hb_digest"] = digest_frame(frame, business + ["hb_void"])

    frame[defaults.audit("org_code").name] = org_code
    frame[defaults.audit("org_name").name] = org_name
    frame[defaults.audit("confidentiality").name] = defaults.confidentiality
    frame[defaults.audit("extracted_at").name] = extracted_at
    frame[defaults.audit("change_flag").name] = None
    updated_name = defaults.audit("source_updated_at").name
    if src.watermark is not None:
        wm = pd.to_datetime(source[lookup[src.watermark.column.lower()]], errors="coerce", format="mixed")
        frame[updated_name] = wm.astype(object).where(wm.notna(), extracted_at)
    else:
        frame[updated_name] = extracted_at

    bad = reasons.bad
    quarantine = []
    if bad.any():
        pk = spec.target.primary_key
        raw_rows = source.loc[bad]
        for idx, raw in raw_rows.iterrows():
            key = "|".join("" if frame.at[idx, k] is None else str(frame.at[idx, k])
                           for k in pk if k in frame)
            found = reasons.by_row[idx]
            quarantine.append({
                "row_key": key[:512],
                "column_name": ",".join(sorted({c for c, _ in found if c}))[:64] or None,
                "reason": "；".join(dict.fromkeys(str(r) for _, r in found)),
                "raw": json.dumps({k: _json_value(v) for k, v in raw.items()}, ensure_ascii=False),
            })
    return ConformedChunk(frame.loc[~bad], quarantine, counts)


def _json_value(v):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (bytes, bytearray)):
        return {"hex": bytes(v).hex()}
    if isinstance(v, (int, float, str, bool)):
        return v
    return _to_text(v)

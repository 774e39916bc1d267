"""Gap report: unmapped local codes as they occur in the sources, with candidates and coverage.

Frequencies come from the sources themselves: each spec's source SQL is wrapped in
`SELECT src.<from>, COUNT(*) FROM (<sql>) src GROUP BY src.<from>`, so the report weighs a code by
how often the hospital really uses it (OHDSI Usagi's weighting), not by dictionary order.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import text

from hipbridge.io.engines import source_engine
from hipbridge.io.extract import bind_window
from hipbridge.io.ops import ensure_ops
from hipbridge.settings import DEFAULT_TIMEZONE, hospital_now

from . import ops as _mapping_ops  # noqa: F401 - registers mapping_gap
from .catalog import EMPTY, MAPPED, Catalog, normalise_value
from .files import MappingConfigError
from .similarity import Candidate, NameMatcher

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from hipbridge.spec import Column, SpecSet, TableSpec


@dataclass
class GapEntry:
    table: str
    column: str
    column_label: str
    set_id: str | None
    domain: str
    local_code: str
    local_name: str
    frequency: int
    status: str            # the mapping row's status, or "missing" when the file has no row for the code
    policy: str            # what apply() does with it: quarantine | keep | other
    candidates: list[Candidate] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"table": self.table, "column": self.column, "local_code": self.local_code,
                "local_name": self.local_name, "frequency": self.frequency,
                "candidates": [c.as_dict() for c in self.candidates],
                "local_set": self.set_id, "domain": self.domain, "status": self.status, "policy": self.policy}


@dataclass
class ColumnCoverage:
    table: str
    column: str
    column_label: str
    set_id: str | None
    domain: str
    rows: int               # non-empty source values
    mapped_rows: int
    distinct: int
    unmapped_distinct: int

    @property
    def coverage(self) -> float | None:
        return None if self.rows == 0 else self.mapped_rows / self.rows


@dataclass
class GapReport:
    hospital: str
    created_at: datetime            # the hospital's local time (naive), like every time hipbridge records
    entries: list[GapEntry] = field(default_factory=list)
    coverage: list[ColumnCoverage] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    timezone: str = DEFAULT_TIMEZONE

    def as_json(self) -> list[dict]:
        return [e.as_json() for e in self.entries]

    def by_code(self) -> list[dict]:
        """One row per (local set, local code) for coding staff: frequencies summed, columns listed."""
        rows: dict[tuple, dict] = {}
        for e in self.entries:
            key = (e.set_id or "", e.domain, e.local_code)
            r = rows.get(key)
            if r is None:
                r = rows[key] = {"set_id": e.set_id or "", "domain": e.domain, "local_code": e.local_code,
                                 "local_name": e.local_name, "frequency": 0, "columns": [], "status": e.status,
                                 "candidates": e.candidates}
            r["frequency"] += e.frequency
            r["columns"].append(f"{e.table}.{e.column}")
        return sorted(rows.values(), key=lambda r: (r["set_id"], -r["frequency"], r["local_code"]))


def strip_sql_comments(sql: str) -> str:
    """SQL without -- and /* */ comments (quoted text kept): a ':name' in a comment is not a bind parameter."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            j = i + 1
            while j < n and sql[j] != ch:
                j += 1
            out.append(sql[i:j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            out.append(" ")
            i = n if j < 0 else j + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def source_frequencies(engine: Engine, sql: str, source_column: str) -> dict[str | None, int]:
    """Frequency of each value of one source column, computed by the source database."""
    body = strip_sql_comments(sql).strip().rstrip(";").strip()
    col = engine.dialect.identifier_preparer.quote(source_column)
    query = f"SELECT src.{col} AS local_value, COUNT(*) AS n FROM (\n{body}\n) src GROUP BY src.{col}"
    out: dict[str | None, int] = {}
    params: dict = {}
    if re.search(r":window_(start|end)\b", body):  # a query that filters its own window: read all of it

        params = bind_window(engine, datetime(1900, 1, 1), datetime(2100, 1, 1))
    with engine.connect() as conn:
        for value, n in conn.execute(text(query), params):
            key = normalise_value(value)
            out[key] = out.get(key, 0) + int(n)
    return out


def _dictionary_names(catalog: Catalog, set_id: str | None, cache: dict) -> dict[str, str]:
    """Local names from the file, completed by the set's optional source dictionary query."""
    if not set_id or set_id not in catalog.sets:
        return {}
    if set_id in cache:
        return cache[set_id]
    ls = catalog.sets[set_id]
    names = dict(ls.names())
    if ls.dictionary:
        try:
            with source_engine(ls.dictionary["connection"]).connect() as conn:
                for code, name in conn.execute(text(ls.dictionary["query"])):
                    k = normalise_value(code)
                    if k and k not in names and name:
                        names[k] = str(name)
        except Exception as exc:  # noqa: BLE001 - a dictionary is a convenience; the report goes on without it
            logging.getLogger(__name__).warning("本地码表 %s 的字典查询失败: %s", set_id, exc)
    cache[set_id] = names
    return names


def column_gaps(catalog: Catalog, spec: TableSpec, column: Column, freqs: dict[str | None, int],
                names_cache: dict, with_candidates: bool = True) -> tuple[list[GapEntry], ColumnCoverage]:
    res = catalog.resolver(column, spec.table)
    values = list(freqs)
    _, states = res.resolve(values)
    set_id = res.local.id if res.local else None
    status_of = {r.local_code: r.status for r in res.local.rows} if res.local else {}
    names = _dictionary_names(catalog, set_id, names_cache)
    entries: list[GapEntry] = []
    rows = mapped = distinct = 0
    for v, st in zip(values, states):
        n = freqs[v]
        if st == EMPTY:
            continue
        rows += n
        distinct += 1
        if st == MAPPED:
            mapped += n
            continue
        status = status_of.get(v, "missing")
        if status == "ignored":  # decided: deliberately not mapped; counted in coverage, not a gap
            continue
        name = names.get(v, "")
        cands = NameMatcher.for_domain(res.domain).candidates(name, v) if with_candidates else []
        entries.append(GapEntry(spec.table, column.name, column.label, set_id, res.domain.id, v, name, n, status,
                                res.policy, cands))
    cov = ColumnCoverage(spec.table, column.name, column.label, set_id, res.domain.id, rows, mapped, distinct,
                         len(entries))
    entries.sort(key=lambda e: (-e.frequency, e.local_code))
    return entries, cov


RECOGNITION = "recognition"     # the report's "table" of the orders the 互认 reminder could not map


def compute_gaps(catalog: Catalog, specs: SpecSet, table: str | None = None,
                 with_candidates: bool = True) -> GapReport:
    """Gap report over every coded column fed by a source column (`from:`), or one table's. The orders
    the 互认 reminder could not map (table `recognition`) are added by `recognition.gaps.add_recognition_gaps`
    (mapping knows nothing of the reminder: it sits below it)."""
    local_now = hospital_now(specs.defaults.timezone)
    report = GapReport(catalog.hospital.hospital, local_now, timezone=specs.defaults.timezone)
    chosen = ([] if table == RECOGNITION else [specs.get(table)]) if table else [specs.specs[t] for t in sorted(specs.specs)]
    names_cache: dict = {}
    for spec in chosen:
        coded = [c for c in spec.columns if c.codes is not None and c.source]
        if not coded:
            continue
        try:
            engine = source_engine(spec.source.connection)
            sql = specs.query_text(spec)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other tables
            report.problems.append(f"{spec.table}: 无法连接数据源 {spec.source.connection}: {exc}")
            continue
        for col in coded:
            try:
                freqs = source_frequencies(engine, sql, col.source)
            except Exception as exc:  # noqa: BLE001
                report.problems.append(f"{spec.table}.{col.name}: 源查询失败（{col.source}）: "
                                       f"{str(exc).splitlines()[0]}")
                continue
            try:
                entries, cov = column_gaps(catalog, spec, col, freqs, names_cache, with_candidates)
            except MappingConfigError as exc:
                report.problems.append(f"{spec.table}.{col.name}: {exc}")
                continue
            report.entries.extend(entries)
            report.coverage.append(cov)
    return report


# ---------------------------------------------------------------- snapshots in the ops schema


def store_snapshot(report: GapReport, engine: Engine, schema: str) -> int:
    """Write the report's gaps (and a coverage row per column without gaps) into ops.mapping_gap."""
    ops = ensure_ops(engine, schema)
    table = ops.table("mapping_gap")
    cov = {(c.table, c.column): c.coverage for c in report.coverage}
    rows = [{"snapshot_at": report.created_at, "hospital": report.hospital, "table_id": e.table,
             "column_name": e.column, "local_set": e.set_id, "domain": e.domain, "local_code": e.local_code,
             "local_name": e.local_name, "frequency": e.frequency, "status": e.status,
             "coverage": cov.get((e.table, e.column))} for e in report.entries]
    with_gaps = {(e.table, e.column) for e in report.entries}
    rows += [{"snapshot_at": report.created_at, "hospital": report.hospital, "table_id": c.table,
              "column_name": c.column, "local_set": c.set_id, "domain": c.domain, "local_code": None,
              "local_name": None, "frequency": 0, "status": None, "coverage": c.coverage}
             for c in report.coverage if (c.table, c.column) not in with_gaps]
    if rows:
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
    return len(rows)

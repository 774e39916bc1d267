"""The zero-row probe: before a batch writes anything, ask the source which columns its query returns.

A spec names source columns in `columns[i].from`, `source.void.column`, `source.watermark.column`
and `source.watermark.fallback`. A name the query does not return would otherwise surface as a KeyError
in the middle of a transfer (after the staging table was created), or not at all for a window
with no rows. The probe runs the table's statement with an empty window inside
`SELECT * FROM (…) WHERE 1 = 0`, reads the column names from the cursor, and reports every missing
name the way `hipbridge spec check` does: `file:line: key: problem (got value)`. A query the
source rejects (syntax error, unknown table, no privilege) is reported naming its SQL file.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from hipbridge.io.extract import probe_columns
from hipbridge.spec import SpecLoadError, SpecSet, TableSpec

from .failures import DeterministicError, is_deterministic, source_query_error, sql_origin


class SourceColumnsMissing(SpecLoadError, DeterministicError):
    """The spec names source columns the query does not return; nothing was written."""

    def __init__(self, errors):
        self.errors = errors
        Exception.__init__(self, "the source query does not return columns the spec names "
                                 "(nothing was written):\n" + "\n".join(f"  {e}" for e in errors))


def missing_columns(specs: SpecSet, spec: TableSpec, returned: list[str]) -> list:
    """SpecErrors for every source column the spec names that is not among `returned` (case-insensitive)."""
    have = {str(c).lower() for c in returned}
    origin = sql_origin(specs, spec)
    shown = ", ".join(str(c) for c in returned) or "no columns"
    wanted = [(("columns", i, "from"), c.source) for i, c in enumerate(spec.columns) if c.source is not None]
    if spec.source.void is not None:
        wanted.append((("source", "void", "column"), spec.source.void.column))
    if spec.source.watermark is not None:
        wanted.append((("source", "watermark", "column"), spec.source.watermark.column))
        if spec.source.watermark.fallback:
            wanted.append((("source", "watermark", "fallback"), spec.source.watermark.fallback))
    return [specs.error_at(spec.table, loc, f"the source query ({origin}) returns no column {name!r} "
                           f"(it returns: {shown})", name)
            for loc, name in wanted if name.lower() not in have]


def probe_source(specs: SpecSet, spec: TableSpec, engine: Engine, sql: str) -> list[str]:
    """The query's columns; SourceColumnsMissing or SourceQueryError (naming the SQL file) when they do not fit."""
    try:
        returned = probe_columns(engine, sql)
    except Exception as exc:
        if is_deterministic(exc):
            raise source_query_error(specs, spec, exc) from exc
        raise
    errors = missing_columns(specs, spec, returned)
    if errors:
        raise SourceColumnsMissing(errors)
    return returned

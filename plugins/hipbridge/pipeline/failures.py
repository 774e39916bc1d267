"""Which failures are worth retrying: an outage comes back, a mistake does not.

A source or front-end that went away (connection refused, lost, timed out, a deadlock) is retried
with back-off, by `pipeline.retry.with_retries` and then by Airflow's task retries. A mistake —
the SQL has a syntax error, names a column or table that does not exist, the account may not
read it, the spec names a column the query does not return, a spec file is invalid — fails the
same way on every attempt, so retrying it only delays the message and, with `max_active_runs=1`,
blocks the table's next runs. `is_deterministic` recognises these; the DAG tasks turn them into
`AirflowFailException` (fail at once, no retry) and the pipeline never retries them.

Drivers do not agree on exception classes (PyMySQL raises OperationalError for an unknown column,
sqlite3 for a syntax error), so the decision reads the server's error code where there is one
and the message otherwise (connectorx raises RuntimeError with the server's text).
"""

from __future__ import annotations

import re
from pathlib import Path

from hipbridge.spec import SpecLoadError

# MySQL / MariaDB error numbers: access denied (1044, 1045, 1142, 1143, 1227, 1370, 1698), syntax (1064,
# 1149), unknown column / table / function (1054, 1146, 1109, 1305), ambiguous column (1052)
MYSQL_DETERMINISTIC = {1044, 1045, 1052, 1054, 1064, 1109, 1142, 1143, 1146, 1149, 1227, 1305, 1370, 1698}
# PostgreSQL SQLSTATE classes: 42 syntax error or access rule violation, 28 invalid authorization
POSTGRES_DETERMINISTIC_CLASSES = ("42", "28")
# Oracle ORA- / SQL Server message numbers for the same mistakes
_ORACLE = re.compile(r"\bORA-(00900|00904|00905|00906|00907|00908|00909|00911|00917|00923|00933|00936|00942|"
                     r"01017|01031|01045|00980|06550)\b")
_MSSQL = {102, 156, 207, 208, 229, 230, 4060, 18456}
_TEXT = ("syntax error", "you have an error in your sql syntax", "unknown column", "no such column",
         "no such table", "doesn't exist", "does not exist", "invalid column name", "invalid object name",
         "access denied", "permission denied", "password authentication failed", "login failed",
         "incorrect syntax", "invalid identifier", "insufficient privilege")


class PipelineError(RuntimeError):
    """A batch cannot go on (bad mode or window, rows lost, a batch in the wrong state)."""


class DeterministicError(RuntimeError):
    """A failure that would recur on every retry (a mistake in the spec, the SQL or the account)."""


class SourceQueryError(DeterministicError):
    """The source rejected the table's SQL; the message names the SQL file (or the spec holding it)."""


def _codes(exc: BaseException) -> tuple[int | None, str | None]:
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ()) or ()
    number = args[0] if args and isinstance(args[0], int) else None
    pgcode = getattr(orig, "pgcode", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
    return number, pgcode


def is_deterministic(exc: BaseException) -> bool:
    """True for a failure a retry cannot fix: syntax error, unknown column or table, access denied, a spec mistake."""
    seen = 0
    while exc is not None and seen < 5:  # the pipeline wraps driver errors; look through the chain
        inner = getattr(exc, "exc", None)  # pipeline.retry.SourceFailure
        if isinstance(exc, (DeterministicError, SpecLoadError)):
            return True
        number, pgcode = _codes(exc)
        if number is not None and (number in MYSQL_DETERMINISTIC or number in _MSSQL):
            return True
        if pgcode and str(pgcode)[:2] in POSTGRES_DETERMINISTIC_CLASSES:
            return True
        text = str(exc).lower()
        if _ORACLE.search(str(exc)) or any(t in text for t in _TEXT):
            return True
        exc = inner if isinstance(inner, BaseException) else exc.__cause__
        seen += 1
    return False


def sql_origin(specs, spec) -> str:
    """Where the table's SQL is written: the .sql file, or `<spec>.yaml: source.query` for inline SQL."""
    if spec.source.query_is_file:
        return str(Path(specs.directory) / spec.source.query.strip())
    path = specs.paths.get(spec.table) if hasattr(specs, "paths") else None
    return f"{path or spec.table + '.yaml'}: source.query"


def source_query_error(specs, spec, exc: BaseException) -> SourceQueryError:
    """The driver's message, prefixed with the SQL file it came from."""
    inner = getattr(exc, "orig", None) or exc
    first = str(inner).strip().splitlines()[0][:800] if str(inner).strip() else type(inner).__name__
    return SourceQueryError(f"{sql_origin(specs, spec)}: the source ({spec.source.connection}) rejected the "
                            f"query: {type(inner).__name__}: {first}")

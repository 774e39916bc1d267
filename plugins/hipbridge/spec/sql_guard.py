"""Source queries are read-only: a spec's SQL must be exactly one SELECT.

The SQL is parsed with sqlglot in the source's dialect (Oracle, SQL Server, MySQL/MariaDB,
PostgreSQL, SQLite). Accepted: one statement whose root is a SELECT or a set operation of SELECTs
(UNION / INTERSECT / EXCEPT, CTEs allowed). Refused, with the line: more than one statement, any
DDL or DML (CREATE … AS SELECT, INSERT, UPDATE, DELETE, MERGE, DROP, ALTER, TRUNCATE, GRANT …),
SELECT … INTO (creates a table on SQL Server / PostgreSQL), SELECT … FOR UPDATE (locks the HIS's
rows), DML inside a CTE, procedure calls and anything sqlglot cannot parse as a query.

`hipbridge spec check` runs it (`spec_query_errors`) with the dialect of the connection when its URL
is known from the environment or `connections.yaml`, else under every supported dialect (a statement
any of them reads as a write is refused). The extract runs it again with the engine's own dialect
before anything is sent (`require_read_only`; a text it accepted once is remembered in the hipbridge
home, so later runs skip sqlglot). It is not run while Airflow parses DAG files (sqlglot
costs about 0.6 s to import). It is a guard against mistakes and smuggled statements, not a sandbox:
connect to the sources with read-only database accounts (README).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from hipbridge.settings import settings

from .load import SpecError, _line_of

# sqlglot (about 0.6 s) is imported by the checks that parse, never while DAG files or the CLI parser load.

# SQLAlchemy dialect name → sqlglot dialect
DIALECTS: dict[str, str] = {"oracle": "oracle", "mssql": "tsql", "mysql": "mysql", "mariadb": "mysql",
                            "postgresql": "postgres", "sqlite": "sqlite"}


class ReadOnlyQueryError(ValueError):
    """A source query that is not one read-only SELECT; deterministic: rerunning cannot help."""


@dataclass(frozen=True)
class SqlProblem:
    line: int            # 1-based line in the SQL text
    message: str
    snippet: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message} (got {self.snippet!r})"


def _forbidden() -> tuple[type, ...]:
    from sqlglot import exp

    names = ["Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterTable", "TruncateTable",
             "Command", "Execute", "Into", "Lock", "Grant", "Revoke", "Copy", "LoadData", "Use", "Set", "Pragma",
             "Transaction", "Commit", "Rollback", "Analyze", "Refresh", "Cache", "Uncache", "Comment"]
    return tuple(getattr(exp, n) for n in names if isinstance(getattr(exp, n, None), type))


def _keyword(node: Any) -> str:
    name = type(node).__name__
    return {"Into": "SELECT … INTO", "Lock": "SELECT … FOR UPDATE / SHARE", "Command": "a statement sqlglot "
            "cannot read as a query", "Execute": "EXECUTE", "Create": "CREATE", "TruncateTable": "TRUNCATE",
            "AlterTable": "ALTER"}.get(name, name.upper())


def _snippet(text: str, limit: int = 60) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


@lru_cache(maxsize=512)
def check_sql(sql: str, dialect: str | None) -> tuple[SqlProblem, ...]:
    """Problems of `sql` as a source query in sqlglot `dialect` (None: the generic dialect)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.errors import ParseError, TokenError
    from sqlglot.tokens import TokenType

    logging.getLogger("sqlglot").setLevel(logging.ERROR)   # "falling back to Command" is our error, not a log line
    d = Dialect.get_or_raise(dialect)
    lines = sql.splitlines() or [""]

    def line_text(n: int) -> str:
        return _snippet(lines[n - 1]) if 0 < n <= len(lines) else ""

    try:
        tokens = d.tokenize(sql)
    except TokenError as exc:
        return (SqlProblem(1, f"SQL cannot be read ({_snippet(str(exc), 100)})", line_text(1)),)
    groups: list[list[Any]] = [[]]
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            groups.append([])
        else:
            groups[-1].append(tok)
    groups = [g for g in groups if g]
    if not groups:
        return (SqlProblem(1, "the query is empty", ""),)
    if len(groups) > 1:
        line = groups[1][0].line
        return (SqlProblem(line, f"only one statement may reach a source; found {len(groups)} "
                                 "(a second statement starts here)", line_text(line)),)
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        info = (exc.errors or [{}])[0]
        line = int(info.get("line") or 1)
        return (SqlProblem(line, f"not a query sqlglot can read as {dialect or 'SQL'} "
                                 f"({_snippet(str(info.get('description') or exc), 80)})", line_text(line)),)
    if len(statements) != 1:
        return (SqlProblem(1, "only one SELECT may reach a source", line_text(1)),)
    root = statements[0]
    forbidden = _forbidden()
    bad = next((n for n in root.walk() if isinstance(n, forbidden)), None)
    if bad is None and not isinstance(root, (exp.Select, exp.SetOperation, exp.Subquery)):
        bad = root
    if bad is not None:
        kw = _keyword(bad)
        line = next((t.line for t in groups[0] if t.text.upper() in (kw.split()[-1], type(bad).__name__.upper(),
                                                                    "INTO", "FOR")), groups[0][0].line)
        return (SqlProblem(line, f"source queries are read-only: one SELECT, found {kw}", line_text(line)),)
    return ()


def require_read_only(sql: str, sqlalchemy_dialect: str, where: str = "source query") -> None:
    """Raise ReadOnlyQueryError unless `sql` is one read-only SELECT in the engine's dialect.

    A query accepted once is remembered in the hipbridge home (`accepted_path`), so the next run of
    the same table does not import and run sqlglot again (about 0.4 s of CPU per transfer, measured
    in issue 14). Only acceptances are remembered, keyed by the exact text, the dialect, sqlglot's
    version and this module's own source: any change is checked again, and a refusal is recomputed
    (and raised) every time. Whoever can write the home can already change its `connections.yaml`
    and keys, so the record grants nothing new.
    """
    dialect = DIALECTS.get(sqlalchemy_dialect)
    remembered = accepted_path(sql, dialect)
    if remembered is not None and remembered.exists():
        return
    problems = check_sql(sql, dialect)
    if problems:
        raise ReadOnlyQueryError(f"{where}: refused, nothing was sent to the source: {problems[0]}")
    if remembered is not None:
        try:
            remembered.parent.mkdir(parents=True, exist_ok=True)
            remembered.touch()
        except OSError:   # a read-only home: the check simply runs again next time
            logging.getLogger(__name__).debug("could not record the accepted source query at %s", remembered)


def accepted_path(sql: str, dialect: str | None) -> Path | None:
    """Where the acceptance of `sql` in `dialect` is recorded (None: sqlglot's version is unknown)."""
    try:
        version = metadata.version("sqlglot")
    except metadata.PackageNotFoundError:
        return None
    digest = hashlib.sha256()
    for part in (version, dialect or "", Path(__file__).read_text(encoding="utf-8"), sql):
        digest.update(part.encode("utf-8") + b"\0")
    return settings().home / "sql_guard" / "accepted" / digest.hexdigest()


def _known_dialect(conn_id: str, url_of: Callable[[str], str | None] | None) -> str | None:
    """The connection's sqlglot dialect when its URL is known (`url_of`, else the environment)."""
    try:
        url = url_of(conn_id) if url_of else settings().source_url(conn_id)
    except Exception:  # noqa: BLE001 - an unreadable registry is reported where it is used
        url = None
    if not url:
        return None
    try:
        return DIALECTS.get(make_url(url).get_backend_name())
    except Exception:  # noqa: BLE001 - a malformed URL: check under every dialect
        return None


def spec_query_errors(specs, url_of: Callable[[str], str | None] | None = None) -> dict:
    """Table id → SpecError (file:line) for every spec whose SQL is not one read-only SELECT.

    url_of: a connection id's URL where it is known without Airflow (`io.engines.known_connection_url`:
    the environment, then `connections.yaml`); by default the environment only. This layer does not
    resolve connections itself (`io` sits above `spec`).
    """
    out = {}
    for table, spec in sorted(specs.specs.items()):
        src = spec.source
        sql = specs.query_text(spec)
        known = _known_dialect(src.connection, url_of)
        dialects = [known] if known else sorted(set(DIALECTS.values()))
        found: list[tuple[str, SqlProblem]] = []
        for d in dialects:
            problems = check_sql(sql, d)
            if not problems:
                continue
            found.append((d, problems[0]))
        parse_only = all("cannot read" in p.message or "not a query" in p.message for _, p in found)
        if not found or (not known and parse_only and len(found) < len(dialects)):
            continue   # some dialect reads it as one SELECT and none reads a write into it
        d, p = next(((d, p) for d, p in found if not ("cannot read" in p.message or "not a query" in p.message)),
                    found[0])
        shown = f" [{d}]" if not known else ""
        yaml_path = specs.paths.get(table)
        if src.query_is_file:
            file = str(Path(specs.directory) / src.query.strip())
            line = p.line
        else:
            file = str(yaml_path)
            base = _line_of(yaml_path.read_text(encoding="utf-8"), ("source", "query")) if yaml_path else None
            line = (base or 0) + (p.line if base and "\n" in src.query.strip() else 0) or p.line
        out[table] = SpecError(file, line, "source.query", p.message + shown, p.snippet)
    return out

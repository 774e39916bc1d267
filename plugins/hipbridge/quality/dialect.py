"""The few SQL spellings that differ per dialect: character length, regex match, seconds between times.

Length rules count CHARACTERS (varchar(n) in the standard limits characters): MariaDB
`CHAR_LENGTH`, PostgreSQL `char_length`, SQLite `length` on text. SQLite has no REGEXP
operator; `prepare_connection()` registers one on the connection the checks use.
"""

from __future__ import annotations

import re
from functools import lru_cache

from sqlalchemy.engine import Connection, Dialect


class SqlDialect:
    def __init__(self, dialect: Dialect):
        self.name = "mysql" if dialect.name in ("mysql", "mariadb") else dialect.name
        self._prep = dialect.identifier_preparer

    def q(self, ident: str) -> str:
        return self._prep.quote(ident)

    def table(self, name: str, schema: str | None = None) -> str:
        return f"{self.q(schema)}.{self.q(name)}" if schema else self.q(name)

    def char_length(self, expr: str) -> str:
        return {"mysql": f"CHAR_LENGTH({expr})", "postgresql": f"char_length({expr})"}.get(
            self.name, f"length({expr})")

    def regexp(self, expr: str, param: str) -> str:
        """`expr` matches the pattern bound to :param (cast to text so dates/numbers work too)."""
        if self.name == "postgresql":
            return f"(CAST({expr} AS TEXT) ~ :{param})"
        if self.name == "mysql":
            return f"(CAST({expr} AS CHAR) REGEXP :{param})"
        return f"(CAST({expr} AS TEXT) REGEXP :{param})"

    def seconds_between(self, earlier: str, later: str) -> str:
        if self.name == "mysql":
            return f"TIMESTAMPDIFF(SECOND, {earlier}, {later})"
        if self.name == "postgresql":
            return f"EXTRACT(EPOCH FROM (CAST({later} AS TIMESTAMP) - CAST({earlier} AS TIMESTAMP)))"
        return f"((julianday({later}) - julianday({earlier})) * 86400.0)"

    def day(self, expr: str) -> str:
        """The calendar date of a timestamp (GROUP BY day)."""
        return {"mysql": f"DATE({expr})", "postgresql": f"CAST({expr} AS DATE)"}.get(self.name, f"date({expr})")

    def trim_lower(self, expr: str, cast: bool = True) -> str:
        """Normalised text for placeholder checks; `cast=False` for columns that are text already."""
        if not cast:
            return f"LOWER(TRIM({expr}))"
        return f"LOWER(TRIM(CAST({expr} AS {'CHAR' if self.name == 'mysql' else 'TEXT'})))"


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _sqlite_regexp(pattern: str | None, value) -> int | None:
    if pattern is None or value is None:
        return None
    return 1 if _compiled(pattern).search(str(value)) else 0


def prepare_connection(conn: Connection) -> None:
    """Register REGEXP on SQLite connections (a no-op elsewhere)."""
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.driver_connection
    raw.create_function("REGEXP", 2, _sqlite_regexp, deterministic=True)

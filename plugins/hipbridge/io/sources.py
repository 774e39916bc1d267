"""The source database's dialect: one class per kind of HIS/LIS/PACS database, holding what differs.

Sources are read, never written: what differs between MySQL/MariaDB, PostgreSQL, SQL Server, Oracle
and SQLite is how a window bound is spelled in SQL text (connectorx takes no bind parameters) or
bound (SQLite keeps timestamps as text), whether connectorx's fast read is used, what a driver
needs before a streaming read, whether the database has a date type to check the watermark
column against, how `hipbridge doctor` pings it and reads its clock, and how an Airflow
Connection of its type becomes an SQLAlchemy URL. Code that reads a source asks
`source_dialect(engine)` (or a URL, SQLAlchemy dialect or dialect name) instead of testing
`dialect.name`; a new source database is one new subclass of `SourceDialect`, registered in
`_CLASSES`. The front-end database has its own object (`dialects.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.engine import URL, Dialect, Engine, make_url

_TS = "%Y-%m-%d %H:%M:%S"


class SourceDialect:
    """What every source does the same way; subclasses override what differs.

    The defaults (also used for a database no subclass names): window bounds as quoted
    'YYYY-MM-DD HH:MM:SS' text, datetimes bound as parameters, a streaming read through the
    driver, `SELECT 1` as the ping and no clock query.
    """

    name: ClassVar[str] = ""                    # SQLAlchemy's dialect name
    backends: ClassVar[tuple[str, ...]] = ()    # SQLAlchemy backend names that are this dialect
    airflow_conn_types: ClassVar[tuple[str, ...]] = ()  # Airflow Connection types that are this dialect
    driver: ClassVar[str] = ""                  # SQLAlchemy 2 dialect+driver for such a Connection
    # connectorx URL scheme of the fast read, and whether it is used only with HIPBRIDGE_FAST_READ=all
    fast_read_scheme: ClassVar[str | None] = None
    fast_read_opt_in: ClassVar[bool] = False
    has_date_type: ClassVar[bool] = True        # a text watermark column can be told from a date one
    ping_sql: ClassVar[str] = "SELECT 1"
    # (UTC now, the server's local now), for doctor's clock and time-zone checks; None: no server clock
    clock_sql: ClassVar[str | None] = None

    def timestamp_literal(self, value: datetime) -> str:
        """A window bound written into SQL text. The value is always a datetime we computed, never
        user text, so this is not an injection path."""
        return f"'{value.strftime(_TS)}'"

    def bind_window(self, start: datetime, end: datetime) -> dict[str, Any]:
        """The :window_start / :window_end parameters of a streamed read."""
        return {"window_start": start, "window_end": end}

    def prepare_stream(self) -> None:
        """Driver settings a streaming read needs (called before each one)."""

    def fast_read_url(self, url: URL, mode: str) -> str | None:
        """connectorx's URL for this source, or None where the read streams through the driver.

        `mode` is HIPBRIDGE_FAST_READ: `0`/`off` never, `all` also for the opt-in dialects.
        """
        scheme = self.fast_read_scheme
        if scheme is None or mode in ("0", "false", "no", "off") or (self.fast_read_opt_in and mode != "all"):
            return None
        u = make_url(url.render_as_string(hide_password=False)).set(drivername=scheme)
        return u.set(query=self.fast_read_query(u.query)).render_as_string(hide_password=False)

    def fast_read_query(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """The URL query parameters connectorx is given (driver options of SQLAlchemy's URL are not its own)."""
        return {}

    def airflow_url(self, conn: Any) -> str:
        """An Airflow Connection of this dialect's type as an SQLAlchemy URL."""
        database, query = self.airflow_database(conn.schema or None, dict(conn.extra_dejson or {}))
        return URL.create(self.driver, username=conn.login or None, password=conn.password or None,
                          host=conn.host or None, port=conn.port or None, database=database,
                          query=query).render_as_string(hide_password=False)

    def airflow_database(self, schema: str | None, extra: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
        """The URL's database and query from a Connection's `schema` and `extra`."""
        return schema, {}


class MySQLSource(SourceDialect):
    """MySQL and MariaDB (PyMySQL); connectorx reads them natively."""

    name = "mysql"
    backends = ("mysql", "mariadb")
    airflow_conn_types = ("mysql", "mariadb")
    driver = "mysql+pymysql"
    fast_read_scheme = "mysql"
    clock_sql = "SELECT UTC_TIMESTAMP(6), NOW(6)"

    def airflow_database(self, schema, extra):
        return schema, {"charset": str(extra.get("charset", "utf8mb4"))}


class PostgresSource(SourceDialect):
    """PostgreSQL (psycopg2); connectorx reads it with its binary protocol."""

    name = "postgresql"
    backends = ("postgresql",)
    airflow_conn_types = ("postgres", "postgresql")
    driver = "postgresql+psycopg2"
    fast_read_scheme = "postgresql"
    clock_sql = "SELECT (now() AT TIME ZONE 'UTC'), LOCALTIMESTAMP"

    def fast_read_query(self, query):
        return {**{k: v for k, v in query.items() if k == "sslmode"}, "cxprotocol": "binary"}


class SqlServerSource(SourceDialect):
    """SQL Server (pymssql). connectorx's tiberius needs no client library, but is only used with
    HIPBRIDGE_FAST_READ=all (not tried against a hospital's server yet)."""

    name = "mssql"
    backends = ("mssql",)
    airflow_conn_types = ("mssql",)
    driver = "mssql+pymssql"
    fast_read_scheme = "mssql"
    fast_read_opt_in = True
    clock_sql = "SELECT SYSUTCDATETIME(), SYSDATETIME()"

    def timestamp_literal(self, value: datetime) -> str:
        return f"CONVERT(DATETIME2, '{value.strftime(_TS)}', 120)"


class OracleSource(SourceDialect):
    """Oracle (python-oracledb thin mode: no client library). connectorx would need the Oracle client,
    so reads stream through the driver."""

    name = "oracle"
    backends = ("oracle",)
    airflow_conn_types = ("oracle",)
    driver = "oracle+oracledb"
    ping_sql = "SELECT 1 FROM DUAL"
    clock_sql = "SELECT SYS_EXTRACT_UTC(SYSTIMESTAMP), CAST(SYSTIMESTAMP AS TIMESTAMP) FROM DUAL"

    def timestamp_literal(self, value: datetime) -> str:
        return f"TIMESTAMP '{value.strftime(_TS)}'"

    def prepare_stream(self) -> None:
        """CLOBs as str (not LOB handles), NUMBER as Decimal (money stays exact)."""
        import oracledb  # the driver of this dialect only: imported when an Oracle source is read

        oracledb.defaults.fetch_lobs = False
        oracledb.defaults.fetch_decimals = True

    def airflow_database(self, schema, extra):
        # Airflow's Oracle connection keeps the service name (or SID) in extra; `schema` is the owner.
        if extra.get("service_name"):
            return None, {"service_name": str(extra["service_name"])}
        if extra.get("sid"):
            return str(extra["sid"]), {}
        return schema, {}


class SQLiteSource(SourceDialect):
    """SQLite (the demo hospital's sources): a file on this machine with this machine's clock.

    It stores local timestamps as 'YYYY-MM-DD HH:MM:SS' text and has no date type, so windows are
    compared as text in that form and the watermark column's type cannot be checked."""

    name = "sqlite"
    backends = ("sqlite",)
    airflow_conn_types = ("sqlite",)
    driver = "sqlite"
    has_date_type = False

    def bind_window(self, start: datetime, end: datetime) -> dict[str, Any]:
        return {"window_start": start.strftime(_TS), "window_end": end.strftime(_TS)}

    def airflow_url(self, conn: Any) -> str:
        return f"sqlite:///{conn.host or conn.schema}"


_CLASSES: tuple[type[SourceDialect], ...] = (MySQLSource, PostgresSource, SqlServerSource, OracleSource,
                                             SQLiteSource)
_BY_BACKEND = {b: cls() for cls in _CLASSES for b in cls.backends}
_BY_AIRFLOW_TYPE = {t: _BY_BACKEND[cls.backends[0]] for cls in _CLASSES for t in cls.airflow_conn_types}
_GENERIC = SourceDialect()


def source_dialect(of: Engine | Dialect | URL | str) -> SourceDialect:
    """The source dialect of an engine, SQLAlchemy dialect, URL or dialect/backend name.

    A database no class names gets the generic behaviour (streaming reads, quoted text bounds).
    """
    if isinstance(of, Engine):
        name = of.dialect.name
    elif isinstance(of, Dialect):
        name = of.name
    elif isinstance(of, URL):
        name = of.get_backend_name()
    else:
        name = make_url(of).get_backend_name() if "://" in of else of
    return _BY_BACKEND.get(name, _GENERIC)


def airflow_conn_types() -> list[str]:
    return sorted(_BY_AIRFLOW_TYPE)


def for_airflow_conn_type(conn_type: str) -> SourceDialect | None:
    """The dialect of an Airflow Connection type (`postgres`, `mssql`, …), or None for one we do not read."""
    return _BY_AIRFLOW_TYPE.get(conn_type.lower())

"""The front-end database's dialect: one class per kind of database, holding everything that differs.

MariaDB/MySQL, PostgreSQL and SQLite differ in how a batch is bulk-loaded (LOAD DATA LOCAL
INFILE, COPY, executemany), how its staging table is built, how an upsert is spelled, which lock
marks a running transfer, how the operations schema is created, and a few spellings the quality
rules use. Code that talks to the front-end asks `frontend_dialect(engine)` (or `dialect_class(name)`
where only a dialect name is at hand) instead of testing `dialect.name`; a new front-end database is
one new subclass of `FrontendDialect`, registered in `_CLASSES`. Sources (read, never written) have
their own dialect objects in `sources.py`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import String, Table, Text, text
from sqlalchemy.dialects.mysql import VARCHAR as MYSQL_VARCHAR
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.types import TypeEngine

from hipbridge.settings import settings

from .bulktext import (
    MYSQL_LOAD_FORMAT,
    POSTGRES_COPY_FORMAT,
    bulk_text,
    frame_records,
    write_bulk_text,
)
from .engines import home
from .spool import spool_dir, spool_prefix

if TYPE_CHECKING:
    import pandas as pd

    from hipbridge.spec import ColumnType


class BulkLoadError(RuntimeError):
    pass


def bulk_load_enabled() -> bool:
    """`HIPBRIDGE_BULK_LOAD=0` forces the generic insert (for comparison and diagnosis)."""
    return settings().bulk_load


def _lock_name(batch_id: str) -> str:
    return "hb_xfer_" + hashlib.sha1(batch_id.encode()).hexdigest()[:40]


class FrontendDialect:
    """What every front-end database does the same way; subclasses override what differs.

    The defaults: a staging table with an index on the key, a `hb_changed` table of changed keys
    for publish, `INSERT … ON CONFLICT … DO UPDATE` upserts, executemany instead of a bulk loader,
    no transfer lock, and SQLite's spellings for the quality rules.
    """

    name: ClassVar[str] = ""                 # mysql (also MariaDB), postgresql, sqlite
    heap_staging: ClassVar[bool] = False     # staging without index, 修改标志 written in place (see staging.py)
    constants_as_defaults: ClassVar[bool] = True  # per-batch constants become column defaults (staging.py)
    has_bulk_loader: ClassVar[bool] = False  # a loader a background thread can feed (LOAD DATA, COPY)
    parallel_gate: ClassVar[bool] = False    # the gate may scan the staging table in two halves at once
    server_wide_catalog: ClassVar[bool] = False  # information_schema lists every database on the server
    had_server_wide_ops: ClassVar[bool] = False  # an earlier version kept one operations schema per server (ops.py)
    gx_data_source: ClassVar[str] = "sql"     # Great Expectations' `data_sources.add_<this>` (quality/gx.py)
    builtin_regexp: ClassVar[bool] = True     # REGEXP works on any connection (SQLite: only on ours, see prepare_connection)
    attaches_schemas: ClassVar[bool] = False  # a schema is a file the engine attaches (SQLite, engines._attach_ops)

    def __init__(self, dialect: Dialect):
        self.sa_dialect = dialect
        self._prep = dialect.identifier_preparer

    # ---------------------------------------------------------------- identifiers

    def q(self, ident: str) -> str:
        return self._prep.quote(ident)

    def table(self, name: str, schema: str | None = None) -> str:
        return f"{self.q(schema)}.{self.q(name)}" if schema else self.q(name)

    def format_table(self, table: Table) -> str:
        return self._prep.format_table(table)

    # ---------------------------------------------------------------- front-end tables

    @classmethod
    def text_columns(cls, widths: dict[str, int], pk: set[str]) -> set[str]:
        """Which VARCHAR columns (name → length) become TEXT so a row fits: none unless the database limits rows."""
        return set()

    @classmethod
    def key_type(cls, ct: ColumnType) -> TypeEngine | None:
        """A key column's type when it must differ from the column's own type (None: the same)."""
        return None

    def upgrade_table(self, engine: Engine, table: Table) -> list[str]:
        """Bring an existing table of an earlier version up to date beyond its columns; returns what changed."""
        return []

    def add_column_sql(self, table: Table, column) -> str:
        coltype = column.type.compile(dialect=self.sa_dialect)
        return f"ALTER TABLE {self.format_table(table)} ADD COLUMN {self.q(column.name)} {coltype}"

    def widen_column_sql(self, table: Table, column) -> str | None:
        """Give an existing column `column`'s (wider) type, keeping its data; None: nothing to do
        (SQLite does not enforce VARCHAR lengths)."""
        return None

    # ---------------------------------------------------------------- operations schema

    def create_schema(self, conn: Connection, schema: str, *, binary: bool = False) -> None:
        """Create a schema if it is missing (SQLite: the engine attaches a file instead, engines._attach_ops).

        binary: text compares byte for byte by default (MySQL/MariaDB: utf8mb4_bin), as the encrypted
        shared tables want."""

    def identity(self, conn: Connection, engine: Engine) -> tuple[str, str]:
        """(database, server) of the front-end, as the server reports them."""
        db = engine.url.database or ":memory:"
        return os.path.basename(db), f"sqlite@{socket.gethostname()}"

    def schema_exists(self, conn: Connection, schema: str) -> bool:
        return conn.execute(text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                            {"s": schema}).first() is not None

    def move_schema(self, conn: Connection, old: str, new: str, tables: list[str]) -> None:
        """Move an earlier version's operations schema (all its tables) to a new name."""
        raise NotImplementedError(f"{self.name}: the operations schema cannot be moved")

    # ---------------------------------------------------------------- per-batch staging

    @classmethod
    def staging_options(cls) -> dict:
        """Table options of a batch's staging table."""
        return {}

    def sort_staging_sql(self, staging: str, pk: list[str]) -> str | None:
        """A statement that rewrites a heap staging table in key order before publish reads it (None: no need).

        It runs outside publish's transaction (DDL commits on MySQL/MariaDB)."""
        return None

    # ---------------------------------------------------------------- loading a chunk

    @property
    def bulk(self) -> bool:
        """Chunks go through the bulk loader, from a background thread (`load.StagingWriter`)."""
        return self.has_bulk_loader and bulk_load_enabled()

    def stage(self, conn: Connection, staging: Table, frame: pd.DataFrame, cols: list[str],
              date_only: frozenset[str]) -> None:
        """Load a conformed chunk in the caller's transaction (the generic executemany)."""
        conn.execute(staging.insert(), frame_records(frame, cols, date_only))

    def loader_payload(self, frame: pd.DataFrame, cols: list[str], date_only: frozenset[str]):
        """The chunk as the bulk loader takes it, prepared in the caller's thread (Python work)."""
        raise NotImplementedError

    def load_payload(self, conn: Connection, staging: Table, cols: list[str], payload, n: int) -> None:
        """Run the bulk loader on a prepared payload (in the loader thread)."""
        raise NotImplementedError

    def discard_payload(self, payload) -> None:
        """Free what a payload holds outside memory (a spool file)."""

    # ---------------------------------------------------------------- publish

    def drop_temp_table(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS {name}"

    def create_temp_table(self, name: str, pk: list[str], select: str) -> str:
        return f"CREATE TEMPORARY TABLE {name} AS {select}"

    def upsert(self, table: str, cols: list[str], pk: list[str], select_sql: str, changed_at: str) -> str:
        """INSERT … SELECT that updates an existing key; changed_at: the table's source change-time column.

        PostgreSQL and SQLite update only when the incoming row is not older (`DO UPDATE … WHERE`):
        a concurrent publish of the same key that committed after our classification read the
        ledger must still win if it is newer. On MySQL/MariaDB the classification's reads of the
        ledger are locking reads (as in any INSERT/UPDATE … SELECT), so a concurrent publish waits
        or deadlocks and is retried, and classifies against the committed newer row.
        """
        names = ", ".join(self.q(c) for c in cols)
        rest = [c for c in cols if c not in pk]
        sets = ", ".join(f"{self.q(c)} = excluded.{self.q(c)}" for c in rest)
        keys = ", ".join(self.q(k) for k in pk)
        t = self.q(changed_at)
        return (f"INSERT INTO {table} AS hb_t ({names}) {select_sql} ON CONFLICT ({keys}) DO UPDATE SET {sets} "
                f"WHERE hb_t.{t} IS NULL OR excluded.{t} IS NULL OR hb_t.{t} <= excluded.{t}")

    def timestamp_param(self, value):
        """A timestamp as a bound parameter of raw SQL."""
        return value

    # ---------------------------------------------------------------- housekeeping and health

    version_sql: ClassVar[str] = "SELECT 1"  # the server's version (the weekly inspection report)

    def database_sizes(self, conn: Connection, engine: Engine, ops_schema: str) -> list[tuple[str | None, int]]:
        """Bytes on disk of the front-end (None) and the operations schema, for the inspection report."""
        sql = text(self.size_sql)
        return [(None, int(conn.execute(sql, {"schema": self.frontend_schema(engine)}).scalar() or 0)),
                (ops_schema, int(conn.execute(sql, {"schema": ops_schema}).scalar() or 0))]

    size_sql: ClassVar[str] = ""      # bytes of one schema's tables, bound :schema

    def frontend_schema(self, engine: Engine) -> str | None:
        """The schema the front-end tables live in."""
        return engine.url.database

    def delete_limited(self, table: str, where_sql: str, limit: str) -> str:
        """DELETE at most `limit` rows matching `where_sql` (a batch of a long delete, sharing/retention.py)."""
        return f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {where_sql} LIMIT {limit})"

    def drop_schema(self, conn: Connection, schema: str) -> None:
        """Drop a schema and everything in it (SQLite: the attached file stays; its owner removes it)."""

    # ---------------------------------------------------------------- the transfer lock (batch_lock.py)

    @contextlib.contextmanager
    def try_lock(self, engine: Engine, batch_id: str) -> Iterator[bool]:
        """No session locks: behave as if someone held it (never drop another's table)."""
        yield False

    # ---------------------------------------------------------------- SQL spellings of quality rules
    #
    # Length rules count CHARACTERS (varchar(n) in the standard limits characters).

    def char_length(self, expr: str) -> str:
        return f"length({expr})"

    def regexp(self, expr: str, param: str) -> str:
        """`expr` matches the pattern bound to :param (cast to text so dates/numbers work too)."""
        return f"(CAST({expr} AS TEXT) REGEXP :{param})"

    def seconds_between(self, earlier: str, later: str) -> str:
        return f"((julianday({later}) - julianday({earlier})) * 86400.0)"

    def day(self, expr: str) -> str:
        """The calendar date of a timestamp (GROUP BY day)."""
        return f"date({expr})"

    def trim_lower(self, expr: str, cast: bool = True) -> str:
        """Normalised text for placeholder checks; `cast=False` for columns that are text already."""
        if not cast:
            return f"LOWER(TRIM({expr}))"
        return f"LOWER(TRIM(CAST({expr} AS TEXT)))"

    def prepare_connection(self, conn: Connection) -> None:
        """Make a connection ready for the quality checks (SQLite: register REGEXP)."""

    def escape_literal_text(self, value: str) -> str:
        """A string literal's body once its quotes are doubled (MySQL also reads backslashes)."""
        return value

    def hot_engine_options(self, read_only: bool) -> dict | None:
        """Engine options for the per-request path of the display service (None: keep the engine as it is)."""
        return None


class MySQL(FrontendDialect):
    """MySQL and MariaDB: LOAD DATA LOCAL INFILE from a spool file, heap staging, utf8mb4 with binary keys."""

    name = "mysql"
    heap_staging = True
    has_bulk_loader = True
    parallel_gate = True
    server_wide_catalog = True
    had_server_wide_ops = True
    # MariaDB/InnoDB rows may hold at most 65,535 bytes of VARCHAR (utf8mb4: 4 bytes a character).
    ROW_BUDGET = 60_000
    # Keys are compared exactly, whatever the database's default collation: on a case- or
    # accent-insensitive collation `pcase1` and `PCASE1` would be one row. utf8mb4 everywhere, so a
    # character outside the BMP (common in Chinese names: 𠀀) fits a front-end created utf8mb3.
    CHARSET, KEY_COLLATION = "utf8mb4", "utf8mb4_bin"

    @classmethod
    def text_columns(cls, widths: dict[str, int], pk: set[str]) -> set[str]:
        """Which long VARCHARs become TEXT on MySQL so the row fits; lengths stay checked by quality rules."""
        bytes_ = {n: w * 4 for n, w in widths.items()}
        total = sum(bytes_.values())
        out: set[str] = set()
        for name in sorted((n for n in bytes_ if n not in pk), key=lambda n: -bytes_[n]):
            if total <= cls.ROW_BUDGET:
                break
            out.add(name)
            total -= bytes_[name]
        return out

    @classmethod
    def key_type(cls, ct: ColumnType) -> TypeEngine | None:
        """A VARCHAR key with an explicit binary collation."""
        if ct.kind == "varchar":
            return MYSQL_VARCHAR(ct.length, charset=cls.CHARSET, collation=cls.KEY_COLLATION)
        return None

    def upgrade_table(self, engine: Engine, table: Table) -> list[str]:
        """Bring an existing MySQL/MariaDB table to utf8mb4 with binary key columns; returns what changed.

        Tables of an earlier version took the database's defaults (a case-insensitive collation, or
        utf8mb3 where a 4-byte character fails the whole batch). Converting never merges rows: a
        binary collation tells apart more values than any other, and utf8mb4 holds all of utf8mb3.
        """
        schema = table.schema
        with engine.connect() as conn:
            cols = conn.execute(text(
                "SELECT COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t AND CHARACTER_SET_NAME IS NOT NULL"),
                {"s": schema, "t": table.name}).all()
        done: list[str] = []
        stmts: list[str] = []
        full = self.format_table(table)
        if any(cs != self.CHARSET for _, cs, _ in cols):
            stmts.append(f"ALTER TABLE {full} CONVERT TO CHARACTER SET {self.CHARSET}")
            done.append(self.CHARSET)
        keys = {c.name for c in table.primary_key.columns if isinstance(c.type, String) and not isinstance(c.type, Text)}
        bad = sorted(n for n, cs, coll in cols if n in keys and (coll != self.KEY_COLLATION or stmts))
        if bad:
            mods = ", ".join(f"MODIFY {self.q(n)} {table.c[n].type.compile(dialect=engine.dialect)} NOT NULL"
                             + (f" COMMENT {_sql_string(table.c[n].comment)}" if table.c[n].comment else "")
                             for n in bad)
            stmts.append(f"ALTER TABLE {full} {mods}")
            done += [f"{n} {self.KEY_COLLATION}" for n in bad]
        if stmts:
            with engine.begin() as conn:
                for stmt in stmts:
                    conn.execute(text(stmt))
        return done

    def widen_column_sql(self, table: Table, column) -> str | None:
        """MODIFY restates the whole column: nullable, with its comment."""
        sql = (f"ALTER TABLE {self.format_table(table)} MODIFY {self.q(column.name)} "
               f"{column.type.compile(dialect=self.sa_dialect)} NULL")
        return sql + (f" COMMENT {_sql_string(column.comment)}" if column.comment else "")

    def add_column_sql(self, table: Table, column) -> str:
        """New columns carry their comment on MySQL/MariaDB."""
        sql = super().add_column_sql(table, column)
        if column.comment:
            sql += " COMMENT " + self.sa_dialect.statement_compiler(self.sa_dialect, None).render_literal_value(
                column.comment, String())
        return sql

    def create_schema(self, conn: Connection, schema: str, *, binary: bool = False) -> None:
        collate = f" COLLATE {self.KEY_COLLATION}" if binary else ""
        conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{schema}` CHARACTER SET utf8mb4{collate}"))

    def drop_schema(self, conn: Connection, schema: str) -> None:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{schema}`"))

    def delete_limited(self, table: str, where_sql: str, limit: str) -> str:
        return f"DELETE FROM {table} WHERE {where_sql} LIMIT {limit}"

    version_sql = "SELECT VERSION()"
    size_sql = ("SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
                "WHERE table_schema = :schema")

    def identity(self, conn: Connection, engine: Engine) -> tuple[str, str]:
        db, host, port = conn.execute(text("SELECT DATABASE(), @@hostname, @@port")).one()
        return str(db), f"{host}:{port}"

    def schema_exists(self, conn: Connection, schema: str) -> bool:
        return conn.execute(text("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :s"),
                            {"s": schema}).first() is not None

    def move_schema(self, conn: Connection, old: str, new: str, tables: list[str]) -> None:
        prep = self._prep
        conn.execute(text(f"CREATE DATABASE {prep.quote_schema(new)} CHARACTER SET utf8mb4"))
        pairs = ", ".join(f"{prep.quote_schema(old)}.{prep.quote(t)} TO {prep.quote_schema(new)}.{prep.quote(t)}"
                          for t in tables)
        conn.execute(text(f"RENAME TABLE {pairs}"))
        left = conn.execute(text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                            {"s": old}).first()
        if left is None:
            conn.execute(text(f"DROP DATABASE {prep.quote_schema(old)}"))

    @classmethod
    def staging_options(cls) -> dict:
        return {"mysql_charset": "utf8mb4"}

    def stage(self, conn: Connection, staging: Table, frame: pd.DataFrame, cols: list[str],
              date_only: frozenset[str]) -> None:
        if not bulk_load_enabled():
            super().stage(conn, staging, frame, cols, date_only)
            return
        path = self.loader_payload(frame, cols, date_only)
        try:
            self.load_payload(conn, staging, cols, path, len(frame))
        finally:
            os.unlink(path)

    def loader_payload(self, frame: pd.DataFrame, cols: list[str], date_only: frozenset[str]) -> str:
        """A spool file: LOAD DATA LOCAL INFILE reads a file (deleted after its load, see spool.py)."""
        fd, path = tempfile.mkstemp(prefix=spool_prefix(), suffix=".tsv", dir=spool_dir())
        with os.fdopen(fd, "wb") as f:
            write_bulk_text(f, frame, cols, date_only)
        return path

    def load_payload(self, conn: Connection, staging: Table, cols: list[str], payload: str, n: int) -> None:
        names = ", ".join(self.q(c) for c in cols)
        sql = f"LOAD DATA LOCAL INFILE '{payload}' INTO TABLE {self.format_table(staging)} {MYSQL_LOAD_FORMAT} ({names})"
        loaded = conn.exec_driver_sql(sql).rowcount
        # LOAD DATA LOCAL turns conversion errors into warnings: any warning means a value was changed
        problems = [tuple(r) for r in conn.exec_driver_sql("SHOW WARNINGS LIMIT 5") if r[0] != "Note"]
        if problems or loaded != n:
            raise BulkLoadError(f"LOAD DATA into {staging.fullname}: {loaded} of {n} rows loaded; "
                                f"warnings: {problems}")

    def discard_payload(self, payload) -> None:
        if isinstance(payload, str):
            with contextlib.suppress(OSError):
                os.unlink(payload)

    def drop_temp_table(self, name: str) -> str:
        return f"DROP TEMPORARY TABLE IF EXISTS {name}"

    def create_temp_table(self, name: str, pk: list[str], select: str) -> str:
        keys = ", ".join(self.q(k) for k in pk)
        return f"CREATE TEMPORARY TABLE {name} (PRIMARY KEY ({keys})) ENGINE=InnoDB {select}"

    def upsert(self, table: str, cols: list[str], pk: list[str], select_sql: str, changed_at: str) -> str:
        names = ", ".join(self.q(c) for c in cols)
        rest = [c for c in cols if c not in pk]
        sets = ", ".join(f"{self.q(c)} = VALUES({self.q(c)})" for c in rest)
        return f"INSERT INTO {table} ({names}) {select_sql} ON DUPLICATE KEY UPDATE {sets}"

    @contextlib.contextmanager
    def try_lock(self, engine: Engine, batch_id: str) -> Iterator[bool]:
        """`GET_LOCK` (named, per session)."""
        with engine.connect() as conn:
            got = conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": _lock_name(batch_id)}).scalar() == 1
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": _lock_name(batch_id)})
                    conn.commit()

    def char_length(self, expr: str) -> str:
        return f"CHAR_LENGTH({expr})"

    def regexp(self, expr: str, param: str) -> str:
        return f"(CAST({expr} AS CHAR) REGEXP :{param})"

    def seconds_between(self, earlier: str, later: str) -> str:
        return f"TIMESTAMPDIFF(SECOND, {earlier}, {later})"

    def day(self, expr: str) -> str:
        return f"DATE({expr})"

    def trim_lower(self, expr: str, cast: bool = True) -> str:
        if not cast:
            return f"LOWER(TRIM({expr}))"
        return f"LOWER(TRIM(CAST({expr} AS CHAR)))"

    def escape_literal_text(self, value: str) -> str:
        return value.replace("\\", "\\\\")

    def hot_engine_options(self, read_only: bool) -> dict | None:
        """No pre-ping round trip on every checkout; read-only engines autocommit (each read sees the latest
        commit — a revocation — with no BEGIN / ROLLBACK round trips)."""
        # pool_reset_on_return None: a read-only connection autocommits, and the writer (the audit log)
        # uses each connection in `engine.begin()`, which commits or rolls back before giving it back,
        # so the pool's ROLLBACK on return would be one more round trip that undoes nothing
        kw: dict = {"pool_pre_ping": False, "pool_recycle": 300, "pool_size": 20, "max_overflow": 20,
                    "pool_reset_on_return": None, "connect_args": {"local_infile": True}}
        if read_only:
            kw |= {"isolation_level": "AUTOCOMMIT"}
        return kw


class MariaDB(MySQL):
    """MariaDB: staging tables in Aria, not InnoDB.

    A staging table is disposable (a failed or killed batch is restaged from nothing) and needs
    no undo, redo or transaction log. Measured with 300,000 rows: LOAD DATA into keyed Aria with
    REPLACE 7.8 s, into an Aria heap 2.1 s (docs/transfer.md). `HIPBRIDGE_STAGING_ENGINE` other
    than `aria` keeps the server's default engine.
    """

    @classmethod
    def staging_options(cls) -> dict:
        options = super().staging_options()
        if settings().staging_engine == "aria":
            options.update({"mysql_engine": "Aria", "mysql_transactional": "0"})
        return options

    def sort_staging_sql(self, staging: str, pk: list[str]) -> str | None:
        """`ALTER TABLE … ORDER BY` the key: an Aria heap is then read in the order of the ledger's and
        the target's primary key, so publish's key lookups and upserts visit each InnoDB page once,
        in order, instead of once per row in change-time order. When ledger and target do not fit
        in the buffer pool (a million rows here: 117 + 392 MB against 128 MB) every random lookup
        was a page read: the classifying UPDATE of 100,000 rows read 196,000 pages in 28 s; after
        the sort (0.6 s) it read 27,000 in 4.8 s (docs/transfer.md). InnoDB ignores ORDER BY in
        ALTER TABLE, so only Aria staging is sorted."""
        if settings().staging_engine != "aria":
            return None
        return f"ALTER TABLE {staging} ORDER BY {', '.join(self.q(k) for k in pk)}"


class PostgreSQL(FrontendDialect):
    """PostgreSQL: COPY from memory, an advisory lock per transfer."""

    name = "postgresql"
    gx_data_source = "postgres"
    has_bulk_loader = True
    parallel_gate = True
    had_server_wide_ops = True

    def widen_column_sql(self, table: Table, column) -> str | None:
        return (f"ALTER TABLE {self.format_table(table)} ALTER COLUMN {self.q(column.name)} TYPE "
                f"{column.type.compile(dialect=self.sa_dialect)}")

    def create_schema(self, conn: Connection, schema: str, *, binary: bool = False) -> None:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))

    def drop_schema(self, conn: Connection, schema: str) -> None:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    def delete_limited(self, table: str, where_sql: str, limit: str) -> str:
        return f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} WHERE {where_sql} LIMIT {limit})"

    version_sql = "SELECT version()"
    size_sql = ("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relkind = 'r'")

    def frontend_schema(self, engine: Engine) -> str | None:
        return "public"

    def identity(self, conn: Connection, engine: Engine) -> tuple[str, str]:
        db, addr, port = conn.execute(text(
            "SELECT current_database(), host(inet_server_addr()), inet_server_port()")).one()
        return str(db), f"{addr or 'local'}:{port or ''}"

    def move_schema(self, conn: Connection, old: str, new: str, tables: list[str]) -> None:
        conn.execute(text(f"ALTER SCHEMA {self._prep.quote_schema(old)} RENAME TO {self._prep.quote_schema(new)}"))

    def stage(self, conn: Connection, staging: Table, frame: pd.DataFrame, cols: list[str],
              date_only: frozenset[str]) -> None:
        if not bulk_load_enabled():
            super().stage(conn, staging, frame, cols, date_only)
            return
        self.load_payload(conn, staging, cols, self.loader_payload(frame, cols, date_only), len(frame))

    def loader_payload(self, frame: pd.DataFrame, cols: list[str], date_only: frozenset[str]) -> bytes:
        return bulk_text(frame, cols, date_only)

    def load_payload(self, conn: Connection, staging: Table, cols: list[str], payload: bytes, n: int) -> None:
        names = ", ".join(self.q(c) for c in cols)
        cur = conn.connection.driver_connection.cursor()
        try:
            cur.copy_expert(f"COPY {self.format_table(staging)} ({names}) FROM STDIN WITH {POSTGRES_COPY_FORMAT}",
                            io.BytesIO(payload))
        finally:
            cur.close()

    @contextlib.contextmanager
    def try_lock(self, engine: Engine, batch_id: str) -> Iterator[bool]:
        """`pg_try_advisory_lock`."""
        key = int.from_bytes(hashlib.sha1(batch_id.encode()).digest()[:8], "big", signed=True)
        with engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()

    def char_length(self, expr: str) -> str:
        return f"char_length({expr})"

    def regexp(self, expr: str, param: str) -> str:
        return f"(CAST({expr} AS TEXT) ~ :{param})"

    def seconds_between(self, earlier: str, later: str) -> str:
        return f"EXTRACT(EPOCH FROM (CAST({later} AS TIMESTAMP) - CAST({earlier} AS TIMESTAMP)))"

    def day(self, expr: str) -> str:
        return f"CAST({expr} AS DATE)"


class SQLite(FrontendDialect):
    """SQLite, the embedded default: one file per schema (attached), executemany, a file lock."""

    name = "sqlite"
    gx_data_source = "sqlite"
    builtin_regexp = False
    attaches_schemas = True
    constants_as_defaults = False  # SQLite keeps its executemany of every column (its datetime text form is SQLAlchemy's)

    def schema_exists(self, conn: Connection, schema: str) -> bool:
        return True  # attached by the engine (engines._attach_ops)

    def timestamp_param(self, value):
        """SQLite: the province's text form (no microseconds, no `T`)."""
        return value.strftime("%Y-%m-%d %H:%M:%S")

    version_sql = "SELECT sqlite_version()"

    def database_sizes(self, conn: Connection, engine: Engine, ops_schema: str) -> list[tuple[str | None, int]]:
        """Sizes of the front-end file (main) and of every attached file (the operations schema)."""
        files = {row[1]: row[2] for row in conn.execute(text("PRAGMA database_list")) if row[2]}
        return [(None if db == "main" else db, Path(f).stat().st_size) for db, f in files.items()]

    @contextlib.contextmanager
    def try_lock(self, engine: Engine, batch_id: str) -> Iterator[bool]:
        """`flock` on a file in the hipbridge home (SQLite is one host by nature)."""
        folder = home() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{_lock_name(batch_id)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def prepare_connection(self, conn: Connection) -> None:
        """SQLite has no REGEXP operator: register one on the connection the checks use."""
        raw = conn.connection.driver_connection
        raw.create_function("REGEXP", 2, _sqlite_regexp, deterministic=True)


def _sqlite_regexp(pattern: str | None, value) -> int | None:
    if pattern is None or value is None:
        return None
    return 1 if _compiled(pattern).search(str(value)) else 0


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


# SQLAlchemy dialect name → class; MariaDB is told apart by `dialect.is_mariadb`.
_CLASSES: dict[str, type[FrontendDialect]] = {"mysql": MySQL, "mariadb": MariaDB, "postgresql": PostgreSQL,
                                              "sqlite": SQLite}


def dialect_class(name: str | None) -> type[FrontendDialect]:
    """The class for a dialect name (`engine.dialect.name`); None or an unknown name: the base class's defaults."""
    return _CLASSES.get(name or "", FrontendDialect)


def frontend_dialect(of: Engine | Connection | Dialect) -> FrontendDialect:
    """The dialect object of a front-end engine, connection or SQLAlchemy dialect (one per SQLAlchemy dialect)."""
    dialect = of if isinstance(of, Dialect) else of.dialect
    # SQLAlchemy learns that a MySQL server is MariaDB on the first connection: cache per answer
    name = "mariadb" if getattr(dialect, "is_mariadb", False) else dialect.name
    cache = dialect.__dict__.setdefault("_hipbridge_frontend", {})
    if name not in cache:
        cache[name] = dialect_class(name)(dialect)
    return cache[name]

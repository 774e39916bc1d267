"""The operations schema beside the front-end tables: where every run leaves its state.

Watermarks, the batch log and quarantine are defined here; other modules (quality, sharing,
mapping) register their own tables with `@register_ops_tables`, so `ensure_ops()` creates all of
them. On MariaDB the schema is a database, on PostgreSQL a schema, on SQLite an attached file.

One operations schema belongs to one front-end database: its ledgers decide 修改标志, so two
front-ends sharing one would send each other's keys as changed. The default name is derived
from the front-end database (`derive_ops_schema`), the schema records its owner when it is
created (`ops_owner`), and `ensure_ops` refuses a schema owned by another front-end. An install
of an earlier version kept one `hipbridge_ops` per server; `ensure_ops` moves it to the derived
name when no other front-end database on the server used it (and refuses, naming them, otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from hipbridge.settings import derive_ops_schema, hospital_now, settings  # noqa: F401 - derive_ops_schema: re-exported

from .dialects import frontend_dialect

log = logging.getLogger(__name__)
_DEFINERS: list[Callable[[MetaData], None]] = []


def register_ops_tables(fn: Callable[[MetaData], None]) -> Callable[[MetaData], None]:
    """Decorator: fn(metadata) adds Table objects to the operations metadata."""
    _DEFINERS.append(fn)
    return fn


@register_ops_tables
def _core(md: MetaData) -> None:
    Table(
        "watermark", md,
        Column("table_id", String(64), primary_key=True),
        Column("watermark", DateTime, nullable=False, comment="high-water mark of the source's change time"),
        Column("covered_to", DateTime, comment="end of the windows published without a gap (our clock): a "
                                               "window rerun starting after it does not move the watermark"),
        Column("batch_id", String(64)),
        Column("updated_at", DateTime, nullable=False),
        comment="增量水位: last published source change time per table",
    )
    Table(
        "batch_log", md,
        Column("batch_id", String(64), primary_key=True),
        Column("table_id", String(64), nullable=False),
        Column("mode", String(16), nullable=False),
        Column("window_start", DateTime),
        Column("window_end", DateTime),
        Column("status", String(16), nullable=False),  # planned, staged, blocked, published, failed
        Column("started_at", DateTime, nullable=False),
        Column("finished_at", DateTime),
        Column("extracted", Integer, default=0),
        Column("published", Integer, default=0, comment="rows written to the target (new + changed + voided)"),
        Column("inserted", Integer, default=0),
        Column("updated", Integer, default=0),
        Column("voided", Integer, default=0),
        Column("unchanged", Integer, default=0),
        Column("quarantined", Integer, default=0),
        Column("duplicates", Integer, comment="staged rows superseded by a later row with the same key "
                                              "in the batch; NULL: not counted during transfer"),
        Column("skipped", Integer, comment="source rows not read: change time NULL (read by full runs only)"),
        Column("older", Integer, comment="rows older than the version already published: not written"),
        Column("unsent", Integer, comment="keys seen for the first time already voided: not sent"),
        Column("deleted", Integer, comment="keys the source no longer returns (full run, reconcile_keys): sent as voided"),
        Column("max_changed_at", DateTime, comment="highest source change time staged (the next watermark)"),
        Column("run_id", String(250)),
        Column("message", Text),
        Index("ix_batch_log_table", "table_id", "started_at"),
        comment="批次日志: one row per extraction batch",
    )
    Table(
        "quarantine", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("batch_id", String(64), nullable=False),
        Column("table_id", String(64), nullable=False),
        Column("row_key", String(512)),
        Column("column_name", String(64)),
        Column("reason", Text, nullable=False),
        Column("raw", Text, comment="the source row as JSON, so nothing is lost"),
        Column("created_at", DateTime, nullable=False),
        Index("ix_quarantine_batch", "batch_id"),
        Index("ix_quarantine_table", "table_id", "created_at"),
        comment="隔离区: rows that could not be loaded, with the reason",
    )


@register_ops_tables
def _owner(md: MetaData) -> None:
    Table(
        "ops_owner", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("frontend_database", String(255), nullable=False, comment="the front-end database this schema serves"),
        Column("server", String(255), nullable=False, comment="server it was created on (for the error message)"),
        Column("created_at", DateTime, nullable=False),
        comment="归属: which front-end database owns this operations schema (one row)",
    )


class OpsSchemaError(RuntimeError):
    """The operations schema belongs to another front-end, or an earlier shared one needs a decision."""


@dataclass(frozen=True)
class Ops:
    schema: str
    metadata: MetaData

    def table(self, name: str) -> Table:
        return self.metadata.tables[f"{self.schema}.{name}" if self.schema else name]


_CACHE: dict[tuple[str, int], Ops] = {}


def ops_for(schema: str) -> Ops:
    """Operations metadata for a schema name; rebuilt when a module registers more tables."""
    key = (schema, len(_DEFINERS))
    if key not in _CACHE:
        md = MetaData(schema=schema)
        for define in _DEFINERS:
            define(md)
        _CACHE[key] = Ops(schema, md)
    return _CACHE[key]


def ensure_schema(engine: Engine, schema: str) -> None:
    """A database on MariaDB, a schema on PostgreSQL; on SQLite the engine attaches it (engines._attach_ops)."""
    with engine.begin() as conn:
        frontend_dialect(engine).create_schema(conn, schema)


def ensure_ops(engine: Engine, schema: str, *, legacy: str = "auto") -> Ops:
    """Create the operations schema and every registered table that is missing; add missing columns.

    Columns added in later versions are nullable, so an existing operations schema is upgraded in
    place (never dropped). The schema is claimed for this front-end database on creation and
    checked on every call (`OpsSchemaError` when another front-end owns it).

    legacy: what to do with an earlier version's server-wide schema when `schema` does not exist
    yet — "auto" (move it here when no other front-end database used it), "fresh" (leave it and
    start empty), or the name of a schema to adopt whatever else used it.
    """
    ops = ops_for(schema)
    _migrate_legacy(engine, schema, legacy)
    ensure_schema(engine, schema)
    ops.metadata.create_all(engine)
    insp = inspect(engine)
    for table in ops.metadata.sorted_tables:
        add_missing_columns(engine, table, insp)
    _claim(engine, ops)
    return ops


def frontend_identity(engine: Engine) -> tuple[str, str]:
    """(database, server) of a front-end engine, as the server reports them."""
    with engine.connect() as conn:
        return frontend_dialect(engine).identity(conn, engine)


def _claim(engine: Engine, ops: Ops) -> None:
    owner_t = ops.table("ops_owner")
    database, server = frontend_identity(engine)
    with engine.connect() as conn:
        row = conn.execute(owner_t.select()).mappings().first()
    if row is None:
        try:
            with engine.begin() as conn:
                conn.execute(owner_t.insert().values(id=1, frontend_database=database, server=server,
                                                     created_at=hospital_now()))
            return
        except IntegrityError:  # another process claimed it at the same moment: check that claim
            with engine.connect() as conn:
                row = conn.execute(owner_t.select()).mappings().first()
    if row is not None and row["frontend_database"] != database:
        raise OpsSchemaError(
            f"operations schema {ops.schema!r} belongs to the front-end database {row['frontend_database']!r} "
            f"(created {row['created_at']:%Y-%m-%d %H:%M} on {row['server']}), not to {database!r}: its "
            f"ledgers would send this front-end's rows with the wrong 修改标志. Unset HIPBRIDGE_OPS_SCHEMA "
            f"(each front-end then uses its own, named after its database) or set it to a schema of this front-end")


def _tables_in(conn, schema: str) -> list[str]:
    return [r[0] for r in conn.execute(text(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema})]


def _migrate_legacy(engine: Engine, schema: str, legacy: str) -> None:
    """Move an earlier version's server-wide operations schema to this front-end's own name."""
    dialect = frontend_dialect(engine)
    if not dialect.had_server_wide_ops or legacy == "fresh":
        return
    database, _ = frontend_identity(engine)
    if legacy == "auto":
        if settings().ops_schema or not schema.startswith(f"{database}_"):
            return  # an explicitly named schema is never migrated into
        old, forced = schema[len(database) + 1:], False
    else:
        old, forced = legacy, True
    with engine.connect() as conn:
        if old == schema or dialect.schema_exists(conn, schema) or not dialect.schema_exists(conn, old):
            return
        tables = _tables_in(conn, old)
        if "watermark" not in tables:
            return
        if "ops_owner" in tables:
            prep = engine.dialect.identifier_preparer
            if conn.execute(text(f"SELECT 1 FROM {prep.quote_schema(old)}.ops_owner")).first() is not None:
                return  # already some front-end's own schema (named explicitly): not an earlier version's
        others: list[str] = []
        if dialect.server_wide_catalog and not forced and "frontend_catalog" in tables:
            prep = engine.dialect.identifier_preparer
            names = [r[0] for r in conn.execute(text(
                f"SELECT DISTINCT table_name FROM {prep.quote_schema(old)}.frontend_catalog"))]
            if names:
                params = {f"n{i}": n for i, n in enumerate(names)}
                others = [r[0] for r in conn.execute(text(
                    "SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_name IN ("
                    + ", ".join(f":n{i}" for i in range(len(names))) + ") AND table_schema NOT IN (:old, :db)"),
                    {**params, "old": old, "db": database})]
    if others:
        raise OpsSchemaError(
            f"the operations schema {old!r} of an earlier version (one per server) was used by the front-end "
            f"databases {', '.join(sorted([database, *others]))}; it cannot tell whose ledgers it holds. In the "
            f"front-end it belongs to run `hipbridge frontend init --adopt-ops {old}` (it moves there as that "
            f"front-end's own schema); in the others `hipbridge frontend init --fresh-ops` (they start with an "
            f"empty ledger, so their next upload sends every row as new)")
    with engine.begin() as conn:
        dialect.move_schema(conn, old, schema, tables)
    log.warning("moved the operations schema %s of an earlier version to %s (this front-end's own)", old, schema)


def add_missing_columns(engine: Engine, table: Table, insp=None) -> list[str]:
    """Add the columns of `table` that the database's copy lacks (never drops); returns their names.

    New columns are added nullable, with their comment on MySQL/MariaDB.
    """
    insp = insp or inspect(engine)
    have = {c["name"] for c in insp.get_columns(table.name, schema=table.schema)}
    missing = [c for c in table.columns if c.name not in have]
    if missing:
        with engine.begin() as conn:
            for col in missing:
                conn.execute(text(_add_column_sql(engine, table, col)))
    return [c.name for c in missing]


def _add_column_sql(engine: Engine, table: Table, column: Column) -> str:
    return frontend_dialect(engine).add_column_sql(table, column)

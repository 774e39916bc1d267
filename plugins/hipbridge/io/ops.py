"""The operations schema beside the front-end tables: where every run leaves its state.

Watermarks, the batch log and quarantine are defined here; other modules (quality, sharing,
mapping) register their own tables with `@register_ops_tables`, so `ensure_ops()` creates all of
them. On MariaDB the schema is a database, on PostgreSQL a schema, on SQLite an attached file.
"""

from __future__ import annotations

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
        Column("published", Integer, default=0),
        Column("inserted", Integer, default=0),
        Column("updated", Integer, default=0),
        Column("voided", Integer, default=0),
        Column("unchanged", Integer, default=0),
        Column("quarantined", Integer, default=0),
        Column("duplicates", Integer, comment="staged rows superseded by a later row with the same key "
                                              "in the batch; NULL: not counted during transfer"),
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
    dialect = engine.dialect.name
    with engine.begin() as conn:
        if dialect in ("mysql", "mariadb"):
            conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{schema}` CHARACTER SET utf8mb4"))
        elif dialect == "postgresql":
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        # sqlite: attached by the engine (engines._attach_ops)


def ensure_ops(engine: Engine, schema: str) -> Ops:
    """Create the operations schema and every registered table that is missing; add missing columns.

    Columns added in later versions are nullable, so an existing operations schema is upgraded in
    place (never dropped).
    """
    ops = ops_for(schema)
    ensure_schema(engine, schema)
    ops.metadata.create_all(engine)
    insp = inspect(engine)
    for table in ops.metadata.sorted_tables:
        add_missing_columns(engine, table, insp)
    return ops


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
    q = engine.dialect.identifier_preparer
    coltype = column.type.compile(dialect=engine.dialect)
    sql = f"ALTER TABLE {q.format_table(table)} ADD COLUMN {q.quote(column.name)} {coltype}"
    if engine.dialect.name in ("mysql", "mariadb") and column.comment:
        sql += " COMMENT " + engine.dialect.statement_compiler(engine.dialect, None).render_literal_value(
            column.comment, String())
    return sql

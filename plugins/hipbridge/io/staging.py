"""A batch's own staging table in the operations schema: its name, DDL and the columns loaders fill."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import BigInteger, Column, Date, DateTime, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.engine import Connection, Engine

from hipbridge.spec import Defaults, TableSpec

from .dialects import FrontendDialect
from .frontend import column_type, target_columns, text_columns

BATCH_TABLE_SEP = "__"
FLAG_COLUMN = "hb_flag"  # a MySQL staging table's own column: not loaded, set by publish


def batch_table_name(staging_name: str, batch_id: str) -> str:
    return f"{staging_name}{BATCH_TABLE_SEP}{hashlib.sha1(batch_id.encode()).hexdigest()[:10]}"


def staging_name(spec: TableSpec) -> str:
    """`stg_<table>`: what every batch staging table of the spec's table is named after."""
    return f"stg_{spec.table}"


def batch_staging_table(spec: TableSpec, defaults: Defaults, ops_schema: str, batch_id: str,
                        dialect: FrontendDialect, constants: dict[str, object] | None = None,
                        encrypted: frozenset[str] = frozenset()) -> Table:
    """A batch's own staging table in the operations schema: the target's columns, all nullable, plus bookkeeping.

    `hb_rownum` orders rows of a batch (the last one per key wins), `hb_digest` is the row's
    content digest, `hb_void` marks source rows that are voided (修改标志 = voided).

    Why per batch: publishing then never deletes staged rows (DROP TABLE after the commit is
    instant; deleting a million staged rows took longer than loading them), and concurrent
    batches of one table (backfill windows) never touch each other's rows.

    On MySQL/MariaDB (`dialect.heap_staging`) the table is a plain heap without any index, plus
    the `hb_flag` column publish fills in place: transfer counts duplicate keys itself (so publish
    knows whether it needs the "last row per key" step), and every later statement scans the
    table once. On MariaDB it uses Aria, not InnoDB (`dialects.MariaDB`).

    constants: columns whose value is the same in every row of the batch (the batch id, the
    institution, 密级, 数据采集时间, constant spec values) become column defaults, and the loaders
    leave them out of the text they send: less to write and for the server to parse.
    """
    md = MetaData()
    name = batch_table_name(staging_name(spec), batch_id)
    targets = target_columns(spec, defaults, encrypted)  # encrypted: ciphertext columns (crypto/frontend.py)
    pk = set(spec.target.primary_key)
    as_text = text_columns(targets, pk, type(dialect))
    types = {"hb_batch": String(64), "hb_rownum": BigInteger(), "hb_digest": String(32), "hb_void": Integer()}
    types.update({c.name: column_type(c, pk, as_text, type(dialect)) for c in targets})
    # TEXT columns get no default (MySQL 8 refuses one)
    wanted = {"hb_batch": batch_id}
    if dialect.constants_as_defaults:
        wanted.update(constants or {})
    constants = {k: v for k, v in wanted.items() if v is not None and k in types and not isinstance(types[k], Text)}
    cols = [Column(n, t, nullable=True, server_default=_default_literal(constants[n]) if n in constants else None)
            for n, t in types.items()]
    if dialect.heap_staging:
        cols.append(Column(FLAG_COLUMN, String(4), nullable=True))
    extra = [] if dialect.heap_staging else [Index(f"ix_{name}", *spec.target.primary_key)]
    table = Table(name, md, *cols, *extra, schema=ops_schema, **dialect.staging_options())
    table.info["constants"] = frozenset(constants)
    return table


def _default_literal(value) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def add_key_index(conn: Connection, staging: Table, primary_key: list[str]) -> None:
    """Index a heap staging table by key and row number (only needed when the batch repeats keys)."""
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in [*primary_key, "hb_rownum"])
    conn.exec_driver_sql(f"CREATE INDEX {prep.quote('ix_' + staging.name[-20:])} ON {prep.format_table(staging)} "
                         f"({cols})")


def loaded_columns(staging: Table) -> list[str]:
    """The staging columns a loader fills: not the flag publish writes, not the batch's constants."""
    constants = staging.info.get("constants", frozenset())
    return [c.name for c in staging.columns if c.name != FLAG_COLUMN and c.name not in constants]


def date_only_columns(staging: Table) -> frozenset[str]:
    return frozenset(c.name for c in staging.columns if isinstance(c.type, Date) and not isinstance(c.type, DateTime))


def drop_table(engine: Engine, schema: str | None, name: str) -> None:
    """Drop a batch's staging table (it holds the batch's rows in plaintext: it never outlives the batch)."""
    prep = engine.dialect.identifier_preparer
    full = f"{prep.quote_schema(schema)}.{prep.quote(name)}" if schema else prep.quote(name)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {full}")

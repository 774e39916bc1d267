"""Front-end (前置机) tables built from the specs: DDL with Chinese comments, create and upgrade.

The province's tools identify columns by their Chinese labels, so every table carries its label
as the table comment and every column its label as the column comment (MariaDB/PostgreSQL).
SQLite has no comments: the same labels are kept in the ops table `frontend_catalog` on every
dialect, which is also what `hipbridge status` and the reports read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeEngine

from hipbridge.settings import ops_schema_name
from hipbridge.spec import ColumnType, Defaults, SpecSet, TableSpec

from .dialects import FrontendDialect, MySQL, dialect_class, frontend_dialect
from .ops import add_missing_columns, ensure_ops, register_ops_tables

_MYSQL_TABLE = {"mysql_charset": MySQL.CHARSET}  # ignored by the other dialects


@register_ops_tables
def _catalog(md: MetaData) -> None:
    Table(
        "frontend_catalog", md,
        Column("table_name", String(64), primary_key=True),
        Column("column_name", String(64), primary_key=True),
        Column("table_id", String(64), nullable=False),
        Column("table_label", String(100), nullable=False),
        Column("column_label", String(100), nullable=False),
        Column("ordinal", Integer, nullable=False),
        Column("declared_type", String(40), nullable=False),
        comment="前置机表结构目录: Chinese labels of every front-end table and column",
    )


@dataclass(frozen=True)
class TargetColumn:
    name: str
    label: str
    ctype: ColumnType
    required: bool
    role: str | None = None  # audit role, or None for a spec column


# The longest key id a ciphertext can carry (key_registry.key_id is VARCHAR(24)).
_KEY_ID_MAX = 24


def encrypted_type(ct: ColumnType) -> ColumnType:
    """The type a column needs to hold the ciphertext of any value of `ct` (crypto/fields.py's
    `v1:<key_id>:<iv b64>:<ct b64>`): up to 4 UTF-8 bytes a character, PKCS#7 to whole 16-byte
    blocks, base64. Text stays text."""
    if ct.kind != "varchar":
        return ct
    blocks = (4 * ct.length) // 16 + 1
    b64 = 4 * -(-16 * blocks // 3)
    return ColumnType("varchar", length=len("v1:") + _KEY_ID_MAX + 1 + 24 + 1 + b64)


def target_columns(spec: TableSpec, defaults: Defaults, encrypted: frozenset[str] = frozenset()) -> list[TargetColumn]:
    """Physical column order: org columns, the spec's columns, then the other audit columns.

    encrypted: spec columns stored as ciphertext (config/crypto.yaml `frontend`), declared wide
    enough for it (`encrypted_type`)."""
    head = [a for a in defaults.audit_columns if a.role in ("org_code", "org_name")]
    tail = [a for a in defaults.audit_columns if a.role not in ("org_code", "org_name")]
    cols = [TargetColumn(a.name, a.label, a.ctype, a.required, a.role) for a in head]
    cols += [TargetColumn(c.name, c.label, encrypted_type(c.ctype) if c.name in encrypted else c.ctype, c.required)
             for c in spec.columns]
    cols += [TargetColumn(a.name, a.label, a.ctype, a.required, a.role) for a in tail]
    return cols


# SQLite keeps timestamps as text: store them the way the province writes them (no microseconds).
_SQLITE_TS = SQLITE_DATETIME(storage_format="%(year)04d-%(month)02d-%(day)02d "
                                            "%(hour)02d:%(minute)02d:%(second)02d")


def sa_type(ct: ColumnType) -> TypeEngine:
    if ct.kind == "varchar":
        return String(ct.length)
    if ct.kind == "decimal":
        return Numeric(ct.precision, ct.scale, asdecimal=True)
    if ct.kind == "integer":
        return BigInteger()
    if ct.kind == "date":
        return Date()
    if ct.kind == "timestamp":
        return DateTime().with_variant(_SQLITE_TS, "sqlite")
    return Text()


def _key_type(ct: ColumnType, dialect: type[FrontendDialect]) -> TypeEngine:
    """A key column's type: the dialect's when it needs one (MySQL/MariaDB: a binary collation)."""
    return dialect.key_type(ct) or sa_type(ct)


def column_type(c: TargetColumn, pk: set[str], as_text: set[str], dialect: type[FrontendDialect]) -> TypeEngine:
    """A front-end or staging column's type: keys by `_key_type`, long VARCHARs in `as_text` as TEXT."""
    if c.name in pk:
        return _key_type(c.ctype, dialect)
    return Text() if c.name in as_text else sa_type(c.ctype)


def text_columns(cols: list[TargetColumn], pk: set[str], dialect: type[FrontendDialect]) -> set[str]:
    """Which VARCHAR columns the dialect stores as TEXT so a row fits (`FrontendDialect.text_columns`)."""
    return dialect.text_columns({c.name: c.ctype.length for c in cols if c.ctype.kind == "varchar"}, pk)


def target_table(spec: TableSpec, defaults: Defaults, metadata: MetaData | None = None,
                 dialect: str | None = None, name: str | None = None, schema: str | None = None,
                 encrypted: frozenset[str] = frozenset()) -> Table:
    """The SQLAlchemy Table of a spec's front-end table (or of a copy under another name/schema)."""
    md = metadata if metadata is not None else MetaData()
    cols = target_columns(spec, defaults, encrypted)
    pk = set(spec.target.primary_key)
    kind = dialect_class(dialect)
    as_text = text_columns(cols, pk, kind)
    return Table(
        name or spec.target.name, md,
        *[Column(c.name, column_type(c, pk, as_text, kind), nullable=c.name not in pk, comment=c.label)
          for c in cols],
        PrimaryKeyConstraint(*spec.target.primary_key),  # in the spec's order, as the province declares it
        comment=spec.label,
        schema=schema,
        **_MYSQL_TABLE,
    )


def ledger_table(spec: TableSpec, defaults: Defaults, ops_schema: str, metadata: MetaData | None = None,
                 dialect: str | None = None) -> Table:
    """What we last published per key: its content digest, 修改标志 and source change time.

    The digest skips unchanged rows; `hb_changed_at` (the published row's 数据更新时间) keeps a
    batch that read an older version of a row (a backfill window beside the daily run) from
    overwriting a newer one. NULL for rows published before this column existed.
    """
    md = metadata if metadata is not None else MetaData()
    by_name = {c.name: c for c in target_columns(spec, defaults)}
    return Table(
        f"ledger_{spec.table}", md,
        *[Column(k, _key_type(by_name[k].ctype, dialect_class(dialect)), primary_key=True)
          for k in spec.target.primary_key],
        Column("hb_digest", String(32), nullable=False),
        Column("hb_flag", String(4), nullable=False),
        Column("hb_batch", String(64), nullable=False),
        Column(CHANGED_AT, DateTime().with_variant(_SQLITE_TS, "sqlite"), nullable=True),
        schema=ops_schema,
        **_MYSQL_TABLE,
    )


CHANGED_AT = "hb_changed_at"


# ---------------------------------------------------------------- create / upgrade


@dataclass
class FrontendReport:
    created: list[str]
    upgraded: dict[str, list[str]]
    unchanged: list[str]
    converted: dict[str, list[str]] = field(default_factory=dict)  # table → what was made exact / utf8mb4
    widened: dict[str, list[str]] = field(default_factory=dict)  # table → columns widened for ciphertext


def create_frontend(engine: Engine, specs: SpecSet, tables: list[str] | None = None, *,
                    ops_legacy: str = "auto", encrypted: Mapping[str, frozenset[str]] | None = None) -> FrontendReport:
    """Create missing front-end tables and add missing columns to existing ones (never drops).

    ops_legacy: what to do with an earlier version's server-wide operations schema (`ensure_ops`).
    encrypted: table id → columns stored as ciphertext (`crypto.frontend.frontend_columns`); an
    existing table's column narrower than its ciphertext needs is widened (never narrowed back).
    """
    encrypted = encrypted or {}
    defaults = specs.defaults
    assert defaults is not None, "specs without _defaults.yaml"
    ops_schema = ops_schema_name(defaults, engine)
    ops = ensure_ops(engine, ops_schema, legacy=ops_legacy)
    dialect = engine.dialect.name
    frontend = frontend_dialect(engine)
    report = FrontendReport([], {}, [])
    insp = inspect(engine)
    existing = set(insp.get_table_names())
    catalog_rows = []
    for table_id in tables or sorted(specs.specs):
        spec = specs.get(table_id)
        md = MetaData()
        enc = encrypted.get(table_id, frozenset())
        table = target_table(spec, defaults, md, dialect, encrypted=enc)
        if table.name not in existing:
            table.create(engine)
            report.created.append(table.name)
        else:
            added = add_missing_columns(engine, table, insp)
            widened = _widen(engine, frontend, table, enc, insp)
            if widened:
                report.widened[table.name] = widened
            converted = frontend.upgrade_table(engine, table)
            if converted:
                report.converted[table.name] = converted
            if added:
                report.upgraded[table.name] = added
            elif not converted:
                report.unchanged.append(table.name)
        ledger = ledger_table(spec, defaults, ops_schema, MetaData(), dialect)
        ledger.create(engine, checkfirst=True)
        add_missing_columns(engine, ledger)
        frontend.upgrade_table(engine, ledger)
        for i, c in enumerate(target_columns(spec, defaults)):
            catalog_rows.append({"table_name": table.name, "column_name": c.name, "table_id": spec.table,
                                 "table_label": spec.label, "column_label": c.label, "ordinal": i,
                                 "declared_type": str(c.ctype)})
    cat = ops.table("frontend_catalog")
    with engine.begin() as conn:
        names = sorted({r["table_name"] for r in catalog_rows})
        if names:
            conn.execute(cat.delete().where(cat.c.table_name.in_(names)))
            conn.execute(cat.insert(), catalog_rows)
    return report


def _widen(engine: Engine, frontend: FrontendDialect, table: Table, columns: frozenset[str], insp) -> list[str]:
    """Widen the encrypted columns an existing table declares narrower than their ciphertext needs."""
    if not columns:
        return []
    have = {c["name"]: c["type"] for c in insp.get_columns(table.name, schema=table.schema)}
    out = []
    for name in sorted(columns):
        want, cur = table.c[name].type, have.get(name)
        if cur is None or isinstance(cur, Text) or getattr(cur, "length", None) is None:
            continue   # already unbounded text
        if isinstance(want, Text) or (want.length or 0) > cur.length:
            sql = frontend.widen_column_sql(table, table.c[name])
            if sql:
                with engine.begin() as conn:
                    conn.execute(text(sql))
                out.append(name)
    return out

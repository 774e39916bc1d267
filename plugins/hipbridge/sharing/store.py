"""The shared store (共享库) on the front-end machine: where the platform pushes other hospitals' data.

Each shared table has the layout of a front-end table (built from the same spec with
`io.frontend.target_table`), plus the platform's bookkeeping columns from config (push batch,
authId, INSTOCK_TIME, data_num, row digest), and lives in its own database/schema (P2's
`sharedata`). A manifest table lists every pushed batch. On SQLite the store is a separate file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, text
from sqlalchemy.engine import Engine, make_url

from hipbridge.crypto.sm import sm3_hex
from hipbridge.io.engines import engine_for
from hipbridge.io.frontend import target_table
from hipbridge.platform.config import SharingConfig, sharing_config
from hipbridge.spec import Defaults, SpecSet, TableSpec

log = logging.getLogger("hipbridge.sharing.store")


@dataclass
class SharedStore:
    engine: Engine
    url: str
    tables: dict[str, Table]          # spec id → table, parents before children
    specs: dict[str, TableSpec]
    manifest: Table
    cols: dict[str, str]              # bookkeeping role → column name
    mcols: dict[str, str]             # manifest role → column name
    missing: list[str]
    defaults: Defaults
    secure: Any = None                # the encrypted tables (sharing.secure.SecureStore), once opened

    def purge_targets(self) -> list[tuple[str, str, Table, Engine]]:
        """(table id, label, table, engine) of the landing and the secure tables, parents first."""
        out = [(t, tb.name, tb, self.engine) for t, tb in self.tables.items()]
        if self.secure is not None:
            out += [(t, f"{self.secure.schema}.{st.table.name}", st.table, self.secure.engine)
                    for t, st in self.secure.tables.items()]
        return out

    def data_columns(self, table_id: str) -> list[str]:
        book = set(self.cols.values())
        return [c.name for c in self.tables[table_id].columns if c.name not in book]


def store_url(frontend_url: str, cfg: SharingConfig | None = None) -> str:
    """The store's own URL: another database on the same MariaDB server, or another SQLite file."""
    cfg = cfg or sharing_config()
    schema = cfg.store.schema_name
    u = make_url(frontend_url)
    if u.get_backend_name() == "sqlite":
        db = u.database or ""
        stem = db.removesuffix(".db")
        return str(u.set(database=f"{stem}_{schema}.db"))
    return u.set(database=schema).render_as_string(hide_password=False)


def _ordered(specs: dict[str, TableSpec]) -> list[str]:
    """Parents (referenced tables) before children, so pushes and verification follow the links."""
    out: list[str] = []
    seen: set[str] = set()

    def visit(t: str, stack: tuple[str, ...] = ()) -> None:
        if t in seen or t in stack:
            return
        for c in specs[t].columns:
            ref = c.reference_target
            if ref and ref[0] in specs and ref[0] != t:
                visit(ref[0], stack + (t,))
        seen.add(t)
        out.append(t)

    for t in specs:
        visit(t)
    return out


def build_tables(specs: SpecSet, dialect: str, cfg: SharingConfig | None = None,
                 metadata: MetaData | None = None) -> tuple[dict[str, Table], Table, dict[str, TableSpec], list[str]]:
    cfg = cfg or sharing_config()
    md = metadata if metadata is not None else MetaData()
    cols = cfg.store.columns
    chosen = {t: specs.specs[t] for t in cfg.store.tables if t in specs.specs}
    missing = [t for t in cfg.store.tables if t not in specs.specs]
    tables: dict[str, Table] = {}
    for t in _ordered(chosen):
        table = target_table(chosen[t], specs.defaults, md, dialect)
        table.append_column(Column(cols["batch_id"], String(64), nullable=False, comment="回推批次号"))
        table.append_column(Column(cols["auth_id"], String(64), nullable=False, comment="平台授权ID"))
        table.append_column(Column(cols["instock_time"], DateTime, nullable=False, comment="入库时间"))
        table.append_column(Column(cols["data_num"], Integer, nullable=False, default=1, comment="数据版本"))
        table.append_column(Column(cols["row_digest"], String(64), nullable=False, comment="行摘要 SM3"))
        Index(f"ix_{table.name}_auth", table.c[cols["auth_id"]])
        Index(f"ix_{table.name}_batch", table.c[cols["batch_id"]])
        tables[t] = table
    m = cfg.store.manifest.columns
    manifest = Table(
        cfg.store.manifest.table, md,
        Column(m["batch_id"], String(64), primary_key=True),
        Column(m["table_name"], String(64), primary_key=True),
        Column(m["auth_id"], String(64), nullable=False),
        Column(m["row_count"], BigInteger, nullable=False),
        Column(m["digest"], String(64), nullable=False),
        Column(m["min_instock"], DateTime),
        Column(m["max_instock"], DateTime),
        Column(m["created"], DateTime, nullable=False),
        comment="回推批次清单 (manifest)",
    )
    return tables, manifest, chosen, missing


def open_store(frontend_url: str, specs: SpecSet, cfg: SharingConfig | None = None, create: bool = True) -> SharedStore:
    cfg = cfg or sharing_config()
    url = store_url(frontend_url, cfg)
    u = make_url(url)
    if create and u.get_backend_name() in ("mysql", "mariadb"):
        admin = engine_for(frontend_url)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{u.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    elif create and u.get_backend_name() == "sqlite" and u.database:
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    engine = engine_for(url)
    md = MetaData()
    tables, manifest, chosen, missing = build_tables(specs, engine.dialect.name, cfg, md)
    if missing:
        log.warning("共享库缺少表规格, 已跳过: %s", ", ".join(missing))
    if create:
        md.create_all(engine)
    return SharedStore(engine, url, tables, chosen, manifest, dict(cfg.store.columns),
                       dict(cfg.store.manifest.columns), missing, specs.defaults)


# ---------------------------------------------------------------- row digests (manifest reconciliation)


def _norm(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (Decimal, float, int)) and not isinstance(v, bool):
        d = Decimal(str(v)).normalize()
        return format(d, "f")
    return str(v)


def row_digest(row: dict[str, Any], columns: list[str]) -> str:
    """SM3 over `name=value` of the data columns in table order (nulls skipped, values normalised)."""
    parts = [f"{c}={_norm(row.get(c))}" for c in columns if row.get(c) is not None]
    return sm3_hex("\x1f".join(parts).encode("utf-8"))


def batch_digest(row_digests: list[str]) -> str:
    """SM3 of the batch's row digests, sorted (independent of database collation and row order)."""
    return sm3_hex("".join(sorted(row_digests)).encode("ascii"))

"""Mapping state in the operations schema: gap snapshots (`mapping_gap`), for trends and the quality report."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, Index, Integer, MetaData, String, Table

from hipbridge.io.ops import register_ops_tables


@register_ops_tables
def _mapping_tables(md: MetaData) -> None:
    Table(
        "mapping_gap", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("snapshot_at", DateTime, nullable=False),
        Column("hospital", String(64), nullable=False),
        Column("table_id", String(64), nullable=False),
        Column("column_name", String(64), nullable=False),
        Column("local_set", String(64)),
        Column("domain", String(64), nullable=False),
        Column("local_code", String(128), comment="NULL: a coverage-only row for a column without gaps"),
        Column("local_name", String(256)),
        Column("frequency", Integer, nullable=False),
        Column("status", String(16)),
        Column("coverage", Float, comment="frequency-weighted coverage of the column at snapshot time"),
        Index("ix_mapping_gap_snapshot", "snapshot_at"),
        comment="对码缺口快照: unmapped local codes per column, one snapshot per `mapping gaps --store`",
    )

"""Operations tables of the 互认 reminder client."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, UniqueConstraint

from hipbridge.io.ops import register_ops_tables


@register_ops_tables
def _recognition_tables(md: MetaData) -> None:
    Table(
        "recognition_gap", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("org_code", String(22), nullable=False),
        Column("kind", String(8), nullable=False, comment="lab | exam"),
        Column("local_code", String(64), nullable=False, comment="the order's local item code"),
        Column("reason", String(24), nullable=False, comment="NO_MAPPING | PART_MISMATCH | METHOD_MISMATCH"),
        Column("detail", String(200)),
        Column("first_seen", DateTime, nullable=False),
        Column("last_seen", DateTime, nullable=False),
        Column("times", Integer, nullable=False, default=1),
        UniqueConstraint("org_code", "kind", "local_code", "reason", name="uq_recognition_gap"),
        comment="互认提醒: 无法映射到互认项目的医嘱 (供目录维护)",
    )

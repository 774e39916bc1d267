"""Operations tables of the external data page: launches / sessions, and 调阅记录 ids.

Tokens are kept only as SM3 hashes; what the page shows about the patient (name, masked ID and
phone, HIS patient id) is kept SM4-encrypted in `context` (crypto.fields), never in clear.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

from hipbridge.io.ops import register_ops_tables


@register_ops_tables
def _display_tables(md: MetaData) -> None:
    Table(
        "display_launch", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("launch_sm3", String(64), nullable=False, comment="SM3 of the one-time launch token"),
        Column("session_sm3", String(64), comment="SM3 of the page session token, once redeemed"),
        Column("caller", String(64), nullable=False, comment="the workstation caller that launched"),
        Column("org_code", String(22), nullable=False),
        Column("visit_id", String(64), nullable=False),
        Column("doctor_id", String(64), nullable=False),
        Column("dept_id", String(64)),
        Column("purpose", String(16), nullable=False, comment="VIEW | RECOGNIZE"),
        Column("patient_key", String(64), comment="HMAC-SM3 blind index, when the visit is known"),
        Column("auth_record_id", Integer, comment="the ACTIVE authorization covering the visit"),
        Column("auth_id", String(64)),
        Column("decision", String(24), nullable=False, comment="ok or the refusal reason at launch"),
        Column("context", Text, comment="SM4-encrypted JSON: header facts, orders"),
        Column("created_at", DateTime, nullable=False),
        Column("expires_at", DateTime, nullable=False, comment="launch token expiry (TTL)"),
        Column("used_at", DateTime, comment="redeemed (a second use is refused)"),
        Column("session_expires_at", DateTime),
        Column("cleared_at", DateTime, comment="the page was cleared (authorization revoked / expired)"),
        Column("cleared_reason", String(24)),
        UniqueConstraint("launch_sm3", name="uq_display_launch_token"),
        UniqueConstraint("session_sm3", name="uq_display_session_token"),
        comment="外院数据展示: 启动令牌与页面会话 (只存散列)",
    )
    Table(
        "display_review", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("org_code", String(22), nullable=False),
        Column("doctor_id", String(64), nullable=False),
        Column("visit_id", String(64), nullable=False),
        Column("report_kind", String(8), nullable=False, comment="lab | exam"),
        Column("report_org", String(22), nullable=False),
        Column("report_no", String(64), nullable=False),
        Column("review_id", String(32), nullable=False, comment="调阅记录 reviewId: once per (doctor, visit, report)"),
        Column("outbox_id", Integer),
        Column("created_at", DateTime, nullable=False),
        UniqueConstraint("doctor_id", "visit_id", "report_kind", "report_org", "report_no", name="uq_display_review"),
        UniqueConstraint("review_id", name="uq_display_review_id"),
        Index("ix_display_review_visit", "visit_id"),
        comment="调阅记录: reviewId 与发件箱行",
    )

"""Operations tables of the platform services: outbox, authorization records, audit trail, messages.

Registered with `register_ops_tables`, created by `ensure_ops`. None of them holds plaintext
personal data: patients appear as `patient_key` (HMAC-SM3 blind index); the outbox payload, which
must carry name and ID to the platform, is stored SM4-encrypted (`crypto.fields`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Connection, Engine

from hipbridge.audit import chain
from hipbridge.crypto.keys import KeyStore
from hipbridge.io.ops import Ops, register_ops_tables

# Outbox and authorization state machines: a row only ever moves to a higher rank.
OUTBOX_RANK = {"NEW": 0, "SENT": 1, "ACKED": 2, "FAILED": 2}
AUTH_NEXT = {
    "PENDING": {"ACTIVE", "FAILED", "REVOKED", "EXPIRED"},
    "ACTIVE": {"REVOKED", "EXPIRED"},
    "REVOKED": set(),
    "EXPIRED": set(),
    "FAILED": set(),
}


@register_ops_tables
def _platform_tables(md: MetaData) -> None:
    Table(
        "outbox", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("kind", String(16), nullable=False, comment="grant | revoke | query"),
        Column("org_code", String(22), nullable=False),
        Column("appointment_id", String(32), nullable=False),
        Column("patient_key", String(64), nullable=False),
        Column("payload", Text, nullable=False, comment="SM4-encrypted request roles (v1:key:iv:ct)"),
        Column("status", String(8), nullable=False, comment="NEW → SENT → ACKED | FAILED"),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_retry_at", DateTime, nullable=False),
        Column("locked_until", DateTime),
        Column("last_code", String(16)),
        Column("last_error", Text),
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
        Column("acked_at", DateTime),
        UniqueConstraint("org_code", "appointment_id", "kind", name="uq_outbox_business_key"),
        Index("ix_outbox_due", "status", "next_retry_at"),
        comment="平台调用发件箱: 预约不因平台故障而失败, 异步重试",
    )
    Table(
        "auth_record", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("org_code", String(22), nullable=False),
        Column("appointment_id", String(32), nullable=False),
        Column("patient_key", String(64), nullable=False),
        Column("status", String(8), nullable=False, comment="PENDING → ACTIVE → REVOKED | EXPIRED; PENDING → FAILED"),
        Column("auth_id", String(64), comment="platform authId"),
        Column("channel", String(2)),
        Column("visit_type", String(12), nullable=False, comment="outpatient | inpatient"),
        Column("visit_date", DateTime, nullable=False),
        Column("visit_no", String(64), comment="门诊/住院就诊流水号 of the visit, once known"),
        Column("visit_start", DateTime),
        Column("visit_end", DateTime, comment="门急诊结束 or 出院时间"),
        Column("effective_time", DateTime),
        Column("expire_time", DateTime),
        Column("revoked_at", DateTime, comment="local withdrawal time (cancel / refund / patient)"),
        Column("revoke_type", String(2)),
        Column("legal_hold", Boolean, nullable=False, default=False),
        Column("legal_hold_reason", Text),
        Column("consent_text_version", String(16)),
        Column("consent_text_sm3", String(64)),
        Column("consent_time", DateTime),
        Column("consent_method", String(16)),
        Column("consent_terminal", String(64)),
        Column("consent_operator", String(64)),
        Column("last_code", String(16)),
        Column("purged_at", DateTime),
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
        UniqueConstraint("org_code", "appointment_id", name="uq_auth_appointment"),
        Index("ix_auth_patient", "patient_key"),
        Index("ix_auth_platform", "auth_id"),
        comment="预约授权记录 (FHIR Consent): 授权状态、就诊、同意证据",
    )
    Table(
        "platform_message", md,
        Column("request_id", String(64), primary_key=True),
        Column("outbox_id", Integer),
        Column("service_code", String(64), nullable=False),
        Column("request_sm3", String(64), comment="SM3 of the plaintext body"),
        Column("request_envelope", Text, nullable=False, comment="signed, encrypted: non-repudiation evidence"),
        Column("response_envelope", Text),
        Column("code", String(16)),
        Column("sent_at", DateTime, nullable=False),
        comment="平台报文存证: 已签名的请求与平台签名的应答",
    )


# ---------------------------------------------------------------- audit (hash chain, owned by hipbridge.audit)


def audit(conn: Connection, ops: Ops, keys: KeyStore, *, ts: datetime, actor_type: str, action: str,
          actor_id: str | None = None, patient_key: str | None = None, object_type: str | None = None,
          object_id: str | None = None, request_id: str | None = None, result_code: str | None = None,
          detail: dict[str, Any] | None = None) -> None:
    """Append one audit event (hipbridge.audit.chain). Callers never pass personal data."""
    audit_many(conn, ops, keys, [{
        "ts": ts, "actor_type": actor_type, "actor_id": actor_id, "patient_key": patient_key, "action": action,
        "object_type": object_type, "object_id": object_id, "request_id": request_id, "result_code": result_code,
        "detail": detail}])


def audit_many(conn: Connection, ops: Ops, keys: KeyStore, events: list[dict[str, Any]]) -> None:
    """Append events in order under one lock of the chain tail (one round trip for many events)."""
    chain.append(conn, ops, keys, events)


def verify_audit_chain(engine: Engine, ops: Ops, keys: KeyStore) -> int | None:
    """The id of the first broken event, or None when intact (see `hipbridge audit verify`)."""
    report = chain.verify(engine, ops, keys)
    return None if report.intact else (report.first_bad_id or -1)

"""Transactional outbox for platform calls: a booking never waits for, or fails because of, the province.

The booking door writes the authorization record and an outbox row in one transaction; a worker
(`process_outbox`, run by the CLI, the DAG or the door's background loop) sends due rows with
back-off (1 m, 5 m, 15 m, 1 h … from config), idempotent on orgCode + appointmentId + kind.
Outbox states only move forward: NEW → SENT → ACKED | FAILED. Authorization states too:
PENDING → ACTIVE → REVOKED | EXPIRED, PENDING → FAILED (and PENDING → REVOKED for an early cancel).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from hipbridge.crypto.fields import decrypt_field, encrypt_field
from hipbridge.crypto.keys import KeyStore
from hipbridge.crypto.sm import sm3_hex
from hipbridge.io.ops import Ops

from .client import AnswerRefused, PlatformClient, PlatformResult, PlatformUnavailable
from .config import PlatformConfig, SharingConfig, platform_config, sharing_config
from .envelope import Clock
from .state import AUTH_NEXT, OUTBOX_RANK, audit

log = logging.getLogger("hipbridge.platform.outbox")
REFUSED = "REFUSED"   # last_code of an attempt whose answer was refused (unsigned, unbound, impostor)
LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class Booking:
    """What the booking system sends on 预约 (roles of config messages.grant, plus local facts)."""

    appointment_id: str
    patient_name: str
    patient_id_type: str
    patient_id_no: str
    visit_date: datetime
    visit_type: str = "outpatient"
    channel: str = "03"
    patient_phone: str | None = None
    dept_code: str | None = None
    dept_name: str | None = None
    doctor_code: str | None = None
    doctor_name: str | None = None
    consent_method: str = "CHECKBOX"
    consent_time: datetime | None = None
    consent_terminal: str | None = None
    consent_operator: str | None = None
    guardian: dict[str, str] | None = None


class BookingConflict(Exception):
    """The appointmentId is already booked for another patient; `code` is the platform's (A2005)."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(code)


_CONFLICT = "CONFLICT"


def _transient(exc: Exception) -> bool:
    """A lost race another transaction won: duplicate key, deadlock, lock timeout, SQLite busy."""
    if isinstance(exc, IntegrityError):
        return True
    orig = getattr(exc, "orig", None)
    code = orig.args[0] if orig is not None and getattr(orig, "args", None) else None
    return code in (1205, 1213) or "database is locked" in str(orig) or "deadlock" in str(orig).lower()


@dataclass
class Enqueued:
    outbox_id: int | None
    duplicate: bool
    auth_status: str | None


def _fmt(cfg: PlatformConfig, dt: datetime | None) -> str | None:
    return dt.strftime(cfg.time_format) if dt else None


def _parse(cfg: PlatformConfig, s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        return datetime.strptime(s, cfg.time_format)
    except ValueError:
        return None


def _move_auth(conn: Connection, ops: Ops, appointment: tuple[str, str], to: str, now: datetime,
               **values: Any) -> bool:
    """Forward-only transition of an auth_record; returns False (and changes nothing) otherwise."""
    ar = ops.table("auth_record")
    allowed_from = [s for s, nxt in AUTH_NEXT.items() if to in nxt]
    res = conn.execute(update(ar).where(and_(ar.c.org_code == appointment[0], ar.c.appointment_id == appointment[1],
                                             ar.c.status.in_(allowed_from)))
                       .values(status=to, updated_at=now, **values))
    return res.rowcount == 1


def _move_outbox(conn: Connection, ops: Ops, outbox_id: int, to: str, now: datetime, **values: Any) -> bool:
    ob = ops.table("outbox")
    allowed_from = [s for s, r in OUTBOX_RANK.items() if r < OUTBOX_RANK[to] or (s == to and r < 2)]
    res = conn.execute(update(ob).where(and_(ob.c.id == outbox_id, ob.c.status.in_(allowed_from)))
                       .values(status=to, updated_at=now, **values))
    return res.rowcount == 1


# ---------------------------------------------------------------- enqueue (booking door)


def enqueue_grant(engine: Engine, ops: Ops, keys: KeyStore, org_code: str, org_name: str, booking: Booking,
                  now: datetime, actor: str = "booking", share: SharingConfig | None = None,
                  cfg: PlatformConfig | None = None) -> Enqueued:
    """Record the authorization (PENDING) and its grant call in one transaction; idempotent.

    The same appointmentId again for the same patient returns the first record (`duplicate`); for
    another patient it raises `BookingConflict` (A2005). Concurrent identical bookings race on the
    unique key: the losers re-read and answer as duplicates."""
    for attempt in range(8):
        try:
            res = _enqueue_grant(engine, ops, keys, org_code, org_name, booking, now, actor, share, cfg)
            if res.auth_status == _CONFLICT:   # raised after the commit, so the audit event stays
                raise BookingConflict((cfg or platform_config()).codes.business["duplicate_conflict"])
            return res
        except (IntegrityError, OperationalError) as exc:
            if not _transient(exc) or attempt == 7:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _enqueue_grant(engine: Engine, ops: Ops, keys: KeyStore, org_code: str, org_name: str, booking: Booking,
                   now: datetime, actor: str, share: SharingConfig | None, cfg: PlatformConfig | None) -> Enqueued:
    cfg = cfg or platform_config()
    share = share or sharing_config()
    auth = share.authorization
    ar, ob = ops.table("auth_record"), ops.table("outbox")
    pkey = keys.patient_key(booking.patient_id_type, booking.patient_id_no)
    end = booking.visit_date.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=auth.end_after_visit_days + (auth.inpatient_extension_days if booking.visit_type == "inpatient" else 0))
    consent_text_sm3 = sm3_hex(auth.consent_text.encode("utf-8"))
    roles = {
        "org_code": org_code, "org_name": org_name, "appointment_id": booking.appointment_id,
        "channel": booking.channel, "patient_name": booking.patient_name,
        "patient_id_type": booking.patient_id_type, "patient_id_no": booking.patient_id_no,
        "patient_phone": booking.patient_phone, "visit_date": _fmt(cfg, booking.visit_date),
        "visit_type": booking.visit_type, "dept_code": booking.dept_code, "dept_name": booking.dept_name,
        "doctor_code": booking.doctor_code, "doctor_name": booking.doctor_name, "auth_scope": auth.scope,
        "auth_start": _fmt(cfg, now), "auth_end": _fmt(cfg, end),
        "consent_text_version": auth.consent_text_version, "consent_text_sm3": consent_text_sm3,
        "consent_time": _fmt(cfg, booking.consent_time or now), "consent_method": booking.consent_method,
        "consent_terminal": booking.consent_terminal, "consent_operator": booking.consent_operator,
    }
    if booking.guardian:
        for k in ("name", "id_type", "id_no", "relation"):
            roles[f"guardian_{k}"] = booking.guardian.get(k)
    with engine.begin() as conn:
        existing = conn.execute(select(ar.c.status, ar.c.patient_key).where(
            and_(ar.c.org_code == org_code, ar.c.appointment_id == booking.appointment_id))).first()
        if existing is not None:
            if existing[1] != pkey:
                audit(conn, ops, keys, ts=now, actor_type="system", actor_id=actor, patient_key=pkey,
                      action="BOOK_CONFLICT", object_type="appointment", object_id=booking.appointment_id,
                      result_code=cfg.codes.business["duplicate_conflict"])
                return Enqueued(None, True, _CONFLICT)
            row = conn.execute(select(ob.c.id).where(and_(ob.c.org_code == org_code,
                               ob.c.appointment_id == booking.appointment_id, ob.c.kind == "grant"))).first()
            audit(conn, ops, keys, ts=now, actor_type="system", actor_id=actor, patient_key=existing[1],
                  action="BOOK_DUPLICATE", object_type="appointment", object_id=booking.appointment_id)
            return Enqueued(row[0] if row else None, True, existing[0])
        conn.execute(ar.insert().values(
            org_code=org_code, appointment_id=booking.appointment_id, patient_key=pkey, status="PENDING",
            channel=booking.channel, visit_type=booking.visit_type, visit_date=booking.visit_date,
            expire_time=end, legal_hold=False, consent_text_version=auth.consent_text_version,
            consent_text_sm3=consent_text_sm3, consent_time=booking.consent_time or now,
            consent_method=booking.consent_method, consent_terminal=booking.consent_terminal,
            consent_operator=booking.consent_operator, created_at=now, updated_at=now))
        res = conn.execute(ob.insert().values(
            kind="grant", org_code=org_code, appointment_id=booking.appointment_id, patient_key=pkey,
            payload=encrypt_field(keys, json.dumps(roles, ensure_ascii=False)), status="NEW", attempts=0,
            next_retry_at=now, created_at=now, updated_at=now))
        oid = res.inserted_primary_key[0]
        audit(conn, ops, keys, ts=now, actor_type="system", actor_id=actor, patient_key=pkey, action="CONSENT",
              object_type="appointment", object_id=booking.appointment_id,
              detail={"textVersion": auth.consent_text_version, "textSm3": consent_text_sm3,
                      "method": booking.consent_method, "channel": booking.channel,
                      "terminal": booking.consent_terminal, "operator": booking.consent_operator})
        audit(conn, ops, keys, ts=now, actor_type="system", actor_id=actor, patient_key=pkey, action="OUTBOX_GRANT",
              object_type="outbox", object_id=str(oid))
    return Enqueued(oid, False, "PENDING")


def enqueue_revoke(engine: Engine, ops: Ops, keys: KeyStore, org_code: str, appointment_id: str, revoke_type: str,
                   now: datetime, reason: str | None = None, operator: str | None = None,
                   actor: str = "booking") -> Enqueued | None:
    """Withdraw locally at once (the purge may run now) and queue the platform revoke; idempotent."""
    ar, ob = ops.table("auth_record"), ops.table("outbox")
    with engine.begin() as conn:
        rec = conn.execute(select(ar).where(and_(ar.c.org_code == org_code, ar.c.appointment_id == appointment_id))
                           .with_for_update()).mappings().first()
        if rec is None:
            return None
        dup = conn.execute(select(ob.c.id).where(and_(ob.c.org_code == org_code, ob.c.appointment_id == appointment_id,
                                                      ob.c.kind == "revoke"))).first()
        if dup is not None:
            return Enqueued(dup[0], True, rec["status"])
        _move_auth(conn, ops, (org_code, appointment_id), "REVOKED", now, revoked_at=now, revoke_type=revoke_type)
        roles = {"org_code": org_code, "appointment_id": appointment_id, "revoke_type": revoke_type,
                 "revoke_reason": reason, "revoke_time": now.strftime(platform_config().time_format),
                 "operator_id": operator}
        res = conn.execute(ob.insert().values(
            kind="revoke", org_code=org_code, appointment_id=appointment_id, patient_key=rec["patient_key"],
            payload=encrypt_field(keys, json.dumps(roles, ensure_ascii=False)), status="NEW", attempts=0,
            next_retry_at=now, created_at=now, updated_at=now))
        oid = res.inserted_primary_key[0]
        audit(conn, ops, keys, ts=now, actor_type="system", actor_id=actor, patient_key=rec["patient_key"],
              action="REVOKE", object_type="appointment", object_id=appointment_id,
              detail={"revokeType": revoke_type, "operator": operator})
        status = conn.execute(select(ar.c.status).where(ar.c.id == rec["id"])).scalar_one()
    return Enqueued(oid, False, status)


def record_visit(engine: Engine, ops: Ops, keys: KeyStore, org_code: str, appointment_id: str, now: datetime,
                 visit_no: str | None = None, start: datetime | None = None, end: datetime | None = None,
                 actor: str = "his") -> bool:
    """The visit the authorization was for started (签到/入院) or ended (结束就诊/出院)."""
    ar = ops.table("auth_record")
    values: dict[str, Any] = {"updated_at": now}
    if visit_no:
        values["visit_no"] = visit_no
    if start:
        values["visit_start"] = start
    if end:
        values["visit_end"] = end
    with engine.begin() as conn:
        rec = conn.execute(select(ar.c.id, ar.c.patient_key).where(
            and_(ar.c.org_code == org_code, ar.c.appointment_id == appointment_id))).first()
        if rec is None:
            return False
        conn.execute(update(ar).where(ar.c.id == rec[0]).values(**values))
        audit(conn, ops, keys, ts=now, actor_type="system", actor_id=actor, patient_key=rec[1],
              action="VISIT_END" if end else "VISIT_START", object_type="appointment", object_id=appointment_id)
    return True


# ---------------------------------------------------------------- worker


@dataclass
class OutboxReport:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    retry: int = 0
    waiting: int = 0
    revoked_patients: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)


def _claim(conn: Connection, ops: Ops, oid: int, now: datetime) -> bool:
    ob = ops.table("outbox")
    res = conn.execute(update(ob).where(and_(ob.c.id == oid, ob.c.status.in_(["NEW", "SENT"]),
                                             or_(ob.c.locked_until.is_(None), ob.c.locked_until < now)))
                       .values(locked_until=now + LEASE, status="SENT", updated_at=now))
    return res.rowcount == 1


def process_outbox(engine: Engine, ops: Ops, client: PlatformClient, keys: KeyStore, clock: Clock,
                   limit: int = 100, cfg: PlatformConfig | None = None) -> OutboxReport:
    """Send every due outbox row once; schedule retries; move records forward. Safe to run concurrently."""
    cfg = cfg or client.cfg
    ob, ar = ops.table("outbox"), ops.table("auth_record")
    report = OutboxReport()
    now = clock()
    with engine.connect() as conn:
        due = conn.execute(select(ob.c.id).where(and_(ob.c.status.in_(["NEW", "SENT"]), ob.c.next_retry_at <= now))
                           .order_by(ob.c.id).limit(limit)).scalars().all()
    for oid in due:
        now = clock()
        with engine.begin() as conn:
            row = conn.execute(select(ob).where(ob.c.id == oid)).mappings().first()
            if row["kind"] == "revoke":  # a revoke waits until its grant has an answer
                grant = conn.execute(select(ob.c.status).where(and_(
                    ob.c.org_code == row["org_code"], ob.c.appointment_id == row["appointment_id"],
                    ob.c.kind == "grant"))).scalar()
                if grant in ("NEW", "SENT"):
                    report.waiting += 1
                    continue
                if grant == "FAILED":
                    _move_outbox(conn, ops, oid, "ACKED", now, acked_at=now, last_code="SKIPPED",
                                 last_error="授权未建立, 无需撤销", locked_until=None)
                    report.acked += 1
                    continue
            if not _claim(conn, ops, oid, now):
                continue
        roles = json.loads(decrypt_field(keys, row["payload"]))
        if row["kind"] == "revoke":
            with engine.connect() as conn:
                roles["auth_id"] = conn.execute(select(ar.c.auth_id).where(and_(
                    ar.c.org_code == row["org_code"], ar.c.appointment_id == row["appointment_id"]))).scalar()
        report.sent += 1
        refused = False
        try:
            result: PlatformResult | None = client.call(row["kind"], roles)
            error = None
        except AnswerRefused as exc:
            result, error, refused = None, str(exc), True
            log.warning("平台应答被拒收 (未签名 / 非本次请求 / 冒充), 将重试: outbox=%s kind=%s %s",
                        row["id"], row["kind"], exc)
        except PlatformUnavailable as exc:
            result, error = None, str(exc)
        now = clock()
        _settle(engine, ops, keys, cfg, row, result, error, now, report, refused=refused)
    return report


def _settle(engine: Engine, ops: Ops, keys: KeyStore, cfg: PlatformConfig, row: Any, result: PlatformResult | None,
            error: str | None, now: datetime, report: OutboxReport, refused: bool = False) -> None:
    """Record one attempt's outcome. A refused answer (`refused`) is retried like an outage and, when
    the retries are used up, leaves the authorization PENDING for staff: it never fails it."""
    ob, ar, pm = ops.table("outbox"), ops.table("auth_record"), ops.table("platform_message")
    appointment = (row["org_code"], row["appointment_id"])
    attempts = row["attempts"] + 1
    code = result.code if result else (REFUSED if refused else "TRANSPORT")
    report.codes[code] = report.codes.get(code, 0) + 1
    with engine.begin() as conn:
        if result is not None:
            conn.execute(pm.insert().values(
                request_id=result.request_id, outbox_id=row["id"], service_code=cfg.service(row["kind"]).code,
                request_sm3=result.request.plaintext_sm3, request_envelope=json.dumps(result.request.envelope),
                response_envelope=json.dumps(result.response_envelope, ensure_ascii=False), code=result.code,
                sent_at=now))
        if refused:
            audit(conn, ops, keys, ts=now, actor_type="system", actor_id="outbox", patient_key=row["patient_key"],
                  action="PLATFORM_ANSWER_REFUSED", object_type="outbox", object_id=str(row["id"]),
                  result_code=REFUSED, detail={"attempt": attempts, "error": error})
        audit(conn, ops, keys, ts=now, actor_type="system", actor_id="outbox", patient_key=row["patient_key"],
              action=f"PLATFORM_{row['kind'].upper()}", object_type="outbox", object_id=str(row["id"]),
              request_id=result.request_id if result else None, result_code=code,
              detail={"attempt": attempts, "digest": result.request.digest if result else None,
                      "error": error})
        success = result is not None and (result.code == cfg.codes.success or result.code in cfg.codes.treat_as_success)
        if success:
            _move_outbox(conn, ops, row["id"], "ACKED", now, attempts=attempts, acked_at=now, last_code=code,
                         last_error=None, locked_until=None)
            report.acked += 1
            data = result.data
            if row["kind"] == "grant":
                status = cfg.status_role(str(data.get("auth_status") or ""))
                values = {"auth_id": data.get("auth_id"), "last_code": code}
                eff, exp = _parse(cfg, data.get("effective_time")), _parse(cfg, data.get("expire_time"))
                if eff:
                    values["effective_time"] = eff
                if exp:
                    values["expire_time"] = exp
                conn.execute(update(ar).where(and_(ar.c.org_code == appointment[0],
                                                   ar.c.appointment_id == appointment[1])).values(**values))
                if status == "active":
                    _move_auth(conn, ops, appointment, "ACTIVE", now)
                elif status in ("revoked", "expired"):
                    _move_auth(conn, ops, appointment, status.upper(), now)
            elif row["kind"] == "revoke":
                _move_auth(conn, ops, appointment, "REVOKED", now, last_code=code)
                report.revoked_patients.append(row["patient_key"])
            return
        retryable = result is None or cfg.codes.retryable(result.code)
        give_up = now - row["created_at"] >= cfg.retry.give_up_after
        if retryable and not give_up:
            conn.execute(update(ob).where(ob.c.id == row["id"]).values(
                attempts=attempts, next_retry_at=now + cfg.retry.delay(attempts), locked_until=None,
                last_code=code, last_error=error or (result.msg if result else None), updated_at=now))
            report.retry += 1
            return
        msg = error or (cfg.codes.message(result.code) if result else "")
        _move_outbox(conn, ops, row["id"], "FAILED", now, attempts=attempts, last_code=code, last_error=msg,
                     locked_until=None)
        report.failed += 1
        if row["kind"] == "grant" and not refused:
            _move_auth(conn, ops, appointment, "FAILED", now, last_code=code)
        log.warning("平台调用失败, 转人工处理: outbox=%s kind=%s code=%s %s", row["id"], row["kind"], code, msg)


# ---------------------------------------------------------------- nightly reconciliation (AUTH_QUERY)


@dataclass
class ReconcileReport:
    checked: int = 0
    changed: int = 0
    unreachable: int = 0
    revoked_patients: list[str] = field(default_factory=list)


def reconcile(engine: Engine, ops: Ops, client: PlatformClient, keys: KeyStore, clock: Clock,
              limit: int = 1000) -> ReconcileReport:
    """Ask the platform for every live authorization's status; follow a revocation / expiry made there
    (e.g. the patient withdrew in the platform's own app) — forward moves only."""
    cfg = client.cfg
    ar = ops.table("auth_record")
    rep = ReconcileReport()
    with engine.connect() as conn:
        live = conn.execute(select(ar.c.org_code, ar.c.appointment_id, ar.c.auth_id, ar.c.patient_key, ar.c.status)
                            .where(and_(ar.c.status.in_(["PENDING", "ACTIVE"]), ar.c.auth_id.is_not(None)))
                            .order_by(ar.c.id).limit(limit)).all()
    for org, appointment, auth_id, pkey, status in live:
        try:
            res = client.query({"org_code": org, "appointment_id": appointment, "auth_id": auth_id})
        except PlatformUnavailable:
            rep.unreachable += 1
            continue
        rep.checked += 1
        if res.code != cfg.codes.success:
            continue
        role = cfg.status_role(str(res.data.get("auth_status") or ""))
        target = {"active": "ACTIVE", "revoked": "REVOKED", "expired": "EXPIRED"}.get(role or "")
        if target is None or target == status:
            continue
        now = clock()
        with engine.begin() as conn:
            values = {"revoked_at": now, "revoke_type": cfg.revoke_types.get("other")} if target == "REVOKED" else {}
            if _move_auth(conn, ops, (org, appointment), target, now, last_code=res.code, **values):
                rep.changed += 1
                if target in ("REVOKED", "EXPIRED"):
                    rep.revoked_patients.append(pkey)
                audit(conn, ops, keys, ts=now, actor_type="job", actor_id="reconcile", patient_key=pkey,
                      action="AUTH_RECONCILED", object_type="appointment", object_id=appointment,
                      request_id=res.request_id, result_code=res.code, detail={"from": status, "to": target})
    return rep

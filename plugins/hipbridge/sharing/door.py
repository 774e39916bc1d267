"""The booking system's door (预约授权入口): a small FastAPI service called on book, cancel and refund.

It answers at once: the authorization record and the outbox row are written in one transaction
and the platform call is left to the outbox worker, so a platform outage never blocks a booking.
A cancel / refund / patient withdrawal also deletes the patient's shared data right away
(background task after the answer), unless another live authorization still needs it.
Only callers with role `booking`: `Authorization: Bearer <token>`, checked before the body is read
(`sharing.callers.secure_app`); tokens stored as SM3 hashes in the key folder
(`hipbridge door-token create <caller> --role booking`). Bodies above 64 KiB get 413.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, select
from sqlalchemy.engine import Engine

from hipbridge.crypto.keys import KeyStore
from hipbridge.io.ops import Ops
from hipbridge.platform.config import PlatformConfig, SharingConfig, platform_config, sharing_config
from hipbridge.platform.outbox import Booking, BookingConflict, enqueue_grant, enqueue_revoke, record_visit
from hipbridge.platform.state import audit

from .callers import Caller, CallerStore, require_role, secure_app

log = logging.getLogger("hipbridge.sharing.door")


# ---------------------------------------------------------------- callers


def callers_path(keys: KeyStore, cfg: SharingConfig | None = None) -> Path:
    return keys.directory / (cfg or sharing_config()).door.callers_file


def caller_store(keys: KeyStore, cfg: SharingConfig | None = None) -> CallerStore:
    return CallerStore(callers_path(keys, cfg))


def add_caller(keys: KeyStore, caller: str, cfg: SharingConfig | None = None, roles: tuple[str, ...] = ("booking",)
               ) -> str:
    """Create (or replace) a caller's token; only its SM3 hash is stored. Returns the token, shown once."""
    return caller_store(keys, cfg).create(caller, roles)


# ---------------------------------------------------------------- request models


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Patient(_In):
    name: str = Field(min_length=1, max_length=50)
    id_type: str = Field(alias="idType", min_length=2, max_length=2, description="CV02.01.101")
    id_no: str = Field(alias="idNo", min_length=1, max_length=32)
    phone: str | None = Field(None, max_length=20)
    age: int | None = Field(None, ge=0, le=150)


class Guardian(_In):
    name: str
    id_type: str = Field(alias="idType")
    id_no: str = Field(alias="idNo")
    relation: str


class Consent(_In):
    given: bool = Field(description="患者是否勾选《跨机构诊疗数据共享授权告知书》(默认不勾选)")
    method: str = "CHECKBOX"
    time: datetime | None = None
    terminal_id: str | None = Field(None, alias="terminalId")
    operator_id: str | None = Field(None, alias="operatorId")


class BookIn(_In):
    appointment_id: str = Field(alias="appointmentId", min_length=1, max_length=32)
    channel: str = "03"
    patient: Patient
    guardian: Guardian | None = None
    visit_date: datetime = Field(alias="visitDate")
    visit_type: Literal["outpatient", "inpatient"] = Field("outpatient", alias="visitType")
    dept_code: str | None = Field(None, alias="deptCode")
    dept_name: str | None = Field(None, alias="deptName")
    doctor_code: str | None = Field(None, alias="doctorCode")
    doctor_name: str | None = Field(None, alias="doctorName")
    consent: Consent


class CancelIn(_In):
    appointment_id: str = Field(alias="appointmentId", min_length=1, max_length=32)
    reason: str | None = None
    operator_id: str | None = Field(None, alias="operatorId")


class VisitIn(_In):
    appointment_id: str = Field(alias="appointmentId", min_length=1, max_length=32)
    visit_no: str | None = Field(None, alias="visitNo")
    time: datetime


# ---------------------------------------------------------------- app

_booking_role = require_role("booking")


def caller(who: Annotated[Caller, Depends(_booking_role)]) -> str:
    """The name of the authenticated booking-system caller (role `booking`)."""
    return who.name



def create_door_app(frontend: Engine, ops: Ops, keys: KeyStore, org_code: str, org_name: str,
                    clock: Callable[[], datetime] | None = None,
                    on_revoke: Callable[[str], object] | None = None,
                    cfg: SharingConfig | None = None, pcfg: PlatformConfig | None = None) -> FastAPI:
    """`on_revoke(patient_key)` runs after the answer (the immediate purge); None in tests that call it later."""
    cfg = cfg or sharing_config()
    pcfg = pcfg or platform_config()
    clock = clock or pcfg.local_now
    app = FastAPI(title="hipbridge 预约授权入口", docs_url=None, redoc_url=None, openapi_url=None)
    secure_app(app, caller_store(keys, cfg), rules={"/booking": ["booking"], "/consent": ["booking"],
                                                    "/visit": ["booking"]})

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/booking/book", status_code=202)
    def book(body: BookIn, who: str = Depends(caller)) -> dict:
        now = clock()
        p = body.patient
        if not body.consent.given:
            # sharing is optional for the patient: the booking proceeds, nothing is sent
            with frontend.begin() as conn:
                audit(conn, ops, keys, ts=now, actor_type="system", actor_id=who, action="CONSENT_DECLINED",
                      patient_key=keys.patient_key(p.id_type, p.id_no), object_type="appointment",
                      object_id=body.appointment_id)
            return {"accepted": True, "shared": False, "message": "患者未授权共享, 预约照常"}
        if p.age is not None and p.age < cfg.authorization.guardian_age_below and body.guardian is None:
            raise HTTPException(422, f"未满{cfg.authorization.guardian_age_below}周岁须监护人授权 (A2003)")
        booking = Booking(
            appointment_id=body.appointment_id, patient_name=p.name, patient_id_type=p.id_type,
            patient_id_no=p.id_no, patient_phone=p.phone, visit_date=body.visit_date, visit_type=body.visit_type,
            channel=body.channel, dept_code=body.dept_code, dept_name=body.dept_name, doctor_code=body.doctor_code,
            doctor_name=body.doctor_name, consent_method=body.consent.method, consent_time=body.consent.time,
            consent_terminal=body.consent.terminal_id, consent_operator=body.consent.operator_id,
            guardian=({"name": body.guardian.name, "id_type": body.guardian.id_type, "id_no": body.guardian.id_no,
                       "relation": body.guardian.relation} if body.guardian else None))
        try:
            res = enqueue_grant(frontend, ops, keys, org_code, org_name, booking, now, actor=who, share=cfg, cfg=pcfg)
        except BookingConflict as exc:
            return JSONResponse({"code": exc.code, "detail": pcfg.codes.message(exc.code) + ": 与已登记的患者不同"},
                                status_code=409)
        return {"accepted": True, "shared": True, "outboxId": res.outbox_id, "duplicate": res.duplicate,
                "authStatus": res.auth_status}

    def _revoke(body: CancelIn, kind: str, who: str, tasks: BackgroundTasks) -> dict:
        now = clock()
        res = enqueue_revoke(frontend, ops, keys, org_code, body.appointment_id, pcfg.revoke_types[kind], now,
                             reason=body.reason, operator=body.operator_id, actor=who)
        if res is None:
            return {"accepted": True, "shared": False, "message": "该预约无共享授权"}
        if on_revoke is not None:
            pkey = _patient_of(body.appointment_id)
            if pkey:
                tasks.add_task(on_revoke, pkey)
        return {"accepted": True, "outboxId": res.outbox_id, "duplicate": res.duplicate, "authStatus": res.auth_status}

    def _patient_of(appointment_id: str) -> str | None:
        ar = ops.table("auth_record")
        with frontend.connect() as conn:
            return conn.execute(select(ar.c.patient_key).where(and_(
                ar.c.org_code == org_code, ar.c.appointment_id == appointment_id))).scalar()

    @app.post("/booking/cancel", status_code=202)
    def cancel(body: CancelIn, tasks: BackgroundTasks, who: str = Depends(caller)) -> dict:
        return _revoke(body, "cancel", who, tasks)

    @app.post("/booking/refund", status_code=202)
    def refund(body: CancelIn, tasks: BackgroundTasks, who: str = Depends(caller)) -> dict:
        return _revoke(body, "refund", who, tasks)

    @app.post("/consent/withdraw", status_code=202)
    def withdraw(body: CancelIn, tasks: BackgroundTasks, who: str = Depends(caller)) -> dict:
        return _revoke(body, "patient", who, tasks)

    @app.post("/visit/start", status_code=202)
    def visit_start(body: VisitIn, who: str = Depends(caller)) -> dict:
        ok = record_visit(frontend, ops, keys, org_code, body.appointment_id, clock(), visit_no=body.visit_no,
                          start=body.time, actor=who)
        return {"accepted": True, "known": ok}

    @app.post("/visit/end", status_code=202)
    def visit_end(body: VisitIn, who: str = Depends(caller)) -> dict:
        ok = record_visit(frontend, ops, keys, org_code, body.appointment_id, clock(), visit_no=body.visit_no,
                          end=body.time, actor=who)
        return {"accepted": True, "known": ok}

    return app

"""调阅记录上传 (互认 spec §3.2.2.5.10): queued through the outbox when a doctor opens a lab / exam report.

The `reviewId` is created once per (doctor, visit, report), with the outbox row, in one
transaction; opening the report again, and every retry of the upload, reuses it, so the platform
never counts one look twice (P1 makes a fresh GUID per HTTP call and double-counts its retries).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from hipbridge.audit import append
from hipbridge.crypto.fields import encrypt_field
from hipbridge.crypto.keys import KeyStore
from hipbridge.io.ops import Ops
from hipbridge.platform.config import PlatformConfig

from .config import DisplayConfig
from .launch import LaunchContext


@dataclass(frozen=True)
class Review:
    review_id: str
    outbox_id: int | None
    created: bool


def review_roles(cfg: DisplayConfig, pcfg: PlatformConfig, ctx: LaunchContext, report: dict[str, Any],
                 review_id: str, now: datetime) -> dict[str, Any]:
    """The upload's roles (config/platform.yaml messages.<review.service> maps them to field names)."""
    r = cfg.review
    t = pcfg.time_format
    when = report.get("_time")
    return {
        "org_code": ctx.org_code, "patient_id": ctx.facts.get("patientId"), "gh_id": ctx.visit_id,
        "item_type": r.item_types[report["kind"]], "item_code": report.get("itemCode"),
        "report_org_code": report["orgCode"], "report_org_name": report["orgName"], "report_no": report["reportNo"],
        "report_name": report["title"], "report_time": when.strftime(t) if isinstance(when, datetime) else None,
        "view_time": now.strftime(t), "operate_time": now.strftime(t), "id_card_type_code": ctx.facts.get("idType"),
        "search_type": r.search_type, "business_no": report.get("businessNo"), "review_id": review_id,
        "cross_flag": r.cross_flag, "doctor_id": ctx.doctor_id,
    }


def queue_review(engine: Engine, ops: Ops, keys: KeyStore, cfg: DisplayConfig, pcfg: PlatformConfig,
                 ctx: LaunchContext, report: dict[str, Any], now: datetime) -> Review:
    """The report's reviewId for this doctor and visit; the first time, also its outbox row."""
    rv, ob = ops.table("display_review"), ops.table("outbox")
    key = and_(rv.c.doctor_id == ctx.doctor_id, rv.c.visit_id == ctx.visit_id, rv.c.report_kind == report["kind"],
               rv.c.report_org == report["orgCode"], rv.c.report_no == report["reportNo"])
    for _attempt in range(3):
        with engine.connect() as conn:
            hit = conn.execute(select(rv.c.review_id, rv.c.outbox_id).where(key)).first()
        if hit is not None:
            return Review(hit[0], hit[1], False)
        review_id = uuid.uuid4().hex
        roles = review_roles(cfg, pcfg, ctx, report, review_id, now)
        try:
            with engine.begin() as conn:
                res = conn.execute(ob.insert().values(
                    kind=cfg.review.service, org_code=ctx.org_code, appointment_id=review_id,
                    patient_key=ctx.patient_key or "", status="NEW", attempts=0, next_retry_at=now,
                    payload=encrypt_field(keys, json.dumps({k: v for k, v in roles.items() if v is not None},
                                                           ensure_ascii=False)),
                    created_at=now, updated_at=now))
                oid = res.inserted_primary_key[0]
                conn.execute(rv.insert().values(
                    org_code=ctx.org_code, doctor_id=ctx.doctor_id, visit_id=ctx.visit_id, report_kind=report["kind"],
                    report_org=report["orgCode"], report_no=report["reportNo"], review_id=review_id, outbox_id=oid,
                    created_at=now))
                append(conn, ops, keys, [{
                    "ts": now, "actor_type": "system", "actor_id": "display", "patient_key": ctx.patient_key,
                    "action": "OUTBOX_REVIEW", "object_type": "outbox", "object_id": str(oid),
                    "detail": {"reviewId": review_id, "visitId": ctx.visit_id, "kind": report["kind"]}}])
            return Review(review_id, oid, True)
        except IntegrityError:   # the same doctor opened it twice at once: the other request won
            continue
    raise RuntimeError("调阅记录 could not be queued")

"""The doctor's decisions on a reminder (interfaces.md §A10 step 5–6) and their uploads.

    互认 / 引用 (recognize) → a structured EMR citation (kept in recognition_citation, a hospital record
                               that the shared-data purge never touches) + 引用记录 (quoteId)
    不互认 (decline)        → a reason from the dictionary (99 needs diagName; 98 / 99 not counted) +
                               互认记录 (mrId, recognise 0) + the EMR sentence
    忽略 (ignore)           → reminded, no decision; nothing uploaded
    撤销 (undo)             → back to 未处理: 撤销不互认 (revokeId) or 撤销互认 (a 互认记录 with recognise 0)

Only the ordering doctor (the reminder's doctor) of the open visit decides; a closed visit locks it.
At decision time the result is re-evaluated against today's catalog and window ("已过有效期，不可互认").
Each upload is an outbox row whose GUID is created with it, in the decision's transaction, and reused on
every retry; the same action twice (a double click) changes nothing and uploads nothing again.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from hipbridge.audit import append
from hipbridge.crypto.fields import encrypt_field
from hipbridge.display.launch import LaunchRequest
from hipbridge.display.records import numeric
from hipbridge.platform.config import platform_config

ACTIONS = ("recognize", "decline", "ignore", "undo")


class DecisionError(Exception):
    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Outcome:
    status: str
    action: str
    changed: bool
    citation: dict[str, Any] | None = None
    note: str | None = None
    uploads: list[tuple[str, str]] | None = None     # (service role, GUID)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "action": self.action, "changed": self.changed, "citation": self.citation,
                "note": self.note, "uploads": [{"service": s, "id": g} for s, g in self.uploads or []]}


class Decisions:
    def __init__(self, cds, keys):
        self.cds, self.keys = cds, keys
        self.rec, self.cfg = cds.rec, cds.rec.rec.cfg
        self.pcfg = platform_config()

    def _err(self, key: str, status: int) -> DecisionError:
        return DecisionError(key, getattr(self.cfg.decisions, key), status)

    def decide(self, remind_id: str, doctor_id: str, action: str, reason_code: str | None = None,
               diag_name: str | None = None) -> Outcome:
        if action not in ACTIONS:
            raise DecisionError("A1001", f"action: expected one of {list(ACTIONS)} (got {action!r})", 422)
        ops, eng = self.cds.ops, self.cds.frontend
        rem, dec = ops.table("recognition_reminder"), ops.table("recognition_decision")
        with eng.connect() as conn:
            r = conn.execute(select(rem).where(rem.c.remind_id == remind_id)).mappings().first()
        if r is None:
            raise DecisionError("A1002", f"remindId: 未知的提醒 {remind_id!r}", 404)
        r = dict(r)
        if doctor_id != r["doctor_id"]:
            raise self._err("not_ordering_doctor", 403)
        now = self.cds.clock()
        decision, visit, pkey, auth = self.cds.launcher.decide(
            LaunchRequest(r["org_code"], r["visit_id"], r["patient_id"], doctor_id, None, "RECOGNIZE"), now)
        if decision == "visit_closed":
            raise self._err("locked", 409)
        if decision != "ok" or not auth:
            raise DecisionError(decision, self.cds.launcher.cfg.message(decision), 403)
        reason = None
        if action == "decline":
            reason = self.cds.reasons.current().get(reason_code or "")
            if reason is None:
                raise self._err("unknown_reason", 422)
            if reason.needs_diagnosis and not (diag_name or "").strip():
                raise self._err("diagnosis_required", 422)
        cand = data = None
        if action == "recognize":      # re-check catalog, window, eligibility, QC now
            data = self.rec.reader.patient([auth["auth_id"]])
            cand = next((c for c in self.rec.candidates(data, {r["item_code"]}, now).get(r["item_code"], [])
                         if c.org_code == r["report_org_code"] and c.report_no == r["report_no"]), None)
            if cand is None:
                raise self._err("expired", 409)
        key = and_(dec.c.visit_id == r["visit_id"], dec.c.report_org_code == r["report_org_code"],
                   dec.c.report_no == r["report_no"], dec.c.doctor_id == doctor_id)
        target = {"recognize": "1", "decline": "0", "ignore": "2", "undo": "2"}[action]
        for attempt in range(6):
            try:
                with eng.begin() as conn:
                    cur = conn.execute(select(dec).where(key).with_for_update()).mappings().first()
                    cur = dict(cur) if cur else None
                    status = cur["status"] if cur else "2"
                    last = cur["action"] if cur else None
                    if action == "undo" and status == "2":
                        raise self._err("nothing_to_undo", 409)
                    if cur and status == target and action == last:
                        return Outcome(status, action, False)          # a double click: nothing again
                    values = {"status": target, "action": action, "decided_at": now,
                              "reason_code": reason.code if reason else None,
                              "diag_name": (diag_name or None) if reason else None,
                              "counted": (1 if reason.counted else 0) if reason else None}
                    if cur is None:
                        did = conn.execute(dec.insert().values(
                            org_code=r["org_code"], visit_id=r["visit_id"], patient_id=r["patient_id"],
                            doctor_id=doctor_id, report_org_code=r["report_org_code"], report_no=r["report_no"],
                            reminder_id=r["id"], **values)).inserted_primary_key[0]
                    else:
                        did = cur["id"]
                        conn.execute(update(dec).where(dec.c.id == did).values(**values))
                    out = self._effects(conn, r, visit, pkey, did, cur, action, status, reason, diag_name,
                                        cand, data, now)
                    append(conn, ops, self.keys, [{
                        "ts": now, "actor_type": "doctor", "actor_id": doctor_id, "patient_key": pkey,
                        "action": "HR_DECISION", "object_type": "report", "object_id": f"{r['report_org_code']}/{r['report_no']}",
                        "result_code": action, "detail": {"visitId": r["visit_id"], "from": status, "to": target,
                                                          "reasonCode": reason.code if reason else None,
                                                          "uploads": out.uploads}}])
                    return out
            except IntegrityError:
                continue       # a concurrent first decision: read it and decide again
            except OperationalError as exc:   # two first decisions locking the same gap (MariaDB 1213 / 1205)
                if getattr(exc.orig, "args", [None])[0] not in (1213, 1205):
                    raise
                time.sleep(0.01 * (attempt + 1) + random.random() * 0.02)
        raise RuntimeError("recognition_decision: could not record the decision")

    # ------------------------------------------------------------ effects

    def _roles(self, r: dict, visit, now: datetime) -> dict[str, Any]:
        t = self.pcfg.time_format
        up = self.cfg.uploads
        return {"org_code": r["org_code"], "patient_id": r["patient_id"], "gh_id": r["visit_id"],
                "item_type": up.item_types[r["kind"]], "item_code": r["item_code"],
                "report_org_code": r["report_org_code"], "report_org_name": r["report_org_name"],
                "report_no": r["report_no"], "report_id": r["report_no"], "report_name": r["report_name"],
                "report_time": r["report_time"].strftime(t), "operate_time": now.strftime(t),
                "id_card_type_code": (visit.id_type if visit else None) or "01", "doctor_id": r["doctor_id"],
                "cross_flag": up.cross_flag, "client_type": up.client_type}

    def _effects(self, conn, r, visit, pkey, did, cur, action, status, reason, diag_name, cand, data,
                 now) -> Outcome:
        roles = self._roles(r, visit, now)
        uploads: list[tuple[str, str]] = []
        citation = note = None
        d = self.cfg.decisions
        if action == "recognize":
            citation = self.citation(cand, data)
            quote_id = uuid.uuid4().hex
            conn.execute(self.cds.ops.table("recognition_citation").insert().values(
                decision_id=did, quote_id=quote_id,
                citation=encrypt_field(self.keys, json.dumps(citation, ensure_ascii=False)), created_at=now))
            uploads.append(("hr_quote", enqueue(conn, self.cds.ops, self.keys, "hr_quote", quote_id, pkey, now,
                                                roles | {"quote_id": quote_id, "microbia_mark": "0"})))
            note = citation["text"]
        elif action == "decline":
            mr_id = uuid.uuid4().hex
            uploads.append(("hr_recognition", enqueue(conn, self.cds.ops, self.keys, "hr_recognition", mr_id, pkey, now,
                                                      roles | {"mr_id": mr_id, "recognise": "0",
                                                               "reason_code": reason.code, "reason_name": reason.name,
                                                               "diag_name": diag_name or None})))
            conn.execute(update(self.cds.ops.table("recognition_decision"))
                         .where(self.cds.ops.table("recognition_decision").c.id == did).values(mr_id=mr_id))
            note = d.decline_note.format(org=r["report_org_name"], date=f"{r['report_time']:%Y-%m-%d}",
                                         title=r["report_name"], no=r["report_no"], reason=reason.name)
        elif action == "undo" and status == "0":           # 撤销不互认
            last_mr = cur["mr_id"] if cur else None
            revoke_id = uuid.uuid4().hex
            uploads.append(("hr_revoke", enqueue(conn, self.cds.ops, self.keys, "hr_revoke", revoke_id, pkey, now,
                                                 roles | {"revoke_id": revoke_id, "mr_id": last_mr})))
        elif action == "undo" and status == "1":           # 撤销互认: re-uploaded as a 不互认-type record (P1)
            mr_id = uuid.uuid4().hex
            uploads.append(("hr_recognition", enqueue(conn, self.cds.ops, self.keys, "hr_recognition", mr_id, pkey, now,
                                                      roles | {"mr_id": mr_id, "recognise": "0"})))
        return Outcome({"recognize": "1", "decline": "0"}.get(action, "2"), action, True, citation, note, uploads)

    def citation(self, c, data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """Institution, report number, date and key values of the cited result (never the external diagnosis)."""
        values = []
        if c.kind == "lab":
            rows = [x for x in data.get("lab_result", [])
                    if x["org_code"] == c.org_code and str(x.get("report")) == c.report_no]
            for x in sorted(rows, key=lambda x: (numeric(x.get("seq")) or 0, str(x.get("name")))):
                v = x.get("value") if x.get("value") is not None else x.get("text")
                values.append({"name": x.get("name"), "value": v, "unit": x.get("unit"), "flag": x.get("abnormal"),
                               "numeric": numeric(v) is not None})
        else:
            values.append({"name": "检查所见", "value": c.row.get("findings")})
        shown = "、".join(f"{v['name']} {v['value']}{v.get('unit') or ''}" for v in values if v.get("value") is not None)
        text = self.cfg.decisions.cite_note.format(org=c.org_name, level=c.org_level, date=f"{c.report_time:%Y-%m-%d}",
                                                   title=c.title, no=c.report_no, values=shown or "见外院报告")
        return {"orgCode": c.org_code, "orgName": c.org_name, "orgLevel": c.org_level, "reportNo": c.report_no,
                "reportTime": c.report_time.strftime("%Y-%m-%d %H:%M"), "itemCode": c.item_code, "title": c.title,
                "values": values, "text": text}


def enqueue(conn, ops, keys, kind: str, guid: str, pkey: str | None, now: datetime, roles: dict[str, Any]) -> str:
    """One outbox row for a 互认 upload; `guid` (the record's own id) is its idempotency key. Only the
    roles the service's message names (config/platform.yaml messages.<kind>) are kept."""
    ob = ops.table("outbox")
    fields = platform_config().messages[kind]
    roles = {k: v for k, v in roles.items() if k in fields}
    conn.execute(ob.insert().values(
        kind=kind, org_code=roles["org_code"], appointment_id=guid, patient_key=pkey or "", status="NEW", attempts=0,
        next_retry_at=now, payload=encrypt_field(keys, json.dumps({k: v for k, v in roles.items() if v is not None},
                                                                  ensure_ascii=False)),
        created_at=now, updated_at=now))
    return guid

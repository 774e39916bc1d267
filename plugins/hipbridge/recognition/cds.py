"""The 互认 reminder as an HL7 CDS Hooks 2.0 service, mounted beside the external data page.

    GET  /cds-services                       discovery (patient-view = 接诊, order-select = 开单)
    POST /cds-services/{id}                  {hook, hookInstance, context: {userId, patientId, encounterId,
                                              draftOrders?, selections?}} → {cards: [...]}
    POST /cds-services/{id}/feedback         {feedback: [{card, outcome, overrideReason?, outcomeTimestamp}]}

Callers authenticate as role `workstation` (the display's dependency). The patient's rows are found
through the display's own access decision (visit open, treating doctor, an ACTIVE authorization);
refused → no cards. Each card's link is a one-time launch of the external data page with purpose
RECOGNIZE. Never blocks ordering: any internal error answers `{"cards": []}` and is logged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import and_, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from hipbridge.audit import AuditWriter
from hipbridge.display.launch import Launcher, LaunchRequest
from hipbridge.io.ops import Ops
from hipbridge.settings import hospital_tz

from .catalog import Order, Recognition
from .engine import Candidate, Recognizer
from .reasons import ReasonDictionary

log = logging.getLogger("hipbridge.recognition.cds")
SUMMARY_MAX = 139      # CDS Hooks: summary under 140 characters
QUEUED = "_queued"     # answer() → the route: 提醒记录 uploads were queued (drain the outbox after the answer)


def _ref(value: Any, prefix: str) -> str | None:
    """'Practitioner/D01' → 'D01' (a bare id is taken as is)."""
    if value is None:
        return None
    s = str(value)
    return s.split("/", 1)[1] if s.startswith(prefix + "/") else s


def _code(concept: Any) -> str | None:
    if isinstance(concept, dict):
        for c in concept.get("coding") or []:
            if isinstance(c, dict) and c.get("code"):
                return str(c["code"])
        return concept.get("text")
    return None


def orders_of(context: dict[str, Any], categories: dict[str, str]) -> list[Order]:
    """The FHIR ServiceRequests of draftOrders (only the selected ones when `selections` is given)."""
    bundle = context.get("draftOrders") or {}
    selected = {str(s).split("/", 1)[-1] for s in context.get("selections") or []}
    out: list[Order] = []
    for e in bundle.get("entry") or []:
        r = (e or {}).get("resource") or {}
        if r.get("resourceType") != "ServiceRequest":
            continue
        oid = str(r.get("id") or "")
        if selected and oid not in selected:
            continue
        kind = None
        for cat in r.get("category") or []:
            kind = kind or categories.get(_code(cat) or "")
        code = _code(r.get("code"))
        if kind is None or not code:
            log.info("order %s skipped: category or code not understood", oid)
            continue
        part = next((_code(b) or b.get("text") for b in r.get("bodySite") or [] if isinstance(b, dict)), None)
        method = next((_code(d) or d.get("text") for d in r.get("orderDetail") or [] if isinstance(d, dict)), None)
        out.append(Order(oid, kind, code, part, method))
    return out


class CdsService:
    def __init__(self, *, rec: Recognizer, launcher: Launcher, writer: AuditWriter, frontend: Engine, ops: Ops,
                 org_code: str, clock: Callable[[], datetime], keys=None,
                 on_queued: Callable[[], object] | None = None, reasons: ReasonDictionary | None = None,
                 read_engine: Engine | None = None, write_engine: Engine | None = None):
        """`on_queued` runs after an answer that queued uploads (e.g. drain the outbox); `reasons` is the
        不互认 dictionary (default: the cached platform list, else the seed CSV, never asking the platform).
        `read_engine` / `write_engine`: the hook's per-call engines (workstation.service.hot_engine: an
        autocommit reader and a writer without pre-ping or ROLLBACK on return); the front-end by default."""
        self.rec, self.launcher, self.writer, self.keys, self.on_queued = rec, launcher, writer, keys, on_queued
        self.frontend, self.ops, self.org_code, self.clock = frontend, ops, org_code, clock
        self.read_engine, self.write_engine = read_engine or frontend, write_engine or frontend
        self.cfg: Recognition = rec.rec
        self.reasons = reasons or ReasonDictionary(rec.rec, frontend, ops)
        self.by_id = {s.id: (hook, s) for hook, s in self.cfg.cfg.cds.services.items()}

    # ------------------------------------------------------------ discovery

    def discovery(self) -> dict[str, Any]:
        return {"services": [{"hook": hook, "id": s.id, "title": s.title, "description": s.description,
                              "prefetch": {}} for hook, s in self.cfg.cfg.cds.services.items()]}

    # ------------------------------------------------------------ hooks

    def override_reasons(self) -> list[dict[str, str]]:
        return [{"code": r.code, "system": self.cfg.cfg.reason_system, "display": r.name}
                for r in self.reasons.current().values()]

    def answer(self, service_id: str, body: dict[str, Any], base_url: str, caller: str) -> dict[str, Any]:
        hook, svc = self.by_id[service_id]
        ctx = body.get("context") or {}
        doctor = _ref(ctx.get("userId"), "Practitioner")
        patient = _ref(ctx.get("patientId"), "Patient")
        visit = _ref(ctx.get("encounterId"), "Encounter")
        if not (doctor and patient and visit):
            return {"cards": []}
        now = self.clock()
        req = LaunchRequest(self.org_code, visit, patient, doctor, None, "RECOGNIZE")
        decided = self.launcher.decide(req, now)
        decision, _visit, pkey, auth = decided
        if decision != "ok" or not auth or not auth.get("auth_id"):
            self._audit(now, doctor, pkey, "HR_REMIND", decision, visit, {"hook": hook, "cards": 0})
            return {"cards": []}
        orders = orders_of(ctx, self.cfg.cfg.cds.categories) if hook == "order-select" else None
        pairs = self.pairs(auth["auth_id"], orders, now)
        if not pairs:
            self._audit(now, doctor, pkey, "HR_REMIND", "none", visit, {"hook": hook, "cards": 0})
            return {"cards": []}
        orders_ctx = [{"orderId": o.order_id, "code": o.local_code, "kind": o.kind} for o, _ in pairs if o]
        queued: list[str] = []
        known = self._known_reminders(visit, doctor, svc.search_type)
        cards_rows: list[dict[str, Any]] = []
        instance = str(body.get("hookInstance"))[:64] if body.get("hookInstance") else None
        # one transaction (one commit) for the launch behind the link, the reminder rows still missing
        # (their 提醒记录 queued with them) and the cards: all of it must exist before the answer leaves
        with self.write_engine.begin() as conn:
            token, _exp, lctx = self.launcher.launch(LaunchRequest(self.org_code, visit, patient, doctor, None,
                                                                   "RECOGNIZE", orders_ctx), caller, decided=decided,
                                                     conn=conn)
            stored = []
            for o, c in pairs:
                got = known.get((c.org_code, c.report_no, o.order_id if o else ""))
                if got is None:
                    got = self._create_reminder(conn, now, visit, patient, doctor, svc.search_type, o, c,
                                                lctx.patient_key, queued)
                stored.append((o, c, got))
            card_ids = ([str(uuid.uuid4()) for _ in stored] if hook == "order-select" else [str(uuid.uuid4())])
            for i, (_o, _c, (rid, _r)) in enumerate(stored):
                cid = card_ids[i] if hook == "order-select" else card_ids[0]
                cards_rows.append({"card_uuid": cid, "hook": hook, "hook_instance": instance, "reminder_id": rid,
                                   "created_at": now})
            conn.execute(insert(self.ops.table("recognition_card")), cards_rows)
        link = {"label": self.cfg.cfg.cds.link_label, "url": f"{base_url.rstrip('/')}/shared/ui?t={token}",
                "type": "absolute"}
        cds = self.cfg.cfg.cds
        cards: list[dict[str, Any]] = []
        if hook == "order-select":
            for card_id, (o, c, (_rid, remind_id)) in zip(card_ids, stored, strict=True):
                summary = cds.summary_order_select.format(n=1, org=c.org_name, date=f"{c.report_time:%Y-%m-%d}",
                                                          title=c.title, until=c.valid_until.isoformat(),
                                                          item=c.title)
                cards.append({
                    "uuid": card_id, "summary": summary[:SUMMARY_MAX], "indicator": cds.indicator,
                    "detail": self._detail([c]), "source": {"label": cds.source_label,
                                                            "topic": {"code": c.item_code, "display": c.title}},
                    "suggestions": [{"label": cds.suggestion, "uuid": str(uuid.uuid4()), "isRecommended": True,
                                     "actions": [{"type": "delete",
                                                  "description": f"{cds.suggestion}: 引用 {c.org_name} 报告 {c.report_no}",
                                                  "resourceId": [f"ServiceRequest/{o.order_id}"]}]}],
                    "selectionBehavior": "at-most-one", "overrideReasons": self.override_reasons(),
                    "links": [link], "extension": {"hipbridge": self._ext(c) | {"remindId": remind_id}}})
        else:
            card_id = card_ids[0]
            first = stored[0][1]
            summary = cds.summary_patient_view.format(n=len(stored), org=first.org_name,
                                                      date=f"{first.report_time:%Y-%m-%d}", title=first.title,
                                                      until=first.valid_until.isoformat(), item=first.title)
            cards.append({"uuid": card_id, "summary": summary[:SUMMARY_MAX], "indicator": cds.indicator,
                          "detail": self._detail([c for _, c, _ in stored]),
                          "source": {"label": first.org_name if len({c.org_code for _, c, _ in stored}) == 1
                                     else cds.source_label},
                          "overrideReasons": self.override_reasons(), "links": [link],
                          "extension": {"hipbridge": [self._ext(c) | {"remindId": r[1]}
                                                      for _, c, r in stored]}})
        self._audit(now, doctor, lctx.patient_key, "HR_REMIND", "ok", visit,
                    {"hook": hook, "cards": len(cards), "reports": [[c.org_code, c.report_no] for _, c, _ in stored]})
        return {"cards": cards, QUEUED: bool(queued)} if queued else {"cards": cards}

    def pairs(self, auth_id: str, orders: list[Order] | None, now: datetime) -> list[tuple[Order | None, Candidate]]:
        """What to remind of: with orders (开单), the newest qualifying result of each order line; without
        (接诊), every recognisable result of the patient, newest first."""
        data = self.rec.reader.patient([auth_id], kinds=("lab", "exam"))     # reports only: no results, visits, rx
        if orders is not None:
            return [(a.order, c) for a in self.rec.evaluate([auth_id], orders, now, data=data)
                    for c in a.candidates[:1]]
        pairs: list[tuple[Order | None, Candidate]] = [
            (None, c) for cs in self.rec.candidates(data, None, now).values() for c in cs]
        pairs.sort(key=lambda p: p[1].report_time, reverse=True)
        return pairs

    @staticmethod
    def _ext(c: Candidate) -> dict[str, Any]:
        return {"reportId": c.report_id, "kind": c.kind, "itemCode": c.item_code, "orgCode": c.org_code,
                "orgName": c.org_name, "orgLevel": c.org_level, "reportNo": c.report_no,
                "reportTime": c.report_time.strftime("%Y-%m-%d %H:%M"), "validUntil": c.valid_until.isoformat()}

    @staticmethod
    def _detail(cs: list[Candidate]) -> str:
        return "\n".join(f"- {c.org_name} ({c.org_level}) · {c.title} · 报告时间 {c.report_time:%Y-%m-%d %H:%M} 北京时间"
                         f" · 有效期至 {c.valid_until.isoformat()}" + (f" · {c.summary}" if c.summary else "")
                         for c in cs)

    # ------------------------------------------------------------ local records

    def _known_reminders(self, visit: str, doctor: str, search_type: str) -> dict[tuple[str, str, str], tuple[int, str]]:
        """(report org, report no, order id) → (row id, remindId) of this visit's and doctor's reminders of
        this search type: one indexed read instead of one per result (a visit has a handful)."""
        t = self.ops.table("recognition_reminder")
        with self.read_engine.connect() as conn:
            rows = conn.execute(select(t.c.report_org_code, t.c.report_no, t.c.order_id, t.c.id, t.c.remind_id).where(
                and_(t.c.visit_id == visit, t.c.doctor_id == doctor, t.c.search_type == search_type))).all()
        return {(r[0], r[1], r[2] or ""): (int(r[3]), str(r[4])) for r in rows}

    def _reminder_row(self, remind_id: str, now: datetime, visit: str, patient: str, doctor: str, search_type: str,
                      o: Order | None, c: Candidate) -> dict:
        """The stored reminder of candidate `c` for order `o` (none: a patient-view banner)."""
        return {"remind_id": remind_id, "org_code": self.org_code, "visit_id": visit, "patient_id": patient,
                "doctor_id": doctor, "search_type": search_type, "order_id": o.order_id if o else "",
                "order_code": o.local_code if o else None, "kind": c.kind, "item_code": c.item_code,
                "report_org_code": c.org_code, "report_org_name": c.org_name, "report_no": c.report_no,
                "report_name": c.title, "report_time": c.report_time,
                "valid_until": datetime.combine(c.valid_until, datetime.min.time()), "created_at": now}

    def _create_reminder(self, conn, now: datetime, visit: str, patient: str, doctor: str, search_type: str,
                         o: Order | None, c: Candidate, pkey: str | None, queued: list[str]) -> tuple[int, str]:
        """The reminder row and its 提醒记录 inside the caller's transaction, in a savepoint: a concurrent
        call that created the same row first wins, and its row is read back."""
        t = self.ops.table("recognition_reminder")
        oid = o.order_id if o else ""
        try:
            with conn.begin_nested():
                remind_id = uuid.uuid4().hex
                new = int(conn.execute(insert(t).values(
                    self._reminder_row(remind_id, now, visit, patient, doctor, search_type, o, c))
                ).inserted_primary_key[0])
                if self.keys is not None:
                    self._queue_remind(conn, remind_id, now, visit, patient, doctor, search_type, o, c, pkey)
            if self.keys is not None:
                queued.append(remind_id)
            return new, remind_id
        except IntegrityError:
            got = conn.execute(select(t.c.id, t.c.remind_id).where(_reminder_key(t, visit, doctor, search_type, oid, c))
                               .with_for_update()).first()        # a locking read: the latest commit, not this transaction's snapshot
            if got is None:
                raise
            return int(got[0]), str(got[1])

    def _remind_id(self, rid: int) -> str:
        t = self.ops.table("recognition_reminder")
        with self.frontend.connect() as conn:
            return str(conn.execute(select(t.c.remind_id).where(t.c.id == rid)).scalar())

    def _reminder(self, now: datetime, visit: str, patient: str, doctor: str, search_type: str,
                  o: Order | None, c: Candidate, pkey: str | None = None, queued: list[str] | None = None) -> int:
        """The reminder row of (visit, doctor, report, search type, order): created once with its remindId,
        and its 提醒记录 queued in the outbox in the same transaction."""
        t = self.ops.table("recognition_reminder")
        oid = o.order_id if o else ""
        key = _reminder_key(t, visit, doctor, search_type, oid, c)
        for _ in (1, 2):
            with self.frontend.begin() as conn:
                got = conn.execute(select(t.c.id).where(key)).scalar()
                if got is not None:
                    return int(got)
                try:
                    remind_id = uuid.uuid4().hex
                    new = int(conn.execute(insert(t).values(
                        self._reminder_row(remind_id, now, visit, patient, doctor, search_type, o, c))
                    ).inserted_primary_key[0])
                    if self.keys is not None:
                        self._queue_remind(conn, remind_id, now, visit, patient, doctor, search_type, o, c, pkey)
                        if queued is not None:
                            queued.append(remind_id)
                    return new
                except IntegrityError:
                    continue     # a concurrent call created it: read it
        raise RuntimeError("recognition_reminder: could not create or read the reminder row")

    def _queue_remind(self, conn, remind_id, now, visit, patient, doctor, search_type, o, c, pkey) -> None:
        from hipbridge.platform.config import platform_config

        from .decisions import enqueue

        t = platform_config().time_format
        up = self.cfg.cfg.uploads
        enqueue(conn, self.ops, self.keys, "hr_remind", remind_id, pkey, now, {
            "org_code": self.org_code, "patient_id": patient, "gh_id": visit, "item_type": up.item_types[c.kind],
            "report_org_code": c.org_code, "report_org_name": c.org_name, "report_no": c.report_no,
            "report_name": c.title, "report_time": c.report_time.strftime(t), "operate_time": now.strftime(t),
            "remind_id": remind_id, "search_type": search_type, "operate_type": up.operate_type_remind,
            "report_id": c.report_no, "doctor_id": doctor, "item_code": c.item_code,
            "order_id": o.order_id if o else None})

    def _card(self, card_id: str, hook: str, instance: Any, reminder_ids: list[int], now: datetime) -> None:
        t = self.ops.table("recognition_card")
        with self.frontend.begin() as conn:
            for rid in dict.fromkeys(reminder_ids):
                conn.execute(insert(t).values(card_uuid=card_id, hook=hook, hook_instance=str(instance)[:64] if instance
                                              else None, reminder_id=rid, created_at=now))

    def _audit(self, now: datetime, doctor: str | None, pkey: str | None, action: str, result: str,
               visit: str | None, detail: dict[str, Any]) -> None:
        self.writer.record([{"ts": now, "actor_type": "doctor", "actor_id": doctor, "patient_key": pkey,
                             "action": action, "object_type": "visit", "object_id": visit, "result_code": result,
                             "detail": detail}])

    # ------------------------------------------------------------ feedback

    def feedback(self, service_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = self.clock()
        items = body.get("feedback")
        if not isinstance(items, list) or not items:
            return 422, {"code": "A1001", "message": "feedback: 请求数据不能为空"}
        cards, fb, rem = (self.ops.table(n) for n in ("recognition_card", "recognition_feedback", "recognition_reminder"))
        saved = 0
        for i, f in enumerate(items):
            where = f"feedback[{i}]"
            card, outcome = str((f or {}).get("card") or ""), (f or {}).get("outcome")
            if outcome not in ("accepted", "overridden"):
                return 422, {"code": "A1001", "message": f"{where}.outcome: expected accepted or overridden"}
            with self.frontend.connect() as conn:
                owner = conn.execute(select(rem.c.doctor_id, rem.c.visit_id, rem.c.patient_id)
                                     .select_from(cards.join(rem, rem.c.id == cards.c.reminder_id))
                                     .where(cards.c.card_uuid == card)).first()
            if owner is None:
                return 404, {"code": "A1002", "message": f"{where}.card: 未知的提醒卡片 {card!r}"}
            code = comment = None
            if outcome == "overridden":
                reason = ((f.get("overrideReason") or {}).get("reason") or {})
                code = str(reason.get("code") or "")
                comment = (f.get("overrideReason") or {}).get("userComment")
                r = self.reasons.current().get(code)
                if r is None:
                    return 422, {"code": "A1003", "message": f"{where}.overrideReason.reason.code: 不互认理由 {code!r} "
                                                             f"不在理由字典中 (平台字典; 平台不可用时为缓存或 config/recognition/reasons.csv)"}
                if r.needs_diagnosis and not (comment or "").strip():
                    return 422, {"code": "A1004", "message": f"{where}.overrideReason.userComment: 理由 {code} 须填写诊断"}
            when = _time(f.get("outcomeTimestamp")) or now
            try:
                with self.frontend.begin() as conn:
                    conn.execute(insert(fb).values(card_uuid=card, outcome=outcome, reason_code=code,
                                                   comment=(comment or None) and str(comment)[:500],
                                                   doctor_id=owner[0], outcome_at=when, received_at=now))
                saved += 1
                dup = False
            except IntegrityError:
                dup = True    # the same feedback again (a retry or a double click): recorded once
            self._audit(now, owner[0], None, "HR_FEEDBACK", "duplicate" if dup else outcome, owner[1],
                        {"card": card, "outcome": outcome, "reasonCode": code})
        return 200, {"saved": saved}


def _time(v: Any) -> datetime | None:
    """An ISO timestamp as the hospital's local time (naive); an offset is converted to Asia/Shanghai."""
    if not v:
        return None
    try:
        t = datetime.fromisoformat(str(v))
    except ValueError:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(hospital_tz()).replace(tzinfo=None)
    return t


def mount_cds(app: FastAPI, svc: CdsService, workstation: Callable[..., Any]) -> None:
    router = APIRouter()

    @router.get("/cds-services")
    def discovery() -> dict:
        return svc.discovery()

    @router.post("/cds-services/{service_id}")
    async def hook(service_id: str, request: Request, tasks: BackgroundTasks,
                   who: object = Depends(workstation)) -> JSONResponse:
        if service_id not in svc.by_id:
            return JSONResponse({"code": "not_found", "message": f"未知的 CDS 服务 {service_id!r}"}, status_code=404)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise TypeError("body is not a JSON object")
            from starlette.concurrency import run_in_threadpool

            out = await run_in_threadpool(svc.answer, service_id, body, str(request.base_url),
                                          str(getattr(who, "name", who)))
        except Exception as exc:
            if getattr(exc, "status_code", None) == 413:
                raise   # a body over the limit (display.app.DisplayGuard): refused, not answered with no cards
            log.exception("互认提醒出错, 返回空提醒 (不阻断开单): %s", service_id)
            out = {"cards": []}
        if out.pop(QUEUED, False) and svc.on_queued is not None:
            tasks.add_task(svc.on_queued)     # after the answer: uploads never delay the doctor
        return JSONResponse(out, headers={"Cache-Control": "no-store"}, background=tasks)

    @router.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request, who: object = Depends(workstation)) -> JSONResponse:
        if service_id not in svc.by_id:
            return JSONResponse({"code": "not_found", "message": f"未知的 CDS 服务 {service_id!r}"}, status_code=404)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"code": "A1001", "message": "请求体不是 JSON"}, status_code=422)
        from starlette.concurrency import run_in_threadpool

        status, out = await run_in_threadpool(svc.feedback, service_id, body if isinstance(body, dict) else {})
        return JSONResponse(out, status_code=status)

    @router.post("/recognition/decisions")
    async def decide(request: Request, tasks: BackgroundTasks, who: object = Depends(workstation)) -> JSONResponse:
        """{remindId, doctorId, action: recognize | decline | ignore | undo, reasonCode?, diagName?}"""
        from starlette.concurrency import run_in_threadpool

        from .decisions import DecisionError, Decisions

        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"code": "A1001", "message": "请求体不是 JSON"}, status_code=422)
        if not isinstance(body, dict) or not body.get("remindId") or not body.get("doctorId"):
            return JSONResponse({"code": "A1001", "message": "remindId / doctorId: 必填"}, status_code=422)
        try:
            out = await run_in_threadpool(Decisions(svc, svc.keys).decide, str(body["remindId"]), str(body["doctorId"]),
                                          str(body.get("action") or ""), body.get("reasonCode"), body.get("diagName"))
        except DecisionError as exc:
            return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status)
        if out.uploads and svc.on_queued is not None:
            tasks.add_task(svc.on_queued)
        return JSONResponse(out.as_dict(), background=tasks)

    app.include_router(router)


def _reminder_key(t, visit: str, doctor: str, search_type: str, order_id: str, c: Candidate):
    """What makes a reminder one: (visit, doctor, report, search type, order) — the table's unique key."""
    return and_(t.c.visit_id == visit, t.c.doctor_id == doctor, t.c.report_org_code == c.org_code,
                t.c.report_no == c.report_no, t.c.search_type == search_type, t.c.order_id == order_id)


"""The 互认 reminder page, for HIS that cannot render CDS Hooks cards (interfaces.md §A10 step 4–5).

    POST /shared/launch {…, purpose: "RECOGNIZE", orders: [{orderId, hisItemId, kind?, part?, method?}]}
    GET  /shared/remind?t=<launchToken>   redeem (one time) → session cookie → 303 to /shared/remind
    GET  /shared/remind                   the page (Chinese; its assets under /shared/remind-static)
    GET  /shared/remind/items             the reminders of the launch's orders (none: of the visit)
    POST /shared/remind/decide            {remindId, action, reasonCode?, diagName?} for the session's doctor

The launch is the external data page's own (a one-time token bound to doctor + visit, no patient
identifier in any URL, the same access decision, the same session): "查看" opens the report through
`/shared/report/…` like the page does. A launch with another purpose is refused here. The reminders
are the CDS service's own (one `recognition_reminder` row and 提醒记录 per result, audited `HR_REMIND`);
decisions go through `decisions.Decisions` (only the visit's ordering doctor, re-checked windows).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import and_, select

from hipbridge.display.app import _SECURITY_HEADERS, SHARED_STATIC, TEMPLATES
from hipbridge.display.config import DisplayConfig
from hipbridge.display.launch import LaunchContext, Launcher, Refused
from hipbridge.display.records import StoreUnavailable
from hipbridge.settings import DEFAULT_TIMEZONE

from .catalog import KINDS, Order, Recognition
from .cds import CdsService

log = logging.getLogger("hipbridge.recognition.page")
_HERE = Path(__file__).resolve().parent
STATUS_LABELS = {"0": "不互认", "1": "已互认", "2": "未处理"}
KIND_LABELS = {"lab": "检验", "exam": "检查"}


def launch_orders(raw: list[dict[str, Any]], rec: Recognition) -> list[Order]:
    """The launch's order lines as `Order`s: `orderId`, the local code (`hisItemId` or `code`), the kind
    (`kind` lab | exam, or a ServiceRequest category code of config/recognition.yaml `cds.categories`;
    without one, the local map that knows the code — else lab, so it is logged as a gap)."""
    out: list[Order] = []
    for i, o in enumerate(raw or []):
        if not isinstance(o, dict):
            continue
        code = str(o.get("hisItemId") or o.get("code") or "").strip()
        if not code:
            continue
        given = str(o.get("kind") or o.get("category") or "")
        kind = given if given in KINDS else rec.cfg.cds.categories.get(given)
        if kind is None:
            known = [k for k in KINDS if code in rec.local.get(k, {})]
            kind = known[0] if len(known) == 1 else "lab"
        out.append(Order(str(o.get("orderId") or f"line-{i + 1}"), kind, code, o.get("part") or None,
                         o.get("method") or None))
    return out


def mount_reminder_page(app: FastAPI, svc: CdsService, launcher: Launcher, dcfg: DisplayConfig,
                        timezone: str = DEFAULT_TIMEZONE) -> None:
    rec = svc.cfg
    cookie = dcfg.launch.cookie
    # remind.html extends the display page's base.html; base.css and common.js come from /shared/static
    templates = Environment(loader=FileSystemLoader([_HERE / "templates", TEMPLATES]),
                            autoescape=select_autoescape(["html"]))
    page = templates.get_template("remind.html")
    app.mount("/shared/remind-static", StaticFiles(directory=_HERE / "static"), name="remind-static")
    search_type = {hook: s.search_type for hook, s in rec.cfg.cds.services.items()}

    def html(status: int, **ctx: Any) -> HTMLResponse:
        body = page.render(title=rec.cfg.page.title, static="/shared/remind-static", shared_static=SHARED_STATIC,
                           timezone=timezone,
                           timezone_label=dcfg.page.timezone_label, **ctx)
        return HTMLResponse(body, status_code=status, headers=_SECURITY_HEADERS)

    def refused_json(ref: Refused) -> JSONResponse:
        return JSONResponse({"code": ref.reason, "message": dcfg.message(ref.reason), "relaunch": ref.relaunch},
                            status_code=ref.status, headers=_SECURITY_HEADERS)

    def denied(ref: Refused, where: str) -> None:
        ctx = ref.launch
        svc._audit(svc.clock(), ctx.doctor_id if ctx else None, ctx.patient_key if ctx else None, "ACCESS_DENIED",
                   ref.reason, ctx.visit_id if ctx else None, {"page": where})

    def session(request: Request) -> LaunchContext:
        ctx = launcher.session(request.cookies.get(cookie))
        if ctx.purpose != "RECOGNIZE":
            raise Refused("wrong_purpose", 403, ctx)
        return ctx

    def message(reason: str) -> str:
        return rec.cfg.page.wrong_purpose if reason == "wrong_purpose" else dcfg.message(reason)

    @app.get("/shared/remind", response_class=HTMLResponse)
    def remind_page(request: Request, t: str | None = None) -> Response:
        try:
            if t is not None:
                ctx, token = launcher.redeem(t)
                if ctx.purpose != "RECOGNIZE":
                    raise Refused("wrong_purpose", 403, ctx)
                resp = RedirectResponse("/shared/remind", status_code=303, headers=_SECURITY_HEADERS)
                resp.set_cookie(cookie, token, max_age=int(dcfg.launch.session_ttl.total_seconds()), httponly=True,
                                samesite="strict", path="/shared", secure=request.url.scheme == "https")
                return resp
            ctx = session(request)
        except Refused as ref:
            denied(ref, "remind")
            return html(ref.status, ok=False, message=message(ref.reason))
        f = ctx.facts
        return html(200, ok=True, message=None,
                    patient={"name": f.get("patientName"), "id_no": f.get("idNoMasked"), "dept": f.get("deptName")},
                    doctor=f"{f.get('doctorName') or ''} {ctx.doctor_id}".strip())

    def decisions_of(visit: str, doctor: str) -> dict[tuple[str, str], dict[str, Any]]:
        dec = svc.ops.table("recognition_decision")
        cit = svc.ops.table("recognition_citation")
        with svc.frontend.connect() as conn:
            rows = [dict(r) for r in conn.execute(select(dec).where(and_(dec.c.visit_id == visit,
                                                                         dec.c.doctor_id == doctor))).mappings()]
            cites = {}
            ids = [r["id"] for r in rows if r["status"] == "1"]
            if ids:
                for r in conn.execute(select(cit.c.decision_id, cit.c.citation).where(cit.c.decision_id.in_(ids))
                                      .order_by(cit.c.id)):
                    cites[r[0]] = r[1]
        from hipbridge.crypto.fields import decrypt_field

        out = {}
        for r in rows:
            if r["id"] in cites and svc.keys is not None:
                r["citation"] = json.loads(decrypt_field(svc.keys, cites[r["id"]]))
            out[(r["report_org_code"], r["report_no"])] = r
        return out

    def items(ctx: LaunchContext) -> dict[str, Any]:
        now = svc.clock()
        orders = launch_orders(ctx.facts.get("orders") or [], rec) or None
        hook = "order-select" if orders else "patient-view"
        patient = str(ctx.facts.get("patientId") or "")
        pairs = svc.pairs(ctx.auth_id or "", orders, now) if ctx.auth_id else []
        reasons = svc.reasons.current()
        reminded = {o.order_id for o, _ in pairs if o}
        decided = decisions_of(ctx.visit_id, ctx.doctor_id) if pairs else {}
        out = []
        for o, c in pairs:
            rid = svc._reminder(now, ctx.visit_id, patient, ctx.doctor_id, search_type[hook], o, c, ctx.patient_key)
            d = decided.get((c.org_code, c.report_no)) or {}
            status = d.get("status", "2")
            reason = reasons.get(d.get("reason_code") or "") if status == "0" else None
            out.append({
                "remindId": svc._remind_id(rid), "orderId": o.order_id if o else None,
                "orderCode": o.local_code if o else None, "kind": c.kind, "kindLabel": KIND_LABELS[c.kind],
                "title": c.title, "orgName": c.org_name, "orgLevel": c.org_level, "reportNo": c.report_no,
                "reportId": c.report_id, "reportTime": f"{c.report_time:%Y-%m-%d %H:%M}",
                "validUntil": c.valid_until.isoformat(), "summary": c.summary, "status": status,
                "statusLabel": "已忽略" if d.get("action") == "ignore" else STATUS_LABELS[status],
                "reasonName": reason.name if reason else None, "citation": d.get("citation")})
        svc._audit(now, ctx.doctor_id, ctx.patient_key, "HR_REMIND", "ok" if out else "none", ctx.visit_id,
                   {"hook": "page", "cards": len(out), "reports": [[i["reportNo"]] for i in out]})
        return {
            "mode": "order" if orders else "visit", "generatedAt": f"{now:%Y-%m-%d %H:%M}", "timezone": timezone,
            "timezoneLabel": dcfg.page.timezone_label, "items": out,
            "notReminded": [{"orderId": o.order_id, "code": o.local_code} for o in orders or []
                            if o.order_id not in reminded],
            "reasons": [{"code": r.code, "name": r.name, "needsDiagnosis": r.needs_diagnosis}
                        for r in reasons.values()],
            "texts": {"none": rec.cfg.page.none, "noneForOrder": rec.cfg.page.none_for_order}}

    @app.get("/shared/remind/items")
    def remind_items(request: Request) -> JSONResponse:
        try:
            ctx = session(request)
        except Refused as ref:
            denied(ref, "remind-items")
            return refused_json(ref) if ref.reason != "wrong_purpose" else JSONResponse(
                {"code": ref.reason, "message": message(ref.reason), "relaunch": False}, status_code=403,
                headers=_SECURITY_HEADERS)
        try:
            body = items(ctx)
        except StoreUnavailable:
            return JSONResponse({"code": "store_down", "message": dcfg.message("store_down"), "relaunch": False},
                                status_code=503, headers=_SECURITY_HEADERS)
        return JSONResponse(body, headers=_SECURITY_HEADERS)

    @app.post("/shared/remind/decide")
    async def remind_decide(request: Request, tasks: BackgroundTasks) -> JSONResponse:
        from starlette.concurrency import run_in_threadpool

        from .decisions import DecisionError, Decisions

        try:
            ctx = await run_in_threadpool(session, request)
        except Refused as ref:
            denied(ref, "remind-decide")
            return refused_json(ref)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"code": "A1001", "message": "请求须为 JSON"}, status_code=415)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("remindId"):
            return JSONResponse({"code": "A1001", "message": "remindId: 必填"}, status_code=422)
        rem = svc.ops.table("recognition_reminder")

        def owned() -> bool:
            with svc.frontend.connect() as conn:
                return conn.execute(select(rem.c.id).where(and_(
                    rem.c.remind_id == str(body["remindId"]), rem.c.visit_id == ctx.visit_id,
                    rem.c.doctor_id == ctx.doctor_id))).first() is not None
        if not await run_in_threadpool(owned):
            return JSONResponse({"code": "A1002", "message": "这条提醒不属于本次打开的就诊"}, status_code=404)
        try:
            out = await run_in_threadpool(Decisions(svc, svc.keys).decide, str(body["remindId"]), ctx.doctor_id,
                                          str(body.get("action") or ""), body.get("reasonCode") or None,
                                          body.get("diagName"))
        except DecisionError as exc:
            return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status,
                                headers=_SECURITY_HEADERS)
        if out.uploads and svc.on_queued is not None:
            tasks.add_task(svc.on_queued)
        d = out.as_dict() | {"statusLabel": "已忽略" if out.action == "ignore" else STATUS_LABELS[out.status]}
        return JSONResponse(d, headers=_SECURITY_HEADERS, background=tasks)

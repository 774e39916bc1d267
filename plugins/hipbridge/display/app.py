"""The external data page and its JSON API (FastAPI), interfaces.md §A9.

    POST /shared/launch               HIS, server to server (caller role `workstation`) → one-time token
    GET  /shared/ui?t=<token>         redeem → session cookie → 303 to /shared/ui (the token leaves the URL)
    GET  /shared/ui                   the page (Chinese; its assets under /shared/static, served here)
    POST /shared/session              API clients: {launchToken} → {session} (then header X-HB-Session)
    GET  /shared/timeline             newest first, grouped by institution
    GET  /shared/report/{kind}/{id}   one visit / lab / exam / prescription; lab and exam queue a 调阅记录
    GET  /shared/status               the open page's poll: 200, or 401 / 403 and the page clears

Every list and detail view and every refusal goes to the hash-chained audit log before the answer
leaves (a failed audit write shows nothing). The shared store down → 503 "外院数据暂不可用"; launch
and the rest of HIS never touch the store, so they are unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from hipbridge.audit import AuditUnavailable, AuditWriter
from hipbridge.crypto.keys import KeyStore
from hipbridge.io.ops import Ops
from hipbridge.platform.config import PlatformConfig, platform_config
from hipbridge.settings import DEFAULT_TIMEZONE
from hipbridge.sharing.callers import DEFAULT_MAX_BODY, CallerGuard, CallerStore

from .config import Catalogs, DisplayConfig
from .launch import LaunchContext, Launcher, LaunchRequest, Refused
from .records import KIND_LABELS, QcNotes, Shaper, StoreReader, StoreUnavailable, parse_item_id
from .review import queue_review

log = logging.getLogger("hipbridge.display")
_HERE = Path(__file__).resolve().parent
TEMPLATES = _HERE / "templates"    # base.html: the page skeleton the reminder page extends too
SHARED_STATIC = "/shared/static"   # base.css, common.js: shared with the reminder page
SESSION_HEADER = "x-hb-session"
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


# HIS's token-authenticated endpoints on the display app: the launch, and the 互认 reminder's CDS
# Hooks services (recognition/cds.py) with its decisions; all role workstation
WORKSTATION_PATHS = {"/shared/launch": ["workstation"], "/cds-services/": ["workstation"],
                     "/recognition/decisions": ["workstation"]}


class DisplayGuard:
    """ASGI middleware: HIS's token-authenticated calls — `POST /shared/launch`, the CDS Hooks
    services `/cds-services/<id>` (and their feedback), `/recognition/decisions` — pass the caller
    guard (token and role workstation checked before the body is read, then the body limit,
    sharing.callers); every other `/shared` path authenticates by its page session, and the CDS
    discovery `GET /cds-services` is public (CDS Hooks), but both get the same body limit (413)."""

    def __init__(self, app, store: CallerStore, max_body: int = DEFAULT_MAX_BODY):
        self.app, self.max_body = app, max_body
        self.launch = CallerGuard(app, store, rules=WORKSTATION_PATHS, max_body=max_body)

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path in ("/shared/launch", "/recognition/decisions") or path.startswith("/cds-services/"):
            return await self.launch(scope, receive, send)
        if not (path.startswith("/shared/") or path == "/cds-services"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body:
            return await _too_large(send, self.max_body)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise StarletteHTTPException(413, f"请求体超过 {self.max_body} 字节")
            return message

        return await self.app(scope, limited, send)


async def _too_large(send, limit: int) -> None:
    body = JSONResponse({"code": "PAYLOAD_TOO_LARGE", "detail": f"请求体超过 {limit} 字节"}, status_code=413,
                        headers={"Connection": "close"})
    await send({"type": "http.response.start", "status": 413, "headers": body.raw_headers})
    await send({"type": "http.response.body", "body": body.body})


class LaunchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    org_code: str = Field(alias="orgCode", min_length=1, max_length=22)
    visit_id: str = Field(alias="visitId", min_length=1, max_length=64)
    patient_id: str = Field(alias="patientId", min_length=1, max_length=64)
    doctor_id: str = Field(alias="doctorId", min_length=1, max_length=64)
    dept_id: str | None = Field(None, alias="deptId", max_length=64)
    purpose: Literal["VIEW", "RECOGNIZE"] = "VIEW"
    orders: list[dict[str, Any]] = Field(default_factory=list)


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    launch_token: str = Field(alias="launchToken", min_length=1, max_length=128)


def create_display_app(*, frontend: Engine, ops: Ops, keys: KeyStore, reader: StoreReader, launcher: Launcher,
                       catalogs: Catalogs, org_code: str, cfg: DisplayConfig,
                       workstation: Callable[..., Any], clock: Callable[[], datetime],
                       pcfg: PlatformConfig | None = None, writer: AuditWriter | None = None,
                       on_review_queued: Callable[[], object] | None = None, timezone: str = DEFAULT_TIMEZONE) -> FastAPI:
    """`workstation` is the FastAPI dependency that authenticates HIS (caller role workstation, e.g.
    `sharing.callers.require_role("workstation")`); `on_review_queued` runs after the answer when a
    调阅记录 was queued (e.g. drain the outbox)."""
    pcfg = pcfg or platform_config()
    writer = writer or AuditWriter(frontend, ops, keys)
    app = FastAPI(title="hipbridge 外院数据展示", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.writer = writer

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # where and what, never the value sent (a patient id, an ID number)
        detail = [{"loc": [p for p in e.get("loc", ()) if p != "body"], "type": e.get("type"), "msg": e.get("msg")}
                  for e in exc.errors()]
        return JSONResponse({"code": "INVALID", "detail": detail}, status_code=422, headers=_SECURITY_HEADERS)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 413:   # the body outgrew DisplayGuard's limit while streaming: answered as by length
            return JSONResponse({"code": "PAYLOAD_TOO_LARGE", "detail": exc.detail}, status_code=413,
                                headers={"Connection": "close"})
        return await http_exception_handler(request, exc)

    app.mount(SHARED_STATIC, StaticFiles(directory=_HERE / "static"), name="static")
    templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    page = templates.get_template("page.html")
    cookie = cfg.launch.cookie
    qc = QcNotes(frontend, ops)

    # ------------------------------------------------------------ audit

    def event(ctx: LaunchContext | None, action: str, *, result: str = "ok", object_type: str | None = None,
              object_id: str | None = None, detail: dict[str, Any] | None = None) -> dict[str, Any]:
        d = {"visitId": ctx.visit_id, "deptId": ctx.dept_id, "purpose": ctx.purpose} if ctx else {}
        d.update(detail or {})
        return {"ts": clock(), "actor_type": "doctor" if ctx else "workstation",
                "actor_id": ctx.doctor_id if ctx else None, "patient_key": ctx.patient_key if ctx else None,
                "action": action, "object_type": object_type, "object_id": object_id, "result_code": result,
                "detail": d}

    def denied(ref: Refused, where: str) -> None:
        try:
            writer.record([event(ref.launch, "ACCESS_DENIED", result=ref.reason, object_type="page", object_id=where,
                                 detail={"reason": cfg.message(ref.reason)})])
        except AuditUnavailable:
            log.error("拒绝访问未能写入审计日志: %s", ref.reason)

    def refusal_json(ref: Refused) -> JSONResponse:
        return JSONResponse({"code": ref.reason, "message": cfg.message(ref.reason), "relaunch": ref.relaunch},
                            status_code=ref.status, headers=_SECURITY_HEADERS)

    def html(status: int, **ctx: Any) -> HTMLResponse:
        body = page.render(title=cfg.page.title, static=SHARED_STATIC, shared_static=SHARED_STATIC,
                           print_allowed=cfg.page.print,
                           print_msg=cfg.message("print_disabled"), poll_s=cfg.launch.status_poll_s,
                           timezone=timezone, timezone_label=cfg.page.timezone_label, **ctx)
        return HTMLResponse(body, status_code=status, headers=_SECURITY_HEADERS)

    def watermark(ctx: LaunchContext) -> str:
        name = ctx.facts.get("doctorName") or ""
        return f"{name} {ctx.doctor_id} · {clock():%Y-%m-%d %H:%M} {cfg.page.timezone_label} ({timezone})".strip()

    def session_of(request: Request) -> LaunchContext:
        return launcher.session(request.headers.get(SESSION_HEADER) or request.cookies.get(cookie))

    def data_of(ctx: LaunchContext) -> dict[str, list[dict[str, Any]]]:
        return reader.patient([ctx.auth_id] if ctx.auth_id else [])

    def shaper(data: dict[str, list[dict[str, Any]]]) -> Shaper:
        batches = {r["_batch"] for rows in data.values() for r in rows}
        return Shaper(cfg, catalogs, reader, qc(batches))

    # ------------------------------------------------------------ routes

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/shared/launch", status_code=201)
    def launch(body: LaunchIn, who: object = Depends(workstation)) -> JSONResponse:
        caller = str(getattr(who, "name", who))
        if body.org_code != org_code:
            return JSONResponse({"code": "org_mismatch", "message": f"orgCode 不是本院 ({org_code})"}, status_code=422)
        req = LaunchRequest(body.org_code, body.visit_id, body.patient_id, body.doctor_id, body.dept_id, body.purpose,
                            body.orders)
        token, _expires, ctx = launcher.launch(req, caller)
        try:
            writer.record([event(ctx, "LAUNCH", result=ctx.decision, object_type="visit", object_id=ctx.visit_id,
                                 detail={"caller": caller, "orders": len(body.orders)})])
        except AuditUnavailable:
            return JSONResponse({"code": "audit_unavailable", "message": cfg.message("audit_unavailable")},
                                status_code=503)
        return JSONResponse({"launchToken": token, "expiresIn": cfg.launch.token_ttl_s,
                             "url": f"/shared/ui?t={token}", "access": ctx.decision,
                             "message": None if ctx.ok else cfg.message(ctx.decision)},
                            status_code=201, headers={"Cache-Control": "no-store"})

    @app.get("/shared/ui", response_class=HTMLResponse)
    def ui(request: Request, t: str | None = None) -> Response:
        if t is not None:
            try:
                ctx, session = launcher.redeem(t)
            except Refused as ref:
                denied(ref, "ui")
                return html(ref.status, ok=False, message=cfg.message(ref.reason))
            resp = RedirectResponse("/shared/ui", status_code=303, headers=_SECURITY_HEADERS)
            resp.set_cookie(cookie, session, max_age=int(cfg.launch.session_ttl.total_seconds()), httponly=True,
                            samesite="strict", path="/shared", secure=request.url.scheme == "https")
            return resp
        try:
            ctx = session_of(request)
        except Refused as ref:
            denied(ref, "ui")
            return html(ref.status, ok=False, message=cfg.message(ref.reason))
        f = ctx.facts
        kinds = {"outpatient": "门诊", "inpatient": "住院"}
        return html(200, ok=True, message=None, watermark=watermark(ctx),
                    patient={"name": f.get("patientName"), "id_no": f.get("idNoMasked"), "phone": f.get("phoneMasked"),
                             "visit_kind": kinds.get(f.get("visitKind"), f.get("visitKind") or ""),
                             "dept": f.get("deptName")})

    @app.post("/shared/session")
    def session(body: SessionIn) -> JSONResponse:
        try:
            _ctx, token = launcher.redeem(body.launch_token)
        except Refused as ref:
            denied(ref, "session")
            return refusal_json(ref)
        return JSONResponse({"session": token, "header": "X-HB-Session",
                             "expiresIn": int(cfg.launch.session_ttl.total_seconds())}, headers=_SECURITY_HEADERS)

    @app.get("/shared/status")
    def status(request: Request) -> JSONResponse:
        try:
            session_of(request)
        except Refused as ref:
            denied(ref, "status")
            return refusal_json(ref)
        return JSONResponse({"ok": True}, headers=_SECURITY_HEADERS)

    def guarded(request: Request, where: str, build: Callable[[LaunchContext], tuple[dict, list[dict]]]) -> JSONResponse:
        try:
            ctx = session_of(request)
        except Refused as ref:
            denied(ref, where)
            return refusal_json(ref)
        try:
            body, events = build(ctx)
        except StoreUnavailable:
            denied(Refused("store_down", 503, ctx), where)
            return JSONResponse({"code": "store_down", "message": cfg.message("store_down"),
                                 "relaunch": False}, status_code=503, headers=_SECURITY_HEADERS)
        if body is None:
            return JSONResponse({"code": "not_found", "message": "没有这份报告"}, status_code=404,
                                headers=_SECURITY_HEADERS)
        try:
            writer.record(events)
        except AuditUnavailable:
            return JSONResponse({"code": "audit_unavailable", "message": cfg.message("audit_unavailable"),
                                 "relaunch": False}, status_code=503, headers=_SECURITY_HEADERS)
        return JSONResponse(body, headers=_SECURITY_HEADERS)

    @app.get("/shared/timeline")
    def timeline(request: Request) -> JSONResponse:
        def build(ctx: LaunchContext):
            data = data_of(ctx)
            bad = reader.tampered     # rows whose MAC or ciphertext failed: named, never shown as data
            sh = shaper(data)
            items = sh.items(data)
            groups = sh.groups(items)
            tampered = [{"kind": t["kind"], "kindLabel": KIND_LABELS.get(t["kind"], t["kind"]),
                         **sh.org(t["org_code"], None)} for t in bad]
            body = {"generatedAt": f"{clock():%Y-%m-%d %H:%M:%S}", "timezone": timezone, "watermark": watermark(ctx),
                    "purpose": ctx.purpose, "printAllowed": cfg.page.print,
                    "patient": {"name": ctx.facts.get("patientName"), "idNo": ctx.facts.get("idNoMasked"),
                                "phone": ctx.facts.get("phoneMasked")},
                    "groups": groups, "items": [i for g in groups for i in g["items"]], "tampered": tampered,
                    "messages": {"noData": cfg.message("no_data"),
                                 "tampered": f"{len(bad)} {cfg.message('tampered')}" if bad else None}}
            body["items"].sort(key=lambda i: i["time"] or "", reverse=True)
            return body, [event(ctx, "VIEW_TIMELINE", object_type="visit", object_id=ctx.visit_id,
                                detail={"items": len(items), "tampered": [
                                    {"table": t["kind"], "key": {k: str(v) for k, v in t["key"].items()}} for t in bad]}
                                if bad else {"items": len(items)})]
        return guarded(request, "timeline", build)

    @app.get("/shared/report/{kind}/{rid}")
    def report(kind: str, rid: str, request: Request, tasks: BackgroundTasks) -> JSONResponse:
        ids = parse_item_id(rid)
        queued: list[bool] = []

        def build(ctx: LaunchContext):
            if kind not in KIND_LABELS or ids is None:
                return None, []
            data = data_of(ctx)
            d = shaper(data).detail(data, kind, ids[0], ids[1])
            if d is None:
                return None, []
            review_id = None
            if kind in cfg.review.item_types:
                raw = next(r for r in data[kind] if r["org_code"] == ids[0] and str(r["id"]) == ids[1])
                rv = queue_review(frontend, ops, keys, cfg, pcfg, ctx, {
                    "kind": kind, "orgCode": d["orgCode"], "orgName": d["orgName"], "reportNo": ids[1],
                    "title": d["title"], "itemCode": raw.get("item_code"), "_time": raw.get("time"),
                    "businessNo": raw.get("visit") if raw.get("visit") not in (None, "-") else raw.get("inpatient_visit"),
                }, clock())
                review_id = rv.review_id
                queued.append(rv.created)
                d["reviewId"] = review_id
            return d, [event(ctx, "VIEW_REPORT", object_type=kind, object_id=f"{ids[0]}:{ids[1]}"[:64],
                             detail={"reportOrg": ids[0], "reviewId": review_id})]
        resp = guarded(request, "report", build)
        if queued and on_review_queued is not None:
            tasks.add_task(on_review_queued)
            resp.background = tasks
        return resp

    return app

"""Caller tokens with roles, and the guard every hipbridge web app puts in front of its endpoints.

Roles: `booking` (the booking system calling the door), `workstation` (the doctor workstation
reading the display), `admin` (the API description and administrative endpoints). A token is
shown once when created (`hipbridge door-token create NAME --role booking`); only its SM3 hash is
kept, in the key folder (`config/sharing.yaml` door.callers_file, file mode 0600). Revoking a
caller (`hipbridge door-token revoke NAME`) takes effect at its next request, in every process:
the file is re-read whenever it changes.

`secure_app(app, store, rules=…)` installs, in this order:

1. an ASGI guard that authenticates the caller and checks the role of the path **before the
   request body is read** (an unauthenticated request with a 1 GB body gets 401 at once), then
   enforces the body size limit (413, from Content-Length or while streaming);
2. validation errors (422) that name the field and the problem but never echo the input, and a
   500 answer that names no exception text; the log gets the exception's type and line only
   (patient data must not travel back or into logs);
3. the OpenAPI description at `/openapi.json` for role `admin` only, and not at all when the active
   deployment profile says `web.openapi_docs: false` (production); no Swagger / ReDoc pages.

Endpoints then take the caller with `Depends(require_role("workstation"))` (see docs/sharing.md).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hipbridge.crypto.keys import KeyStore
from hipbridge.crypto.sm import sm3_hex
from hipbridge.platform.config import sharing_config
from hipbridge.profiles import active
from hipbridge.sharing.roles import ROLES

log = logging.getLogger("hipbridge.sharing.callers")

DEFAULT_MAX_BODY = 64 * 1024
PUBLIC_PATHS = frozenset({"/healthz"})


def docs_allowed() -> bool:
    """The active deployment profile's `web.openapi_docs` (false in `config/profiles/production.yaml`)."""
    return active().web.openapi_docs


class CallerError(ValueError):
    """A bad `door-token` request (unknown role, unknown caller, …); the message says which."""


@dataclass(frozen=True)
class Caller:
    name: str
    roles: frozenset[str]

    def has(self, roles: Iterable[str]) -> bool:
        return bool(self.roles & set(roles))


@dataclass
class CallerRecord:
    name: str
    token_sm3: str
    roles: list[str]
    created: str
    revoked: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "roles": self.roles, "created": self.created, "revoked": self.revoked,
                "fingerprint": self.token_sm3[:12]}


def _now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass
class CallerStore:
    """The callers file: `{"version": 2, "callers": {name: {token_sm3, roles, created, revoked}}}`.

    A file of the first layout (`{name: sm3}`) is read as callers with role `booking`."""

    path: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stamp: tuple[int, int] | None = field(default=None, repr=False)
    _by_hash: dict[str, CallerRecord] = field(default_factory=dict, repr=False)

    @classmethod
    def for_keys(cls, keys: KeyStore | None = None, callers_file: str | None = None) -> CallerStore:
        if callers_file is None:
            callers_file = sharing_config().door.callers_file
        return cls((keys or KeyStore()).directory / callers_file)

    # ------------------------------------------------------------ file

    def records(self) -> dict[str, CallerRecord]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        if "callers" not in data or data.get("version") != 2:   # first layout: name → sm3, booking only
            return {n: CallerRecord(n, str(h), ["booking"], "") for n, h in data.items() if isinstance(h, str)}
        return {n: CallerRecord(n, r["token_sm3"], list(r["roles"]), r.get("created", ""), r.get("revoked"))
                for n, r in data["callers"].items()}

    def _write(self, records: Mapping[str, CallerRecord]) -> None:
        body = {"version": 2, "callers": {n: {"token_sm3": r.token_sm3, "roles": r.roles, "created": r.created,
                                               "revoked": r.revoked} for n, r in sorted(records.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(body, ensure_ascii=False, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    # ------------------------------------------------------------ commands

    def create(self, name: str, roles: Iterable[str]) -> str:
        """A new token for `name` (replacing any earlier one); returns the token, to be shown once."""
        roles = sorted(set(roles))
        bad = [r for r in roles if r not in ROLES]
        if not roles or bad:
            raise CallerError(f"角色无效: {bad or '(none)'}; 可选 {', '.join(ROLES)}")
        if not name or not name.strip() or len(name) > 64:
            raise CallerError("调用方名称须为 1–64 个字符")
        token = secrets.token_urlsafe(32)
        records = self.records()
        records[name] = CallerRecord(name, sm3_hex(token.encode()), roles, _now_iso())
        self._write(records)
        return token

    def revoke(self, name: str) -> CallerRecord:
        records = self.records()
        if name not in records:
            raise CallerError(f"没有调用方 {name!r} (已有: {', '.join(sorted(records)) or '无'})")
        rec = records[name]
        if rec.revoked is None:
            rec.revoked = _now_iso()
            self._write(records)
        return rec

    def list(self) -> list[CallerRecord]:
        return sorted(self.records().values(), key=lambda r: r.name)

    # ------------------------------------------------------------ authentication

    def authenticate(self, token: str) -> Caller | None:
        """The live caller holding `token`, or None (unknown or revoked)."""
        digest = sm3_hex(token.encode())
        with self._lock:
            try:
                st = self.path.stat()
                stamp = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp != self._stamp:
                self._by_hash = {r.token_sm3: r for r in self.records().values()} if stamp else {}
                self._stamp = stamp
            rec = self._by_hash.get(digest)
        if rec is None or rec.revoked is not None:
            return None
        return Caller(rec.name, frozenset(rec.roles))


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


# ---------------------------------------------------------------- ASGI guard


def _body_too_large(limit: int) -> Exception:
    """An HTTPException (FastAPI re-raises those from body reading, so the answer is 413, not 400)."""
    class BodyTooLarge(StarletteHTTPException):
        pass

    return BodyTooLarge(413, f"请求体超过 {limit} 字节")


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _send_json(send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None,
                     close: bool = False) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json; charset=utf-8"),
               (b"content-length", str(len(payload)).encode())] + (extra or [])
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class CallerGuard:
    """Pure ASGI middleware: authenticate, check the path's role, limit the body — in that order.

    `rules` maps a path prefix to the roles allowed there (the longest matching prefix wins);
    paths no rule matches need `default_roles`; `public` paths need nothing."""

    def __init__(self, app, store: CallerStore, rules: Mapping[str, Iterable[str]],
                 default_roles: Iterable[str] = ("admin",), public: Iterable[str] = PUBLIC_PATHS,
                 max_body: int = DEFAULT_MAX_BODY):
        self.app = app
        self.store = store
        self.rules = sorted(((p, frozenset(r)) for p, r in rules.items()), key=lambda x: -len(x[0]))
        self.default_roles = frozenset(default_roles)
        self.public = frozenset(public)
        self.max_body = max_body

    def roles_for(self, path: str) -> frozenset[str]:
        for prefix, roles in self.rules:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/") or (prefix.endswith("/")
                                                                                 and path.startswith(prefix)):
                return roles
        return self.default_roles

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path in self.public:
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        token = bearer_token(headers.get("authorization"))
        caller = self.store.authenticate(token) if token else None
        if caller is None:
            # the body is never read: answer and let the server close the connection
            return await _send_json(send, 401, {"code": "UNAUTHENTICATED",
                                                "detail": "未认证: 需要有效的 Authorization: Bearer <token>"},
                                    [(b"www-authenticate", b"Bearer")], close=True)
        need = self.roles_for(path)
        if not caller.has(need):
            return await _send_json(send, 403, {"code": "FORBIDDEN",
                                                "detail": f"无权限: 需要角色 {' / '.join(sorted(need))}"},
                                    close=True)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return await _send_json(send, 400, {"code": "BAD_REQUEST", "detail": "Content-Length 无效"},
                                        close=True)
            if int(length) > self.max_body:
                return await _send_json(send, 413, self._too_large(), close=True)
        scope.setdefault("state", {})["caller"] = caller
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _body_too_large(self.max_body)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last line before the server: answer 500, log no text
            if getattr(exc, "status_code", None) == 413 and not started:
                return await _send_json(send, 413, self._too_large(), close=True)
            # the type and where only: an exception's text can carry the request's values (names, IDs),
            # so it is neither answered nor logged, and not re-raised into the server's own log
            tb = traceback.extract_tb(exc.__traceback__)
            where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
            log.error("内部错误 %s %s (caller %s): %s at %s", scope.get("method"), path, caller.name,
                      type(exc).__name__, where)
            if not started:
                await _send_json(send, 500, {"code": "INTERNAL", "detail": "内部错误, 已记录"}, close=True)

    def _too_large(self) -> dict[str, Any]:
        return {"code": "PAYLOAD_TOO_LARGE", "detail": f"请求体超过 {self.max_body} 字节"}


# ---------------------------------------------------------------- FastAPI pieces


def require_role(*roles: str):
    """FastAPI dependency: the authenticated caller, who must hold one of `roles` (else 401 / 403).

    Behind `secure_app` it reads the caller the guard authenticated; on an app without the guard it
    authenticates the bearer token itself against `app.state.callers` (or the default store)."""
    wanted = frozenset(roles)

    def dependency(request: Request) -> Caller:
        caller = getattr(request.state, "caller", None)
        if caller is None:
            store = getattr(request.app.state, "callers", None) or CallerStore.for_keys()
            token = bearer_token(request.headers.get("authorization"))
            caller = store.authenticate(token) if token else None
            if caller is None:
                raise HTTPException(401, "未认证: 需要有效的 Authorization: Bearer <token>",
                                    headers={"WWW-Authenticate": "Bearer"})
        if wanted and not caller.has(wanted):
            raise HTTPException(403, f"无权限: 需要角色 {' / '.join(sorted(wanted))}")
        return caller

    return dependency


def _safe_errors(errors: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors without `input` / `ctx` / `url`: where and what, never the submitted value."""
    out = []
    for e in errors:
        loc = [p for p in e.get("loc", ()) if p != "body"]
        out.append({"loc": loc, "type": e.get("type"), "msg": e.get("msg")})
    return out


def secure_app(app, store: CallerStore, rules: Mapping[str, Iterable[str]], *,
               default_roles: Iterable[str] = ("admin",), public: Iterable[str] = PUBLIC_PATHS,
               max_body: int = DEFAULT_MAX_BODY):
    """Put the guard, the non-echoing error answers and the admin-only API description on `app`.

    Create the app with `docs_url=None, redoc_url=None, openapi_url=None`; this adds
    `/openapi.json` (role admin) unless the active profile turns the API description off."""
    app.state.callers = store

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        if exc.status_code == 413:   # the body outgrew the limit while streaming
            return JSONResponse({"code": "PAYLOAD_TOO_LARGE", "detail": exc.detail}, status_code=413,
                                headers={"Connection": "close"})
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc: RequestValidationError):
        return JSONResponse({"code": "INVALID", "detail": _safe_errors(exc.errors())}, status_code=422)

    if docs_allowed():
        @app.get("/openapi.json", include_in_schema=False)
        def _openapi(caller: Annotated[Caller, Depends(require_role("admin"))]):
            return JSONResponse(app.openapi())

    rules = dict(rules)
    rules.setdefault("/openapi.json", ("admin",))
    app.add_middleware(CallerGuard, store=store, rules=rules, default_roles=default_roles, public=public,
                       max_body=max_body)
    return app

"""Launch from the doctor workstation, SMART-App-Launch style (interfaces.md §A9).

HIS calls `POST /shared/launch` server to server and gets a one-time token (256-bit random, TTL
from config, bound to doctor + visit, stored as its SM3 hash). The embedded browser opens
`/shared/ui?t=<token>`; redeeming it creates the page's session (a second 256-bit token, HttpOnly
cookie or `X-HB-Session` header). No patient identifier travels in a URL.

The access decision, made at launch and again at redemption: the visit exists and belongs to the
patient, it is open, the doctor treats it, and an ACTIVE authorization of the patient covers it.
Every later call re-checks that authorization, so a revocation clears an open page at its next call.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from hipbridge.crypto.fields import decrypt_field, encrypt_field
from hipbridge.crypto.keys import KeyStore
from hipbridge.crypto.sm import sm3_hex
from hipbridge.io.ops import Ops

from .config import DisplayConfig
from .visits import VisitFacts, VisitLookup


class Refused(Exception):
    """An access refused: `reason` is a message key of config/display.yaml; `status` 401 or 403."""

    def __init__(self, reason: str, status: int = 403, launch: LaunchContext | None = None):
        super().__init__(reason)
        self.reason, self.status, self.launch = reason, status, launch

    @property
    def relaunch(self) -> bool:
        return self.status == 401


@dataclass(frozen=True)
class LaunchRequest:
    org_code: str
    visit_id: str
    patient_id: str
    doctor_id: str
    dept_id: str | None
    purpose: str
    orders: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LaunchContext:
    """What a redeemed launch is bound to (one row of display_launch, context decrypted)."""

    id: int
    org_code: str
    visit_id: str
    doctor_id: str
    dept_id: str | None
    purpose: str
    patient_key: str | None
    auth_record_id: int | None
    auth_id: str | None
    decision: str
    facts: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.decision == "ok"


def mask(value: str | None, keep: int) -> str | None:
    """All but the last `keep` characters replaced by * (a value no longer than `keep`: all masked)."""
    if not value:
        return value
    v = str(value)
    if keep <= 0 or len(v) <= keep:
        return "*" * len(v)
    return "*" * (len(v) - keep) + v[-keep:]


class Launcher:
    FACTS_CACHE = 4096     # decrypted launch contexts kept (one per open page, about)

    def __init__(self, frontend: Engine, ops: Ops, keys: KeyStore, visits: VisitLookup, cfg: DisplayConfig,
                 clock: Callable[[], datetime], read_engine: Engine | None = None):
        self.frontend, self.ops, self.keys, self.visits, self.cfg, self.clock = frontend, ops, keys, visits, cfg, clock
        self.read_engine = read_engine or frontend   # the per-call session check (autocommit on a server)
        self._facts_cache: dict[str, dict[str, Any]] = {}
        self._facts_lock = threading.Lock()

    # ------------------------------------------------------------ decision

    def decide(self, req: LaunchRequest, now: datetime) -> tuple[str, VisitFacts | None, str | None, dict | None]:
        """(decision, visit, patient_key, covering auth_record) — decision "ok" or a refusal reason."""
        visit = self.visits.lookup(req.org_code, req.visit_id)
        if visit is None:
            return "visit_unknown", None, None, None
        pkey = self.keys.patient_key(visit.id_type or "01", visit.id_no) if visit.id_no else None
        if visit.patient_id != req.patient_id:
            return "patient_mismatch", visit, pkey, None
        ar = self.ops.table("auth_record")
        records: list[dict] = []
        if pkey:
            q = select(ar).where(and_(ar.c.patient_key == pkey, ar.c.org_code == req.org_code,
                                      or_(ar.c.visit_no.is_(None), ar.c.visit_no == req.visit_id))).order_by(ar.c.id)
            records = [dict(r) for r in self._read(lambda conn: conn.execute(q).mappings().all())]
        ended = [r["visit_end"] for r in records if r["visit_no"] == req.visit_id and r["visit_end"] is not None]
        if not visit.open_at(now) or any(e <= now for e in ended):
            return "visit_closed", visit, pkey, None
        if req.doctor_id not in visit.doctors:
            return "not_treating", visit, pkey, None
        return (self._cover(records, now) if records else "not_authorized"), visit, pkey, self._covering(records, now)

    @staticmethod
    def _live(r: dict, now: datetime) -> bool:
        return r["status"] == "ACTIVE" and r["auth_id"] is not None and (r["expire_time"] is None or r["expire_time"] > now)

    def _covering(self, records: list[dict], now: datetime) -> dict | None:
        live = [r for r in records if self._live(r, now)]
        # the authorization recorded for this very visit first, then the latest
        live.sort(key=lambda r: (r["visit_no"] is not None, r["id"]), reverse=True)
        return live[0] if live else None

    def _cover(self, records: list[dict], now: datetime) -> str:
        if any(self._live(r, now) for r in records):
            return "ok"
        statuses = {r["status"] for r in records}
        if "EXPIRED" in statuses or any(r["status"] == "ACTIVE" for r in records):
            return "auth_expired"
        if "REVOKED" in statuses:
            return "auth_revoked"
        if "PENDING" in statuses:
            return "auth_pending"
        return "not_authorized"

    # ------------------------------------------------------------ launch / redeem / session

    def launch(self, req: LaunchRequest, caller: str,
               decided: tuple[str, VisitFacts | None, str | None, dict | None] | None = None,
               conn: Connection | None = None) -> tuple[str, datetime, LaunchContext]:
        """`decided`: the caller's own `decide(req, …)` of this moment (the 互认 hook has just made it);
        `conn`: write the launch row in the caller's transaction (committed with its cards)."""
        now = self.clock()
        decision, visit, pkey, auth = decided if decided is not None else self.decide(req, now)
        token = secrets.token_urlsafe(32)          # 256 bits
        expires = now + timedelta(seconds=self.cfg.launch.token_ttl_s)
        facts = self._facts(req, visit)
        dl = self.ops.table("display_launch")
        with self._tx(conn) as tx:
            res = tx.execute(dl.insert().values(
                launch_sm3=sm3_hex(token.encode()), caller=caller, org_code=req.org_code, visit_id=req.visit_id,
                doctor_id=req.doctor_id, dept_id=req.dept_id, purpose=req.purpose, patient_key=pkey,
                auth_record_id=auth["id"] if auth and decision == "ok" else None,
                auth_id=auth["auth_id"] if auth and decision == "ok" else None, decision=decision,
                context=encrypt_field(self.keys, json.dumps(facts, ensure_ascii=False, default=str)),
                created_at=now, expires_at=expires))
            lid = res.inserted_primary_key[0]
        ctx = LaunchContext(lid, req.org_code, req.visit_id, req.doctor_id, req.dept_id, req.purpose, pkey,
                            auth["id"] if auth and decision == "ok" else None,
                            auth["auth_id"] if auth and decision == "ok" else None, decision, facts)
        return token, expires, ctx

    def _tx(self, conn: Connection | None):
        return nullcontext(conn) if conn is not None else self.frontend.begin()

    def _facts(self, req: LaunchRequest, visit: VisitFacts | None) -> dict[str, Any]:
        keep = self.cfg.page.mask_keep
        f: dict[str, Any] = {"patientId": req.patient_id, "orders": req.orders[: self.cfg.launch.max_orders]}
        if visit is not None:
            f.update({"patientName": visit.patient_name, "idType": visit.id_type or "01",
                      "idNoMasked": mask(visit.id_no, keep), "phoneMasked": mask(visit.phone, keep),
                      "visitKind": visit.kind, "deptName": visit.dept_name,
                      "doctorName": visit.doctors.get(req.doctor_id), "visitStart": visit.start})
        return f

    def _row(self, where) -> dict | None:
        dl = self.ops.table("display_launch")
        with self.frontend.connect() as conn:
            r = conn.execute(select(dl).where(where)).mappings().first()
        return dict(r) if r else None

    def _facts_of(self, token: str | None) -> dict[str, Any]:
        """The launch's decrypted context. A stored context is written once at launch and never changed,
        so its plaintext is kept per ciphertext (bounded): a page's every call re-reads its launch row and
        its authorization, but does not pay an SM4 key setup for the same bytes again."""
        if not token:
            return {}
        with self._facts_lock:
            facts = self._facts_cache.get(token)
        if facts is None:
            facts = json.loads(decrypt_field(self.keys, token))
            with self._facts_lock:
                if len(self._facts_cache) >= self.FACTS_CACHE:
                    self._facts_cache.pop(next(iter(self._facts_cache)))
                self._facts_cache[token] = facts
        return copy.deepcopy(facts)       # callers may change theirs

    def _context(self, r: dict) -> LaunchContext:
        facts = self._facts_of(r["context"])
        return LaunchContext(r["id"], r["org_code"], r["visit_id"], r["doctor_id"], r["dept_id"], r["purpose"],
                             r["patient_key"], r["auth_record_id"], r["auth_id"], r["decision"], facts)

    def redeem(self, token: str) -> tuple[LaunchContext, str | None]:
        """One use only. Returns the context and, when access is granted, a new session token."""
        now = self.clock()
        dl = self.ops.table("display_launch")
        r = self._row(dl.c.launch_sm3 == sm3_hex(token.encode())) if token else None
        if r is None:
            raise Refused("token_invalid", 401)
        ctx = self._context(r)
        if r["used_at"] is not None:
            raise Refused("token_reused", 401, ctx)
        if r["expires_at"] <= now:
            raise Refused("token_expired", 401, ctx)
        with self.frontend.begin() as conn:   # the conditional update is what makes it one-time
            won = conn.execute(update(dl).where(and_(dl.c.id == r["id"], dl.c.used_at.is_(None)))
                               .values(used_at=now)).rowcount == 1
        if not won:
            raise Refused("token_reused", 401, ctx)
        # re-decide: up to token_ttl_s passed since the launch
        req = LaunchRequest(ctx.org_code, ctx.visit_id, str(ctx.facts.get("patientId")), ctx.doctor_id, ctx.dept_id,
                            ctx.purpose)
        decision, _visit, pkey, auth = self.decide(req, now)
        ctx.decision, ctx.patient_key = decision, pkey or ctx.patient_key
        ctx.auth_record_id = auth["id"] if auth and decision == "ok" else None
        ctx.auth_id = auth["auth_id"] if auth and decision == "ok" else None
        session = secrets.token_urlsafe(32) if decision == "ok" else None
        with self.frontend.begin() as conn:
            conn.execute(update(dl).where(dl.c.id == r["id"]).values(
                decision=decision, patient_key=ctx.patient_key, auth_record_id=ctx.auth_record_id,
                auth_id=ctx.auth_id, session_sm3=sm3_hex(session.encode()) if session else None,
                session_expires_at=now + self.cfg.launch.session_ttl if session else None))
        if decision != "ok":
            raise Refused(decision, 403, ctx)
        return ctx, session

    def _read(self, fn):
        """fn(connection) on the read engine (autocommit: it sees the latest commit, e.g. a revocation);
        a pooled connection the server dropped is retried once on a fresh one (the engine skips pre-ping)."""
        for attempt in (1, 2):
            try:
                with self.read_engine.connect() as conn:
                    return fn(conn)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        return None

    def session(self, token: str | None) -> LaunchContext:
        """The context of a live page session whose authorization still holds (one query)."""
        if not token:
            raise Refused("session_expired", 401)
        now = self.clock()
        dl, ar = self.ops.table("display_launch"), self.ops.table("auth_record")
        q = (select(dl, ar.c.status.label("auth_status"), ar.c.expire_time.label("auth_expire"))
             .select_from(dl.outerjoin(ar, ar.c.id == dl.c.auth_record_id))
             .where(dl.c.session_sm3 == sm3_hex(token.encode())))
        r = self._read(lambda conn: conn.execute(q).mappings().first())
        if r is None:
            raise Refused("session_expired", 401)
        r = dict(r)
        ctx = self._context(r)
        if r["session_expires_at"] is None or r["session_expires_at"] <= now:
            raise Refused("session_expired", 401, ctx)
        if r["cleared_at"] is not None:
            raise Refused(r["cleared_reason"] or "auth_revoked", 403, ctx)
        status, expire = r["auth_status"], r["auth_expire"]
        reason = None
        if status == "REVOKED":
            reason = "auth_revoked"
        elif status == "EXPIRED" or (status == "ACTIVE" and expire is not None and expire <= now):
            reason = "auth_expired"
        elif status != "ACTIVE":
            reason = "not_authorized"
        if reason:
            with self.frontend.begin() as conn:
                conn.execute(update(dl).where(dl.c.id == r["id"]).values(cleared_at=now, cleared_reason=reason))
            raise Refused(reason, 403, ctx)
        return ctx

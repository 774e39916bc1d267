"""A simulated 省全民健康信息平台: a real HTTP server for tests and the demo.

It does what the province's authorization service would (interfaces.md §A7, §C2): checks the
envelope (fields, timestamp window, SM2 signature, nonce replay, SM2/SM4 decryption, digest),
answers with the documented codes in a signed response envelope, keeps grants idempotent on
orgCode + appointmentId, and — on a grant — pushes that patient's data from other hospitals into
the shared store on the front-end database with a batch manifest (§A8, like P2's `sharedata`).
Loopback only: `serve()` binds 127.0.0.1.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import insert

from hipbridge.crypto.keys import KeyStore
from hipbridge.crypto.sm import sm3_hex
from hipbridge.display.config import display_config
from hipbridge.io.frontend import target_columns
from hipbridge.platform.config import PlatformConfig, SharingConfig, platform_config, sharing_config
from hipbridge.platform.envelope import EnvelopeError, NonceStore, extract, open_envelope, render, seal
from hipbridge.recognition.catalog import recognition_config
from hipbridge.sharing.store import batch_digest, row_digest

from .sim_clinical import ClinicalFill

# uvicorn loads only when the simulated platform is served on a port.

log = logging.getLogger("hipbridge.demo.simulator")
_MAPPINGS = Path(__file__).resolve().parents[3] / "mappings" / "standard"
_GB11643_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def _id_valid(no: str) -> bool:
    if len(no) != 18 or not no[:17].isdigit():
        return False
    s = sum(int(a) * w for a, w in zip(no[:17], _GB11643_W, strict=True))
    return "10X98765432"[s % 11] == no[17].upper()


def _domain_codes() -> dict[str, dict[str, str]]:
    """First codes of each standard value domain (mappings/standard), for plausible generated rows."""
    out: dict[str, dict[str, str]] = {}
    index = _MAPPINGS / "_domains.yaml"
    if not index.exists():
        return out

    domains = (yaml.safe_load(index.read_text(encoding="utf-8")) or {}).get("domains", {})
    for did, d in domains.items():
        path = _MAPPINGS / str(d.get("file", ""))
        if path.is_file():
            with path.open(encoding="utf-8") as fh:
                out[did] = {r["code"]: r.get("name", "") for r in list(csv.DictReader(fh))[:5]}
    return out


@dataclass
class SimAuth:
    auth_id: str
    org_code: str
    appointment_id: str
    body_sm3: str
    identity: tuple
    status: str
    effective: datetime
    expire: datetime
    revoke_time: datetime | None = None


MISBEHAVIOURS = {
    "replay": "answer with the previous signed answer (to another request), verbatim",
    "unsigned_error": "answer business errors (A2002) without a signature, as an unverified proxy could",
    "unbound": "sign a correct answer but echo another requestId / no request nonce",
    "impostor": "someone else on the platform's address, without the platform's keys: answers by turns an "
                "unsigned A2002 and a success signed with its own key, echoing the requestId / nonce it can read",
}


@dataclass
class SimState:
    auths: dict[tuple[str, str], SimAuth] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)   # (service, code) log for tests
    pushed_batches: list[str] = field(default_factory=list)
    reviews: dict[str, dict[str, Any]] = field(default_factory=dict)   # 调阅记录 by reviewId (idempotent)
    review_posts: int = 0                                                 # every accepted post, retries included
    hr_records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)   # 互认 uploads by (role, GUID)
    hr_posts: int = 0                                                     # every accepted 互认 post, retries included
    hr_reasons: list[dict[str, str]] | None = None    # the 不互认 reason dictionary it serves (None: the seed CSV)
    lock: threading.Lock = field(default_factory=threading.Lock)
    misbehave: str | None = None           # a key of MISBEHAVIOURS: tests of the hospital's refusals
    last_answer: dict[str, Any] | None = None


def create_app(keys: KeyStore, store=None, cfg: PlatformConfig | None = None, share: SharingConfig | None = None,
               clock: Callable[[], datetime] | None = None, seed: int | None = None,
               misbehave: str | None = None) -> FastAPI:
    """`keys` is the platform's key folder (its SM2 pairs and the hospital's public keys).

    Every answer is signed (error answers too) and echoes the request's requestId and nonce.
    `misbehave` (or `app.state.sim.misbehave` at run time) makes it answer wrongly on purpose, see
    MISBEHAVIOURS; the hospital must refuse each of those answers."""
    if misbehave is not None and misbehave not in MISBEHAVIOURS:
        raise ValueError(f"misbehave {misbehave!r}: one of {', '.join(MISBEHAVIOURS)}")
    cfg = cfg or platform_config()
    share = share or sharing_config()
    clock = clock or cfg.local_now
    sim = share.simulator
    f = cfg.envelope.fields
    env_codes, biz = cfg.codes.envelope, cfg.codes.business
    nonces = NonceStore(cfg.envelope.nonce_ttl_s)
    state = SimState(misbehave=misbehave)
    rng = random.Random(seed)
    domain_codes = _domain_codes()
    app = FastAPI(title="模拟省全民健康信息平台", docs_url=None, redoc_url=None)
    app.state.sim = state
    by_path = {s.path: (role, s) for role, s in cfg.services.items()}

    def answer(code: str, request_id: str | None, data: dict[str, Any] | None = None,
               request_nonce: str | None = None, signer: KeyStore | None = None) -> JSONResponse:
        body = {"data": render(cfg.messages["response"], data or {})} if data is not None else {"data": {}}
        sign = (signer or keys).sm2("sign")
        sealed = seal(cfg, "RESPONSE", body, app_id=cfg.app_id, org_code="PLATFORM",
                      sign_private=sign.private_key, sign_public=sign.public_key,
                      peer_enc_public=keys.peer("hospital_enc"), clock=clock,
                      extra={"code": code, "msg": cfg.codes.message(code), "request_nonce": request_nonce or ""},
                      request_id=request_id or "")
        return JSONResponse(sealed.envelope)

    def unsigned(code: str) -> JSONResponse:
        return JSONResponse({f["code"]: code, f["msg"]: cfg.codes.message(code)})

    def echo(env: Any, role: str) -> str | None:
        v = env.get(f[role]) if isinstance(env, dict) else None
        return v if isinstance(v, str) else None

    @app.post("/{path:path}")
    async def gateway(path: str, request: Request) -> JSONResponse:
        role_svc = by_path.get("/" + path)
        if role_svc is None:
            return JSONResponse({"detail": "unknown service"}, status_code=404)
        role, svc = role_svc
        try:
            env = json.loads(await request.body())
        except ValueError:
            return answer(env_codes["missing_field"], None)
        rid, rnonce = echo(env, "request_id"), echo(env, "nonce")
        if state.misbehave == "impostor":
            # cannot open the request (no platform key) nor sign as the platform; echoes what it can see
            with state.lock:
                state.requests.append({"service": svc.code, "code": "IMPOSTOR"})
                turn = len(state.requests)
            if turn % 2:
                return unsigned(biz["identity_mismatch"])
            impostor = KeyStore(keys.directory.parent / (keys.directory.name + "_impostor"))
            return answer(cfg.codes.success, rid, {"auth_id": "IMPOSTOR" + uuid.uuid4().hex[:8],
                                                   "auth_status": cfg.auth_status["active"]},
                          request_nonce=rnonce, signer=impostor)
        try:
            opened = open_envelope(cfg, env, peer_sign_public=keys.peer("hospital_sign"),
                                   own_enc_private=keys.sm2("enc").private_key, clock=clock, nonces=nonces,
                                   expected_service=svc.code)
        except EnvelopeError as exc:
            code = env_codes[exc.role]
            with state.lock:
                state.requests.append({"service": svc.code, "code": code})
            return answer(code, rid, request_nonce=rnonce)   # signed, without business content
        if env[f["org_code"]] not in sim.org_codes:
            return answer(env_codes["org_not_bound"], rid, request_nonce=rnonce)
        values = extract(cfg.messages[role], opened.body)
        with state.lock:
            code, data = handle(role, values, opened)
            state.requests.append({"service": svc.code, "code": code})
            previous, mode = state.last_answer, state.misbehave
        if mode == "unsigned_error":
            return unsigned(code if code != cfg.codes.success else biz["identity_mismatch"])
        if mode == "unbound":
            return answer(code, uuid.uuid4().hex, data)
        if mode == "replay" and previous is not None:
            return JSONResponse(previous)
        resp = answer(code, opened.request_id, data, request_nonce=env[f["nonce"]])
        with state.lock:
            state.last_answer = json.loads(resp.body)
        return resp

    def handle(role: str, v: dict[str, Any], opened) -> tuple[str, dict[str, Any] | None]:
        now = clock()
        if v.get("org_code") not in sim.org_codes:
            return biz["org_unknown"], None
        if role == "review":
            return review(v)
        if role == "hr_reasons":
            return cfg.codes.success, {"reasons": served_reasons()}
        if role.startswith("hr_"):
            return hr_record(role, v)
        key = (v["org_code"], v.get("appointment_id") or "")
        if role == "grant":
            return grant(key, v, opened, now)
        if role == "revoke":
            a = state.auths.get(key)
            if a is None or a.status != cfg.auth_status["active"]:
                return biz["revoke_unknown"], None
            a.status, a.revoke_time = cfg.auth_status["revoked"], now
            return cfg.codes.success, {"auth_id": a.auth_id, "auth_status": a.status,
                                       "revoke_time": now.strftime(cfg.time_format)}
        if role == "query":
            a = state.auths.get(key) or next((x for x in state.auths.values() if x.auth_id == v.get("auth_id")), None)
            if a is None:
                return biz["revoke_unknown"], None
            return cfg.codes.success, _auth_data(a)
        return biz["internal"], None

    def _auth_data(a: SimAuth) -> dict[str, Any]:
        return {"auth_id": a.auth_id, "auth_status": a.status, "effective_time": a.effective.strftime(cfg.time_format),
                "expire_time": a.expire.strftime(cfg.time_format)}

    def grant(key, v, opened, now) -> tuple[str, dict[str, Any] | None]:
        body_sm3 = sm3_hex(json.dumps(opened.body, sort_keys=True, ensure_ascii=False).encode())
        identity = (v.get("patient_id_type"), v.get("patient_id_no"), v.get("visit_date"))
        existing = state.auths.get(key)
        if existing is not None:  # idempotent on orgCode + appointmentId
            if existing.body_sm3 != body_sm3 and existing.identity != identity:
                return biz["duplicate_conflict"], None   # same appointment, different patient or date
            return cfg.codes.success, _auth_data(existing)
        if not v.get("patient_id_no") or not v.get("patient_name"):
            return biz["identity_mismatch"], None
        if v.get("patient_id_type") == "01" and not _id_valid(str(v["patient_id_no"])):
            return biz["identity_mismatch"], None
        try:
            start = datetime.strptime(v["auth_start"], cfg.time_format)
            end = datetime.strptime(v["auth_end"], cfg.time_format)
        except (KeyError, TypeError, ValueError):
            return biz["bad_period"], None
        if end < start or end - start > timedelta(days=sim.max_auth_days):
            return biz["bad_period"], None
        a = SimAuth(uuid.uuid4().hex, key[0], key[1], body_sm3, identity, cfg.auth_status["active"], now, end)
        state.auths[key] = a
        if store is not None:
            push(a, v, now)
        return cfg.codes.success, _auth_data(a)

    def review(v: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """调阅记录上传: required fields present, codes and times well-formed; idempotent on reviewId."""
        rc = display_config().review
        bad = [r for r in rc.required if v.get(r) in (None, "")]
        if v.get("item_type") not in rc.item_types.values():
            bad.append("item_type")
        if not re.fullmatch(r"[0-9a-f]{32}", str(v.get("review_id") or "")):
            bad.append("review_id")
        for r in ("report_time", "view_time", "operate_time"):
            try:
                datetime.strptime(str(v.get(r)), cfg.time_format)
            except ValueError:
                bad.append(r)
        if bad:
            state.requests.append({"service": "review", "code": biz["review_invalid"], "bad": sorted(set(bad))})
            return biz["review_invalid"], None
        state.review_posts += 1
        state.reviews.setdefault(v["review_id"], dict(v))
        return cfg.codes.success, {}

    def served_reasons() -> list[dict[str, str]]:
        """The province's 不互认 reason dictionary (field names config/recognition.yaml reasons_platform)."""
        if state.hr_reasons is not None:
            return state.hr_reasons

        rc = recognition_config()
        f = rc.cfg.reasons_platform
        return [{f.code: r.code, f.name: r.name} for r in rc.reasons.values()]

    def hr_record(role: str, v: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """提醒 / 互认 / 引用 / 撤销不互认 records: required fields (config/recognition.yaml uploads.required),
        GUIDs and times well-formed, reasons from the dictionary; idempotent on the record's GUID."""
        rc = recognition_config()
        up = rc.cfg.uploads
        bad = [r for r in up.required.get(role, []) if v.get(r) in (None, "")]
        if v.get("item_type") not in up.item_types.values():
            bad.append("item_type")
        guid_role = {"hr_remind": "remind_id", "hr_recognition": "mr_id", "hr_quote": "quote_id",
                     "hr_revoke": "revoke_id"}[role]
        if not re.fullmatch(r"[0-9a-f]{32}", str(v.get(guid_role) or "")):
            bad.append(guid_role)
        for r in ("report_time", "operate_time"):
            if r in v or r in up.required.get(role, []):
                try:
                    datetime.strptime(str(v.get(r)), cfg.time_format)
                except ValueError:
                    bad.append(r)
        if role == "hr_recognition" and v.get("reason_code") is not None:
            code = str(v["reason_code"])
            served = {str(r.get(rc.cfg.reasons_platform.code)) for r in served_reasons()}
            seed = rc.reasons.get(code)
            if code not in served or (seed is not None and seed.needs_diagnosis and not v.get("diag_name")):
                bad.append("reason_code")
        if bad:
            state.requests.append({"service": role, "code": biz["hr_invalid"], "bad": sorted(set(bad))})
            return biz["hr_invalid"], None
        state.hr_posts += 1
        state.hr_records.setdefault((role, str(v[guid_role])), dict(v))
        return cfg.codes.success, {}

    # ------------------------------------------------------------ push (数据回推)

    def push(a: SimAuth, v: dict[str, Any], now: datetime) -> None:
        batch_id = f"PB{now:%Y%m%d%H%M%S}{uuid.uuid4().hex[:10]}"
        push_patient(store, batch_id, a.auth_id, v, now, sim, domain_codes, rng)
        state.pushed_batches.append(batch_id)

    return app


def _value(col, ctype, role, ctx: dict[str, Any], rng: random.Random, domain_codes) -> Any:
    if role == "org_code":
        return ctx["org_code"]
    if role == "org_name":
        return ctx["org_name"]
    if role == "change_flag":
        return "1"
    if role == "confidentiality":
        return "0"
    if role in ("extracted_at", "source_updated_at"):
        return ctx["now"]
    spec_col = col
    if spec_col is not None:
        if "gb11643" in spec_col.checks:
            return ctx["id_no"]
        if spec_col.codes and spec_col.codes.domain == "CV02.01.101":
            return ctx["id_type"]
        if spec_col.label in ("姓名", "患者姓名"):
            return ctx["name"]
        if spec_col.codes and spec_col.codes.domain in domain_codes and domain_codes[spec_col.codes.domain]:
            return rng.choice(sorted(domain_codes[spec_col.codes.domain]))[: ctype.length or 64]
    if ctype.kind == "varchar":
        return f"S{ctx['seq']:06d}{rng.randrange(10**6):06d}"[: ctype.length]
    if ctype.kind == "decimal":
        return round(rng.uniform(1, 99), min(ctype.scale or 0, 2))
    if ctype.kind == "integer":
        return rng.randrange(1, 100)
    if ctype.kind == "date":
        return ctx["visit_time"].date()
    if ctype.kind == "timestamp":
        return ctx["visit_time"]
    return f"模拟数据 {ctx['seq']}"


def push_patient(store, batch_id: str, auth_id: str, v: dict[str, Any], now: datetime, sim, domain_codes,
                 rng: random.Random) -> dict[str, int]:
    """Write one patient's rows from every configured other hospital into the shared store + manifest."""
    fill = ClinicalFill(rng, now.replace(microsecond=0))   # coherent clinical content in the columns the external data page reads
    cols, mcols = store.cols, store.mcols
    counts: dict[str, int] = {}
    parents: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (table, org) → rows written
    seq = 0
    with store.engine.begin() as conn:
        for table_id, table in store.tables.items():
            spec = store.specs[table_id]
            tcols = target_columns(spec, store.defaults)
            data_cols = store.data_columns(table_id)
            rows, digests = [], []
            for h in sim.other_hospitals:
                n = sim.rows_per_table.get(table_id, sim.rows_per_table.get("default", 2))
                for i in range(n):
                    seq += 1
                    visit_time = (now - timedelta(days=rng.randrange(30, 400))).replace(microsecond=0)
                    ctx = {"org_code": h.code, "org_name": h.name, "now": now.replace(microsecond=0), "seq": seq,
                           "id_no": v.get("patient_id_no"), "id_type": v.get("patient_id_type"),
                           "name": v.get("patient_name"), "visit_time": visit_time}
                    row: dict[str, Any] = {}
                    for c in tcols:
                        sc = spec.column(c.name)
                        ref = sc.reference_target if sc is not None else None
                        parent_rows = parents.get((ref[0], h.code)) if ref else None
                        if parent_rows:
                            row[c.name] = parent_rows[i % len(parent_rows)].get(ref[1])
                        else:
                            row[c.name] = _value(sc, c.ctype, c.role, ctx, rng, domain_codes)
                    for sc in spec.columns:   # standard names beside their codes (codes.name_column)
                        b = sc.codes
                        if b and b.name_column and b.domain in domain_codes and row.get(sc.name) is not None:
                            name = domain_codes[b.domain].get(str(row[sc.name]))
                            nc = spec.column(b.name_column)
                            if name and nc is not None:
                                row[b.name_column] = name[: nc.ctype.length or 100]
                    fill.fill(table_id, h.code, row, i)
                    d = row_digest(row, data_cols)
                    row.update({cols["batch_id"]: batch_id, cols["auth_id"]: auth_id,
                                cols["instock_time"]: now.replace(microsecond=0), cols["data_num"]: 1,
                                cols["row_digest"]: d})
                    rows.append(row)
                    digests.append(d)
                    parents.setdefault((table_id, h.code), []).append(row)
            if rows:
                conn.execute(insert(table), rows)
            conn.execute(insert(store.manifest).values({
                mcols["batch_id"]: batch_id, mcols["table_name"]: table.name, mcols["auth_id"]: auth_id,
                mcols["row_count"]: len(rows), mcols["digest"]: batch_digest(digests),
                mcols["min_instock"]: now.replace(microsecond=0), mcols["max_instock"]: now.replace(microsecond=0),
                mcols["created"]: now.replace(microsecond=0)}))
            counts[table_id] = len(rows)
    return counts


# ---------------------------------------------------------------- serving (loopback only)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """Run an ASGI app under uvicorn in a thread on 127.0.0.1 (tests, demo). `stop()` shuts it down."""

    def __init__(self, app, port: int | None = None):
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

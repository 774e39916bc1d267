"""The signed-request envelope of interfaces.md §C2: SM4-CBC payload, SM2 digital envelope, SM3 digest, SM2 signature.

Sender: canonical JSON → fresh SM4 key + IV (CSPRNG) → SM4-CBC → key sealed to the receiver's SM2
encryption key (C1C3C2) → digest = SM3(nonce ‖ plaintext) → signing string (all top-level fields
but `sign`, ASCII-sorted, empty skipped, k=v joined by &) → SM3withSM2 (DER, base64).
Receiver: required fields → timestamp window (E1002) → signature (E1003) → nonce replay (E1004)
→ decrypt with C3 and padding checks (E1005) → digest (E1006). Field names come from config.
An answer (`open_answer`) must in addition be signed even when it reports an error, and echo the
request's requestId and nonce, so a replayed or forged answer can neither grant nor fail a call.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hipbridge.crypto.sm import (
    CryptoError,
    sm2_decrypt,
    sm2_encrypt,
    sm2_sign,
    sm2_verify,
    sm3_hex,
    sm4_cbc_decrypt,
    sm4_cbc_encrypt,
)

from .config import PlatformConfig

Clock = Callable[[], datetime]


def _strip_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_strip_none(v) for v in obj]
    return obj


def canonical_json(obj: Any) -> bytes:
    """Keys sorted at every level, no spaces, UTF-8 without \\u escapes, no null members."""
    return json.dumps(_strip_none(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signing_string(envelope: dict[str, Any], sign_field: str) -> bytes:
    """Every top-level field except the signature, ASCII-sorted, empty values skipped, `k=v&…`."""
    parts = [f"{k}={envelope[k]}" for k in sorted(envelope)
             if k != sign_field and envelope[k] is not None and envelope[k] != ""]
    return "&".join(parts).encode("utf-8")


class EnvelopeError(Exception):
    """A rejected envelope; `role` is a key of codes.envelope (missing_field, timestamp, …)."""

    def __init__(self, role: str, message: str):
        self.role = role
        super().__init__(message)


@dataclass(frozen=True)
class Sealed:
    envelope: dict[str, Any]
    request_id: str
    digest: str          # SM3(nonce ‖ plaintext): audit fingerprint of the body, not the body
    plaintext_sm3: str   # SM3 of the canonical body
    nonce: str = ""      # the request's nonce, which the answer must echo


@dataclass(frozen=True)
class Opened:
    body: dict[str, Any]
    envelope: dict[str, Any]
    request_id: str
    digest: str


class NonceStore:
    """Seen nonces for 2 × the timestamp window (in memory; Redis SETNX + TTL in a cluster)."""

    def __init__(self, ttl_s: int):
        self.ttl_s = ttl_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def add_if_new(self, nonce: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {n: t for n, t in self._seen.items() if now - t < self.ttl_s}
            t = self._seen.get(nonce)
            if t is not None and now - t < self.ttl_s:
                return False
            self._seen[nonce] = now
            return True


def _epoch_ms(dt: datetime, tz: str) -> int:
    """Epoch milliseconds; a naive datetime is local time in `tz` (never the server's own zone)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(tz))
    return int(dt.timestamp() * 1000)


def seal(cfg: PlatformConfig, service_code: str, body: dict[str, Any], *, app_id: str, org_code: str,
         sign_private: str, sign_public: str, peer_enc_public: str, clock: Clock,
         extra: dict[str, str] | None = None, request_id: str | None = None) -> Sealed:
    f = cfg.envelope.fields
    plaintext = canonical_json(body)
    key, iv, nonce = secrets.token_bytes(16), secrets.token_bytes(16), secrets.token_hex(16)
    rid = request_id or uuid.uuid4().hex
    env: dict[str, Any] = {
        f["app_id"]: app_id,
        f["org_code"]: org_code,
        f["service_code"]: service_code,
        f["version"]: cfg.envelope.version,
        f["request_id"]: rid,
        f["timestamp"]: str(_epoch_ms(clock(), cfg.timezone)),
        f["nonce"]: nonce,
        f["enc_type"]: cfg.envelope.enc_type,
        f["sign_type"]: cfg.envelope.sign_type,
        f["enc_key"]: base64.b64encode(sm2_encrypt(peer_enc_public, key)).decode(),
        f["iv"]: base64.b64encode(iv).decode(),
        f["biz_content"]: base64.b64encode(sm4_cbc_encrypt(key, iv, plaintext)).decode(),
        f["digest"]: sm3_hex(nonce.encode() + plaintext),
    }
    for role, value in (extra or {}).items():
        env[f.get(role, role)] = value
    user_id = cfg.envelope.sm2_user_id.encode()
    sig = sm2_sign(sign_private, signing_string(env, f["sign"]), user_id, sign_public)
    env[f["sign"]] = base64.b64encode(sig).decode()
    return Sealed(env, rid, env[f["digest"]], sm3_hex(plaintext), nonce)


_REQUIRED = ["app_id", "org_code", "service_code", "version", "request_id", "timestamp", "nonce",
             "enc_type", "sign_type", "enc_key", "iv", "biz_content", "digest", "sign"]


def _check_signed(cfg: PlatformConfig, env: Any, required: list[str], peer_sign_public: str, clock: Clock,
                  expected_service: str | None = None) -> None:
    """Required fields → version / types → service → timestamp window (E1002) → signature (E1003)."""
    f = cfg.envelope.fields
    if not isinstance(env, dict):
        raise EnvelopeError("missing_field", "报文不是 JSON 对象")
    missing = [f[r] for r in required if not isinstance(env.get(f[r]), str) or not env.get(f[r])]
    if missing:
        raise EnvelopeError("missing_field", f"缺少字段 {missing}")
    for k, v in env.items():
        if not isinstance(v, str):
            raise EnvelopeError("missing_field", f"字段 {k} 须为字符串")
    if (env[f["enc_type"]] != cfg.envelope.enc_type or env[f["sign_type"]] != cfg.envelope.sign_type
            or env[f["version"]] != cfg.envelope.version):
        raise EnvelopeError("unsupported", "不支持的 encType / signType / version")
    if expected_service and env[f["service_code"]] != expected_service:
        raise EnvelopeError("unsupported", f"serviceCode 与接口不符: {env[f['service_code']]}")
    try:
        ts = int(env[f["timestamp"]])
    except ValueError:
        raise EnvelopeError("timestamp", "timestamp 不是毫秒时间戳") from None
    if abs(_epoch_ms(clock(), cfg.timezone) - ts) > cfg.envelope.timestamp_window_s * 1000:
        raise EnvelopeError("timestamp", "时间戳超出允许窗口")
    try:
        sig = base64.b64decode(env[f["sign"]], validate=True)
    except ValueError:
        raise EnvelopeError("signature", "sign 不是 base64") from None
    if not sm2_verify(peer_sign_public, signing_string(env, f["sign"]), sig, cfg.envelope.sm2_user_id.encode()):
        raise EnvelopeError("signature", "签名验证失败")


def _decrypt(cfg: PlatformConfig, env: dict[str, Any], own_enc_private: str) -> Any:
    """SM2-open the SM4 key (C3 checked), SM4-CBC decrypt (padding checked) → digest (E1006) → JSON."""
    f = cfg.envelope.fields
    try:
        key = sm2_decrypt(own_enc_private, base64.b64decode(env[f["enc_key"]], validate=True))
        iv = base64.b64decode(env[f["iv"]], validate=True)
        if len(key) != 16 or len(iv) != 16:
            raise CryptoError("密钥或 IV 长度错误")
        plaintext = sm4_cbc_decrypt(key, iv, base64.b64decode(env[f["biz_content"]], validate=True))
    except (CryptoError, ValueError) as exc:
        raise EnvelopeError("decrypt", f"解密失败: {exc}") from None
    if sm3_hex(env[f["nonce"]].encode() + plaintext) != env[f["digest"]].lower():
        raise EnvelopeError("digest", "摘要不一致")
    try:
        return json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EnvelopeError("decrypt", "业务报文不是 UTF-8 JSON") from None


def open_envelope(cfg: PlatformConfig, env: dict[str, Any], *, peer_sign_public: str, own_enc_private: str,
                  clock: Clock, nonces: NonceStore | None = None,
                  expected_service: str | None = None) -> Opened:
    f = cfg.envelope.fields
    _check_signed(cfg, env, _REQUIRED, peer_sign_public, clock, expected_service)
    if nonces is not None and not nonces.add_if_new(env[f["nonce"]]):
        raise EnvelopeError("replay", "nonce 已使用 (重放)")
    body = _decrypt(cfg, env, own_enc_private)
    return Opened(body, env, env[f["request_id"]], env[f["digest"]])


@dataclass(frozen=True)
class Answer:
    """A platform answer that passed `open_answer`: signed by the platform and bound to our request."""

    code: str
    msg: str
    body: Any            # the decrypted business content; None for an error answer we cannot open
    envelope: dict[str, Any]


def open_answer(cfg: PlatformConfig, env: Any, request: Sealed, *, peer_sign_public: str, own_enc_private: str,
                clock: Clock, nonces: NonceStore | None = None) -> Answer:
    """Accept the platform's answer to `request` only when it is signed (error answers too), fresh,
    not seen before, and echoes our requestId and nonce; anything else raises EnvelopeError.

    A success must also decrypt; an error answer's `code` is trusted from the signature alone (the
    platform may not be able to encrypt to a caller it does not know)."""
    f = cfg.envelope.fields
    if not isinstance(env, dict) or not env.get(f["sign"]):
        raise EnvelopeError("signature", "应答未签名")
    _check_signed(cfg, env, [*_REQUIRED, "code", "request_nonce"], peer_sign_public, clock)
    if env[f["request_id"]] != request.request_id or env[f["request_nonce"]] != request.nonce:
        raise EnvelopeError("unbound", "应答不属于本次请求 (requestId / nonce 不符: 重放或串号)")
    if nonces is not None and not nonces.add_if_new(env[f["nonce"]]):
        raise EnvelopeError("replay", "应答 nonce 已使用 (重放)")
    code, msg = env[f["code"]], str(env.get(f["msg"], ""))
    if code == cfg.codes.success:
        return Answer(code, msg, _decrypt(cfg, env, own_enc_private), env)
    try:
        body = _decrypt(cfg, env, own_enc_private)
    except EnvelopeError:
        body = None
    return Answer(code, msg, body, env)


# ---------------------------------------------------------------- body field mapping


def render(mapping: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    """Roles → wire body, using config `messages.<kind>` (dotted names become nested objects)."""
    out: dict[str, Any] = {}
    for role, value in values.items():
        if value is None:
            continue
        name = mapping.get(role)
        if name is None:
            raise KeyError(f"config/platform.yaml messages has no field for role {role!r}")
        cur = out
        *parents, leaf = name.split(".")
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[leaf] = value
    return out


def extract(mapping: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """Wire body → roles (the inverse of `render`); absent fields are None."""
    out: dict[str, Any] = {}
    for role, name in mapping.items():
        cur: Any = body
        for p in name.split("."):
            cur = cur.get(p) if isinstance(cur, dict) else None
        out[role] = cur
    return out

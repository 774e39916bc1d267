"""Platform client: grant, revoke and query an appointment authorization through the signed envelope.

One call = one fresh SM4 key, one requestId, one nonce. The platform's answer is itself an
envelope and is trusted only when it is signed with the platform's signing key — error answers
too — fresh, and echoes this request's requestId and nonce (`envelope.open_answer`). An answer that
is not (unsigned, replayed from another request, from an impostor on the platform's address)
raises `AnswerRefused`; it never grants nor fails anything. Transport failures raise
`PlatformUnavailable` (the outbox retries both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from hipbridge.crypto.keys import KeyStore

from .config import PlatformConfig, platform_config
from .envelope import Clock, EnvelopeError, NonceStore, Sealed, extract, open_answer, render, seal


class PlatformUnavailable(Exception):
    """Network error, timeout, HTTP 5xx or an unverifiable response: retry later."""


class AnswerRefused(PlatformUnavailable):
    """An answer that is not the platform's signed answer to this request: refused, retried, alerted."""


@dataclass(frozen=True)
class PlatformResult:
    code: str
    msg: str
    data: dict[str, Any]          # response roles (auth_id, auth_status, …)
    request_id: str
    request: Sealed
    response_envelope: dict[str, Any]


class PlatformClient:
    def __init__(self, org_code: str, keys: KeyStore | None = None, cfg: PlatformConfig | None = None,
                 clock: Clock | None = None, base_url: str | None = None, transport: httpx.BaseTransport | None = None):
        self.cfg = cfg or platform_config()
        self.keys = keys or KeyStore()
        self.org_code = org_code
        self.clock = clock or self.cfg.local_now
        self.base_url = (base_url or self.cfg.url).rstrip("/")
        self._http = httpx.Client(timeout=self.cfg.timeout_s, transport=transport, trust_env=False)
        self._answer_nonces = NonceStore(self.cfg.envelope.nonce_ttl_s)

    def close(self) -> None:
        self._http.close()

    def call(self, role: str, values: dict[str, Any]) -> PlatformResult:
        """Seal `values` (roles of config messages.<role>) and send them to the platform service."""
        svc = self.cfg.service(role)
        body = render(self.cfg.messages[role], values)
        sign = self.keys.sm2("sign")
        sealed = seal(self.cfg, svc.code, body, app_id=self.cfg.app_id, org_code=self.org_code,
                      sign_private=sign.private_key, sign_public=sign.public_key,
                      peer_enc_public=self.keys.peer("platform_enc"), clock=self.clock)
        try:
            resp = self._http.post(self.base_url + svc.path, content=json.dumps(sealed.envelope),
                                   headers={"Content-Type": "application/json; charset=utf-8"})
        except httpx.HTTPError as exc:
            raise PlatformUnavailable(f"平台不可达: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 500:
            raise PlatformUnavailable(f"平台 HTTP {resp.status_code}")
        try:
            env = resp.json()
        except ValueError:
            raise PlatformUnavailable(f"平台应答不是 JSON (HTTP {resp.status_code})") from None
        try:
            answer = open_answer(self.cfg, env, sealed, peer_sign_public=self.keys.peer("platform_sign"),
                                 own_enc_private=self.keys.sm2("enc").private_key, clock=self.clock,
                                 nonces=self._answer_nonces)
        except EnvelopeError as exc:
            raise AnswerRefused(f"平台应答验签/绑定失败, 已拒收: {exc}") from None
        code, msg = answer.code, answer.msg
        inner = answer.body.get("data") if isinstance(answer.body, dict) else None
        data: dict[str, Any] = extract(self.cfg.messages["response"], inner) if isinstance(inner, dict) else {}
        return PlatformResult(code, msg, data, sealed.request_id, sealed, env)

    def grant(self, values: dict[str, Any]) -> PlatformResult:
        return self.call("grant", values)

    def revoke(self, values: dict[str, Any]) -> PlatformResult:
        return self.call("revoke", values)

    def query(self, values: dict[str, Any]) -> PlatformResult:
        return self.call("query", values)

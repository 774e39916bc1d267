"""Platform client: grant, revoke and query an appointment authorization through the signed envelope.

One call = one fresh SM4 key, one requestId, one nonce. The platform's response is itself an
envelope; its signature is verified with the platform's signing key before `code` is trusted.
Transport failures raise `PlatformUnavailable` (the outbox retries them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from hipbridge.crypto.keys import KeyStore

from .config import PlatformConfig, platform_config
from .envelope import Clock, EnvelopeError, Sealed, extract, open_envelope, render, seal


class PlatformUnavailable(Exception):
    """Network error, timeout, HTTP 5xx or an unverifiable response: retry later."""


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
        f = self.cfg.envelope.fields
        code, msg = str(env.get(f["code"], "")), str(env.get(f["msg"], ""))
        data: dict[str, Any] = {}
        if env.get(f["biz_content"]):
            try:
                opened = open_envelope(self.cfg, env, peer_sign_public=self.keys.peer("platform_sign"),
                                       own_enc_private=self.keys.sm2("enc").private_key, clock=self.clock)
            except EnvelopeError as exc:
                raise PlatformUnavailable(f"平台应答验签/解密失败: {exc}") from None
            inner = opened.body.get("data") if isinstance(opened.body, dict) else None
            data = extract(self.cfg.messages["response"], inner or {})
        elif code == self.cfg.codes.success:
            raise PlatformUnavailable("平台成功应答缺少签名业务内容")
        # An unsigned error answer (e.g. E1003 before the platform trusts us) is accepted as
        # information only: it never moves an authorization to ACTIVE.
        return PlatformResult(code, msg, data, sealed.request_id, sealed, env)

    def grant(self, values: dict[str, Any]) -> PlatformResult:
        return self.call("grant", values)

    def revoke(self, values: dict[str, Any]) -> PlatformResult:
        return self.call("revoke", values)

    def query(self, values: dict[str, Any]) -> PlatformResult:
        return self.call("query", values)

"""Personal data in our own operations tables, encrypted with the key ring (interfaces.md §A14).

- quarantine: the raw source row (`raw`, JSON) is always SM4 ciphertext — it can hold any column;
  `row_key` too when a key column of the spec is `sensitive`. `reveal_quarantine` reads them back.
- the key ring of a front-end (`keyring_for`): the active profile's provider over the key registry
  of its operations schema, one per process and engine. In production it refuses to start while a
  key in use was made by the development keystore (`provider.check_registry`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy.engine import Engine

from hipbridge.io.ops import ensure_ops
from hipbridge.spec import TableSpec

from .fields import FieldCipher
from .provider import KeyProvider, check_registry, provider_from_config
from .registry import KeyRing

_RINGS: dict[tuple[str, str], KeyRing] = {}
_LOCK = threading.Lock()


def keyring_for(engine: Engine, ops_schema: str, provider: KeyProvider | None = None, clock=None) -> KeyRing:
    key = (engine.url.render_as_string(hide_password=False), ops_schema)
    with _LOCK:
        ring = _RINGS.get(key)
        if ring is None or (provider is not None and ring.provider is not provider):
            from hipbridge import profiles

            profile = profiles.active()
            ring = KeyRing(engine, ensure_ops(engine, ops_schema), provider or provider_from_config(profile=profile),
                           clock)
            check_registry(ring.entries(), profile)
            _RINGS[key] = ring
        return ring


def forget_keyrings() -> None:
    """Tests: drop cached rings (databases were dropped, keys folders changed)."""
    with _LOCK:
        _RINGS.clear()


def quarantine_protector(engine: Engine, ops_schema: str, spec: TableSpec) -> Callable[[list[dict]], list[dict]]:
    """A function that encrypts a chunk's quarantine rows before they are written."""
    key_sensitive = any(c.sensitive for c in spec.columns if c.name in spec.target.primary_key)
    cipher = FieldCipher(keyring_for(engine, ops_schema))
    cipher.ring.active("data")   # now, outside the chunk transactions (SQLite has one writer at a time)

    def protect(rows: list[dict]) -> list[dict]:
        if not rows:
            return rows
        out = []
        for r in rows:
            r = dict(r)
            r["raw"] = cipher.encrypt(r.get("raw"))
            if key_sensitive and r.get("row_key"):
                r["row_key"] = cipher.encrypt(r["row_key"])
            out.append(r)
        return out

    return protect


def reveal_quarantine(engine: Engine, ops_schema: str, row: dict) -> dict:
    """A quarantine row with `raw` (and an encrypted `row_key`) decrypted, for the people who fix it."""
    cipher = FieldCipher(keyring_for(engine, ops_schema))
    out = dict(row)
    for c in ("raw", "row_key"):
        v = out.get(c)
        if isinstance(v, str) and v.startswith("v1:"):
            out[c] = cipher.decrypt(v)
    return out

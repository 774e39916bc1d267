"""The key registry (密钥登记表) and the key ring that serves DEKs from it.

`key_registry` in the operations schema holds every DEK *wrapped* by its purpose's KEK (never in
plaintext), with purpose, algorithm, provider, KCV and its lifecycle times: created, activated,
retired, destroyed. Exactly one key per purpose is active (new writes use it); older keys stay
readable until `rotate.py` has re-encrypted everything under them, and are then retired.
Purposes: `data` (SM4 field encryption) and `row` (HMAC-SM3 row MAC).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from datetime import datetime

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, Text, and_, select, update
from sqlalchemy.engine import Engine

from hipbridge.io.ops import Ops, register_ops_tables
from hipbridge.settings import hospital_now

from .provider import KeyProvider, kcv
from .sm import CryptoError

ALGORITHMS = {"data": "SM4-CBC", "row": "HMAC-SM3"}
KEY_BYTES = {"data": 16, "row": 32}
ACTIVE_TTL_S = 30.0   # another process's rotation reaches this one's writes within this time


@register_ops_tables
def _key_tables(md: MetaData) -> None:
    Table(
        "key_registry", md,
        Column("key_id", String(24), primary_key=True, comment="carried in every ciphertext / MAC"),
        Column("purpose", String(8), nullable=False, comment="data | row"),
        Column("alg", String(16), nullable=False),
        Column("provider", String(16), nullable=False, comment="software (development) | sdf (服务器密码机)"),
        Column("wrapped_key", Text, nullable=False, comment="the DEK wrapped by the purpose's KEK (base64)"),
        Column("kcv", String(8), nullable=False, comment="key check value"),
        Column("status", String(10), nullable=False, comment="active (writes) | readable | retired | destroyed"),
        Column("created", DateTime, nullable=False),
        Column("activated", DateTime),
        Column("retired", DateTime, comment="no ciphertext uses it any more"),
        Column("destroyed", DateTime),
        Index("ix_key_registry_purpose", "purpose", "status"),
        comment="密钥登记表: DEK 仅以 KEK 封装形式保存",
    )


class KeyRing:
    """Active and readable DEKs of one front-end's registry, unwrapped once per process."""

    def __init__(self, engine: Engine, ops: Ops, provider: KeyProvider, clock=None):
        self.engine, self.ops, self.provider = engine, ops, provider
        self.clock = clock or hospital_now
        self.table = ops.table("key_registry")
        self._keys: dict[str, bytes] = {}
        self._active: dict[str, str] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle
    def create(self, purpose: str, now: datetime | None = None, activate: bool = False) -> str:
        """A new DEK, wrapped into the registry; activate=True makes it the write key (the previous
        active key of the purpose stays readable)."""
        now = now or self.clock()
        if purpose not in ALGORITHMS:
            raise CryptoError(f"未知的密钥用途 {purpose!r}; expected one of {', '.join(ALGORITHMS)}")
        key = self.provider.random(KEY_BYTES[purpose])
        key_id = f"{purpose[0]}{now:%y%m}{secrets.token_hex(3)}"
        t = self.table
        with self.engine.begin() as conn:
            if activate:
                conn.execute(update(t).where(and_(t.c.purpose == purpose, t.c.status == "active"))
                             .values(status="readable"))
            conn.execute(t.insert().values(
                key_id=key_id, purpose=purpose, alg=ALGORITHMS[purpose], provider=self.provider.name,
                wrapped_key=base64.b64encode(self.provider.wrap(purpose, key_id, key)).decode(), kcv=kcv(key),
                status="active" if activate else "readable", created=now, activated=now if activate else None))
        with self._lock:
            self._keys[key_id] = key
            if activate:
                self._active[purpose] = (key_id, time.monotonic())
        return key_id

    def active_id(self, purpose: str) -> str:
        """The key new writes use; the first call for a purpose creates and activates one."""
        kid, seen = self._active.get(purpose, (None, 0.0))
        if kid and time.monotonic() - seen < ACTIVE_TTL_S:
            return kid
        t = self.table
        with self.engine.connect() as conn:
            kid = conn.execute(select(t.c.key_id).where(and_(t.c.purpose == purpose, t.c.status == "active"))
                               .order_by(t.c.activated.desc(), t.c.key_id.desc()).limit(1)).scalar()
        if kid is None:
            kid = self.create(purpose, activate=True)
        self._active[purpose] = (kid, time.monotonic())
        return kid

    def forget_active(self) -> None:
        """Re-read the active keys from the registry (another process rotated)."""
        self._active.clear()

    def key(self, key_id: str) -> bytes:
        k = self._keys.get(key_id)
        if k is not None:
            return k
        for attempt in (1, 2):   # a KEK rotation may re-wrap the row between our read and unwrap
            row = self._row(key_id)
            try:
                k = self.provider.unwrap(row.purpose, key_id, base64.b64decode(row.wrapped_key))
                break
            except CryptoError:
                if attempt == 2:
                    raise
        if kcv(k) != row.kcv:
            raise CryptoError(f"密钥 {key_id} 校验值不符 (KCV)")
        with self._lock:
            self._keys[key_id] = k
        return k

    def _row(self, key_id: str):
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.purpose, t.c.wrapped_key, t.c.kcv, t.c.destroyed)
                               .where(t.c.key_id == key_id)).first()
        if row is None:
            raise CryptoError(f"密钥 {key_id} 不在密钥登记表中")
        if row.destroyed is not None:
            raise CryptoError(f"密钥 {key_id} 已于 {row.destroyed:%Y-%m-%d %H:%M} 销毁, 数据不可恢复")
        return row

    def active(self, purpose: str) -> tuple[str, bytes]:
        kid = self.active_id(purpose)
        return kid, self.key(kid)

    def entries(self) -> list[dict]:
        t = self.table
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(t.c.key_id, t.c.purpose, t.c.alg, t.c.provider, t.c.kcv,
                                                         t.c.status, t.c.created, t.c.activated, t.c.retired, t.c.destroyed)
                                                  .order_by(t.c.purpose, t.c.created, t.c.key_id)).mappings()]

    def retire(self, key_id: str, now: datetime | None = None) -> None:
        """Mark a superseded key retired (rotation calls it once nothing is encrypted under it)."""
        now = now or self.clock()
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(update(t).where(and_(t.c.key_id == key_id, t.c.status == "readable"))
                         .values(status="retired", retired=now))

    def destroy(self, key_id: str, now: datetime | None = None) -> None:
        """Crypto-shredding: erase the wrapped DEK of a retired key; whatever was encrypted under it
        can never be read again. Callers check first that nothing references it (`rotate.destroy`)."""
        now = now or self.clock()
        t = self.table
        with self.engine.begin() as conn:
            done = conn.execute(update(t).where(and_(t.c.key_id == key_id, t.c.status == "retired"))
                                .values(status="destroyed", destroyed=now, wrapped_key="")).rowcount
        if done != 1:
            raise CryptoError(f"密钥 {key_id} 不是已停用 (retired) 状态, 不能销毁")
        with self._lock:
            self._keys.pop(key_id, None)

    def rewrap_all(self, purpose: str) -> dict:
        """KEK rotation: a new KEK for `purpose`, every DEK of it not destroyed unwrapped with the old
        KEK and wrapped with the new one (one transaction), then the old KEK deleted. The DEKs and
        so every ciphertext stay as they are. A reader that fetched a row in the old form just
        before the swap re-reads it (`key`)."""
        if purpose not in ALGORITHMS:
            raise CryptoError(f"未知的密钥用途 {purpose!r}; expected one of {', '.join(ALGORITHMS)}")
        t = self.table
        _old, new = self.provider.new_kek(purpose)
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.c.key_id, t.c.wrapped_key, t.c.kcv).where(
                and_(t.c.purpose == purpose, t.c.destroyed.is_(None), t.c.wrapped_key != ""))).all()
            for key_id, wrapped, check in rows:
                key = self.provider.unwrap(purpose, key_id, base64.b64decode(wrapped))
                if kcv(key) != check:
                    raise CryptoError(f"密钥 {key_id} 校验值不符 (KCV)")
                conn.execute(update(t).where(t.c.key_id == key_id).values(
                    wrapped_key=base64.b64encode(self.provider.wrap(purpose, key_id, key)).decode()))
        self.provider.drop_kek(purpose, new)
        return {"purpose": purpose, "kek_version": new, "rewrapped": [r[0] for r in rows]}

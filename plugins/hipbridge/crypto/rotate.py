"""Key rotation without downtime: a new active key, then re-encryption in batches, then retirement.

1. A new DEK of the purpose is created and activated: every new write uses it at once.
2. Everything still under an older key is rewritten in batches of `batch_rows`, one short
   transaction each (readers never wait long, and every row is consistent at every moment:
   ciphertext and row MAC change in the same UPDATE). Older keys stay readable throughout.
3. When nothing is left under an older key it is marked retired in the key registry.

What is covered: the encrypted shared tables (ciphertext columns and row MACs), the quarantine's
raw rows and the front-end business tables' encrypted columns (config/crypto.yaml `frontend`). A shared row whose MAC does not verify is *not* re-MACed under the new key (that would
launder a tampering): it is left as it is and counted in `tampered`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, tuple_

from .fields import FieldCipher, canonical_row, key_id_of
from .registry import KeyRing
from .sm import hmac_sm3


@dataclass
class RotationReport:
    purpose: str
    new_key: str
    old_keys: list[str]
    rewritten: dict[str, int] = field(default_factory=dict)
    tampered: dict[str, int] = field(default_factory=dict)
    retired: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Target:
    label: str
    engine: Any
    table: Any
    pk: list[str]
    columns: list[str]              # ciphertext columns
    mac: tuple[str, list[str]] | None = None   # (MAC column, columns it covers)


def _targets(life) -> list[_Target]:
    out = []
    for st in life.secure.tables.values():
        out.append(_Target(f"{life.secure.schema}.{st.table.name}", life.secure.engine, st.table, st.pk,
                           st.encrypted, ("row_mac", st.mac_columns)))
    q = life.ops.table("quarantine")
    out.append(_Target(f"{life.ops.schema}.quarantine", life.frontend, q, ["id"], ["raw", "row_key"]))
    return out + _frontend_targets(life)


def _frontend_targets(life) -> list[_Target]:
    """The province's business tables' encrypted columns (config/crypto.yaml `frontend`), when
    their table exists. Only the ciphertext changes: the row digest and publish's ledger are over
    the plaintext, so the pipeline sees no change."""
    from sqlalchemy import inspect

    from hipbridge.io.frontend import target_table

    from .frontend import frontend_columns

    specs = getattr(life, "specs", None)
    if specs is None or specs.defaults is None:
        return []
    chosen = frontend_columns(specs)
    if not chosen:
        return []
    existing = set(inspect(life.frontend).get_table_names())
    out = []
    for table_id, columns in sorted(chosen.items()):
        spec = specs.get(table_id)
        if spec.target.name not in existing:
            continue
        table = target_table(spec, specs.defaults, dialect=life.frontend.dialect.name, encrypted=columns)
        out.append(_Target(spec.target.name, life.frontend, table, list(spec.target.primary_key), sorted(columns)))
    return out


def _old_condition(t: _Target, purpose: str, old: list[str]):
    if purpose == "data":
        return or_(*[t.table.c[c].like(f"v1:{k}:%") for c in t.columns for k in old])
    return or_(*[t.table.c[t.mac[0]].like(f"{k}:%") for k in old])


def pending(life, purpose: str, old: list[str]) -> dict[str, int]:
    out = {}
    for t in _targets(life):
        if not old or (purpose == "row" and t.mac is None) or (purpose == "data" and not t.columns):
            continue
        with t.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(t.table).where(_old_condition(t, purpose, old))).scalar()
        if n:
            out[t.label] = n
    return out


def _mac_ok(ring: KeyRing, t: _Target, row: dict) -> bool:
    from .fields import verify_row_mac

    return verify_row_mac(ring, t.table.name, row, t.mac[1], row.get(t.mac[0]))


def rotate(life, purpose: str = "data", batch_rows: int = 2000,
           progress: Callable[[int, int], None] | None = None) -> RotationReport:
    """Rotate the `data` (SM4) or `row` (row MAC) key of a front-end; see the module docstring."""
    ring: KeyRing = life.ring
    # retired keys too: a batch staged before an earlier rotation and published after it brought
    # ciphertext under a key retired meanwhile; this rotation rewrites it (they stay retired)
    entries = [e for e in ring.entries() if e["purpose"] == purpose]
    old = [e["key_id"] for e in entries if e["status"] in ("active", "readable", "retired")]
    in_use = {e["key_id"] for e in entries if e["status"] in ("active", "readable")}
    new = ring.create(purpose, activate=True)
    report = RotationReport(purpose, new, old)
    cipher = FieldCipher(ring)
    total = sum(pending(life, purpose, old).values())
    done = 0
    if progress:
        progress(0, total)
    for t in _targets(life):
        if (purpose == "row" and t.mac is None) or (purpose == "data" and not t.columns) or not old:
            continue
        cond = _old_condition(t, purpose, old)
        skip: set[tuple] = set()   # tampered rows, left as they are
        while True:
            with t.engine.begin() as conn:
                q = select(t.table).where(cond)
                if skip:
                    q = q.where(tuple_(*[t.table.c[k] for k in t.pk]).not_in(list(skip)))
                rows = [dict(r) for r in conn.execute(q.order_by(*[t.table.c[k] for k in t.pk])
                                                      .limit(batch_rows)).mappings()]
                if not rows:
                    break
                updates = []
                for r in rows:
                    if t.mac is not None and not _mac_ok(ring, t, r):
                        skip.add(tuple(r[k] for k in t.pk))
                        report.tampered[t.label] = report.tampered.get(t.label, 0) + 1
                        continue
                    new_row = dict(r)
                    if purpose == "data":
                        for c in t.columns:
                            if key_id_of(r.get(c)) in old:
                                new_row[c] = cipher.encrypt(cipher.decrypt(r[c]))
                    if t.mac is not None:
                        kid, key = ring.active("row") if purpose == "data" else (new, ring.key(new))
                        new_row[t.mac[0]] = f"{kid}:" + hmac_sm3(key, canonical_row(t.table.name, new_row,
                                                                                    t.mac[1])).hex()
                    updates.append({**{f"k_{k}": r[k] for k in t.pk},
                                    **{f"v_{c}": new_row[c] for c in _changed(t)}})
                if updates:
                    stmt = t.table.update().where(and_(*[t.table.c[k] == bindparam(f"k_{k}") for k in t.pk])) \
                        .values({c: bindparam(f"v_{c}") for c in _changed(t)})
                    conn.execute(stmt, updates)
            done += len(rows)
            report.rewritten[t.label] = report.rewritten.get(t.label, 0) + len(updates)
            if progress:
                progress(done, total)
    for k in old:   # retired once nothing is left under it (tampered rows keep theirs readable)
        if k in in_use and not pending(life, purpose, [k]):
            ring.retire(k)
            report.retired.append(k)
    return report


def _changed(t: _Target) -> list[str]:
    return list(t.columns) + ([t.mac[0]] if t.mac else [])


class KeyInUse(Exception):
    """A key still referenced (or not retired) cannot be destroyed."""


def destroy(life, key_id: str) -> None:
    """Destroy (crypto-shred) a retired key once no ciphertext or MAC references it.

    Refused, naming why, for an unknown, active or readable key, and for a retired key that any
    secure table, the quarantine or a front-end encrypted column still uses (run `keys rotate`
    first: it rewrites those rows under the active key)."""
    ring: KeyRing = life.ring
    entry = next((e for e in ring.entries() if e["key_id"] == key_id), None)
    if entry is None:
        raise KeyInUse(f"密钥 {key_id} 不在密钥登记表中")
    if entry["status"] == "destroyed":
        raise KeyInUse(f"密钥 {key_id} 已销毁")
    if entry["status"] != "retired":
        raise KeyInUse(f"密钥 {key_id} 状态为 {entry['status']}: 只能销毁已停用 (retired) 的密钥; "
                       f"先运行 hipbridge keys rotate --purpose {entry['purpose']}")
    refs = pending(life, entry["purpose"], [key_id])
    if refs:
        where = ", ".join(f"{t} {n} 行" for t, n in sorted(refs.items()))
        raise KeyInUse(f"密钥 {key_id} 仍被引用 ({where}), 不能销毁; 先运行 hipbridge keys rotate --purpose "
                       f"{entry['purpose']}")
    ring.destroy(key_id)

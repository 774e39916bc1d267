"""The hash-chained audit log (interfaces.md §A0): one append-only table, tamper-evident.

Each event's `mac = HMAC-SM3(K_log, prev_mac ‖ canonical row)`, so changing any stored field breaks
that event's MAC and deleting an event breaks its successor's `prev_mac`. Deleting the *last*
events leaves a consistent chain behind, so every append also updates the anchor on the chain's tail
row: the number of events and the last MAC, sealed with `HMAC-SM3(K_log, "anchor" ‖ count ‖ last_mac)`. Without
K_log (in the HSM in production) nobody can write a valid anchor for a shortened chain; what this
cannot catch is an old anchor row restored together with the events it covered (a backup roll-back).

Appends serialize on the chain tail (`SELECT … FOR UPDATE`); `AuditWriter` (audit.writer) batches
the events of concurrent requests into one such transaction, two batches in flight at most.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.engine import Connection, Engine

from hipbridge.crypto.keys import KeyStore
from hipbridge.crypto.sm import hmac_sm3
from hipbridge.io.ops import Ops, register_ops_tables

CHAIN = "audit"
GENESIS = "0" * 64
EVENT_COLUMNS = ("ts", "actor_type", "actor_id", "patient_key", "action", "object_type", "object_id",
                 "request_id", "result_code", "detail_json")


@register_ops_tables
def _audit_tables(md: MetaData) -> None:
    Table(
        "audit_event", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("ts", DateTime, nullable=False, comment="hospital local time (Asia/Shanghai)"),
        Column("actor_type", String(16), nullable=False, comment="doctor | system | job | workstation"),
        Column("actor_id", String(64)),
        Column("patient_key", String(64), comment="HMAC-SM3 blind index of the patient"),
        Column("action", String(32), nullable=False),
        Column("object_type", String(32)),
        Column("object_id", String(64)),
        Column("request_id", String(64)),
        Column("result_code", String(16)),
        Column("detail_json", Text),
        Column("prev_mac", String(64), nullable=False),
        Column("mac", String(64), nullable=False),
        Index("ix_audit_patient", "patient_key"),
        comment="审计日志 (HMAC-SM3 哈希链, 无明文个人信息)",
    )
    Table(
        "audit_chain", md,
        Column("chain", String(16), primary_key=True),
        Column("last_mac", String(64), nullable=False),
        Column("events", BigInteger, comment="events in the chain (the anchor)"),
        Column("anchor_mac", String(64), comment="HMAC-SM3(K_log, anchor|events|last_mac)"),
        comment="审计哈希链的链尾与锚点 (行锁串行化写入; 锚点检测删除末尾事件)",
    )


def canonical_row(values: dict[str, Any]) -> str:
    return json.dumps({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()},
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def event_mac(key: bytes, prev: str, values: dict[str, Any]) -> str:
    return hmac_sm3(key, (prev + canonical_row(values)).encode("utf-8")).hex()


def anchor_mac(key: bytes, events: int, last_mac: str) -> str:
    return hmac_sm3(key, f"anchor|{events}|{last_mac}".encode()).hex()


def event_values(e: dict[str, Any]) -> dict[str, Any]:
    """The stored columns of one event (`detail` becomes sorted JSON)."""
    detail = e.get("detail")
    return {
        "ts": e["ts"].replace(microsecond=0), "actor_type": e["actor_type"], "actor_id": e.get("actor_id"),
        "patient_key": e.get("patient_key"), "action": e["action"], "object_type": e.get("object_type"),
        "object_id": e.get("object_id"), "request_id": e.get("request_id"), "result_code": e.get("result_code"),
        "detail_json": json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None,
    }


def append(conn: Connection, ops: Ops, keys: KeyStore, events: list[dict[str, Any]],
           tail: tuple[str, int] | None = None, key: bytes | None = None) -> tuple[str, int] | None:
    """Append events in order inside the caller's transaction; returns the new tail (last MAC, count).

    With `tail` (what this writer appended last) the tail row is moved by one conditional UPDATE and
    the events inserted (no SELECT); if another writer appended since, the UPDATE matches nothing and
    the tail is read under `FOR UPDATE` as usual. `key`: K_log when the caller holds it already."""
    if not events:
        return tail
    chain, ev = ops.table("audit_chain"), ops.table("audit_event")
    k = key or keys.secret("log")
    if tail is not None:
        rows, last = seal(k, tail[0], events)
        count = tail[1] + len(rows)
        moved = conn.execute(chain.update().where(chain.c.chain == CHAIN, chain.c.last_mac == tail[0],
                                                  chain.c.events == tail[1])
                             .values(last_mac=last, events=count, anchor_mac=anchor_mac(k, count, last))).rowcount
        if moved == 1:
            conn.execute(ev.insert(), rows)
            return last, count
    q = select(chain.c.last_mac, chain.c.events).where(chain.c.chain == CHAIN).with_for_update()
    row = conn.execute(q).first()
    if row is None:
        conn.execute(chain.insert().values(chain=CHAIN, last_mac=GENESIS, events=0))
        row = conn.execute(q).first()
    prev, count = row[0], row[1]
    if count is None:   # a chain written before anchors existed: count it once
        count = conn.execute(select(func.count()).select_from(ev)).scalar_one()
    rows, last = seal(k, prev, events)
    conn.execute(ev.insert(), rows)
    count += len(rows)
    conn.execute(chain.update().where(chain.c.chain == CHAIN).values(
        last_mac=last, events=count, anchor_mac=anchor_mac(k, count, last)))
    return last, count


def seal(key: bytes, prev: str, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The stored rows of `events` chained after `prev`, and the last MAC."""
    rows = []
    for e in events:
        values = event_values(e)
        mac = event_mac(key, prev, values)
        rows.append(values | {"prev_mac": prev, "mac": mac})
        prev = mac
    return rows, prev


@dataclass
class ChainReport:
    events: int
    first_bad_id: int | None = None
    problem: str | None = None      # Chinese, for the operator

    @property
    def intact(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        return {"intact": self.intact, "events": self.events, "first_bad_id": self.first_bad_id,
                "problem": self.problem}


def verify(engine: Engine, ops: Ops, keys: KeyStore) -> ChainReport:
    """Recompute every MAC in id order and compare the tail with the anchor."""
    ev, chain = ops.table("audit_event"), ops.table("audit_chain")
    prev = GENESIS
    k = keys.secret("log")
    n = 0
    last_id = None
    with engine.connect() as conn:
        for r in conn.execution_options(yield_per=5000).execute(select(ev).order_by(ev.c.id)).mappings():
            values = {c: r[c] for c in EVENT_COLUMNS}
            if r["prev_mac"] != prev:
                return ChainReport(n, r["id"], f"审计事件 {r['id']} 之前的事件被删除或改动 (prev_mac 不连续)")
            if r["mac"] != event_mac(k, prev, values):
                return ChainReport(n, r["id"], f"审计事件 {r['id']} 的内容被改动 (MAC 不符)")
            prev = r["mac"]
            n += 1
            last_id = r["id"]
        a = conn.execute(select(chain).where(chain.c.chain == CHAIN)).mappings().first()
    if a is None or a["anchor_mac"] is None:
        if n:
            return ChainReport(n, None, "审计链缺少锚点 (audit_chain.anchor_mac), 无法确认末尾事件未被删除")
        return ChainReport(0)
    if a["anchor_mac"] != anchor_mac(k, a["events"], a["last_mac"]):
        return ChainReport(n, None, "审计链锚点被改动 (anchor MAC 不符)")
    if a["events"] != n or a["last_mac"] != prev:
        return ChainReport(n, last_id, f"审计链末尾事件被删除: 锚点记录 {a['events']} 条, 现存 {n} 条")
    return ChainReport(n)

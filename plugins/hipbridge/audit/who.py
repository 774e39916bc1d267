"""A patient's question "who looked at my data" (PIPL 第四十五条-style), answered from the audit chain.

The log holds no identity, only the patient's blind index, so the question is asked with the ID
(type + number) and the index is recomputed with the same key.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from hipbridge.crypto.keys import KeyStore
from hipbridge.io.ops import Ops

# actions written by the external data page (hipbridge.display) and the services reusing it
ACCESS_ACTIONS = ("LAUNCH", "VIEW_TIMELINE", "VIEW_REPORT", "ACCESS_DENIED", "REVEAL")


def who_viewed(engine: Engine, ops: Ops, keys: KeyStore, id_type: str, id_no: str,
               since: datetime | None = None, actions: tuple[str, ...] = ACCESS_ACTIONS) -> list[dict[str, Any]]:
    """Every access event of the patient, oldest first: when, who, visit, what, result."""
    ev = ops.table("audit_event")
    q = select(ev).where(ev.c.patient_key == keys.patient_key(id_type, id_no), ev.c.action.in_(actions))
    if since is not None:
        q = q.where(ev.c.ts >= since)
    out = []
    with engine.connect() as conn:
        for r in conn.execute(q.order_by(ev.c.id)).mappings():
            d = json.loads(r["detail_json"]) if r["detail_json"] else {}
            out.append({"id": r["id"], "ts": r["ts"], "actor_type": r["actor_type"], "actor_id": r["actor_id"],
                        "action": r["action"], "visit_id": d.get("visitId"), "dept_id": d.get("deptId"),
                        "object_type": r["object_type"], "object_id": r["object_id"],
                        "report_org": d.get("reportOrg"), "result": r["result_code"], "reason": d.get("reason")})
    return out

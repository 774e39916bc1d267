"""Which external results an order may cite instead of being repeated (interfaces.md §A10 step 3).

    rec = Recognizer(reader, recognition_config(), institutions, org_code, frontend, ops)
    answers = rec.evaluate(auth_ids, [Order("o1", "lab", "GGN")], now)

A result qualifies when it is HR-marked, of the order's 互认 item, within the item's window
(report date + validity_days ≥ today; an item without a window never qualifies), from an institution
the eligibility table allows, not our own, and its batch was not rejected by push-back verification.
Newest first. The shared store is read by `display.records.StoreReader` — the patient's rows by the
authorization covering the visit, exactly as the external data page reads them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from hipbridge.display.records import StoreReader, item_id
from hipbridge.io.ops import Ops

from . import state  # noqa: F401 - registers recognition_gap
from .catalog import Item, Order, Recognition

log = logging.getLogger("hipbridge.recognition")


@dataclass(frozen=True)
class Candidate:
    kind: str
    report_no: str
    report_id: str               # the display's opaque id (the page's /shared/report/{kind}/{id})
    item_code: str
    org_code: str
    org_name: str
    org_level: str
    report_time: datetime
    valid_until: date
    title: str
    summary: str | None
    local_item_code: str | None
    row: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class OrderAnswer:
    order: Order
    item: Item | None
    status: str                  # OK | NO_MAPPING | PART_MISMATCH | METHOD_MISMATCH | NO_WINDOW
    candidates: list[Candidate] = field(default_factory=list)


def valid_until(report_time: datetime | date, days: int) -> date:
    d = report_time.date() if isinstance(report_time, datetime) else report_time
    return d + timedelta(days=days)


def within_window(report_time: datetime | date, days: int | None, today: date) -> bool:
    """Day 0 (today's report) to the last valid day (report date + days) inclusive; no window → never."""
    return days is not None and valid_until(report_time, days) >= today


class Recognizer:
    def __init__(self, reader: StoreReader, rec: Recognition, institutions: dict[str, Any], org_code: str,
                 frontend: Engine, ops: Ops, read_engine: Engine | None = None):
        self.reader, self.rec, self.institutions, self.org_code = reader, rec, institutions, org_code
        self.frontend, self.ops = frontend, ops
        self.read_engine = read_engine or frontend     # per-call reads (autocommit on a server)
        self._checked: dict[tuple[str, str], bool] = {}  # (batch, table name) → rejected
        self._checked_lock = threading.Lock()
        inst = institutions.get(org_code)
        self.our_level = inst.level if inst else rec.cfg.level_unknown

    # ------------------------------------------------------------ pieces

    def level(self, org_code: str) -> str:
        inst = self.institutions.get(org_code)
        return inst.level if inst else self.rec.cfg.level_unknown

    def eligible_source(self, org_code: str, scope_mark: str | None) -> bool:
        if org_code == self.org_code:
            return False
        return self.rec.eligible(scope_mark=scope_mark, source_level=self.level(org_code), our_level=self.our_level,
                                 same_alliance=org_code in self.rec.alliance)

    def rejected(self, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those (batch, table name) pairs push-back verification rejected. A pair is verified once
        (sharing.verify.new_batches skips checked pairs), so its outcome is remembered; a pair with no
        check yet is asked again on the next call."""
        with self._checked_lock:
            missing = sorted({b for b, t in pairs if (b, t) not in self._checked})
        if missing:
            pc = self.ops.table("push_check")
            with self.read_engine.connect() as conn:
                rows = conn.execute(select(pc.c.batch_id, pc.c.table_name, pc.c.status)
                                    .where(pc.c.batch_id.in_(missing))).all()
            with self._checked_lock:
                if len(self._checked) > 50000:
                    self._checked.clear()
                self._checked.update({(b, t): status == "REJECTED" for b, t, status in rows})
        with self._checked_lock:
            return {p for p in pairs if self._checked.get(p)}

    def log_gap(self, order: Order, reason: str, now: datetime) -> None:
        """NO_MAPPING (and part / method mismatches) go to recognition_gap for the catalog team."""
        g = self.ops.table("recognition_gap")
        key = and_(g.c.org_code == self.org_code, g.c.kind == order.kind, g.c.local_code == order.local_code,
                   g.c.reason == reason)
        detail = f"part={order.part or ''} method={order.method or ''}"[:200]
        for _ in (1, 2):
            with self.frontend.begin() as conn:
                if conn.execute(update(g).where(key).values(last_seen=now, times=g.c.times + 1,
                                                            detail=detail)).rowcount:
                    return
                try:
                    conn.execute(insert(g).values(org_code=self.org_code, kind=order.kind,
                                                  local_code=order.local_code, reason=reason, detail=detail,
                                                  first_seen=now, last_seen=now, times=1))
                    return
                except IntegrityError:   # another request inserted it first: count on it
                    pass
        log.warning("recognition_gap not recorded for %s %s", order.kind, order.local_code)

    # ------------------------------------------------------------ the question

    def evaluate(self, auth_ids: list[str], orders: list[Order], now: datetime,
                 data: dict[str, list[dict[str, Any]]] | None = None) -> list[OrderAnswer]:
        """One answer per order (in order). `data` is the patient's rows when already read."""
        answers: list[OrderAnswer] = []
        for o in orders:
            item, why = self.rec.map_order(o)
            if item is None:
                log.info("NO_MAPPING %s %s (%s)", o.kind, o.local_code, why)
                self.log_gap(o, why or "NO_MAPPING", now)
                answers.append(OrderAnswer(o, None, why or "NO_MAPPING"))
            elif item.validity_days is None:
                answers.append(OrderAnswer(o, item, "NO_WINDOW"))
            else:
                answers.append(OrderAnswer(o, item, "OK"))
        wanted = {a.item.code for a in answers if a.status == "OK"}
        if not wanted:
            return answers
        if data is None:
            data = self.reader.patient(auth_ids)
        by_item = self.candidates(data, wanted, now)
        for a in answers:
            if a.status == "OK":
                a.candidates = by_item.get(a.item.code, [])
        return answers

    def candidates(self, data: dict[str, list[dict[str, Any]]], codes: set[str] | None,
                   now: datetime) -> dict[str, list[Candidate]]:
        """item code → qualifying results of the patient's rows, newest first."""
        today = now.date()
        hr_yes = self.rec.cfg.hr_yes
        pre: list[tuple[str, dict[str, Any], Item]] = []
        for kind in ("lab", "exam"):
            for r in data.get(kind, []):
                code = r.get("recognition_code")
                item = self.rec.items.get(code) if code else None
                if item is None or item.kind != kind or (codes is not None and code not in codes):
                    continue
                when = r.get("time")
                if str(r.get("hr")) != hr_yes or not isinstance(when, datetime | date):
                    continue
                if not within_window(when, item.validity_days, today):
                    continue
                if not self.eligible_source(r["org_code"], str(r.get("hr"))):
                    continue
                pre.append((kind, r, item))
        rejected = self.rejected({(r["_batch"], self.reader.table_name(kind)) for kind, r, _ in pre})
        out: dict[str, list[Candidate]] = {}
        for kind, r, item in pre:
            if (r["_batch"], self.reader.table_name(kind)) in rejected:
                continue
            inst = self.institutions.get(r["org_code"])
            c = Candidate(kind=kind, report_no=str(r["id"]), report_id=item_id(r["org_code"], str(r["id"])),
                          item_code=item.code, org_code=r["org_code"],
                          org_name=r.get("org_name") or (inst.name if inst else r["org_code"]),
                          org_level=self.level(r["org_code"]), report_time=r["time"],
                          valid_until=valid_until(r["time"], item.validity_days),
                          title=" ".join(x for x in (r.get("title"), r.get("part")) if x) or item.code,
                          summary=r.get("conclusion"), local_item_code=r.get("item_code"), row=r)
            out.setdefault(item.code, []).append(c)
        for v in out.values():
            v.sort(key=lambda c: (c.report_time if isinstance(c.report_time, datetime)
                                  else datetime.combine(c.report_time, datetime.min.time())), reverse=True)
        return out


def visit_auth_ids(launcher, req, now: datetime) -> tuple[str, list[str]]:
    """The display's access decision for (visit, patient, doctor) and the authorization(s) whose shared
    rows are the patient's: ("ok", [auth_id]) or (refusal reason, [])."""
    decision, _visit, _pkey, auth = launcher.decide(req, now)
    return decision, ([auth["auth_id"]] if decision == "ok" and auth and auth.get("auth_id") else [])

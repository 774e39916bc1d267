"""Reading one patient's shared data and shaping it for the page and the JSON API.

`StoreReader` is the only code that reads the shared store (one indexed query per table, by the
authorization the launch is bound to): when the store changes shape (encrypted columns, a blind
index, a MAC-checked read API) this class is what adapts. Everything else works on role-named
rows (`config/display.yaml` tables: which column holds the report time, the conclusion, …).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, DateTime, String, bindparam, cast, func, literal, null, select, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from hipbridge.io.ops import Ops
from hipbridge.sharing.store import SharedStore

from .config import Catalogs, DisplayConfig

KIND_LABELS = {"visit": "就诊", "lab": "检验", "exam": "检查", "rx": "处方"}
# the tables whose push-back checks speak for an item of each kind
_QC_TABLES = {"visit": ("visit", "diagnosis"), "lab": ("lab", "lab_result"), "exam": ("exam",),
              "rx": ("rx", "rx_item")}


class StoreUnavailable(Exception):
    """The shared store cannot be read (down, unreachable, or its tables missing)."""


class StoreReader:
    """One round trip per patient: a UNION ALL of the shared tables, landing and encrypted, by auth_id,
    every column as text (the tables differ in shape); times parsed back from their column types, an
    encrypted row's types restored for its MAC."""

    def __init__(self, store: SharedStore, cfg: DisplayConfig, engine: Engine | None = None):
        self.store, self.cfg = store, cfg
        self._engine = engine or store.engine
        self.org_code_col = store.defaults.audit("org_code").name
        self.org_name_col = store.defaults.audit("org_name").name
        self._tables: dict[str, Any] = {}
        self._times: dict[str, set[str]] = {}
        self._local = threading.local()            # `tampered` of each thread's last patient() call
        self._plan_cache: dict[tuple[str, ...] | None, tuple] = {}   # by the kinds read (None: every kind)
        self._used_cols: dict[str, list[str]] = {}
        self._conv: dict[str, list] = {}
        self.retyped = 0     # rows read again typed after failing their MAC as text (a tampered row: 1 each)
        auth, batch = store.cols["auth_id"], store.cols["batch_id"]
        roles = sorted({r for t in cfg.tables.values() for r in t.columns})
        self._roles = roles
        self._landing: list[tuple[str, list, Any]] = []   # (kind, columns as text, WHERE)
        for kind, spec in cfg.tables.items():
            table = store.tables.get(spec.table)
            if table is None:
                continue
            self._tables[kind] = table
            have = {role: table.c[c] for role, c in spec.columns.items() if c in table.c}
            self._times[kind] = {r for r, c in have.items() if isinstance(c.type, DateTime | Date)}
            name = table.c[self.org_name_col] if self.org_name_col in table.c else null()
            cols = [table.c[self.org_code_col], name, table.c[batch]] + [have.get(r, null()) for r in roles]
            self._landing.append((kind, cols, table.c[auth].in_(bindparam("auth_ids", expanding=True))))

    @property
    def engine(self) -> Engine:
        return self._engine

    def table_name(self, kind: str) -> str | None:
        t = self._tables.get(kind)
        return t.name if t is not None else None

    def _plan(self, kinds: tuple[str, ...] | None = None) -> tuple:
        """(secure store or None, [(kind, secure table, column names)], landing query, secure query): one
        UNION ALL of both (`landing query`, secure query None) when one engine reaches both, else two.

        Each part answers (kind, source, one JSON array of its columns as text): the driver then parses
        three values a row instead of every column of the widest table (NULL-padded), which was most of a
        timeline call's CPU; the values are the same `CAST(… AS CHAR)` texts either way."""
        secure = getattr(self.store, "secure", None)
        if secure is not None and getattr(secure, "cipher", None) is None:
            secure = None
        cached = self._plan_cache.get(kinds)
        if cached is not None and cached[0] is secure:
            return cached
        auth = self.store.cols["auth_id"]
        splan = [] if secure is None else [(kind, secure.tables[spec.table], [c.name for c in secure.tables[spec.table].table.columns])
                                           for kind, spec in self.cfg.tables.items()
                                           if kind in self._tables and spec.table in secure.tables
                                           and (kinds is None or kind in kinds)]
        together = bool(splan) and secure.engine is self.store.engine

        def part(kind: str, src: str, cols: list, where, dialect: str):
            packed = _json_array(dialect, [cast(c, String) for c in cols])
            return select(literal(kind, String).label("_kind"), literal(src, String).label("_src"),
                          packed.label("v")).where(where)

        ld = self.store.engine.dialect.name
        landing = [part(k, "L", cols, where, ld) for k, cols, where in self._landing
                   if kinds is None or k in kinds]
        sparts = []
        if splan:
            sd = secure.engine.dialect.name
            sparts = [part(k, "S", list(st.table.columns), st.table.c[auth].in_(bindparam("auth_ids", expanding=True)), sd)
                      for k, st, _ in splan]
        if together:
            q_landing, q_secure = union_all(*landing, *sparts), None
        else:
            q_landing = union_all(*landing) if landing else None
            q_secure = union_all(*sparts) if sparts else None
        self._plan_cache[kinds] = (secure, splan, q_landing, q_secure)
        return self._plan_cache[kinds]

    def patient(self, auth_ids: list[str], kinds: tuple[str, ...] | None = None) -> dict[str, list[dict[str, Any]]]:
        """kind → rows (role names, plus org_code, org_name, _batch) of the given authorizations.

        One round trip on a server database: the landing rows and the rows already moved into the
        encrypted tables (sharing/secure.py) by one UNION ALL; the encrypted ones are MAC-checked and
        decrypted. A tampered row is never data: it is left out and listed in `tampered` (this
        thread's last call). `kinds` reads only those (e.g. the 互认 reminder: lab and exam reports),
        every kind by default."""
        out: dict[str, list[dict[str, Any]]] = {k: [] for k in self._tables}
        self.tampered = []
        secure, splan, q_landing, q_secure = self._plan(kinds)
        if q_landing is None or not auth_ids:
            return out
        params = {"auth_ids": list(auth_ids)}
        for attempt in (1, 2):
            try:
                with self.engine.connect() as conn:
                    rows = [(r[0], r[1], json.loads(r[2])) for r in conn.execute(q_landing, params)]
                    if q_secure is not None:                      # SQLite: the encrypted tables in another file
                        with secure.engine.connect() as sconn:
                            srows = [(r[0], r[1], json.loads(r[2])) for r in sconn.execute(q_secure, params)]
                            stored = self._reveal_rows(sconn, splan, srows)
                    else:
                        stored = self._reveal_rows(conn, splan, [r for r in rows if r[1] == "S"])
                break
            except DBAPIError as exc:   # a pooled connection the server dropped: once more, else down
                if attempt == 1 and exc.connection_invalidated:
                    continue
                raise StoreUnavailable(type(exc).__name__) from None
            except SQLAlchemyError as exc:
                raise StoreUnavailable(type(exc).__name__) from None
        spec = self.cfg.tables
        nroles = len(self._roles)
        for r in rows:
            if r[1] != "L":
                continue
            kind, vals = r[0], r[2]
            times = self._times[kind]
            have = spec[kind].columns
            d: dict[str, Any] = {"org_code": vals[0], "org_name": vals[1], "_batch": vals[2]}
            for role, v in zip(self._roles, vals[3:3 + nroles], strict=True):
                if role in have:
                    d[role] = _as_time(v) if role in times else v
            out[kind].append(d)
        self.tampered = self._reveal(out, stored)
        return out

    @property
    def tampered(self) -> list[dict[str, Any]]:
        """The rows of this thread's last `patient()` call that failed their MAC or decryption."""
        return getattr(self._local, "tampered", [])

    @tampered.setter
    def tampered(self, value: list[dict[str, Any]]) -> None:
        self._local.tampered = value

    def _reveal_rows(self, conn, splan: list, rows: list) -> list[tuple[str, Any]]:
        """(kind, SharedRow) of the encrypted tables' rows read as text: each row's types restored from
        its columns and its MAC checked over every stored column; only the columns the page uses are
        decrypted (a name or ID number it never shows stays ciphertext). A row that fails the check as
        text is read again typed from its table (the MAC's canonical form is over typed values) before
        it is called tampered."""
        from hipbridge.crypto.fields import verify_row_mac
        from hipbridge.crypto.sm import CryptoError
        from hipbridge.sharing.secure import MAC_COLUMN, SharedRow, reveal_row

        if not rows:
            return []
        plan = {kind: (st, names) for kind, st, names in splan}
        cipher = self.store.secure.cipher
        out = []
        for r in rows:
            kind = r[0]
            st, names = plan[kind]
            raw = {n: conv(v) for n, conv, v in zip(names, self._converters(kind, st), r[2], strict=True)}
            if not verify_row_mac(cipher.ring, st.table.name, raw, st.mac_columns, raw.get(MAC_COLUMN)):
                self.retyped += 1
                typed = conn.execute(select(st.table).where(
                    *[st.table.c[k] == raw[k] for k in st.pk])).mappings().first()
                raw = dict(typed) if typed else raw
                if not verify_row_mac(cipher.ring, st.table.name, raw, st.mac_columns, raw.get(MAC_COLUMN)):
                    out.append((kind, reveal_row(st, raw, cipher)))      # tampered, with its reason
                    continue
            data = {c: raw.get(c) for c in self._used(kind, st)}
            try:
                for c in st.encrypted:
                    if c in data:
                        data[c] = cipher.decrypt(data[c])
            except (CryptoError, UnicodeDecodeError):
                out.append((kind, reveal_row(st, raw, cipher)))          # undecryptable: tampered, with its reason
                continue
            out.append((kind, SharedRow(st.table_id, {k: raw.get(k) for k in st.pk}, False, data)))
        return out

    def _converters(self, kind: str, st: Any) -> list:
        """Per stored column of a kind's encrypted table: text → the value its type gives (for the MAC),
        worked out once instead of per value."""
        conv = self._conv.get(kind)
        if conv is None:
            conv = self._conv[kind] = [_converter(c) for c in st.table.columns]
        return conv

    def _used(self, kind: str, st: Any) -> list[str]:
        """The stored columns the page reads of a kind's rows: its roles, the institution, the batch."""
        used = self._used_cols.get(kind)
        if used is None:
            want = {*self.cfg.tables[kind].columns.values(), self.org_code_col, self.org_name_col,
                    self.store.cols["batch_id"]}
            used = self._used_cols[kind] = [c.name for c in st.landing.columns if c.name in want]
        return used

    def _reveal(self, out: dict[str, list[dict[str, Any]]], stored: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        """Add the encrypted tables' rows in the UNION's shape; return the tampered ones (never data)."""
        tampered: list[dict[str, Any]] = []
        batch = self.store.cols["batch_id"]
        for kind, r in stored:
            if r.tampered:
                tampered.append({"kind": kind, "key": r.key, "reason": r.reason,
                                 "org_code": _text(r.key.get(self.org_code_col))})
                continue
            spec = self.cfg.tables[kind]
            data = r.data
            d: dict[str, Any] = {"org_code": _text(data.get(self.org_code_col)),
                                 "org_name": _text(data.get(self.org_name_col)), "_batch": _text(data[batch])}
            for role in self._roles:   # every configured role, in the UNION's order
                if role in spec.columns:
                    v = data.get(spec.columns[role])
                    d[role] = _as_time(v) if role in self._times[kind] else _text(v)
            out[kind].append(d)
        return tampered


def _json_array(dialect: str, values: list):
    """One JSON array of these SQL expressions (NULL stays null)."""
    if dialect == "postgresql":
        return func.json_build_array(*values)
    return func.json_array(*values)          # MariaDB / MySQL, SQLite


def _converter(column):
    """A function: a column's value read as text → the value its type gives (`_typed` of that column)."""
    try:
        t = column.type.python_type
    except NotImplementedError:
        t = str
    if t is str:
        return _same
    return lambda v: _typed(column, v)


def _same(v: Any) -> Any:
    return v


def _typed(column, v: Any) -> Any:
    """A column's value read as text, back in the type the column gives it (for the row MAC)."""
    if v is None or not isinstance(v, str):
        return v
    try:
        t = column.type.python_type
    except NotImplementedError:
        return v
    try:
        if t is str:
            return v
        if t is datetime:
            return datetime.fromisoformat(v)
        if t is date:
            return date.fromisoformat(v[:10])
        if t is Decimal:
            return Decimal(v)
        if t is bool:
            return v not in ("0", "false", "False")
        if t in (int, float):
            return t(v)
    except (ValueError, ArithmeticError):
        return v      # the MAC check then fails and the row is read again typed
    return v


def _text(v: Any) -> str | None:
    """A value as the UNION's CAST(… AS CHAR) gives it (dates ISO, decimals as written)."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def _as_time(v: Any) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    s = str(v)
    try:
        return datetime.fromisoformat(s if len(s) > 10 else s + " 00:00:00")
    except ValueError:
        return None


# ---------------------------------------------------------------- push-back checks (QC warnings)


class QcNotes:
    """(batch, table name) → the warnings push-back verification recorded; a batch is verified once,
    so checked batches are remembered (unchecked ones are asked again: "尚未核验" until they are)."""

    def __init__(self, engine: Engine, ops: Ops, max_batches: int = 20000):
        self.engine, self.ops, self.max_batches = engine, ops, max_batches
        self._known: dict[str, dict[str, list[str]]] = {}     # batch → table → notes
        self._lock = threading.Lock()

    def __call__(self, batches: set[str]) -> dict[tuple[str, str], list[str]]:
        with self._lock:
            missing = sorted(b for b in batches if b not in self._known)
        if missing:
            fresh = qc_notes(self.engine, self.ops, set(missing))
            by_batch: dict[str, dict[str, list[str]]] = {}
            for (b, t), notes in fresh.items():
                by_batch.setdefault(b, {})[t] = notes
            with self._lock:
                if len(self._known) > self.max_batches:
                    self._known.clear()
                self._known.update(by_batch)       # batches without a check stay unknown
        with self._lock:
            return {(b, t): n for b in batches for t, n in self._known.get(b, {}).items()}


def qc_notes(engine: Engine, ops: Ops, batches: set[str]) -> dict[tuple[str, str], list[str]]:
    """(batch, table name) → the warnings push-back verification recorded (none: "尚未核验")."""
    if not batches:
        return {}
    pc, pp = ops.table("push_check"), ops.table("push_problem")
    notes: dict[tuple[str, str], list[str]] = {}
    ids = sorted(batches)
    with engine.connect() as conn:
        for r in conn.execute(select(pc.c.batch_id, pc.c.table_name, pc.c.status).where(pc.c.batch_id.in_(ids))):
            notes[(r[0], r[1])] = ["回推核验未通过"] if r[2] == "REJECTED" else []
        for r in conn.execute(select(pp.c.batch_id, pp.c.table_name, pp.c.rule_id, pp.c.severity, pp.c.message)
                              .where(pp.c.batch_id.in_(ids)).order_by(pp.c.id)):
            notes.setdefault((r[0], r[1]), []).append(r[4] if r[2] in r[4] else f"{r[2]} {r[4]}")
    return notes


# ---------------------------------------------------------------- items


def item_id(org_code: str, key: str) -> str:
    """An opaque, URL-safe id of a report (source institution + its report number)."""
    raw = json.dumps([org_code, key], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_item_id(value: str) -> tuple[str, str] | None:
    try:
        org, key = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        return str(org), str(key)
    except (ValueError, TypeError):
        return None


def _fmt(v: Any) -> str | None:
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    return None if v is None else str(v)


def _sort_time(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v
    if isinstance(v, date):
        return datetime.combine(v, datetime.min.time())
    return datetime.min


_NUM = re.compile(r"^\s*[<>≤≥]?\s*(-?\d+(?:\.\d+)?)\s*$")


def numeric(v: Any) -> float | None:
    if v is None:
        return None
    m = _NUM.match(str(v))
    return float(m.group(1)) if m else None


@dataclass
class Shaper:
    """Role-named rows → timeline items, details and trends (Chinese labels, local times)."""

    cfg: DisplayConfig
    catalogs: Catalogs
    reader: StoreReader
    qc: dict[tuple[str, str], list[str]]

    def org(self, code: str, name: str | None) -> dict[str, str]:
        inst = self.catalogs.institutions.get(code)
        return {"orgCode": code, "orgName": name or (inst.name if inst else code),
                "orgLevel": inst.level if inst else self.cfg.page.level_unknown}

    def _yes(self, v: Any) -> bool:
        return v is not None and str(v) == self.cfg.yes_code

    def _qc(self, kind: str, rows: list[dict[str, Any]]) -> list[str]:
        out: list[str] = []
        for r in rows:
            for k in _QC_TABLES[kind]:
                name = self.reader.table_name(k)
                if name is None:
                    continue
                notes = self.qc.get((r["_batch"], name))
                if notes is None:
                    notes = ["尚未核验"] if k == _QC_TABLES[kind][0] else []
                out.extend(n for n in notes if n not in out)
        return out

    def _validity(self, kind: str, when: Any, codes: list[str | None]) -> str | None:
        days = [self.catalogs.validity_days[(kind, c)] for c in codes if c and (kind, c) in self.catalogs.validity_days]
        if not days or not isinstance(when, datetime | date):
            return None
        return (_sort_time(when) + timedelta(days=min(days))).strftime("%Y-%m-%d")

    def _hr(self, kind: str, row: dict[str, Any], codes: list[str | None]) -> dict[str, Any]:
        if not self._yes(row.get("hr")):
            return {"hr": False, "hrMark": None, "validUntil": None, "validity": self.cfg.page.not_hr}
        until = self._validity(kind, row.get("time"), codes)
        return {"hr": True, "hrMark": self.cfg.page.hr_mark, "validUntil": until,
                "validity": f"有效期至 {until}" if until else f"有效期至 {self.cfg.page.validity_unknown}"}

    def flag(self, code: Any) -> dict[str, bool]:
        c = None if code is None else str(code)
        a = self.cfg.abnormal
        return {"abnormal": c in a.abnormal, "critical": c in a.critical, "high": c in a.high, "low": c in a.low}

    # ---------------------------------------------------------- per kind

    def items(self, data: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        diags = _by(data.get("diagnosis", []), "visit")
        results = _by(data.get("lab_result", []), "report")
        rx_items = _by(data.get("rx_item", []), "prescription")
        for v in data.get("visit", []):
            names = [d["name"] for d in diags.get((v["org_code"], v["id"]), []) if d.get("name")]
            names = names or ([v["diagnosis"]] if v.get("diagnosis") else [])
            out.append(self._item("visit", v, v.get("start"), f"{v.get('dept') or ''} 就诊".strip(),
                                  "诊断: " + "、".join(names) if names else "无诊断记录", [v],
                                  {"dept": v.get("dept"), "diagnoses": names}))
        for r in data.get("lab", []):
            rs = results.get((r["org_code"], r["id"]), [])
            flags = [self.flag(x.get("abnormal")) for x in rs]
            abnormal = [x for x, f in zip(rs, flags, strict=True) if f["abnormal"]]
            critical = self._yes(r.get("critical")) or any(f["critical"] for f in flags)
            summary = f"{len(rs)} 项" + (f", 异常 {len(abnormal)} 项: " + "、".join(
                f"{x.get('name')}{'↑' if self.flag(x.get('abnormal'))['high'] else '↓' if self.flag(x.get('abnormal'))['low'] else ''}"
                for x in abnormal[:6]) if abnormal else ", 均在参考范围内")
            out.append(self._item("lab", r, r.get("time"), r.get("title") or "检验报告", summary, [r],
                                  {"abnormal": bool(abnormal), "critical": critical, "specimen": r.get("specimen")},
                                  hr_codes=[r.get("item_code")] + [x.get("code") for x in rs]))
        for e in data.get("exam", []):
            concl = e.get("conclusion") or ""
            out.append(self._item("exam", e, e.get("time"),
                                  " ".join(x for x in (e.get("title"), e.get("part")) if x) or "检查报告",
                                  ("结论: " + concl)[:140], [e], {"critical": self._yes(e.get("critical")),
                                                                  "image": bool(e.get("image"))},
                                  hr_codes=[e.get("item_code")]))
        for p in data.get("rx", []):
            drugs = [i.get("drug") for i in rx_items.get((p["org_code"], p["id"]), []) if i.get("drug")]
            title = "处方" + (" (已作废)" if self._yes(p.get("cancelled")) else "")
            out.append(self._item("rx", p, p.get("time"), title,
                                  ("、".join(drugs) or "无明细") + (f" · 诊断: {p['diagnosis']}" if p.get("diagnosis") else ""),
                                  [p], {}))
        out.sort(key=lambda i: (i["_t"], i["kind"]), reverse=True)
        return out

    def _item(self, kind: str, row: dict[str, Any], when: Any, title: str, summary: str,
              rows: list[dict[str, Any]], extra: dict[str, Any], hr_codes: list | None = None) -> dict[str, Any]:
        it = {"kind": kind, "kindLabel": KIND_LABELS[kind], "id": item_id(row["org_code"], str(row["id"])),
              **self.org(row["org_code"], row.get("org_name")), "time": _fmt(when), "title": title,
              "summary": summary, "abnormal": False, "critical": False, "qc": self._qc(kind, rows), "_t": _sort_time(when)}
        if kind in ("lab", "exam"):
            it.update(self._hr(kind, row, hr_codes or []))
        else:
            it.update({"hr": False, "hrMark": None, "validUntil": None, "validity": None})
        it.update(extra)
        return it

    def groups(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """By institution, the institution with the newest item first; items newest first."""
        groups: dict[str, dict[str, Any]] = {}
        for it in items:
            g = groups.setdefault(it["orgCode"], {"orgCode": it["orgCode"], "orgName": it["orgName"],
                                                  "orgLevel": it["orgLevel"], "items": []})
            g["items"].append(public(it))
        return list(groups.values())

    # ---------------------------------------------------------- details

    def detail(self, data: dict[str, list[dict[str, Any]]], kind: str, org: str, key: str) -> dict[str, Any] | None:
        rows = [r for r in data.get(kind, []) if r["org_code"] == org and str(r["id"]) == key]
        if not rows:
            return None
        row = rows[0]
        sub = {k: v for k, v in data.items() if k not in KIND_LABELS}
        sub[kind] = rows
        item = self.items(sub)[0]
        out = public(item) | {"reportNo": key}
        if kind == "visit":
            out.update({"doctor": row.get("doctor"), "start": _fmt(row.get("start")), "end": _fmt(row.get("end")),
                        "complaint": row.get("complaint"), "treatment": row.get("treatment")})
        elif kind == "lab":
            rs = sorted(_by(data.get("lab_result", []), "report").get((org, key), []),
                        key=lambda x: (numeric(x.get("seq")) or 0, str(x.get("name"))))
            out["results"] = [{"code": x.get("code"), "name": x.get("name"),
                               "value": x.get("value") if x.get("value") is not None else x.get("text"),
                               "unit": x.get("unit"), "range": x.get("range") or _range(x), "flag": x.get("abnormal"),
                               **self.flag(x.get("abnormal"))} for x in rs]
            out["trends"] = self.trends(data, [x.get("code") or x.get("name") for x in rs])
        elif kind == "exam":
            out.update({"part": row.get("part"), "modality": row.get("modality"), "findings": row.get("findings"),
                        "conclusion": row.get("conclusion"),
                        "imageUrl": self.cfg.image_link.format(org_code=org, uid=row["image"]) if row.get("image") else None})
        elif kind == "rx":
            out["items"] = [{k: i.get(k) for k in ("drug", "spec", "dose", "dose_unit", "frequency", "route", "days",
                                                   "quantity", "quantity_unit")}
                            for i in _by(data.get("rx_item", []), "prescription").get((org, key), [])]
            out["diagnosis"] = row.get("diagnosis")
        return out

    def trends(self, data: dict[str, list[dict[str, Any]]], analytes: list[str | None]) -> list[dict[str, Any]]:
        """Every analyte of `analytes` with a numeric result in more than one report, oldest point first."""
        reports = {(r["org_code"], str(r["id"])): r for r in data.get("lab", [])}
        series: dict[str, dict[str, Any]] = {}
        for x in data.get("lab_result", []):
            code = x.get("code") or x.get("name")
            val = numeric(x.get("value"))
            if code not in analytes or val is None:
                continue
            rep = reports.get((x["org_code"], str(x.get("report"))))
            when = x.get("time") or (rep or {}).get("time")
            s = series.setdefault(code, {"code": code, "name": x.get("name"), "unit": x.get("unit"),
                                         "low": numeric(x.get("low")), "high": numeric(x.get("high")), "points": []})
            s["points"].append({"time": _fmt(when), "value": val, "orgName": self.org(x["org_code"], x.get("org_name"))["orgName"],
                                "_t": _sort_time(when), **self.flag(x.get("abnormal"))})
        out = []
        for code in dict.fromkeys(a for a in analytes if a in series):
            s = series[code]
            if len(s["points"]) < 2:
                continue
            s["points"].sort(key=lambda p: p["_t"])
            s["points"] = [{k: v for k, v in p.items() if k != "_t"} for p in s["points"]]
            out.append(s)
        return out


def public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def _range(x: dict[str, Any]) -> str | None:
    lo, hi = x.get("low"), x.get("high")
    return f"{lo}–{hi}" if lo is not None and hi is not None else None


def _by(rows: list[dict[str, Any]], role: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r.get(role) is not None:
            out.setdefault((r["org_code"], str(r[role])), []).append(r)
    return out

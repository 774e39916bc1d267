"""The 互认 item catalog, the hospital's local order maps and the eligibility rule table — as data.

    cfg = load_recognition()                     # config/recognition.yaml + the files it names
    cfg.map_order(Order("o1", "lab", "GGN"))     # → (Item, None) or (None, "NO_MAPPING")
    cfg.eligible(scope_mark="1", source_level="三级甲等", our_level="三级甲等", same_alliance=False)

Bad files raise `ConfigError` naming the file, line and column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from hipbridge.platform.config import ConfigError, load_model
from hipbridge.settings import config_dir

KINDS = ("lab", "exam")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CdsService(_Strict):
    id: str
    title: str
    description: str
    search_type: str


class Cds(_Strict):
    services: dict[str, CdsService]
    source_label: str
    indicator: str
    summary_patient_view: str
    summary_order_select: str
    suggestion: str
    link_label: str
    categories: dict[str, str]


class Decisions(_Strict):
    expired: str
    locked: str
    not_ordering_doctor: str
    diagnosis_required: str
    unknown_reason: str
    nothing_to_undo: str
    decline_note: str
    cite_note: str


class Uploads(_Strict):
    item_types: dict[str, str]
    client_type: str
    cross_flag: str
    operate_type_remind: str
    required: dict[str, list[str]]


class ReasonsPlatform(_Strict):
    code: str                  # the field of a list item holding the reason code
    name: str                  # … and its text
    refresh_s: int             # a list older than this is asked for again (in the background)


class Page(_Strict):
    title: str
    wrong_purpose: str
    none: str
    none_for_order: str


class RecognitionConfig(_Strict):
    catalog: str
    local_sets: dict[str, str]
    kinds: dict[str, str]
    eligibility: str
    alliance: str
    level_unknown: str
    hr_yes: str
    reasons: str
    reason_system: str
    reasons_platform: ReasonsPlatform
    cds: Cds
    page: Page
    decisions: Decisions
    uploads: Uploads


@dataclass(frozen=True)
class Reason:
    code: str
    name: str
    counted: bool              # counted as a refusal in 互认率 (98 / 99 are not)
    needs_diagnosis: bool      # 99: the doctor must give the diagnosis (diagName)


@dataclass(frozen=True)
class Item:
    code: str
    kind: str                   # lab | exam
    category: str
    modality: str | None        # specimen (检验) or DICOM modality (检查)
    body_part: str | None
    validity_days: int | None   # None: never recognisable (fail closed)


@dataclass(frozen=True)
class Order:
    order_id: str
    kind: str                   # lab | exam
    local_code: str
    part: str | None = None     # 检查部位 as HIS sends it (exam)
    method: str | None = None   # 检查方法 / modality (exam)


@dataclass(frozen=True)
class Rule:
    scope_mark: str
    source_level: str
    our_level: str
    same_alliance: str
    allowed: bool
    line: int

    def matches(self, scope_mark: str, source_level: str, our_level: str, same_alliance: bool) -> bool:
        return all(want == "*" or want == got for want, got in (
            (self.scope_mark, scope_mark), (self.source_level, source_level), (self.our_level, our_level),
            (self.same_alliance, "1" if same_alliance else "0")))


@dataclass
class Recognition:
    cfg: RecognitionConfig
    items: dict[str, Item]
    local: dict[str, dict[str, str]]           # kind → local code → item code
    rules: list[Rule]
    alliance: frozenset[str]
    reasons: dict[str, Reason] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)   # what was loaded from where (for messages)

    def map_order(self, order: Order) -> tuple[Item | None, str | None]:
        """The order's 互认 item, or why there is none (NO_MAPPING, PART_MISMATCH, METHOD_MISMATCH).
        检验: the item alone; 检查: the item, and the order's body part and method when HIS sends them."""
        code = self.local.get(order.kind, {}).get(order.local_code)
        item = self.items.get(code) if code else None
        if item is None or item.kind != order.kind:
            return None, "NO_MAPPING"
        if order.kind == "exam":
            if order.part and item.body_part and order.part != item.body_part:
                return None, "PART_MISMATCH"
            if order.method and item.modality and order.method.upper() != item.modality.upper():
                return None, "METHOD_MISMATCH"
        return item, None

    def eligible(self, *, scope_mark: str | None, source_level: str, our_level: str, same_alliance: bool) -> bool:
        """First matching rule of the table decides; none matches → not eligible (fail closed)."""
        for r in self.rules:
            if r.matches(scope_mark or "", source_level, our_level, same_alliance):
                return r.allowed
        return False


def _rows(path: Path, need: list[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        fh = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing file") from None
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{path}:1: header lacks columns {missing} (have {reader.fieldnames})")
        return [(i, {k: (v or "").strip() for k, v in row.items() if k}) for i, row in enumerate(reader, start=2)]


def _flag(path: Path, line: int, key: str, v: str, star: bool) -> str:
    allowed = ("0", "1", "*") if star else ("0", "1")
    if v not in allowed:
        raise ConfigError(f"{path}:{line}: {key}: expected one of {list(allowed)} (got {v!r})")
    return v


def load_items(path: Path, kinds: dict[str, str]) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for line, r in _rows(path, ["code", "kind", "category", "specimen_or_modality", "body_part", "validity_days"]):
        code = r["code"]
        if not code:
            raise ConfigError(f"{path}:{line}: code: empty")
        if code in items:
            raise ConfigError(f"{path}:{line}: code: {code} listed twice")
        if r["kind"] not in kinds:
            raise ConfigError(f"{path}:{line}: kind: expected one of {list(kinds)} (got {r['kind']!r})")
        days: int | None = None
        if r["validity_days"]:
            try:
                days = int(r["validity_days"])
            except ValueError:
                raise ConfigError(f"{path}:{line}: validity_days: expected a whole number or empty "
                                  f"(got {r['validity_days']!r})") from None
            if days < 0:
                raise ConfigError(f"{path}:{line}: validity_days: must be ≥ 0 (got {days})")
        items[code] = Item(code, kinds[r["kind"]], r["category"], r["specimen_or_modality"] or None,
                           r["body_part"] or None, days)
    return items


def load_rules(path: Path) -> list[Rule]:
    rules = []
    for line, r in _rows(path, ["scope_mark", "source_level", "our_level", "same_alliance", "allowed"]):
        for k in ("scope_mark", "source_level", "our_level"):
            if not r[k]:
                raise ConfigError(f"{path}:{line}: {k}: empty (use * for any)")
        rules.append(Rule(r["scope_mark"], r["source_level"], r["our_level"],
                          _flag(path, line, "same_alliance", r["same_alliance"], True),
                          _flag(path, line, "allowed", r["allowed"], False) == "1", line))
    return rules


def load_recognition_settings(directory: Path | None = None) -> RecognitionConfig:
    """config/recognition.yaml alone (no catalog, maps or tables): e.g. which local sets hold the order maps."""
    return _settings(directory or config_dir())


def _settings(base: Path) -> RecognitionConfig:
    return load_model(RecognitionConfig, base / "recognition.yaml")


def load_recognition(directory: Path | None = None, *, mappings_dir: Path | None = None,
                     hospital: str | None = None) -> Recognition:
    base = directory or config_dir()
    path = base / "recognition.yaml"
    cfg = _settings(base)
    bad = [k for k in list(cfg.local_sets) + list(cfg.kinds.values()) if k not in KINDS]
    if bad:
        raise ConfigError(f"{path}: local_sets / kinds: unknown report kind(s) {bad} (expected {list(KINDS)})")
    items = load_items((base / cfg.catalog).resolve(), cfg.kinds)
    from hipbridge.mapping import load_catalog

    cat = load_catalog(mappings_dir, hospital)
    local: dict[str, dict[str, str]] = {}
    for kind, set_id in cfg.local_sets.items():
        s = cat.hospital.sets.get(set_id)
        if s is None:
            raise ConfigError(f"{path}: local_sets.{kind}: local code set {set_id!r} is not declared in "
                              f"{cat.hospital.folder / '_sets.yaml'}")
        local[kind] = s.lookup(cat.hospital.apply_statuses)   # an invalid file maps nothing (fail closed)
    alliance = frozenset(r["org_code"] for _, r in _rows(base / cfg.alliance, ["org_code"]) if r["org_code"])
    for hook in cfg.cds.services:
        if hook not in ("patient-view", "order-select"):
            raise ConfigError(f"{path}: cds.services.{hook}: expected patient-view or order-select")
    if cfg.cds.indicator not in ("info", "warning"):
        raise ConfigError(f"{path}: cds.indicator: expected info or warning (a reminder never blocks ordering)")
    return Recognition(cfg, items, local, load_rules(base / cfg.eligibility), alliance,
                       load_reasons(base / cfg.reasons))


def load_reasons(path: Path) -> dict[str, Reason]:
    out: dict[str, Reason] = {}
    for line, r in _rows(path, ["code", "name", "counted", "needs_diagnosis"]):
        if not r["code"] or not r["name"]:
            raise ConfigError(f"{path}:{line}: code / name: empty")
        out[r["code"]] = Reason(r["code"], r["name"], _flag(path, line, "counted", r["counted"], False) == "1",
                                _flag(path, line, "needs_diagnosis", r["needs_diagnosis"], False) == "1")
    return out


@lru_cache(maxsize=4)
def _cached(directory: str) -> Recognition:
    return load_recognition(Path(directory))


def recognition_config(directory: Path | None = None) -> Recognition:
    return _cached(str(directory or config_dir()))


def as_dict(item: Item) -> dict[str, Any]:
    return {"code": item.code, "kind": item.kind, "category": item.category, "validityDays": item.validity_days}

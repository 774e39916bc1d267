"""Is the visit open and who treats it: one read-only SQL from config (display.yaml visit_source).

The default SQL reads the front-end tables (门诊就诊记录, 入院/出院登记, 住院医嘱, 患者信息, 医护人员);
a deployment whose front-end is loaded once a day points `connection` at HIS instead, with its own
query returning the same columns. One row per treating doctor (a care team has several).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from hipbridge.io.engines import source_engine
from hipbridge.platform.config import ConfigError, config_dir

from .config import DisplayConfig


@dataclass(frozen=True)
class VisitFacts:
    visit_id: str
    kind: str                          # outpatient | inpatient
    patient_id: str
    patient_name: str | None
    id_type: str | None
    id_no: str | None
    phone: str | None
    dept_id: str | None
    dept_name: str | None
    start: datetime | None
    end: datetime | None
    doctors: dict[str, str | None] = field(default_factory=dict)   # doctor id → name

    def open_at(self, now: datetime) -> bool:
        return self.end is None or self.end > now


def _as_datetime(v) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(str(v))


class VisitLookup:
    """`lookup(org_code, visit_id)` → VisitFacts or None, through the configured SQL and connection."""

    def __init__(self, frontend: Engine, cfg: DisplayConfig, directory: Path | None = None,
                 engine: Engine | None = None):
        src = cfg.visit_source
        path = (directory or config_dir()) / src.sql
        try:
            self.sql = text(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: missing (config/display.yaml visit_source.sql)") from None
        self.path = path
        self.columns = src.columns
        self.engine = engine or (frontend if src.connection == "frontend" else source_engine(src.connection))

    def lookup(self, org_code: str, visit_id: str) -> VisitFacts | None:
        for attempt in (1, 2):
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(self.sql, {"org_code": org_code, "visit_id": visit_id}).mappings().all()
                break
            except DBAPIError as exc:   # a pooled connection the server dropped (no pre-ping): once more
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        if not rows:
            return None
        missing = [c for c in self.columns if c not in rows[0]]
        if missing:
            raise ConfigError(f"{self.path}: the query returns no column {missing} (config/display.yaml "
                              f"visit_source.columns)")
        first = rows[0]
        doctors = {str(r["doctor_id"]): r["doctor_name"] for r in rows if r["doctor_id"] is not None}
        return VisitFacts(
            visit_id=str(first["visit_id"]), kind=str(first["visit_kind"]), patient_id=str(first["patient_id"]),
            patient_name=first["patient_name"], id_type=first["id_type"], id_no=first["id_no"], phone=first["phone"],
            dept_id=first["dept_id"], dept_name=first["dept_name"], start=_as_datetime(first["visit_start"]),
            end=_as_datetime(first["visit_end"]), doctors=doctors)

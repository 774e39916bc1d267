"""Typed view of `config/display.yaml` and its CSV tables (institution levels, 互认时限).

Unknown keys are errors naming the file and key; a CSV problem names the file, line and column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hipbridge.platform.config import ConfigError, config_dir, load_model
from hipbridge.spec import parse_duration

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Server(_Strict):
    host: str
    port: int


class Launch(_Strict):
    token_ttl_s: int = Field(ge=5, le=600)
    purposes: list[str]
    session_ttl: timedelta
    cookie: str
    status_poll_s: int = Field(ge=1)
    max_orders: int = Field(ge=0)

    @field_validator("session_ttl", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        return parse_duration(v)


class VisitSource(_Strict):
    connection: str
    sql: str
    columns: list[str]


class Page(_Strict):
    title: str
    print: bool = False
    hr_mark: str
    mask_keep: int = Field(ge=0, le=8)
    timezone_label: str
    level_unknown: str
    validity_unknown: str
    not_hr: str


class Abnormal(_Strict):
    high: list[str]
    low: list[str]
    critical: list[str]
    abnormal: list[str]


class TableRoles(_Strict):
    table: str
    columns: dict[str, str]


class Review(_Strict):
    service: str
    item_types: dict[str, str]
    cross_flag: str
    search_type: str
    required: list[str]


_NEEDED_ROLES = {
    "visit": {"id", "start"}, "diagnosis": {"visit", "name"}, "lab": {"id", "time", "title"},
    "lab_result": {"report", "name"}, "exam": {"id", "time", "title"}, "rx": {"id", "time"},
    "rx_item": {"prescription", "drug"},
}
_MESSAGES = {"not_authorized", "auth_pending", "auth_revoked", "auth_expired", "visit_closed", "visit_unknown", "patient_mismatch",
             "not_treating", "token_reused", "token_expired", "token_invalid", "session_expired",
             "store_down", "audit_unavailable", "no_data", "print_disabled", "tampered"}


class DisplayConfig(_Strict):
    server: Server
    launch: Launch
    visit_source: VisitSource
    page: Page
    messages: dict[str, str]
    institutions: str
    validity: str
    abnormal: Abnormal
    yes_code: str
    tables: dict[str, TableRoles]
    image_link: str
    review: Review

    @field_validator("messages")
    @classmethod
    def _all_messages(cls, v: dict[str, str]) -> dict[str, str]:
        missing = _MESSAGES - set(v)
        if missing:
            raise ValueError(f"lacks {sorted(missing)}")
        return v

    @field_validator("tables")
    @classmethod
    def _all_tables(cls, v: dict[str, TableRoles]) -> dict[str, TableRoles]:
        for kind, roles in _NEEDED_ROLES.items():
            if kind not in v:
                raise ValueError(f"lacks table role {kind!r}")
            missing = roles - set(v[kind].columns)
            if missing:
                raise ValueError(f"{kind}.columns lacks {sorted(missing)}")
        return v

    def message(self, reason: str) -> str:
        return self.messages.get(reason, reason)

    def col(self, kind: str, role: str) -> str | None:
        return self.tables[kind].columns.get(role)


@dataclass(frozen=True)
class Institution:
    code: str
    name: str
    level: str


@dataclass(frozen=True)
class Catalogs:
    institutions: dict[str, Institution]
    validity_days: dict[tuple[str, str], int]     # (kind, item code) → 互认时限 in days


def _read_csv(path: Path, need: list[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        fh = path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing file") from None
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{path}:1: header lacks columns {missing} (have {reader.fieldnames})")
        return [(i, row) for i, row in enumerate(reader, start=2)]


def load_catalogs(cfg: DisplayConfig, directory: Path | None = None) -> Catalogs:
    base = directory or config_dir()
    inst: dict[str, Institution] = {}
    for line, r in _read_csv(base / cfg.institutions, ["code", "name", "level"]):
        if not r["code"].strip():
            raise ConfigError(f"{base / cfg.institutions}:{line}: code: empty")
        inst[r["code"].strip()] = Institution(r["code"].strip(), r["name"].strip(), r["level"].strip())
    days: dict[tuple[str, str], int] = {}
    for line, r in _read_csv(base / cfg.validity, ["kind", "code", "days"]):
        kind = r["kind"].strip()
        if kind not in ("lab", "exam"):
            raise ConfigError(f"{base / cfg.validity}:{line}: kind: expected lab or exam (got {kind!r})")
        try:
            n = int(r["days"])
        except ValueError:
            raise ConfigError(f"{base / cfg.validity}:{line}: days: expected a whole number (got {r['days']!r})") from None
        if n < 0:
            raise ConfigError(f"{base / cfg.validity}:{line}: days: must be ≥ 0 (got {n})")
        days[(kind, r["code"].strip())] = n
    return Catalogs(inst, days)


def _load(path: Path) -> DisplayConfig:
    return load_model(DisplayConfig, path)


@lru_cache(maxsize=4)
def _cached(directory: str) -> DisplayConfig:
    return _load(Path(directory) / "display.yaml")


def display_config(directory: Path | None = None) -> DisplayConfig:
    return _cached(str(directory or config_dir()))

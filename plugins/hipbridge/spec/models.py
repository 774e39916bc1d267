"""Pydantic models of a table spec (`table_specs/<table>.yaml`) and of `_defaults.yaml`.

Every model forbids unknown keys, so a misspelled key (`requried:`) is an error that names
the file and line instead of being silently ignored. Province-specific literals (physical
names, labels, code values) are data in the YAML; nothing here names a table.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from hipbridge.settings import DEFAULT_TIMEZONE

from .types import ColumnType, parse_duration, parse_type

_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
_TABLE_ID = r"^[a-z][a-z0-9_]*$"


def _to_duration(v: Any) -> timedelta:
    return v if isinstance(v, timedelta) else parse_duration(v)


def _duration_text(v: timedelta) -> str:
    secs = int(v.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % n == 0 and secs:
            return f"{secs // n}{unit}"
    return f"{secs}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(_duration_text, return_type=str),
    Field(json_schema_extra={"type": "string", "pattern": r"^\d+(s|m|h|d)$"}),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------- columns


class CodeBinding(Strict):
    """How a coded column is translated into the province's value domain (数据对码)."""

    domain: str | None = Field(None, description="value domain id, e.g. 'GB/T 2261.1' (a file in mappings/standard)")
    local: str | None = Field(None, description="local code set name (mappings/local/<hospital>/<local>.csv)")
    name_column: str | None = Field(None, description="target column that receives the standard name")
    unmapped: Literal["quarantine", "keep", "other"] = Field(
        "keep", description="an unmapped value: quarantine the row, keep the raw value (flagged) or map to 'other'"
    )
    other_code: str | None = Field(None, description="code used by unmapped: other (default: the domain's 'other' code)")

    @model_validator(mode="after")
    def _needs_domain_or_local(self) -> CodeBinding:
        if not self.domain and not self.local:
            raise ValueError("codes needs a domain, a local code set, or both")
        return self


class Range(Strict):
    min: float | str | None = None
    max: float | str | None = None


class RequiredWhen(Strict):
    """A conditional requirement (条件必填, C02): the column must be filled when `column` holds one of `in`
    (standard codes, as published), or when `column` is filled at all (`filled: true`)."""

    column: str = Field(pattern=_IDENT, description="physical column of this table the condition reads")
    in_: list[str] | None = Field(None, alias="in", min_length=1, description="standard codes that require it")
    filled: bool = Field(False, description="required whenever `column` is non-empty")

    @model_validator(mode="after")
    def _one_condition(self) -> RequiredWhen:
        if bool(self.in_) == bool(self.filled):
            raise ValueError("required_when takes either 'in' (a list of codes) or 'filled: true'")
        return self


class Column(Strict):
    name: str = Field(pattern=_IDENT, description="physical front-end column name (pinyin initials, upper case)")
    label: str = Field(min_length=1, description="Chinese data-element name; becomes the column comment")
    type: str = Field(description="varchar(n) | decimal(p[,s]) | integer | date | timestamp | text")
    required: bool = Field(False, description="must be non-empty (完整性)")
    required_when: RequiredWhen | None = Field(None, description="must be non-empty when a condition holds (C02)")
    source: str | None = Field(None, alias="from", description="column of the source query that feeds this column")
    value: str | int | float | None = Field(None, description="a constant instead of a source column (e.g. '-')")
    codes: CodeBinding | None = None
    sensitive: bool = Field(False, description=(
        "personal data: SM4-encrypted in the shared store (with config/crypto.yaml encrypt_also), masked in "
        "quality samples; the province's front-end table keeps the value as extracted unless config/crypto.yaml "
        "`frontend` lists the column"))
    references: str | None = Field(None, description="<table_id>.<COLUMN> this column must resolve to (关联性)")
    checks: list[Literal["gb11643", "mobile", "division_code"]] = Field(default_factory=list)
    pattern: str | None = Field(None, description="regular expression the value must match (规范性)")
    range: Range | None = Field(None, description="plausible range (准确性)")
    description: str | None = None

    @field_validator("type")
    @classmethod
    def _type_parses(cls, v: str) -> str:
        parse_type(v)
        return v

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"pattern {v!r} is not a valid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _one_feed(self) -> Column:
        if self.source is not None and self.value is not None:
            raise ValueError("a column takes either 'from' or 'value', not both")
        return self

    @cached_property
    def ctype(self) -> ColumnType:
        return parse_type(self.type)

    @property
    def reference_target(self) -> tuple[str, str] | None:
        if not self.references:
            return None
        table, _, column = self.references.partition(".")
        return table, column


# ---------------------------------------------------------------- source


class Watermark(Strict):
    column: str = Field(description="source column holding the row's last-change time (数据更新时间); "
                                    "a date/time column, never text")
    lookback: Duration | None = Field(None, description="re-read this much before the watermark (late commits, "
                                                        "a source clock behind ours); default: "
                                                        "watermark_lookback in _defaults.yaml")
    fallback: str | None = Field(None, description="source column taken where `column` is NULL (e.g. the "
                                                   "creation time); rows where both are NULL are read by full "
                                                   "runs only, and counted as skipped by the others")


class VoidRule(Strict):
    """Which source rows are voided (退号, 作废, revoked): they are sent with 修改标志 = voided."""

    column: str
    values: list[str | int] = Field(min_length=1)


class Source(Strict):
    system: str = Field(description="source system tag: his, lis, pacs, emr …")
    connection: str = Field(pattern=_IDENT,
                            description="connection id: env HIPBRIDGE_CONN_<ID> or Airflow Connection hipbridge_<id>")
    query: str = Field(description="SQL, or a path to a .sql file relative to table_specs/")
    watermark: Watermark | None = Field(None, description="incremental column; omit for a full read each run")
    void: VoidRule | None = None
    reconcile_keys: bool = Field(False, description="full runs: a key sent before that the source no longer "
                                                    "returns (deleted at the source) is sent again with "
                                                    "修改标志 = voided")
    chunk_rows: int = Field(50_000, ge=100, le=1_000_000)

    @property
    def query_is_file(self) -> bool:
        return self.query.strip().lower().endswith(".sql") and "\n" not in self.query.strip()


class Target(Strict):
    name: str = Field(pattern=_IDENT, description="front-end physical table name, e.g. JYMXB")
    primary_key: list[str] = Field(min_length=1)


# ---------------------------------------------------------------- quality and retention


class Timeliness(Strict):
    event: str = Field(description="target column of the business event time")
    max_lag: Duration = Field(timedelta(hours=24))


class TimeOrder(Strict):
    before: str
    after: str
    rule: str | None = Field(None, description="optional rule id, e.g. P01")


class Quality(Strict):
    timeliness: Timeliness | None = None
    time_order: list[TimeOrder] = Field(default_factory=list)
    fatal_quarantine_pct: float | None = Field(
        None, ge=0, le=100, description="block publishing when more than this share of a batch is quarantined"
    )
    skip: list[str] = Field(default_factory=list, description="generated rule ids not to run for this table")


class Retention(Strict):
    anchor: str = Field(description="visit_end, or a date/time column of this table for own-date purges")
    days: int = Field(ge=0)
    visit_link: str | None = Field(None, description="column linking the row to its visit (for anchor visit_end)")
    header: str | None = Field(None, description="<table_id>: purge together with this header table")


# ---------------------------------------------------------------- table spec


class TableSpec(Strict):
    table: str = Field(pattern=_TABLE_ID, description="table id = file name (catalog file id)")
    label: str = Field(min_length=1, description="Chinese table name; becomes the table comment")
    phase: int = 1
    description: str | None = None
    schedule: str | None = Field("@daily", description="cron or preset, in the hospital's time zone; null = manual")
    tags: list[str] = Field(default_factory=list)
    source: Source
    target: Target
    columns: list[Column] = Field(min_length=1)
    quality: Quality = Field(default_factory=Quality)
    retention: Retention | None = None
    required_audit: list[Literal["org_name", "confidentiality"]] = Field(
        default_factory=list, description="audit columns (by role) that this table requires although "
                                          "_defaults.yaml does not (e.g. 医疗服务机构.医疗机构名称)")

    @model_validator(mode="after")
    def _columns_consistent(self) -> TableSpec:
        seen: set[str] = set()
        for col in self.columns:
            if col.name in seen:
                raise ValueError(f"column {col.name} is declared twice")
            seen.add(col.name)
        return self

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


# ---------------------------------------------------------------- defaults


class AuditColumn(Strict):
    name: str = Field(pattern=_IDENT)
    label: str
    type: str
    role: Literal["org_code", "org_name", "extracted_at", "source_updated_at", "change_flag", "confidentiality"]
    required: bool = False

    @cached_property
    def ctype(self) -> ColumnType:
        return parse_type(self.type)


class Institution(Strict):
    code: str = Field(pattern=r"^[0-9A-Z]{6,22}$", description="code from the province's 医疗机构代码表")
    name: str


class ChangeFlags(Strict):
    new: str = "1"
    changed: str = "2"
    voided: str = "3"


class Defaults(Strict):
    institution: Institution
    timezone: str = DEFAULT_TIMEZONE
    ops_schema: str = Field("hipbridge_ops", pattern=_IDENT)
    confidentiality: str = Field("0", description="default 密级 value")
    change_flags: ChangeFlags = Field(default_factory=ChangeFlags)
    watermark_lookback: Duration = Field(timedelta(minutes=10), description="default source.watermark.lookback")
    first_seen_voided: Literal["skip", "send"] = Field(
        "skip", description="a key seen for the first time already voided: skip (never sent, counted) or send "
                            "it with 修改标志 = voided")
    audit_columns: list[AuditColumn]

    @model_validator(mode="after")
    def _roles_once(self) -> Defaults:
        roles = [c.role for c in self.audit_columns]
        missing = {"org_code", "org_name", "extracted_at", "source_updated_at", "change_flag",
                   "confidentiality"} - set(roles)
        if missing:
            raise ValueError(f"audit_columns lacks the roles {sorted(missing)}")
        if len(set(roles)) != len(roles):
            raise ValueError("each audit column role may appear once")
        return self

    def audit(self, role: str) -> AuditColumn:
        return next(c for c in self.audit_columns if c.role == role)

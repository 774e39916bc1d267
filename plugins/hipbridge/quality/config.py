"""Load the quality configuration under `expectations/`: template defaults, scoring, custom rules.

`_rules.yaml` holds the defaults of the rule templates generated from specs, `_scoring.yaml`
the weights, 达标线 and grades, and every other `*.yaml` a list of custom or cross-table rules.
Custom rules are validated with pydantic (unknown keys are errors naming the file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hipbridge.spec import parse_duration

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Severity = Literal["fatal", "error", "warning", "info"]


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dimension: str
    severity: Severity
    threshold: float = Field(0, ge=0, le=100)
    gate: bool = False
    gate_only: bool = False
    custom: bool = False
    message: str
    advice: str = ""


class CustomRule(BaseModel):
    """One rule of `expectations/<name>.yaml` (dbt-like: a SQL condition on a row of the table).

    In `violation` and `filter`: `{COL}` is a column of the checked row, `{alias.COL}` a quoted
    column of another alias, `{@table_id}` another table's physical name; bind parameters
    `:org_code`, `:org_name` and `:now` are provided.
    """

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    template: str | None = Field(None, description="rule template (C02, K04, …): default dimension/severity/advice")
    table: str = Field(description="table id, or * for every table")
    columns: list[str] = Field(default_factory=list, description="physical columns the rule checks")
    dimension: str | None = None
    severity: Severity | None = None
    threshold: float | None = Field(None, ge=0, le=100)
    filter: str | None = Field(None, description="SQL condition: rows the rule applies to (denominator)")
    violation: str = Field(description="SQL condition that is TRUE for a violating row")
    message: str | None = None
    advice: str | None = None
    gate: bool = Field(False, description="also run on each staged batch")
    enabled: bool = True


class CustomRuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = None
    rules: list[CustomRule] = Field(default_factory=list)


class ConfigError(ValueError):
    pass


@dataclass
class QualityConfig:
    directory: Path
    raw: dict[str, Any]
    templates: dict[str, Template]
    scoring: dict[str, Any]
    custom: list[tuple[str, CustomRule]] = field(default_factory=list)   # (file, rule)

    # ------------------------------------------------------------ convenience
    @property
    def placeholders(self) -> list[str]:
        return [str(p).lower() for p in self.raw.get("placeholders", [])]

    @property
    def sample_keys(self) -> int:
        return int(self.raw.get("sample_keys", 5))

    @property
    def future_tolerance(self) -> timedelta:
        return parse_duration(self.raw.get("future_tolerance", "10m"))

    @property
    def default_max_lag(self) -> timedelta:
        return parse_duration((self.raw.get("timeliness_default") or {}).get("max_lag", "24h"))

    @property
    def timeliness_buckets(self) -> list[timedelta]:
        return [parse_duration(b) for b in self.raw.get("timeliness_buckets", ["24h", "72h"])]

    @property
    def gb11643(self) -> dict[str, Any]:
        return self.raw.get("gb11643") or {}

    @property
    def block_on_error(self) -> bool:
        return bool((self.raw.get("gate") or {}).get("block_on_error", True))

    @property
    def dimensions(self) -> list[str]:
        return list(self.scoring.get("dimensions", {}))

    def template(self, tid: str) -> Template:
        try:
            return self.templates[tid]
        except KeyError:
            raise ConfigError(f"{self.directory / '_rules.yaml'}: no template {tid!r} (known: "
                              f"{', '.join(sorted(self.templates))})") from None


def default_dir() -> Path:
    env = os.environ.get("HIPBRIDGE_EXPECTATIONS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "expectations"


def _read(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:   # from a stream so PyYAML names the file in errors
        try:
            return yaml.load(fh, Loader=_Loader) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: YAML syntax error: {exc}") from None


def _pydantic_msg(path: Path, exc: ValidationError) -> str:
    lines = []
    for e in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"])
        lines.append(f"{path}: {loc}: {e['msg']}")
    return "\n".join(lines)


def load_config(directory: Path | str | None = None) -> QualityConfig:
    """Read `_rules.yaml`, `_scoring.yaml` and the custom rule files; raise ConfigError naming the file."""
    directory = Path(directory) if directory else default_dir()
    rules_path, scoring_path = directory / "_rules.yaml", directory / "_scoring.yaml"
    for p in (rules_path, scoring_path):
        if not p.exists():
            raise ConfigError(f"{p}: missing (the quality configuration needs it)")
    raw = _read(rules_path)
    try:
        templates = {k: Template.model_validate(v) for k, v in (raw.get("templates") or {}).items()}
    except ValidationError as exc:
        raise ConfigError(_pydantic_msg(rules_path, exc)) from None
    scoring = _read(scoring_path)
    dims = set(scoring.get("dimensions") or {})
    for tid, t in templates.items():
        if t.dimension not in dims:
            raise ConfigError(f"{rules_path}: templates.{tid}.dimension: {t.dimension!r} is not a dimension "
                              f"of _scoring.yaml ({', '.join(dims)})")
    cfg = QualityConfig(directory, raw, templates, scoring)
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        data = _read(path)
        try:
            parsed = CustomRuleFile.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_pydantic_msg(path, exc)) from None
        for rule in parsed.rules:
            if rule.id in seen:
                raise ConfigError(f"{path}: rule id {rule.id!r} is also declared in {seen[rule.id]}")
            seen[rule.id] = str(path)
            if rule.template and rule.template not in templates:
                raise ConfigError(f"{path}: rule {rule.id}: unknown template {rule.template!r}")
            dim = rule.dimension or (templates[rule.template].dimension if rule.template else None)
            if dim is None or dim not in dims:
                raise ConfigError(f"{path}: rule {rule.id}: dimension {dim!r} must be one of {sorted(dims)} "
                                  "(or give a template)")
            if rule.enabled:
                cfg.custom.append((str(path), rule))
    return cfg


_CACHE: dict[Path, tuple[tuple, QualityConfig]] = {}


def cached_config(directory: Path | str | None = None) -> QualityConfig:
    """load_config, re-read only when a file under the folder changed (the gate runs per batch)."""
    directory = Path(directory) if directory else default_dir()
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in directory.glob("*.yaml")))
    hit = _CACHE.get(directory)
    if hit and hit[0] == stamp:
        return hit[1]
    cfg = load_config(directory)
    _CACHE[directory] = (stamp, cfg)
    return cfg

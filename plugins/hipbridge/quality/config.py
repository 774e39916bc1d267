"""Load the quality configuration under `expectations/`: template defaults, scoring, custom rules.

`_rules.yaml` holds the defaults of the rule templates generated from specs, `_scoring.yaml`
the weights, 达标线 and grades, and every other `*.yaml` a list of custom or cross-table rules.
Every file is validated with pydantic (extra='forbid'): a misspelled or mistyped key is an error
`file:line: key: problem (got value)`, as in a table spec. The SQL of each generated template is
in `templates.py`; `_rules.yaml` holds its policy (dimension, severity, threshold, message).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from hipbridge.settings import settings
from hipbridge.spec import parse_duration
from hipbridge.spec.load import line_of, load_yaml_model

from .templates import GENERATED

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Severity = Literal["fatal", "error", "warning", "info"]
SCHEMA_HINT = "see the keys documented at the top of expectations/_rules.yaml and in quality/config.py"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _duration(value: Any) -> timedelta:
    return value if isinstance(value, timedelta) else parse_duration(str(value))


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Code = Annotated[str, BeforeValidator(lambda v: v if v is None else str(v))]   # "01", 718-7: YAML may give an int


class Template(_Strict):
    """The policy half of a rule template (quality.md §3); its SQL lives in `templates.py`."""
    dimension: str
    severity: Severity
    threshold: float = Field(0, ge=0, le=100)
    gate: bool = False
    gate_only: bool = False
    custom: bool = False
    message: str
    advice: str = ""


class TimelinessDefault(_Strict):
    max_lag: Duration = timedelta(hours=24)


class Division(_Strict):
    full_length: int = 12
    full_pattern: str = r"^[1-8][0-9]{11}$"
    domain: str | None = None


class GB11643(_Strict):
    id_type_domain: str | None = None
    resident_id_codes: list[Code] = Field(default_factory=lambda: ["01"])
    sex_domain: str | None = None
    sex_by_parity: dict[Literal["odd", "even"], Code] = Field(default_factory=lambda: {"odd": "1", "even": "2"})
    birth_date_labels: list[str] = Field(default_factory=list)
    min_birth_year: int = 1880
    address_prefixes: list[Code] = Field(default_factory=list)


class IncompleteDomain(_Strict):
    statuses: list[str] = Field(default_factory=list)
    severity: Severity | None = None      # None: the template's
    note: str = ""


class Continuity(_Strict):
    days: int = Field(30, ge=1)
    min_active_share: float = Field(0.5, ge=0, le=1)


class BusinessEnd(_Strict):
    kind: str = ""
    event_labels: list[str] = Field(default_factory=list)
    max_lag: Duration = timedelta(hours=24)


class LabItem(_Strict):
    code: Code
    name: str = ""
    unit: str
    min: float
    max: float


class LabLimits(_Strict):
    item_labels: list[str] = Field(default_factory=list)
    value_labels: list[str] = Field(default_factory=list)
    unit_labels: list[str] = Field(default_factory=list)
    numeric_pattern: str = r"^[+-]?[0-9]+([.][0-9]+)?$"
    items: list[LabItem] = Field(default_factory=list)


class SexConflict(_Strict):
    sex: Code
    ranges: list[tuple[Code, Code]] = Field(default_factory=list)
    note: str = ""


class SexDiagnosis(_Strict):
    domains: list[str] = Field(default_factory=list)
    prefix_length: int = Field(3, ge=1)
    conflicts: list[SexConflict] = Field(default_factory=list)


class AgeConsistency(_Strict):
    age_labels: list[str] = Field(default_factory=list)
    month_labels: list[str] = Field(default_factory=list)
    event_labels: list[str] = Field(default_factory=list)
    tolerance_years: float = 1


class VolumeControl(_Strict):
    """C03 against 数据量记录汇总 (`table_specs/_control.yaml`): each front-end table's rows per past day."""
    enabled: bool = True
    threshold: float = Field(0, ge=0, le=100)     # % of control days whose count may differ
    message: str = "【{table_label}】每日数据量与{control_label}的{expected_label}不一致"
    advice: str = ""


class GateSettings(_Strict):
    block_on_error: bool = True


class RulesFile(_Strict):
    """`expectations/_rules.yaml`: template policies and the parameters the generators read.

    Every key is declared here (extra='forbid'), so a misspelled key is an error with file and line
    instead of a silently ignored setting (e.g. `sex_diagnosys:` would have switched K05 off).
    """
    placeholders: list[Code] = Field(default_factory=list)
    sample_keys: int = Field(5, ge=0)
    future_tolerance: Duration = timedelta(minutes=10)
    timeliness_default: TimelinessDefault = Field(default_factory=TimelinessDefault)
    timeliness_buckets: list[Duration] = Field(default_factory=lambda: [timedelta(hours=24), timedelta(hours=72)])
    mobile_pattern: str = r"^1[3-9][0-9]{9}$"
    division_pattern: str = r"^[0-9]{6}$"
    division: Division = Field(default_factory=Division)
    gb11643: GB11643 = Field(default_factory=GB11643)
    incomplete_domain: IncompleteDomain = Field(default_factory=IncompleteDomain)
    dictionary_domains: list[str] = Field(default_factory=list)
    continuity: Continuity = Field(default_factory=Continuity)
    business_end_timeliness: list[BusinessEnd] = Field(default_factory=list)
    lab_limits: LabLimits = Field(default_factory=LabLimits)
    sex_diagnosis: SexDiagnosis = Field(default_factory=SexDiagnosis)
    age_consistency: AgeConsistency = Field(default_factory=AgeConsistency)
    plausible_age_labels: list[str] = Field(default_factory=list)
    volume_control: VolumeControl = Field(default_factory=VolumeControl)
    gate: GateSettings = Field(default_factory=GateSettings)
    templates: dict[str, Template] = Field(default_factory=dict)


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
    rules: RulesFile
    scoring: dict[str, Any]
    custom: list[tuple[str, CustomRule]] = field(default_factory=list)   # (file, rule)

    # ------------------------------------------------------------ convenience
    @property
    def templates(self) -> dict[str, Template]:
        return self.rules.templates

    @property
    def placeholders(self) -> list[str]:
        return [p.lower() for p in self.rules.placeholders]

    @property
    def sample_keys(self) -> int:
        return self.rules.sample_keys

    @property
    def future_tolerance(self) -> timedelta:
        return self.rules.future_tolerance

    @property
    def default_max_lag(self) -> timedelta:
        return self.rules.timeliness_default.max_lag

    @property
    def timeliness_buckets(self) -> list[timedelta]:
        return self.rules.timeliness_buckets

    @property
    def gb11643(self) -> GB11643:
        return self.rules.gb11643

    @property
    def block_on_error(self) -> bool:
        return self.rules.gate.block_on_error

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
    return settings().expectations


def _load(path: Path, model: type[BaseModel]) -> Any:
    """`path` as `model`; every problem is a ConfigError line `file:line: key: problem (got value)`."""
    parsed, errors = load_yaml_model(path, model, SCHEMA_HINT)
    if errors:
        raise ConfigError("\n".join(str(e) for e in errors))
    return parsed


def _check_registry(path: Path, templates: dict[str, Template]) -> None:
    """Every generated template has its policy in `_rules.yaml`, every non-custom policy a generator."""
    text = path.read_text(encoding="utf-8-sig")
    problems = []
    for tid, t in templates.items():
        if not t.custom and tid not in GENERATED:
            problems.append(f"{path}:{line_of(text, ('templates', tid)) or '?'}: templates.{tid}: no generator "
                            f"for this template in quality/templates.py (mark it `custom: true` if rules for "
                            f"it are declared in expectations/*.yaml)")
    for tid in GENERATED:
        if tid not in templates:
            problems.append(f"{path}: templates: {tid} is generated from the specs but has no entry "
                            f"(dimension, severity, message) here")
    if problems:
        raise ConfigError("\n".join(problems))


def load_config(directory: Path | str | None = None) -> QualityConfig:
    """Read `_rules.yaml`, `_scoring.yaml` and the custom rule files; raise ConfigError naming file and line."""
    directory = Path(directory) if directory else default_dir()
    rules_path, scoring_path = directory / "_rules.yaml", directory / "_scoring.yaml"
    for p in (rules_path, scoring_path):
        if not p.exists():
            raise ConfigError(f"{p}: missing (the quality configuration needs it)")
    rules: RulesFile = _load(rules_path, RulesFile)
    templates = rules.templates
    _check_registry(rules_path, templates)
    scoring = _read_scoring(scoring_path)
    dims = set(scoring.get("dimensions") or {})
    text = rules_path.read_text(encoding="utf-8-sig")
    for tid, t in templates.items():
        if t.dimension not in dims:
            line = line_of(text, ("templates", tid, "dimension")) or "?"
            raise ConfigError(f"{rules_path}:{line}: templates.{tid}.dimension: {t.dimension!r} is not a dimension "
                              f"of _scoring.yaml ({', '.join(dims)})")
    cfg = QualityConfig(directory, rules, scoring)
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        parsed: CustomRuleFile = _load(path, CustomRuleFile)
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


def _read_scoring(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:   # from a stream so PyYAML names the file in errors
        try:
            return yaml.load(fh, Loader=_Loader) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: YAML syntax error: {exc}") from None


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

"""The registry of rule templates generated from a table spec (quality.md §3): one class per generator.

Each class holds what a template *is* in code: the codes it emits, when it applies to a table or a
column, the SQL of its denominator (`filter`) and violating rows (`violation`) on the alias `t`, and
the label of its column in the report's 数据元明细. Its policy — dimension, severity, threshold,
message, advice, gate — is data in `expectations/_rules.yaml`; `config.load_config` refuses a
generated code without a policy there and a non-custom policy without a class here. Adding a
template is one class appended to `REGISTRY` plus its entry in `_rules.yaml`.

A few generators emit more than one code because they share one query: S01/S09 (membership of a
value domain; dictionaries are S09), P04/P05 (a declared range; ages and dates are P04), P01/P03
(a spec's `time_order` pair names its code), S03/K01/K02 (GB 11643, evaluated in Python).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from hipbridge.spec.control import CONTROL_FILE, load_control

if TYPE_CHECKING:
    from hipbridge.io.dialects import FrontendDialect
    from hipbridge.spec import SpecSet, TableSpec
    from hipbridge.spec.models import ColumnSpec

    from .config import QualityConfig

DomainCodes = Callable[[str], Mapping[str, str] | None]   # domain id → {code: name}, None if unknown


@dataclass
class Rule:
    rule_id: str
    template: str
    table: str                 # spec table id
    target: str                # physical table name
    columns: list[str]         # physical column names
    dimension: str
    severity: str
    threshold: float
    message: str
    advice: str
    kind: str = "row"          # row | unique | table | idcard | days | control
    violation: str | None = None
    filter: str | None = None  # None: every row of the scope
    params: dict[str, Any] = field(default_factory=dict)
    gate: bool = False
    gate_only: bool = False
    custom: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def fmt(text: str, **kw: Any) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(kw.get(m.group(1), m.group(0))), text)


def _lag_text(seconds: int) -> str:
    return f"{seconds / 3600:g}小时" if seconds % 3600 == 0 else f"{seconds}秒"


class TableRules:
    """The rules of one table under construction: quoting, bind parameters and `add` for the templates."""

    def __init__(self, spec: TableSpec, specs: SpecSet, cfg: QualityConfig, sql: FrontendDialect,
                 domains: DomainCodes, org_code: str):
        self.spec, self.specs, self.cfg, self.sql = spec, specs, cfg, sql
        self.domains, self.org_code = domains, org_code
        self.defaults = specs.defaults
        self.rules: list[Rule] = []
        self.skip = set(spec.quality.skip)
        self._n = 0
        self._pending: dict[str, Any] = {}
        self.labels = {c.name: c.label for c in spec.columns}
        for a in self.defaults.audit_columns:
            self.labels[a.name] = a.label
        self.org = self.defaults.audit("org_code").name
        self.text_cols = {c.name for c in spec.columns if c.ctype.is_text} | {
            a.name for a in self.defaults.audit_columns if a.ctype.is_text}

    def c(self, name: str, alias: str = "t") -> str:
        return f"{alias}.{self.sql.q(name)}"

    def bind(self, value: Any) -> str:
        """A bind parameter for `value`, carried by the next rule added."""
        self._n += 1
        name = f"p_{self.spec.table}_{self._n}"
        self._pending[name] = value
        return name

    def by_label(self, labels: list[str], temporal: bool = False,
                 kinds: tuple[str, ...] | None = None) -> ColumnSpec | None:
        """The column of the first label in `labels` the spec has (a temporal one / of `kinds` when asked)."""
        cols = {c.label: c for c in self.spec.columns}
        return next((cols[lb] for lb in labels if lb in cols and (cols[lb].ctype.is_temporal or not temporal)
                     and (kinds is None or cols[lb].ctype.kind in kinds)), None)

    def empty(self, name: str) -> str:
        """SQL: the column is empty (NULL, or for text a placeholder such as '' or '-')."""
        cond = f"{self.c(name)} IS NULL"
        if name in self.text_cols and self.cfg.placeholders:
            p = self.bind(self.cfg.placeholders)
            cond = f"({cond} OR {self.sql.trim_lower(self.c(name), cast=False)} IN :{p})"
        return cond

    def add(self, template: str, columns: list[str], kind: str = "row", violation: str | None = None,
            filter: str | None = None, suffix: str | None = None, fmt_kw: dict | None = None,
            **extra: Any) -> Rule | None:
        """Add one rule of `template` (its policy from `_rules.yaml`) with the pending bind parameters."""
        params, self._pending = self._pending, {}
        if template in self.skip:
            return None
        t = self.cfg.template(template)
        rule_id = f"{template}.{self.spec.table}" + (f".{suffix}" if suffix else
                                                     (f".{columns[0]}" if columns else ""))
        if rule_id in self.skip:
            return None
        label = self.labels.get(columns[0], columns[0]) if columns else ""
        kw = {"label": label, "column": ",".join(columns), "table_label": self.spec.label, **(fmt_kw or {})}
        rule = Rule(
            rule_id=rule_id, template=template, table=self.spec.table, target=self.spec.target.name,
            columns=list(columns), dimension=t.dimension, severity=t.severity, threshold=t.threshold,
            message=fmt(t.message, **kw), advice=fmt(t.advice, **kw), kind=kind, violation=violation,
            filter=filter, params=params, gate=t.gate, gate_only=t.gate_only, extra=extra)
        self.rules.append(rule)
        return rule


class TableTemplate:
    """A template checked once per table."""
    codes: ClassVar[tuple[str, ...]]
    column_label: ClassVar[str | None] = None     # its column in the report's 数据元明细 (None: not shown)

    def applies(self, t: TableRules) -> bool:
        return True

    def emit(self, t: TableRules) -> None:
        raise NotImplementedError


class ColumnTemplate(TableTemplate):
    """A template checked once per column it applies to."""

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        raise NotImplementedError

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        raise NotImplementedError

    def emit(self, t: TableRules) -> None:
        for col in t.spec.columns:
            if self.applies_to(t, col):
                self.emit_column(t, col)


def _notnull(t: TableRules, col: ColumnSpec) -> str:
    return f"{t.c(col.name)} IS NOT NULL"


# ---------------------------------------------------------------------- 完整性
class TableEmpty(TableTemplate):
    """C04: the table has no rows in the scope (every table)."""
    codes = ("C04",)

    def emit(self, t: TableRules) -> None:
        t.add("C04", [], kind="table")


class Required(TableTemplate):
    """C01: required spec columns, required audit columns and the spec's `required_audit` are filled."""
    codes = ("C01",)
    column_label = "完整率"

    def emit(self, t: TableRules) -> None:
        d, spec = t.defaults, t.spec
        required = [c.name for c in spec.columns if c.required]
        required += [a.name for a in d.audit_columns if a.required and a.name not in required]
        required += [d.audit(role).name for role in spec.required_audit if d.audit(role).name not in required]
        for name in required:
            t.add("C01", [name], violation=t.empty(name))


class RequiredWhen(ColumnTemplate):
    """C02: a column the spec requires only when a condition holds (`required_when`)."""
    codes = ("C02",)

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return col.required_when is not None

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        rw = col.required_when
        other_label = t.labels.get(rw.column, rw.column)
        if rw.filled:
            filt = f"NOT {t.empty(rw.column)}"
            shown = f"【{other_label}】已填写"
        else:
            p = t.bind([str(v) for v in rw.in_ or []])
            filt = f"{t.c(rw.column)} IN :{p}"
            shown = f"【{other_label}】为{'/'.join(rw.in_ or [])}"
        t.add("C02", [col.name, rw.column], violation=t.empty(col.name), filter=filt, fmt_kw={"condition": shown})


class ControlVolume(TableTemplate):
    """C03 应传总数量: each past day of 数据量记录汇总 equals the table's rows updated that day (kind `control`).

    The control table (`table_specs/_control.yaml`, computed by `pipeline/reconcile.py`) holds, per hospital
    day and physical front-end table, the rows whose 数据更新时间 fell on that day. Its rows (alias `t`) are
    the denominator; a day is violated when the table now holds another count for it (a day with 0 expected:
    when the table has any row on it). Days from today on are not checked (still being uploaded). The
    counts are one uncorrelated GROUP BY per table (materialised once), not a count per control row.
    """
    codes = ("C03",)

    def applies(self, t: TableRules) -> bool:
        return t.cfg.rules.volume_control.enabled and (t.specs.directory / "_control.yaml").is_file()

    def emit(self, t: TableRules) -> None:
        vcfg, d, sql = t.cfg.rules.volume_control, t.defaults, t.sql
        try:
            control = _load_control(t.specs)
        except Exception as exc:  # noqa: BLE001 - an invalid control file is this rule's Error, not the run's
            t.add("C03", [], kind="control", suffix="volume", fmt_kw={"control_label": "", "expected_label": ""},
                  config_error=f"{t.specs.directory / '_control.yaml'}: {exc}"[:1000])
            return
        v, vc = control.volume, control.volume.columns
        updated, org = d.audit("source_updated_at").name, t.org
        start, expected = t.c(vc.business_start.name), t.c(vc.expected.name)
        x_upd, day_x, day_t = f"x.{sql.q(updated)}", sql.day(f"x.{sql.q(updated)}"), sql.day(start)
        p_org, p_tbl = t.bind(t.org_code), t.bind(t.spec.target.name)
        counts = (f"SELECT {day_x} AS d, COUNT(*) AS n FROM {{@{t.spec.table}}} x "
                  f"WHERE x.{sql.q(org)} = :{p_org} AND {x_upd} IS NOT NULL GROUP BY {day_x}")
        violation = (f"(({expected} = 0 AND {day_t} IN (SELECT k.d FROM ({counts}) k)) OR ({expected} <> 0 AND "
                     f"({day_t}, {expected}) NOT IN (SELECT k.d, k.n FROM ({counts}) k)))")
        filt = (f"{t.c(vc.platform_table.name)} = :{p_tbl} AND {t.c(org)} = :{p_org} AND {expected} IS NOT NULL "
                f"AND {start} < :hb_today")
        rule = t.add("C03", [updated], kind="control", violation=violation, filter=filt, suffix="volume",
                     fmt_kw={"control_label": v.label, "expected_label": vc.expected.label},
                     control_table=v.name, day=day_t, expected=expected,
                     sample_labels=[vc.business_start.label, vc.expected.label])
        if rule is not None:
            rule.threshold, rule.message = vcfg.threshold, fmt(vcfg.message, table_label=t.spec.label,
                                                               control_label=v.label, expected_label=vc.expected.label)
            rule.advice = vcfg.advice or rule.advice


_CONTROL_CACHE: dict[tuple[str, float], Any] = {}


def _load_control(specs: SpecSet):
    path = specs.directory / CONTROL_FILE
    key = (str(path), path.stat().st_mtime)
    if key not in _CONTROL_CACHE:
        _CONTROL_CACHE[key] = load_control(specs)
    return _CONTROL_CACHE[key]


# ---------------------------------------------------------------------- 规范性
class OrgCode(TableTemplate):
    """S10: the 医疗机构代码 audit column is this hospital's registered code (every table)."""
    codes = ("S10",)

    def emit(self, t: TableRules) -> None:
        p = t.bind(t.org_code)
        org = t.c(t.org)
        t.add("S10", [t.org], violation=f"{org} <> :{p}", filter=f"{org} IS NOT NULL")


class Length(ColumnTemplate):
    """S06: a varchar longer than declared, in characters."""
    codes = ("S06",)
    column_label = "长度符合率"

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return col.ctype.kind == "varchar"

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        t.add("S06", [col.name], violation=f"{t.sql.char_length(t.c(col.name))} > {int(col.ctype.length)}",
              filter=_notnull(t, col))


class Precision(ColumnTemplate):
    """S05: a decimal with more integer digits than declared."""
    codes = ("S05",)
    column_label = "精度符合率"

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return col.ctype.kind == "decimal" and bool(col.ctype.precision)

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        limit = 10 ** (col.ctype.precision - col.ctype.scale)
        t.add("S05", [col.name], violation=f"ABS({t.c(col.name)}) >= {limit}", filter=_notnull(t, col))


class ValueDomain(ColumnTemplate):
    """S01 / S09: a coded value outside its value domain; S09 for the dictionaries of `dictionary_domains`.

    Applies to a column bound to a domain whose codes are known. A domain shipped partial (its status
    in `incomplete_domain.statuses`) gives hints: that severity and a note on the message.
    """
    codes = ("S01", "S09")
    column_label = "值域符合率"
    labels: ClassVar[dict[str, str]] = {"S01": "值域符合率", "S09": "字典符合率"}

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return bool(col.codes and col.codes.domain and t.domains(col.codes.domain))

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        domain = col.codes.domain
        p = t.bind(sorted(t.domains(domain)))
        tid = "S09" if domain in set(t.cfg.rules.dictionary_domains) else "S01"
        rule = t.add(tid, [col.name], violation=f"{t.c(col.name)} NOT IN :{p}", filter=_notnull(t, col),
                     domain=domain, fmt_kw={"dictionary": domain})
        incomplete = t.cfg.rules.incomplete_domain
        status_of = getattr(t.domains, "status", None)
        if rule is not None and status_of and status_of(domain) in set(incomplete.statuses):
            rule.severity = incomplete.severity or rule.severity
            rule.message += incomplete.note


class CodeName(ColumnTemplate):
    """S02: the name column of a coded column agrees with the domain's name for the code."""
    codes = ("S02",)
    column_label = "代码名称一致率"

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return bool(col.codes and col.codes.domain and col.codes.name_column
                    and t.spec.column(col.codes.name_column) is not None and t.domains(col.codes.domain))

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        codes, cn, name_col = t.domains(col.codes.domain), t.c(col.name), col.codes.name_column
        whens = []
        for code, nm in sorted(codes.items()):
            pc, pn = t.bind(code), t.bind(nm)
            whens.append(f"WHEN :{pc} THEN :{pn}")
        p_in = t.bind(sorted(codes))
        case = f"CASE {cn} {' '.join(whens)} END"
        t.add("S02", [col.name, name_col], violation=f"{case} <> {t.c(name_col)}",
              filter=f"{_notnull(t, col)} AND {t.c(name_col)} IS NOT NULL AND {cn} IN :{p_in}")


class Pattern(ColumnTemplate):
    """S04: a column with a declared `pattern` matches it."""
    codes = ("S04",)
    column_label = "格式符合率"

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return bool(col.pattern)

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        p = t.bind(col.pattern)
        t.add("S04", [col.name], violation=f"NOT {t.sql.regexp(t.c(col.name), p)}", filter=_notnull(t, col))


class Mobile(ColumnTemplate):
    """S07: a column with `checks: [mobile]` is a mobile number (`mobile_pattern`)."""
    codes = ("S07",)
    column_label = "手机号符合率"

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return "mobile" in col.checks

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        p = t.bind(t.cfg.rules.mobile_pattern)
        t.add("S07", [col.name], violation=f"NOT {t.sql.regexp(t.c(col.name), p)}", filter=_notnull(t, col))


class Division(ColumnTemplate):
    """S08: a 行政区划代码 (`checks: [division_code]`) of the right shape, its county in GB/T 2260.

    A column declared with the full length (`division.full_length`, 12: county + 乡镇 + 村) must hold
    the full code; shorter columns take the 2/4/6/9/12-digit prefixes of `division_pattern`.
    """
    codes = ("S08",)
    column_label = "区划代码符合率"

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return "division_code" in col.checks

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        dcfg, ct, cn = t.cfg.rules.division, col.ctype, t.c(col.name)
        full = dcfg.full_length
        pattern = (dcfg.full_pattern if ct.kind == "varchar" and ct.length == full
                   else t.cfg.rules.division_pattern)
        p = t.bind(pattern)
        viol = f"NOT {t.sql.regexp(cn, p)}"
        counties = t.domains(dcfg.domain) if dcfg.domain else None
        if counties:
            pc = t.bind(sorted(c for c in counties if len(c) == 6))
            viol = f"({viol} OR ({t.sql.char_length(cn)} >= 6 AND SUBSTR({cn}, 1, 6) NOT IN :{pc}))"
        t.add("S08", [col.name], violation=viol, filter=_notnull(t, col), fmt_kw={"full_length": full})


class IdCard(ColumnTemplate):
    """S03 / K01 / K02: GB 11643 on a column with `checks: [gb11643]` (evaluated in Python, kind `idcard`).

    K01 applies when the table has the sex column (`gb11643.sex_domain`), K02 when it has a birth date
    (`gb11643.birth_date_labels`).
    """
    codes = ("S03", "K01", "K02")
    column_label = "身份证校验"
    labels: ClassVar[dict[str, str]] = {"S03": "身份证校验"}

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return "gb11643" in col.checks

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        gb, cols = t.cfg.gb11643, t.spec.columns
        type_col = next((c.name for c in cols if c.codes and c.codes.domain == gb.id_type_domain), None)
        sex_col = next((c.name for c in cols if c.codes and c.codes.domain == gb.sex_domain), None)
        birth_col = next((c.name for c in cols if c.label in set(gb.birth_date_labels) and c.ctype.is_temporal),
                         None)
        extra = {"id": col.name, "type": type_col, "sex": sex_col, "birth": birth_col,
                 "type_codes": list(gb.resident_id_codes)}
        t.add("S03", [col.name] + ([type_col] if type_col else []), kind="idcard", check="S03", **extra)
        if sex_col:
            t.add("K01", [sex_col, col.name], kind="idcard", check="K01", **extra)
        if birth_col:
            t.add("K02", [birth_col, col.name], kind="idcard", check="K02", **extra)


# ---------------------------------------------------------------------- 唯一性
class PrimaryKey(TableTemplate):
    """U01: the target primary key is unique (every table)."""
    codes = ("U01",)

    def emit(self, t: TableRules) -> None:
        t.add("U01", list(t.spec.target.primary_key), kind="unique", suffix="pk")


# ---------------------------------------------------------------------- 准确性
class Future(ColumnTemplate):
    """P02: a date or time later than now (+ `future_tolerance`, the bind `hb_future_limit`)."""
    codes = ("P02",)
    column_label = "非未来时间率"

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return col.ctype.is_temporal

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        t.add("P02", [col.name], violation=f"{t.c(col.name)} > :hb_future_limit", filter=_notnull(t, col))


class Range(ColumnTemplate):
    """P04 / P05: a value outside its declared `range`; P04 for dates and `plausible_age_labels`."""
    codes = ("P04", "P05")
    column_label = "范围合理率"

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return bool(col.range and (col.range.min is not None or col.range.max is not None))

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        cn, parts, shown = t.c(col.name), [], []
        if col.range.min is not None:
            parts.append(f"{cn} < :{t.bind(col.range.min)}")
            shown.append(f"≥{col.range.min}")
        if col.range.max is not None:
            parts.append(f"{cn} > :{t.bind(col.range.max)}")
            shown.append(f"≤{col.range.max}")
        p04 = col.ctype.is_temporal or col.label in set(t.cfg.rules.plausible_age_labels)
        t.add("P04" if p04 else "P05", [col.name], violation="(" + " OR ".join(parts) + ")",
              filter=_notnull(t, col), fmt_kw={"range": "[" + ", ".join(shown) + "]"})


# ---------------------------------------------------------------------- 关联性
class Reference(ColumnTemplate):
    """R01: a column with `references:` finds its parent row; R03: a revoked parent revokes its children.

    R03 applies to a reference to a table whose source can void a record (`source.void`) and whose key
    is the referenced column, so header → detail pairs (检验报告 → 明细, 首页 → 其他诊断 …) are covered
    and references to dictionaries or the patient index are not. A parent whose spec is invalid gives an
    R01 reported as not run (never dropped).
    """
    codes = ("R01", "R03")

    def applies_to(self, t: TableRules, col: ColumnSpec) -> bool:
        return bool(col.reference_target)

    def emit_column(self, t: TableRules, col: ColumnSpec) -> None:
        ref, sql, org, cn = col.reference_target, t.sql, t.org, t.c(col.name)
        if ref[0] not in t.specs.specs:
            t.add("R01", [col.name], fmt_kw={"ref": ref[0]}, parent=ref[0],
                  config_error=f"被关联表 {ref[0]} 的表规范无效（{ref[0]}.yaml），关联性未检查")
            return
        parent = t.specs.specs[ref[0]]
        # Single-column, uncorrelated NOT IN: materialised once (hash / ephemeral index), never a
        # lookup per row. Measured on 795 k child rows (MariaDB): this form 2.8 s, the row value
        # (key, org) NOT IN 6.7 s, CONCAT(key, org) 13 s. The org is checked as its own set, so a
        # key that exists only under ANOTHER hospital's code is not caught (rare on a front-end).
        pcol, porg = f"p.{sql.q(ref[1])}", f"p.{sql.q(org)}"
        viol = f"{cn} NOT IN (SELECT {pcol} FROM {{@{ref[0]}}} p WHERE {pcol} IS NOT NULL)"
        if org in t.spec.target.primary_key and org in parent.target.primary_key and ref[1] != org:
            viol = f"({viol} OR {t.c(org)} NOT IN (SELECT {porg} FROM {{@{ref[0]}}} p WHERE {porg} IS NOT NULL))"
        filt = _notnull(t, col)
        if t.cfg.placeholders:
            filt = f"{filt} AND {sql.trim_lower(cn)} NOT IN :{t.bind(t.cfg.placeholders)}"
        t.add("R01", [col.name], violation=viol, filter=filt, fmt_kw={"ref": parent.label}, parent=ref[0])
        self._void_propagation(t, col, parent, ref[1])

    @staticmethod
    def _void_propagation(t: TableRules, col: ColumnSpec, parent: TableSpec, parent_col: str) -> None:
        if parent.source.void is None or [k for k in parent.target.primary_key if k != t.org] != [parent_col]:
            return
        flag = t.defaults.audit("change_flag").name
        voided = t.bind(t.defaults.change_flags.voided)
        first = t.bind(t.defaults.change_flags.new)
        cn, pcol, q = t.c(col.name), f"p.{t.sql.q(parent_col)}", t.sql.q
        t.add("R03", [col.name, flag], suffix=col.name,
              filter=f"{cn} IS NOT NULL AND COALESCE({t.c(flag)}, :{first}) <> :{voided}",
              violation=(f"{cn} IN (SELECT {pcol} FROM {{@{parent.table}}} p WHERE p.{q(flag)} = :{voided} "
                         f"AND p.{q(t.org)} = {t.c(t.org)})"),
              fmt_kw={"ref": parent.label}, parent=parent.table)


class TimeOrder(TableTemplate):
    """P01 (or the pair's `rule`, e.g. P03): each `quality.time_order` pair — `after` is not before `before`."""
    codes = ("P01", "P03")

    def emit(self, t: TableRules) -> None:
        for pair in t.spec.quality.time_order:
            before, after = t.c(pair.before), t.c(pair.after)
            t.add(pair.rule or "P01", [pair.after, pair.before], violation=f"{after} < {before}",
                  filter=f"{after} IS NOT NULL AND {before} IS NOT NULL", suffix=f"{pair.after}.{pair.before}",
                  fmt_kw={"label": t.labels.get(pair.after, pair.after),
                          "before_label": t.labels.get(pair.before, pair.before)})


# ---------------------------------------------------------------------- 及时性
class Timeliness(TableTemplate):
    """T01: uploaded (数据采集时间) within `max_lag` of the spec's timeliness event (default: 数据更新时间)."""
    codes = ("T01",)

    def emit(self, t: TableRules) -> None:
        d = t.defaults
        uploaded = d.audit("extracted_at").name
        tl = t.spec.quality.timeliness
        event = tl.event if tl else d.audit("source_updated_at").name
        seconds = int((tl.max_lag if tl else t.cfg.default_max_lag).total_seconds())
        diff = t.sql.seconds_between(t.c(event), t.c(uploaded))
        t.add("T01", [event, uploaded], violation=f"{diff} > {seconds}",
              filter=f"{t.c(event)} IS NOT NULL AND {t.c(uploaded)} IS NOT NULL", suffix=event,
              fmt_kw={"label": t.labels.get(event, event), "max_lag": _lag_text(seconds)},
              event=event, uploaded=uploaded, lag_diff=diff)


class Continuity(TableTemplate):
    """T03: days without any upload (数据采集时间) in the period; counted by the engine (kind `days`)."""
    codes = ("T03",)

    def emit(self, t: TableRules) -> None:
        ccfg = t.cfg.rules.continuity
        uploaded = t.defaults.audit("extracted_at").name
        t.add("T03", [uploaded], kind="days", fmt_kw={"days": ccfg.days}, column=uploaded, days=ccfg.days,
              min_active_share=ccfg.min_active_share)


class BusinessEnd(TableTemplate):
    """T02: upload within max_lag of the business end (first `business_end_timeliness` entry present)."""
    codes = ("T02",)

    def emit(self, t: TableRules) -> None:
        uploaded = t.defaults.audit("extracted_at").name
        for entry in t.cfg.rules.business_end_timeliness:
            event = t.by_label(entry.event_labels, temporal=True)
            if event is None:
                continue
            seconds = int(entry.max_lag.total_seconds())
            diff = t.sql.seconds_between(t.c(event.name), t.c(uploaded))
            t.add("T02", [event.name, uploaded], violation=f"{diff} > {seconds}",
                  filter=f"{t.c(event.name)} IS NOT NULL AND {t.c(uploaded)} IS NOT NULL",
                  fmt_kw={"kind": entry.kind, "max_lag": _lag_text(seconds)})
            return


# ---------------------------------------------------------------------- 一致性
class SexDiagnosis(TableTemplate):
    """K05: a sex-specific diagnosis (code ranges in `sex_diagnosis`) on a patient of the other sex.

    Applies to a table with a 性别代码 column (`gb11643.sex_domain`): one rule per diagnosis column
    bound to one of `sex_diagnosis.domains`.
    """
    codes = ("K05",)

    def emit(self, t: TableRules) -> None:
        kcfg = t.cfg.rules.sex_diagnosis
        sex_col = next((c.name for c in t.spec.columns
                        if c.codes and c.codes.domain == t.cfg.gb11643.sex_domain), None)
        if not (kcfg.conflicts and kcfg.domains and sex_col):
            return
        sex, n = t.c(sex_col), kcfg.prefix_length
        for col in t.spec.columns:
            if not (col.codes and col.codes.domain in kcfg.domains):
                continue
            cn = t.c(col.name)
            head = f"UPPER(SUBSTR({cn}, 1, {n}))"
            alts = []
            for conflict in kcfg.conflicts:
                ranges = [f"{head} BETWEEN :{t.bind(lo.upper())} AND :{t.bind(hi.upper())}"
                          for lo, hi in conflict.ranges]
                if ranges:
                    alts.append(f"({sex} = :{t.bind(conflict.sex)} AND ({' OR '.join(ranges)}))")
            if alts:
                t.add("K05", [col.name, sex_col], violation="(" + " OR ".join(alts) + ")",
                      filter=f"{cn} IS NOT NULL AND {sex} IS NOT NULL")


class AgeConsistency(TableTemplate):
    """K03: 年龄 against (就诊日期 − 出生日期) in years, and 年龄(月) against 年龄(岁), within `tolerance_years`."""
    codes = ("K03",)

    def emit(self, t: TableRules) -> None:
        kcfg = t.cfg.rules.age_consistency
        age = t.by_label(kcfg.age_labels)
        if age is None:
            return
        tol = kcfg.tolerance_years
        birth = t.by_label(t.cfg.gb11643.birth_date_labels, temporal=True)
        event = t.by_label(kcfg.event_labels, temporal=True)
        months = t.by_label(kcfg.month_labels, kinds=("decimal", "integer"))
        if months is not None:
            a, m = t.c(age.name), t.c(months.name)
            t.add("K03", [months.name, age.name], violation=f"ABS({m} - {a} * 12) >= :{t.bind(12 * tol)}",
                  filter=f"{m} IS NOT NULL AND {a} IS NOT NULL",
                  fmt_kw={"event_label": age.label, "tolerance": f"{tol:g}"})
        if not (birth and event):
            return
        a, b, e = t.c(age.name), t.c(birth.name), t.c(event.name)
        years = f"({t.sql.seconds_between(b, e)} / 31557600.0)"      # 365.25 days
        t.add("K03", [age.name, birth.name, event.name], violation=f"ABS({a} - {years}) > :{t.bind(tol)}",
              filter=f"{a} IS NOT NULL AND {b} IS NOT NULL AND {e} IS NOT NULL",
              fmt_kw={"event_label": event.label, "tolerance": f"{tol:g}"})


class LabLimits(TableTemplate):
    """P07: a numeric lab result within the analyser's range for its item, in the item's unit.

    Applies to a table with the item, value and unit labels of `lab_limits`.
    """
    codes = ("P07",)

    def emit(self, t: TableRules) -> None:
        lcfg = t.cfg.rules.lab_limits
        item, value, unit = (t.by_label(lcfg.item_labels), t.by_label(lcfg.value_labels),
                             t.by_label(lcfg.unit_labels))
        if not (lcfg.items and item and value and unit):
            return
        it, v, u = t.c(item.name), t.c(value.name), t.c(unit.name)
        is_num = t.sql.regexp(v, t.bind(lcfg.numeric_pattern))
        # CASE, not AND: the cast must never see a non-numeric text (PostgreSQL does not short-circuit AND)
        num = f"(CASE WHEN {is_num} THEN CAST({v} AS DECIMAL(20,6)) END)"
        alts = []
        for entry in lcfg.items:
            pc, pu = t.bind(entry.code), t.bind(entry.unit.strip().lower())
            plo, phi = t.bind(float(entry.min)), t.bind(float(entry.max))
            alts.append(f"({it} = :{pc} AND (LOWER(TRIM({u})) <> :{pu} OR {num} < :{plo} OR {num} > :{phi}))")
        codes = t.bind([e.code for e in lcfg.items])
        t.add("P07", [value.name, unit.name, item.name], violation="(" + " OR ".join(alts) + ")",
              filter=f"{it} IN :{codes} AND {v} IS NOT NULL AND {is_num}")


# The registry, in the order rules are generated (and listed in a report).
REGISTRY: tuple[TableTemplate, ...] = (
    TableEmpty(), ControlVolume(), OrgCode(), Required(), RequiredWhen(), PrimaryKey(),
    ValueDomain(), CodeName(), IdCard(), Pattern(), Precision(), Length(), Mobile(), Division(),
    Range(), Future(), Reference(), TimeOrder(),
    Timeliness(), Continuity(), BusinessEnd(), SexDiagnosis(), AgeConsistency(), LabLimits(),
)
GENERATED: frozenset[str] = frozenset(code for tmpl in REGISTRY for code in tmpl.codes)


def column_labels() -> dict[str, str]:
    """Template code → its column in the report's 数据元明细 (完整率, 值域符合率 …)."""
    out: dict[str, str] = {}
    for tmpl in REGISTRY:
        if tmpl.column_label:
            out.update(getattr(tmpl, "labels", None) or dict.fromkeys(tmpl.codes, tmpl.column_label))
    return out


def generate(t: TableRules) -> list[Rule]:
    """Every generated rule of one table, template by template."""
    for tmpl in REGISTRY:
        if tmpl.applies(t):
            tmpl.emit(t)
    return t.rules

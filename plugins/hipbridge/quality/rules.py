"""Rules: the templates of quality.md §3 generated from a table spec (`templates.py`), plus custom YAML rules.

A rule is data: which table and columns, a dimension, a severity, a threshold, and the SQL that
selects its denominator (`filter`) and its violating rows (`violation`) on the alias `t`. The
engine (`engine.py`) runs them; nothing here touches a database. GB 11643 rules (S03, K01, K02)
are `kind="idcard"`: they are evaluated in Python on the id column only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hipbridge.io.dialects import FrontendDialect
from hipbridge.mapping import load_catalog
from hipbridge.settings import org_code as configured_org
from hipbridge.spec import SpecSet, TableSpec

from .config import QualityConfig
from .templates import DomainCodes, Rule, TableRules, generate

__all__ = ["DomainCodes", "Rule", "build_rules", "catalog_domains", "inactive_custom_rules", "render",
           "resolve_labels"]

def catalog_domains() -> DomainCodes:
    """Value domains from the mapping module's catalog (mappings/standard)."""
    catalog = load_catalog()

    def codes(domain_id: str) -> Mapping[str, str] | None:
        dom = catalog.domains.get(domain_id)
        return dom.codes if dom is not None and dom.codes else None

    def status(domain_id: str) -> str | None:
        dom = catalog.domains.get(domain_id)
        return dom.status if dom is not None else None

    codes.status = status  # type: ignore[attr-defined]
    return codes


def _names(spec: TableSpec, specs: SpecSet) -> dict[str, str]:
    """Physical column name by name or by Chinese label (labels make custom rules independent of pinyin)."""
    out = {}
    for a in specs.defaults.audit_columns:
        out[a.label] = a.name
    for c in spec.columns:
        out[c.label] = c.name
    for a in specs.defaults.audit_columns:
        out[a.name] = a.name
    for c in spec.columns:
        out[c.name] = c.name
    return out


_LABEL_REF = re.compile(r"\{(?:(@?)([a-z][a-z0-9_]*):)?([^{}@.:\s]+)\}")


def resolve_labels(text: str, spec: TableSpec, specs: SpecSet, sql: FrontendDialect) -> str:
    """`{总费用}` → `{ZFY}`; `{fee_detail:金额}` → the quoted physical column of another table."""
    own = _names(spec, specs)

    def sub(m: re.Match) -> str:
        _at, other, name = m.groups()
        if other:
            if other not in specs.specs:
                raise KeyError(f"规则引用了没有规格的表 {other!r}")
            names = _names(specs.specs[other], specs)
            if name not in names:
                raise KeyError(f"表 {other} 没有列或数据元 {name!r}")
            return sql.q(names[name])
        if name in own:
            return "{" + own[name] + "}"
        if re.fullmatch(r"[A-Za-z_]\w*", name):
            return m.group(0)   # an unknown identifier: left for the run to report
        raise KeyError(f"表 {spec.table} 没有数据元 {name!r}")

    return _LABEL_REF.sub(sub, text)


def _custom_rules(spec: TableSpec, specs: SpecSet, cfg: QualityConfig, sql: FrontendDialect) -> list[Rule]:
    out = []
    own = _names(spec, specs)
    for file, cr in cfg.custom:
        if cr.table != "*" and cr.table != spec.table:
            continue
        t = cfg.templates.get(cr.template) if cr.template else None
        extra: dict[str, Any] = {"file": file}
        violation, filt = cr.violation, cr.filter
        try:
            violation = resolve_labels(cr.violation, spec, specs, sql)
            filt = resolve_labels(cr.filter, spec, specs, sql) if cr.filter else None
        except KeyError as exc:
            extra["config_error"] = f"{file}: {exc.args[0]}"
        out.append(Rule(
            rule_id=cr.id if cr.table != "*" else f"{cr.id}.{spec.table}",
            template=(cr.template or cr.id.split(".")[0])[:32], table=spec.table, target=spec.target.name,
            columns=[own.get(c, c) for c in cr.columns],
            dimension=cr.dimension or t.dimension, severity=cr.severity or (t.severity if t else "error"),
            threshold=cr.threshold if cr.threshold is not None else (t.threshold if t else 0),
            message=cr.message or (t.message if t else cr.id), advice=cr.advice or (t.advice if t else ""),
            kind="row", violation=violation, filter=filt, gate=cr.gate or (cr.severity == "fatal"),
            custom=True, extra=extra))
    return out


def inactive_custom_rules(specs: SpecSet, cfg: QualityConfig) -> list[tuple[str, str, str]]:
    """(file, rule id, table) of custom rules whose table has no spec: they do not run."""
    return [(f, r.id, r.table) for f, r in cfg.custom if r.table != "*" and r.table not in specs.specs]


def build_rules(spec: TableSpec, specs: SpecSet, cfg: QualityConfig, sql: FrontendDialect, *,
                domains: DomainCodes | None = None, org_code: str | None = None) -> list[Rule]:
    """Every rule for one table: generated from the spec, then the custom rules naming it (or `*`)."""

    if domains is None:
        domains = catalog_domains()
    table = TableRules(spec, specs, cfg, sql, domains, org_code or configured_org(specs.defaults))
    rules = generate(table) + _custom_rules(spec, specs, cfg, sql)
    return [r for r in rules if r.rule_id not in spec.quality.skip]


_COL = re.compile(r"\{(@?)([A-Za-z_][\w]*)(?:\.([A-Za-z_]\w*))?\}")


def render(text: str, sql: FrontendDialect, physical: Mapping[str, str], alias: str = "t") -> str:
    """Resolve `{COL}`, `{a.COL}` and `{@table_id}` placeholders of a rule's SQL."""
    def sub(m: re.Match) -> str:
        at, first, second = m.groups()
        if at:
            if first not in physical:
                raise KeyError(f"规则引用了没有规格的表 {first!r}")
            return physical[first]
        if second:
            return f"{first}.{sql.q(second)}"
        return f"{alias}.{sql.q(first)}"

    return _COL.sub(sub, text)

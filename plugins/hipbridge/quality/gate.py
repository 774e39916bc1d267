"""The quality gate on one staged batch: batch-level rules pushed down as SQL; fatal failures block.

Called by the pipeline between staging and publishing:

    outcome = run_gate(engine, spec, specs, batch_id, staging_table)
    outcome.blocked   # a fatal rule Failed (or, with gate.block_on_error, could not run)

Only rules marked `gate` in `expectations/_rules.yaml` (and custom rules with `gate: true` or
severity fatal) run here; cross-batch rules (coverage, references, timeliness) belong to the
periodic report. Results are stored in the ops schema under run id = batch id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Table
from sqlalchemy.engine import Engine

from hipbridge.crypto.frontend import encrypted_columns
from hipbridge.io.dialects import FrontendDialect, frontend_dialect
from hipbridge.settings import ops_schema_name
from hipbridge.spec import SpecSet, TableSpec

from .check import base_params, clock, local_now, safe_url
from .config import QualityConfig, cached_config
from .engine import ERROR, FAILED, Evaluator, RuleResult, Scope, physical_names
from .rules import DomainCodes, Rule, build_rules, catalog_domains
from .scoring import score
from .store import save_run


@dataclass
class GateOutcome:
    batch_id: str
    table: str
    blocked: bool = False
    results: list[RuleResult] = field(default_factory=list)
    message: str | None = None
    seconds: float = 0.0


_RULES: dict[tuple, tuple[TableSpec, list[Rule]]] = {}
PARALLEL_FROM_ROWS = 100_000  # below this, one scan is quicker than two connections
_DOMAINS: list[DomainCodes] = []


def gate_rules(spec: TableSpec, specs: SpecSet, cfg: QualityConfig, sql: FrontendDialect,
               domains: DomainCodes | None = None) -> list[Rule]:
    """The gate's rules for a table, cached per spec object, dialect and configuration."""
    key = (spec.table, id(spec), sql.name, id(cfg), id(domains))
    hit = _RULES.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    if domains is None:
        if not _DOMAINS:
            _DOMAINS.append(catalog_domains())
        domains = _DOMAINS[0]
    # 修改标志 is decided at publish time (new / changed / voided against the ledger): NULL when staged
    flag = specs.defaults.audit("change_flag").name
    rules = [r for r in build_rules(spec, specs, cfg, sql, domains=domains)
             if r.gate and not (r.template == "C01" and r.columns == [flag])]
    _RULES[key] = (spec, rules)
    return rules


def _declared_keys(table: Table) -> list[frozenset[str]]:
    pk = frozenset(c.name for c in table.primary_key.columns)
    return [pk] if pk else []


def run_gate(engine: Engine, spec: TableSpec, specs: SpecSet, batch_id: str, staging_table: Table, *,
             cfg: QualityConfig | None = None, domains: DomainCodes | None = None,
             store: bool = True, unique_keys: list[frozenset[str]] | None = None,
             rows: int | None = None) -> GateOutcome:
    """Check the rows of the batch's own `staging_table`; store results under batch_id; say whether to block.

    unique_keys: column sets already known to be unique in the batch (default: the staging
    table's primary key, if it has one); uniqueness rules on them are not re-checked.
    rows: the batch's row count when known; a large batch on a server database
    (`FrontendDialect.parallel_gate`) is checked in two halves by row number, in parallel.
    """
    cfg = cfg or cached_config()
    started = clock(specs)
    sql = frontend_dialect(engine)
    rules = gate_rules(spec, specs, cfg, sql, domains)
    scope = Scope(from_sql=sql.table(staging_table.name, staging_table.schema), pk=list(spec.target.primary_key),
                  physical=physical_names(sql, specs),
                  sensitive={c.name for c in spec.columns if c.sensitive},
                  unique_keys=unique_keys if unique_keys is not None else _declared_keys(staging_table),
                  encrypted=encrypted_columns(specs, spec))
    if (rows or 0) >= PARALLEL_FROM_ROWS and sql.parallel_gate:
        scope.partitions = [f"t.hb_rownum < {int(rows) // 2}", f"t.hb_rownum >= {int(rows) // 2}"]
    with engine.connect() as conn:
        results = Evaluator(conn, cfg, sql, base_params(specs, cfg, local_now(specs))).run(rules, scope)
    blocking = [r for r in results if r.severity == "fatal"
                and (r.status == FAILED or (r.status == ERROR and cfg.block_on_error))]
    outcome = GateOutcome(batch_id, spec.table, blocked=bool(blocking), results=results)
    if blocking:
        outcome.message = "；".join(
            f"{r.rule_id} {r.message}（{r.violated}/{r.denominator}）" if r.status == FAILED
            else f"{r.rule_id} 无法执行: {r.error}" for r in blocking)
    finished = clock(specs)
    outcome.seconds = (finished - started).total_seconds()
    if store:
        save_run(engine, ops_schema_name(specs.defaults, engine), batch_id, "gate", started, finished, results,
                 score(results, cfg.scoring), [spec.table], database=safe_url(engine), blocked=outcome.blocked,
                 message=outcome.message)
    return outcome

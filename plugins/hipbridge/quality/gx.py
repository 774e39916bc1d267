"""The same rules through Great Expectations 1.x (`hipbridge quality run --engine gx`).

Each row rule becomes an `UnexpectedRowsExpectation` whose query selects the violating rows'
keys, and a second one counts the rule's denominator; GX reports both counts as
`observed_value`. Length rules stay character-based because the SQL is ours (GX's own length
expectations count bytes on MariaDB). Uniqueness, coverage and GB 11643 run on the native engine
(GX has no per-value Python hook on SQL data), as do regex rules on SQLite (no REGEXP there).
C03 against 数据量记录汇总 (kind `control`) runs through GX too: the rows it counts are the control table's,
and the day counts come from GX's batch (the checked table).

Why this is not the default: importing GX costs ~2 s, and GX runs one query per expectation,
where the native engine counts every row rule of a table in one scan (see docs/quality.md).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from hipbridge.io.dialects import frontend_dialect
from hipbridge.settings import ops_schema_name
from hipbridge.spec import SpecSet

from .check import RunOutcome, base_params, clock, local_now, new_run_id, safe_url
from .config import QualityConfig, cached_config
from .engine import (
    _BIND,
    ERROR,
    NOT_APPLICABLE,
    Evaluator,
    RuleResult,
    Scope,
    _result,
    _status,
    encrypted_reason,
    physical_names,
)
from .rules import DomainCodes, Rule, build_rules, catalog_domains, render
from .scoring import score
from .store import save_run

# Great Expectations loads only for a GX run (it costs seconds): never at DAG parse or CLI start-up.


def _literal(engine: Engine, v) -> str:
    if isinstance(v, (list, tuple, set)):
        return "(" + ", ".join(_literal(engine, x) for x in v) + ")"
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float, Decimal)):
        return str(v)
    text = v.isoformat(sep=" ") if isinstance(v, datetime) else str(v)
    text = text.replace("'", "''")
    text = frontend_dialect(engine).escape_literal_text(text)
    return "'" + text.replace("{", "{{").replace("}", "}}") + "'"   # GX str.format()s the query


def _literal_sql(engine: Engine, sql: str, params: dict) -> str:
    """GX takes SQL text: inline the bound values (ours, from YAML and specs, never from data)."""
    return _BIND.sub(lambda m: _literal(engine, params[m.group(1)]), sql)


_JOIN = re.compile(r"\bJOIN\b", re.IGNORECASE)


def _batch_query(query: str) -> str:
    """GX names the batch subquery itself (`… AS subselect`) unless the query has a JOIN, where it leaves the
    alias to the query's author (great_expectations.expectations.metrics.query_metric_provider); MariaDB and
    PostgreSQL refuse a derived table without one, so a query with a JOIN names it."""
    return query.replace("{batch}", "{batch} hb_batch") if _JOIN.search(query) else query


def _gx_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, ctx


def check_database_gx(engine: Engine, specs: SpecSet, tables: list[str] | None = None, *,
                      cfg: QualityConfig | None = None, kind: str = "check", store: bool = True,
                      domains: DomainCodes | None = None, now: datetime | None = None,
                      run_id: str | None = None) -> RunOutcome:
    cfg = cfg or cached_config()
    started = clock(specs)
    now = now or local_now(specs)
    sql = frontend_dialect(engine)
    domains = domains or catalog_domains()
    chosen = tables or sorted(specs.specs)
    existing = set(inspect(engine).get_table_names())
    physical = physical_names(sql, specs)
    params = base_params(specs, cfg, now)
    gx, ctx = _gx_context()
    url = engine.url.render_as_string(hide_password=False)
    ds = getattr(ctx.data_sources, f"add_{sql.gx_data_source}")(name="frontend", connection_string=url)
    results: list[RuleResult] = []
    from hipbridge.crypto.frontend import frontend_columns

    encrypted = frontend_columns(specs)
    with engine.connect() as conn:
        native = Evaluator(conn, cfg, sql, params)
        for tid in chosen:
            spec = specs.get(tid)
            rules = [r for r in build_rules(spec, specs, cfg, sql, domains=domains) if not r.gate_only]
            exists = spec.target.name in existing
            cols = {c["name"] for c in inspect(engine).get_columns(spec.target.name)} if exists else set()
            scope = Scope(from_sql=sql.table(spec.target.name), pk=list(spec.target.primary_key), physical=physical,
                          exists=exists, columns=cols, sensitive={c.name for c in spec.columns if c.sensitive},
                          encrypted=encrypted.get(tid, frozenset()))
            via_gx = [r for r in rules if exists and not encrypted_reason(r, scope) and (r.kind == "row" or (
                          r.kind == "control" and r.extra.get("control_table") in existing))
                      and not native._missing_columns(r, scope) and not r.extra.get("config_error")
                      and not (not sql.builtin_regexp and "REGEXP" in (r.violation or ""))]
            gx_ids = {r.rule_id for r in via_gx}
            got = {x.rule_id: x for x in native.run([r for r in rules if r.rule_id not in gx_ids], scope)}
            if via_gx:
                got.update(_run_gx(gx, ctx, ds, engine, spec.target.name, via_gx, scope, params))
            results.extend(got[r.rule_id] for r in rules)
    scores = score(results, cfg.scoring)
    finished = clock(specs)
    outcome = RunOutcome(run_id or new_run_id("gx", at=started), kind, chosen, results, scores, started, finished,
                         extra={"engine": "gx", "database": safe_url(engine)}, as_of=now)
    if store:
        save_run(engine, ops_schema_name(specs.defaults, engine), outcome.run_id, kind, started, finished, results, scores,
                 chosen, database=safe_url(engine))
    return outcome


def _run_gx(gx, ctx, ds, engine: Engine, table: str, rules: list[Rule], scope: Scope,
            params: dict) -> dict[str, RuleResult]:
    sql = frontend_dialect(engine)
    # a query asset: GX's table assets do not quote upper-case names (PostgreSQL folds them)
    asset = ds.add_query_asset(name=table, query=f"SELECT * FROM {sql.table(table)}")
    batch_def = asset.add_batch_definition_whole_table(f"{table}_all")
    suite = ctx.suites.add(gx.ExpectationSuite(name=f"hipbridge_{table}"))
    keys = ", ".join(f"t.{sql.q(k)}" for k in scope.pk) or "1"
    plan: dict[str, tuple[Rule, str, str]] = {}
    for r in rules:
        p = {**params, **r.params}
        if r.kind == "control":
            # the rows checked are the control table's (alias t); the batch is the table they count
            physical = {**scope.physical, r.table: "(SELECT * FROM {batch})"}
            f = render(r.filter, sql, physical) if r.filter else "1=1"
            v = render(r.violation, sql, physical)
            ctl = sql.table(r.extra["control_table"])
            bad = _literal_sql(engine, _batch_query(f"SELECT {r.extra['day']} FROM {ctl} t WHERE ({f}) AND ({v})"), p)
            den = _literal_sql(engine, f"SELECT 1 FROM {ctl} t WHERE ({f})", p)
        else:
            f = render(r.filter, sql, scope.physical) if r.filter else "1=1"
            v = render(r.violation, sql, scope.physical)
            bad = _literal_sql(engine, _batch_query(f"SELECT {keys} FROM (SELECT * FROM {{batch}}) t WHERE ({f}) AND ({v})"), p)
            den = _literal_sql(engine, _batch_query(f"SELECT 1 FROM (SELECT * FROM {{batch}}) t WHERE ({f})"), p)
        suite.add_expectation(gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query=bad, description=f"{r.rule_id} {r.message}"))
        suite.add_expectation(gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query=den, description=f"{r.rule_id} 分母"))
        plan[r.rule_id] = (r, bad, den)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"v_{table}", data=batch_def, suite=suite))
    res = vd.run(result_format="BASIC")
    observed: dict[str, int | str] = {}
    for er in res.results:
        q = er.expectation_config.kwargs.get("unexpected_rows_query")
        value = (er.result or {}).get("observed_value")
        if value is None:   # GX records a failed metric as exception_info keyed by metric id
            info = er.exception_info or {}
            msgs = [v.get("exception_message") for v in info.values() if isinstance(v, dict)] or [
                info.get("exception_message")]
            observed[q] = f"GX: {next((m for m in msgs if m), '无结果')}"[:500]
        else:
            observed[q] = int(value)
    n_rows = native_count(engine, scope)
    out: dict[str, RuleResult] = {}
    for rid, (r, bad, den) in plan.items():
        vio, d = observed.get(bad), observed.get(den)
        # an empty table is Not Applicable whatever GX made of it (as in the native engine): GX cannot run
        # some queries on an empty batch and reports an exception instead of 0
        if n_rows == 0:
            out[rid] = _result(r, NOT_APPLICABLE, 0, 0, None, error="表中无数据", sql=bad)
            continue
        if isinstance(vio, str) or isinstance(d, str) or vio is None or d is None:
            out[rid] = _result(r, ERROR, error=vio if isinstance(vio, str) else str(d), sql=bad)
            continue
        status, pct = _status(vio, d, r.threshold)
        out[rid] = _result(r, status, vio, d, pct, sql=bad)
    return out


def native_count(engine: Engine, scope: Scope) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {scope.from_sql} t")).scalar() or 0)

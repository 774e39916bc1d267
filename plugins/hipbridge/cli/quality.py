"""`hipbridge quality run|report|rules`: check a database of front-end tables, write the report.

Contract (other tools call it): `hipbridge quality run --db URL [--tables a,b] [--json PATH]`
checks any database that holds the standard front-end tables and writes JSON with run_id,
tables, results (rule_id, table, target, columns, dimension, severity, status, violated,
denominator, threshold) and scores. Exit 0 when it ran, whatever it found; 2 when it could not run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hipbridge.settings import ops_schema_name, settings


def _setup(args):
    from hipbridge.io.engines import default_frontend_url, engine_for
    from hipbridge.quality.config import load_config
    from hipbridge.spec import load_specs

    specs = load_specs(args.specs).require_valid()
    cfg = load_config(args.expectations)
    url = args.db or default_frontend_url()
    engine = engine_for(url, ops_schema_name(specs.defaults, url))
    with engine.connect():
        pass   # fail here, clearly, when the database cannot be reached
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    return specs, cfg, engine, tables


def _run_checks(args, kind: str):
    from hipbridge.quality.check import check_database

    specs, cfg, engine, tables = _setup(args)
    if getattr(args, "engine", "sql") == "gx":
        from hipbridge.quality.gx import check_database_gx

        outcome = check_database_gx(engine, specs, tables, cfg=cfg, kind=kind, store=not args.no_store)
    else:
        outcome = check_database(engine, specs, tables, cfg=cfg, kind=kind, store=not args.no_store)
    return specs, cfg, engine, outcome


def _summary(outcome) -> str:
    counts: dict[str, int] = {}
    for r in outcome.results:
        counts[r.status] = counts.get(r.status, 0) + 1
    s = outcome.scores
    overall = "—" if s.get("overall") is None else f"{s['overall']:.2f}"
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    line = (f"质控运行 {outcome.run_id}: {len(outcome.tables)} 张表, {len(outcome.results)} 条规则 ({parts}); "
            f"总体得分 {overall} {s.get('grade') or ''}")
    if outcome.extra.get("stored") is False:
        line += f"\n警告: 结果未能写入运行库: {outcome.extra.get('store_error')}"
    return line


def _write_json(outcome, path: str | None) -> None:
    if not path:
        return
    text = json.dumps(outcome.as_json(), ensure_ascii=False, indent=2, default=str)
    if path == "-":
        print(text)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")


def _run(args) -> int:
    _, _, _, outcome = _run_checks(args, "check")
    _write_json(outcome, args.json)
    print(_summary(outcome), file=sys.stderr if args.json == "-" else sys.stdout)
    return 0


def _report(args) -> int:
    from hipbridge.io.engines import home
    from hipbridge.reporting.quality import write_report

    specs, cfg, engine, outcome = _run_checks(args, "report")
    out_dir = Path(args.out or settings().report_dir or home() / "reports")   # as the DAG
    paths = write_report(engine, specs, outcome, cfg, out_dir, days=args.days)
    _write_json(outcome, args.json)
    print(_summary(outcome))
    print(f"生成时间 {paths['generated']}\n报告: {paths['html']}\n导出: {paths['xlsx']}")
    return 0


def _rules(args) -> int:
    from sqlalchemy.dialects import sqlite

    from hipbridge.io.dialects import frontend_dialect
    from hipbridge.quality.config import load_config
    from hipbridge.quality.rules import build_rules, inactive_custom_rules
    from hipbridge.spec import load_specs

    specs = load_specs(args.specs).require_valid()
    cfg = load_config(args.expectations)
    sql = frontend_dialect(sqlite.dialect())
    tables = [t.strip() for t in args.tables.split(",")] if args.tables else sorted(specs.specs)
    for tid in tables:
        for r in build_rules(specs.get(tid), specs, cfg, sql):
            gate = "闸门" if r.gate else "    "
            print(f"{r.rule_id:<40} {r.dimension} {r.severity:<8} 阈值{r.threshold:>5g}% {gate} {r.message}")
            if r.extra.get("config_error"):
                print(f"    配置错误: {r.extra['config_error']}")
    for file, rid, table in inactive_custom_rules(specs, cfg):
        print(f"未启用: {rid} ({file}): 表 {table} 没有规格", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("quality", help="数据质量: 检查前置机表、生成质量评估报告")
    s = p.add_subparsers(dest="quality_command", metavar="ACTION")
    s.required = True

    def common(c, engine: bool = True):
        c.add_argument("--db", default=None, help="SQLAlchemy URL of the database holding the front-end tables "
                                                  "(default: HIPBRIDGE_FRONTEND_URL / the embedded front-end)")
        c.add_argument("--tables", default=None, help="comma-separated table ids (default: every spec)")
        c.add_argument("--specs", default=None, help="spec folder (default: table_specs/)")
        c.add_argument("--expectations", default=None, help="quality configuration folder (default: expectations/)")
        c.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON (- for stdout)")
        c.add_argument("--no-store", action="store_true", help="do not write the results to the ops schema")
        if engine:
            c.add_argument("--engine", choices=["sql", "gx"], default="sql",
                           help="sql: one aggregate scan per table (default); gx: the same rules through "
                                "Great Expectations UnexpectedRowsExpectation")

    r = s.add_parser("run", help="run every rule over whole tables; exit 0 when it ran")
    common(r)
    r.set_defaults(func=_run)
    rep = s.add_parser("report", help="run the rules and write the HTML report and XLSX export")
    common(rep)
    rep.add_argument("--out", default=None, help="report folder (default: $HIPBRIDGE_REPORT_DIR, else $HIPBRIDGE_HOME/reports)")
    rep.add_argument("--days", type=int, default=30, help="评估周期 in days (daily volumes, batch counts)")
    rep.set_defaults(func=_report)
    ru = s.add_parser("rules", help="list the rules generated from the specs and expectations/")
    ru.add_argument("--tables", default=None)
    ru.add_argument("--specs", default=None)
    ru.add_argument("--expectations", default=None)
    ru.set_defaults(func=_rules)

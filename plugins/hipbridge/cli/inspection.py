"""`hipbridge inspection report [--week YYYY-Www] [--out DIR]`: the weekly 巡检报告 (HTML + XLSX).

Exit 0 when the report was written (whatever it found), 2 when it could not be (bad week, database
unreachable). Prints the week, the local generation time with its zone, the paths and the
recommendations by level.
"""

from __future__ import annotations

from pathlib import Path

from hipbridge.settings import ops_schema_name, settings


def _report(args) -> int:
    from hipbridge.inspection.config import load_inspection_config
    from hipbridge.inspection.report import write_inspection
    from hipbridge.io.engines import default_frontend_url, engine_for, home
    from hipbridge.spec import load_specs

    specs = load_specs(args.specs).require_valid()
    url = args.db or default_frontend_url()
    engine = engine_for(url, ops_schema_name(specs.defaults, url))
    with engine.connect():
        pass   # fail here, clearly, when the front-end cannot be reached
    cfg = load_inspection_config(Path(args.config) if args.config else None)
    out_dir = Path(args.out or settings().report_dir or home() / "reports")
    out = write_inspection(engine, specs, out_dir, args.week, cfg=cfg,
                           store=not args.no_store)
    counts = out["summary"]["advice"]
    print(f"巡检报告 {out['week']}: 严重 {counts['严重']} 项, 注意 {counts['注意']} 项, 提示 {counts['提示']} 项")
    print(f"生成时间 {out['generated']}\n报告: {out['html']}\n导出: {out['xlsx']}")
    for a in out["advice"]:
        print(f"  [{a['level']}] {a['area']}: {a['finding']} → {a['action']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("inspection", help="每周巡检报告 (运行、数据量、质控、平台交互、删除、配置漂移、健康)")
    s = p.add_subparsers(dest="inspection_command", metavar="ACTION")
    s.required = True
    r = s.add_parser("report", help="write the weekly inspection report (HTML + XLSX) for one ISO week")
    r.add_argument("--week", default=None, metavar="YYYY-Www",
                   help="ISO week, e.g. 2026-W49 (default: the week holding yesterday, hospital time)")
    r.add_argument("--out", default=None, help="report folder (default: $HIPBRIDGE_REPORT_DIR, else $HIPBRIDGE_HOME/reports)")
    r.add_argument("--db", default=None, help="front-end database URL (default: HIPBRIDGE_FRONTEND_URL / embedded)")
    r.add_argument("--specs", default=None, help="spec folder (default: table_specs/)")
    r.add_argument("--config", default=None, help="inspection settings (default: config/inspection.yaml)")
    r.add_argument("--no-store", action="store_true",
                   help="do not record this week's figures and configuration hashes in the ops schema")
    r.set_defaults(func=_report)

"""`hipbridge recognition kpi --month YYYY-MM`: the month's 互认 reminders and decisions, 互认率."""

from __future__ import annotations

import json
import sys

from hipbridge.settings import ops_schema_name, org_code


def _kpi(args) -> int:
    from hipbridge.io.engines import default_frontend_url, engine_for
    from hipbridge.io.ops import ensure_ops
    from hipbridge.recognition import state  # noqa: F401 - its tables
    from hipbridge.recognition.catalog import recognition_config
    from hipbridge.recognition.kpi import monthly_kpi
    from hipbridge.spec import load_specs

    specs = load_specs()
    url = args.db or default_frontend_url()
    schema = ops_schema_name(specs.defaults, url)
    engine = engine_for(url, schema)
    try:
        k = monthly_kpi(engine, ensure_ops(engine, schema), recognition_config(), org_code(specs.defaults), args.month)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(k, ensure_ascii=False, indent=2))
        return 0
    rate = "—" if k["rate"] is None else f"{k['rate'] * 100:.1f}%"
    print(f"{k['month']} 检查检验结果互认 (按提醒时间, {k['timezone']}): 提醒 {k['reminded']} 份, 互认 {k['recognised']}, "
          f"不互认 {k['notRecognised']}, 不计入 (98/99) {k['excluded']}, 未处理 {k['undecided']}; 互认率 {rate}")
    for r in k["byReason"]:
        print(f"  {r['code']} {'' if r['counted'] else '(不计入) '}{r['count']:>4}  {r['name']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("recognition", help="检查检验结果互认: monthly KPI")
    s = p.add_subparsers(dest="recognition_command", metavar="ACTION")
    s.required = True
    k = s.add_parser("kpi", help="reminded, recognised, not recognised by reason, 互认率 (98/99 excluded)")
    k.add_argument("--month", required=True, help="YYYY-MM (Asia/Shanghai)")
    k.add_argument("--db", default=None, help="front-end database URL (default: HIPBRIDGE_FRONTEND_URL or embedded)")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=_kpi)

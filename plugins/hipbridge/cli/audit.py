"""`hipbridge audit who | verify`: who looked at a patient's data; is the audit chain intact."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from hipbridge.settings import ops_schema_name


def _open(args):
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.io.engines import default_frontend_url, engine_for
    from hipbridge.io.ops import ensure_ops
    from hipbridge.spec import load_specs

    url = args.db or default_frontend_url()
    schema = ops_schema_name(load_specs().defaults, url)
    engine = engine_for(url, schema)
    import hipbridge.platform.state  # noqa: F401 - registers the tables the chain lives beside

    return engine, ensure_ops(engine, schema), KeyStore()


def _patient(text: str) -> tuple[str, str]:
    """`01:450102…` (证件类型:证件号码) or a bare number (居民身份证, type 01)."""
    if ":" in text:
        t, _, n = text.partition(":")
        return t.strip(), n.strip()
    return "01", text.strip()


_ACTIONS = {"LAUNCH": "医生站启动", "VIEW_TIMELINE": "查看外院数据列表", "VIEW_REPORT": "查看报告详情",
            "ACCESS_DENIED": "拒绝访问", "REVEAL": "解密查看前置机数据"}


def _who(args) -> int:
    from hipbridge.audit import who_viewed

    engine, ops, keys = _open(args)
    id_type, id_no = _patient(args.patient)
    since = datetime.fromisoformat(args.since) if args.since else None
    rows = who_viewed(engine, ops, keys, id_type, id_no, since=since)
    if args.json:
        print(json.dumps({"timezone": "Asia/Shanghai", "events": rows}, ensure_ascii=False, default=str, indent=2))
        return 0
    if not rows:
        print("该患者没有被调阅的记录")
        return 0
    print(f"该患者的外院数据访问记录 {len(rows)} 条 (时间为 Asia/Shanghai):")
    print(f"{'时间 (Asia/Shanghai)':<21} {'医生':<10} {'就诊':<16} {'操作':<10} {'对象':<34} 结果")
    for r in rows:
        obj = f"{r['object_type'] or ''}:{r['object_id'] or ''}" if r["action"] == "VIEW_REPORT" else ""
        result = r["reason"] or r["result"] or "成功"
        print(f"{r['ts']:%Y-%m-%d %H:%M:%S}  {r['actor_id'] or '-':<10} {r['visit_id'] or '-':<16} "
              f"{_ACTIONS.get(r['action'], r['action']):<10} {obj:<34} {result}")
    return 0


def _verify(args) -> int:
    from hipbridge.audit import verify

    engine, ops, keys = _open(args)
    rep = verify(engine, ops, keys)
    if args.json:
        print(json.dumps(rep.as_dict(), ensure_ascii=False))
    elif rep.intact:
        print(f"审计链完整: {rep.events} 条事件, 逐条 MAC 与锚点一致")
    else:
        print(f"审计链被破坏: {rep.problem}", file=sys.stderr)
    return 0 if rep.intact else 1


def register(sub) -> None:
    p = sub.add_parser("audit", help="access audit: who looked at a patient's data; verify the hash chain")
    s = p.add_subparsers(dest="audit_command", metavar="ACTION")
    s.required = True
    w = s.add_parser("who", help="every access to a patient's external data (who, visit, report, when)")
    w.add_argument("--patient", required=True, help="证件类型:证件号码, e.g. 01:450102199001011234 (bare number = 01)")
    w.add_argument("--since", default=None, help="only events from this time (YYYY-MM-DD[THH:MM], Asia/Shanghai)")
    w.add_argument("--db", default=None, help="front-end database URL (default: HIPBRIDGE_FRONTEND_URL or embedded)")
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=_who)
    v = s.add_parser("verify", help="recompute the hash chain; exit 1 when an event was changed or deleted")
    v.add_argument("--db", default=None)
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_verify)

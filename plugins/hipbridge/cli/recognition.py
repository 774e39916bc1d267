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


DEMO_ORDERS = [("o-1", "GGN"), ("o-2", "DJZ"), ("o-3", "XCG")]   # 肝功能, 电解质 (recognisable), 血常规 (no window)


def demo_request(visit: dict, orders=DEMO_ORDERS) -> dict:
    """A CDS Hooks order-select request for a demo visit (`hipbridge display demo` wrote it)."""
    entries = [{"resource": {"resourceType": "ServiceRequest", "id": oid, "status": "draft", "intent": "order",
                             "category": [{"coding": [{"code": "laboratory"}]}], "code": {"coding": [{"code": code}]}}}
               for oid, code in orders]
    return {"hook": "order-select", "hookInstance": "demo",
            "context": {"userId": f"Practitioner/{visit['doctorId']}", "patientId": visit["patientId"],
                        "encounterId": visit["visitId"], "draftOrders": {"resourceType": "Bundle", "entry": entries},
                        "selections": [f"ServiceRequest/{oid}" for oid, _ in orders]}}


def _demo(args) -> int:
    import httpx

    from hipbridge.demo.external import demo_file
    from hipbridge.recognition.catalog import recognition_config

    path = demo_file()
    if not path.exists():
        print(f"{path}: 没有演示数据, 先运行 make demo (hipbridge display demo)", file=sys.stderr)
        return 2
    demo = json.loads(path.read_text(encoding="utf-8"))
    base = (args.url or demo["url"]).rstrip("/")
    service = recognition_config().cfg.cds.services["order-select"].id
    headers = {"Authorization": f"Bearer {demo['token']}"}
    shown = 0
    with httpx.Client(base_url=base, trust_env=False, timeout=30, headers=headers) as h:
        for visit in demo["visits"]:
            body = demo_request(visit)
            try:
                r = h.post(f"/cds-services/{service}", json=body)
            except httpx.HTTPError as exc:
                print(f"{base}: 外院数据展示服务未运行 ({type(exc).__name__}); 先运行 hipbridge display serve "
                      f"--simulate-platform", file=sys.stderr)
                return 2
            cards = r.json().get("cards", [])
            print(f"就诊 {visit['visitId']} 患者 {visit['name']} 医生 {visit['doctorId']}: 开单 "
                  f"{', '.join(code for _, code in DEMO_ORDERS)} → {len(cards)} 张互认提醒卡片")
            for c in cards:
                x = c["extension"]["hipbridge"]
                print(f"  [{c['indicator']}] {c['summary']}  (报告号 {x['reportNo']}, remindId {x['remindId']})")
            if cards and not shown:
                shown += 1
                launch = h.post("/shared/launch", json={
                    "orgCode": demo.get("orgCode") or _org(), "visitId": visit["visitId"],
                    "patientId": visit["patientId"], "doctorId": visit["doctorId"], "purpose": "RECOGNIZE",
                    "orders": [{"orderId": oid, "hisItemId": code, "kind": "lab"} for oid, code in DEMO_ORDERS]})
                if launch.status_code == 201:
                    print(f"  提醒页面 (一次性链接, 120 秒内在浏览器打开): {base}/shared/remind?t={launch.json()['launchToken']}")
                print("  同一请求的 curl:")
                print(f"  curl -s -H 'Authorization: Bearer {demo['token']}' -H 'Content-Type: application/json' "
                      f"{base}/cds-services/{service} -d '{json.dumps(body, ensure_ascii=False)}'")
            if shown and not args.all:
                break
    return 0 if shown else 1


def _org() -> str:
    from hipbridge.settings import org_code
    from hipbridge.spec import load_specs

    return org_code(load_specs().defaults)


def register(sub) -> None:
    p = sub.add_parser("recognition", help="检查检验结果互认: monthly KPI, the demo's reminder")
    s = p.add_subparsers(dest="recognition_command", metavar="ACTION")
    s.required = True
    k = s.add_parser("kpi", help="reminded, recognised, not recognised by reason, 互认率 (98/99 excluded)")
    k.add_argument("--month", required=True, help="YYYY-MM (Asia/Shanghai)")
    k.add_argument("--db", default=None, help="front-end database URL (default: HIPBRIDGE_FRONTEND_URL or embedded)")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=_kpi)
    d = s.add_parser("demo", help="make demo's patients: order-select against the running display service, "
                                  "the cards, the reminder page link and the equivalent curl")
    d.add_argument("--url", default=None, help="the display service (default: the demo's, config/display.yaml)")
    d.add_argument("--all", action="store_true", help="every demo visit, not only the first with a reminder")
    d.set_defaults(func=_demo)

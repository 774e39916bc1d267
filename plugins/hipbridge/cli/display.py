"""`hipbridge display serve | demo | open`: the external data page (外院数据展示) for the doctor workstation."""

from __future__ import annotations

import json
import os
import sys

from hipbridge.settings import org_code


def _serve(args) -> int:
    import uvicorn

    from hipbridge.display.config import display_config
    from hipbridge.sharing.service import Lifecycle
    from hipbridge.workstation.service import DisplayService

    cfg = display_config()
    host, port = args.host or cfg.server.host, args.port or cfg.server.port
    if args.workers > 1:   # each process its own audit writer: they meet on the chain tail's row lock

        if args.db:
            os.environ["HIPBRIDGE_FRONTEND_URL"] = args.db
        print(f"外院数据展示: http://{host}:{port}  ({args.workers} worker processes)")
        uvicorn.run("hipbridge.workstation.service:app_from_env", factory=True, host=host, port=port,
                    workers=args.workers, log_level="warning")
        return 0
    life = Lifecycle.open(args.db)
    sim = None
    platform_url = None
    if args.simulate_platform:   # demo: the 调阅记录 uploads go to an in-process simulated platform
        from hipbridge.demo.external import platform_keys
        from hipbridge.demo.simulator import ServerThread, create_app

        sim = ServerThread(create_app(platform_keys(), life.store, clock=life.now)).start()
        platform_url = sim.url
        print(f"模拟省平台: {sim.url}")
    svc = DisplayService.from_lifecycle(life, platform_url=platform_url)
    print(f"外院数据展示: http://{host}:{port}  (POST /shared/launch → /shared/ui?t=…; "
          f"JSON: /shared/timeline, /shared/report/{{kind}}/{{id}})")
    try:
        uvicorn.run(svc.app, host=host, port=port, log_level="warning")
    finally:
        if sim:
            sim.stop()
    return 0


def _demo(args) -> int:
    from hipbridge.demo.external import fill_shared_demo

    out = fill_shared_demo(patients=args.patients)
    print(f"外院数据 (演示): 模拟省平台为 {len(out['visits'])} 位演示患者推送了其他医院的数据, "
          f"核验 {out['batches']} 个批次表")
    for v in out["visits"]:
        print(f"  就诊 {v['visitId']}  患者 {v['patientId']}  医生 {v['doctorId']}")
    print("打开外院数据页面:  hipbridge display serve --simulate-platform &   然后   hipbridge display open")
    return 0


def _open(args) -> int:
    import httpx

    from hipbridge.demo.external import demo_file
    from hipbridge.spec import load_specs

    demo = json.loads(demo_file().read_text(encoding="utf-8")) if demo_file().exists() else {}
    visits = demo.get("visits") or [{}]
    v = next((x for x in visits if x.get("visitId") == args.visit), visits[0]) if args.visit else visits[0]
    visit, patient, doctor = args.visit or v.get("visitId"), args.patient or v.get("patientId"), args.doctor or v.get("doctorId")
    token = args.token or demo.get("token")
    base = (args.url or demo.get("url") or "").rstrip("/")
    if not (visit and patient and doctor and token and base):
        print("需要 --visit --patient --doctor --token --url (或先运行 make demo)", file=sys.stderr)
        return 2
    body = {"orgCode": org_code(load_specs().defaults), "visitId": visit, "patientId": patient, "doctorId": doctor,
            "purpose": args.purpose}
    r = httpx.post(base + "/shared/launch", json=body, headers={"Authorization": f"Bearer {token}"}, trust_env=False,
                   timeout=10)
    if r.status_code != 201:
        print(f"启动失败 HTTP {r.status_code}: {r.text}", file=sys.stderr)
        return 1
    out = r.json()
    print(f"{base}{out['url']}")
    print(f"(一次性链接, {out['expiresIn']} 秒内在浏览器打开; 访问判定: {out['message'] or '允许'})", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("display", help="外院数据展示: the doctor workstation's page of other hospitals' data")
    s = p.add_subparsers(dest="display_command", metavar="ACTION")
    s.required = True
    v = s.add_parser("serve", help="serve the page and its JSON API (config/display.yaml server)")
    v.add_argument("--db", default=None, help="front-end database URL (default: HIPBRIDGE_FRONTEND_URL or embedded)")
    v.add_argument("--host", default=None)
    v.add_argument("--port", type=int, default=None)
    v.add_argument("--workers", type=int, default=1, help="worker processes (default 1; on a 2-core machine 2 measured slower: the audit "
                        "chain's tail row serializes the processes, docs/display.md)")
    v.add_argument("--simulate-platform", action="store_true",
                   help="demo: send 调阅记录 uploads to an in-process simulated platform")
    v.set_defaults(func=_serve)
    d = s.add_parser("demo", help="push other hospitals' data for some demo patients through the simulator")
    d.add_argument("--patients", type=int, default=3)
    d.set_defaults(func=_demo)
    o = s.add_parser("open", help="launch as the doctor workstation would; print the page's one-time URL")
    o.add_argument("--visit", default=None)
    o.add_argument("--patient", default=None)
    o.add_argument("--doctor", default=None)
    o.add_argument("--purpose", default="VIEW", choices=["VIEW", "RECOGNIZE"])
    o.add_argument("--token", default=None, help="a workstation caller token (default: the demo's)")
    o.add_argument("--url", default=None, help="the display service (default: config/display.yaml server)")
    o.set_defaults(func=_open)

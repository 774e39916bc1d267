"""`hipbridge platform …`: keys, the outbox worker, an authorization query, the simulated platform."""

from __future__ import annotations

import json
import sys
import time


def _life(args):
    from hipbridge.sharing.service import Lifecycle

    return Lifecycle.open(getattr(args, "db", None))


def _sim_keys():
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.io.engines import home

    return KeyStore(home() / "platform_sim_keys")


def _keys_init(args) -> int:
    from hipbridge.crypto.keys import KeyStore

    ks = KeyStore()
    for name in ("sign", "enc"):
        ks.sm2(name)
    for name in ("idx", "log"):
        ks.secret(name)
    ks.secret("data", 16)
    print(f"密钥目录 {ks.directory} (开发/演示用; 生产环境由服务器密码机 HSM 保管私钥)")
    print(f"签名公钥 (x‖y): {ks.export_public('sign')}")
    print(f"加密公钥 (x‖y): {ks.export_public('enc')}")
    return 0


def _keys_import(args) -> int:
    from hipbridge.crypto.keys import KeyStore

    ks = KeyStore()
    ks.set_peer("platform_sign", args.sign)
    ks.set_peer("platform_enc", args.enc)
    print(f"已导入省平台公钥到 {ks.directory}")
    return 0


def _keys_demo(args) -> int:
    from hipbridge.crypto.keys import KeyStore, provision_pair

    hospital, platform = KeyStore(), _sim_keys()
    provision_pair(hospital, platform)
    print(f"演示密钥: 医院 {hospital.directory}, 模拟平台 {platform.directory} (公钥已互换)")
    return 0


def _outbox_run(args) -> int:
    life = _life(args)
    client = life.client()
    try:
        while True:
            r = life.drain_outbox(client)
            print(json.dumps({"sent": r.sent, "acked": r.acked, "retry": r.retry, "failed": r.failed,
                              "waiting": r.waiting, "codes": r.codes}, ensure_ascii=False))
            if not args.loop:
                return 1 if r.failed else 0
            time.sleep(args.loop)
    finally:
        client.close()


def _outbox_list(args) -> int:
    from sqlalchemy import select

    life = _life(args)
    ob = life.ops.table("outbox")
    q = select(ob.c.id, ob.c.kind, ob.c.appointment_id, ob.c.status, ob.c.attempts, ob.c.next_retry_at,
               ob.c.last_code, ob.c.last_error).order_by(ob.c.id.desc()).limit(args.limit)
    if args.status:
        q = q.where(ob.c.status == args.status)
    with life.frontend.connect() as conn:
        for r in conn.execute(q):
            print("\t".join("" if v is None else str(v) for v in r))
    return 0


def _query(args) -> int:
    life = _life(args)
    client = life.client()
    try:
        res = client.query({"org_code": life.org_code, "appointment_id": args.appointment})
    finally:
        client.close()
    print(json.dumps({"code": res.code, "msg": res.msg, "data": res.data, "requestId": res.request_id},
                     ensure_ascii=False, indent=2))
    return 0 if res.code == "00000" else 1


def _reconcile(args) -> int:
    life = _life(args)
    client = life.client()
    try:
        r = life.reconcile(client, limit=args.limit)
    finally:
        client.close()
    print(json.dumps({"checked": r.checked, "changed": r.changed, "unreachable": r.unreachable}, ensure_ascii=False))
    return 0


def _simulate(args) -> int:
    import uvicorn

    from hipbridge.demo.simulator import MISBEHAVIOURS, create_app
    from hipbridge.platform.config import sharing_config
    from hipbridge.redact import mask_url

    life = _life(args)
    keys = _sim_keys()
    try:
        keys.peer("hospital_sign")
    except FileNotFoundError:
        print("先运行 `hipbridge platform keys demo` 交换演示密钥", file=sys.stderr)
        return 2
    sim = sharing_config().simulator
    port = args.port or sim.port
    print(f"模拟省平台: http://127.0.0.1:{port}  (回推写入 {mask_url(life.store.url)})")
    if args.misbehave:
        print(f"注意: 模拟平台故意作恶 ({args.misbehave}): {MISBEHAVIOURS[args.misbehave]}")
    uvicorn.run(create_app(keys, life.store, misbehave=args.misbehave), host="127.0.0.1", port=port,
                log_level="info")
    return 0


def register(sub) -> None:
    p = sub.add_parser("platform", help="省平台: 密钥、发件箱、授权查询、模拟平台")
    s = p.add_subparsers(dest="platform_command", metavar="ACTION")
    s.required = True
    k = s.add_parser("keys", help="SM2 / HMAC key folder (stands in for the HSM)")
    ks = k.add_subparsers(dest="keys_command", metavar="ACTION")
    ks.required = True
    ks.add_parser("init", help="create the hospital's keys and print its SM2 public keys").set_defaults(func=_keys_init)
    imp = ks.add_parser("import", help="install the platform's SM2 public keys (x‖y hex)")
    imp.add_argument("--sign", required=True)
    imp.add_argument("--enc", required=True)
    imp.set_defaults(func=_keys_import)
    ks.add_parser("demo", help="keys for the simulated platform, exchanged with ours").set_defaults(func=_keys_demo)
    o = s.add_parser("outbox", help="platform calls waiting in the outbox")
    os_ = o.add_subparsers(dest="outbox_command", metavar="ACTION")
    os_.required = True
    run = os_.add_parser("run", help="send every due call once (or --loop seconds)")
    run.add_argument("--db", default=None, help="front-end database URL (default: HIPBRIDGE_FRONTEND_URL)")
    run.add_argument("--loop", type=float, default=0, help="keep running, sleeping this many seconds between passes")
    run.set_defaults(func=_outbox_run)
    ls = os_.add_parser("list", help="recent outbox rows (no personal data)")
    ls.add_argument("--db", default=None)
    ls.add_argument("--status", choices=["NEW", "SENT", "ACKED", "FAILED"])
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=_outbox_list)
    q = s.add_parser("query", help="AUTH_QUERY one appointment's authorization at the platform")
    q.add_argument("appointment")
    q.add_argument("--db", default=None)
    q.set_defaults(func=_query)
    rc = s.add_parser("reconcile", help="AUTH_QUERY every live authorization; follow revocations made at the platform")
    rc.add_argument("--db", default=None)
    rc.add_argument("--limit", type=int, default=1000)
    rc.set_defaults(func=_reconcile)
    sim = s.add_parser("simulate", help="run the simulated provincial platform on 127.0.0.1 (demo)")
    sim.add_argument("--db", default=None, help="front-end database whose shared store receives pushes")
    sim.add_argument("--port", type=int, default=None)
    sim.add_argument("--misbehave", default=None,
                     choices=["replay", "unsigned_error", "unbound", "impostor"],
                     help="answer wrongly on purpose, to see the hospital refuse it")
    sim.set_defaults(func=_simulate)

"""`hipbridge sharing …`: the booking door, push-back verification, retention / deletion."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path


def _life(args):
    from hipbridge.sharing.service import Lifecycle

    return Lifecycle.open(getattr(args, "db", None))


def _door(args) -> int:
    import uvicorn

    from hipbridge.platform.config import sharing_config

    life = _life(args)
    cfg = sharing_config().door
    host, port = args.host or cfg.host, args.port or cfg.port
    if args.worker:
        def drain() -> None:
            client = life.client()
            while True:
                try:
                    life.drain_outbox(client)
                except Exception as exc:  # noqa: BLE001 - keep the worker alive; the outbox retries
                    print(f"发件箱处理失败: {exc}", file=sys.stderr)
                time.sleep(args.worker)

        threading.Thread(target=drain, daemon=True, name="outbox").start()
    print(f"预约授权入口: http://{host}:{port}  (POST /booking/book | /booking/cancel | /booking/refund | "
          f"/consent/withdraw | /visit/start | /visit/end)")
    uvicorn.run(life.door_app(), host=host, port=port, log_level="info")
    return 0


def _verify(args) -> int:
    life = _life(args)
    rep = life.verify(run_quality=False if args.no_quality else None)
    out = rep.as_dict()
    if args.json:
        Path(args.json).write_text(json.dumps(out, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    rejected = [b for b in rep.batches if b.status == "REJECTED"]
    print(f"回推核验: {len(rep.batches)} 个批次表, 拒收 {len(rejected)}, 质控运行 {rep.quality_run_id or '-'}")
    for b in rep.batches:
        for p in b.problems:
            print(f"  {b.batch_id} {b.table_name} [{p.rule_id}/{p.severity}] {p.message}")
    return 3 if rejected else 0


def _purge(args) -> int:
    life = _life(args)
    kw = {"dry_run": args.dry_run}
    if args.max_share_pct is not None:
        kw["max_share_pct"] = args.max_share_pct
    if args.batch_rows:
        kw["batch_rows"] = args.batch_rows
    reports = [life.purge(**kw)]
    up = life.purge_uploaded(**kw)
    if up is not None:
        reports.append(up)
    for r in reports:
        line = {k: v for k, v in r.as_dict().items()}
        print(json.dumps(line, ensure_ascii=False, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps([r.as_dict() for r in reports], ensure_ascii=False, indent=2,
                                              default=str), encoding="utf-8")
    return 3 if any(r.status != "OK" for r in reports) else 0


def _store_init(args) -> int:
    life = _life(args)
    from hipbridge.redact import mask_url

    print(f"共享库 {mask_url(life.store.url)}: {', '.join(t.name for t in life.store.tables.values())}"
          + (f"; 缺少表规格: {', '.join(life.store.missing)}" if life.store.missing else ""))
    return 0


def register(sub) -> None:
    p = sub.add_parser("sharing", help="共享: 预约授权入口、回推核验、15天删除")
    s = p.add_subparsers(dest="sharing_command", metavar="ACTION")
    s.required = True
    d = s.add_parser("door", help="run the booking system's door (FastAPI)")
    d.add_argument("--db", default=None, help="front-end database URL (default: HIPBRIDGE_FRONTEND_URL)")
    d.add_argument("--host", default=None)
    d.add_argument("--port", type=int, default=None)
    d.add_argument("--worker", type=float, default=0, help="also drain the outbox every N seconds")
    d.set_defaults(func=_door)
    from .door_token import add_arguments

    add_arguments(s.add_parser("door-token", help="same as `hipbridge door-token`"))
    v = s.add_parser("verify", help="verify new pushed batches (exit 3 when a batch is rejected)")
    v.add_argument("--db", default=None)
    v.add_argument("--no-quality", action="store_true", help="skip the quality engine")
    v.add_argument("--json", default=None, help="also write the outcome to this file")
    v.set_defaults(func=_verify)
    g = s.add_parser("purge", help="delete shared data that is due (exit 3 when aborted by the safety cap)")
    g.add_argument("--db", default=None)
    g.add_argument("--dry-run", action="store_true", help="count and log, delete nothing")
    g.add_argument("--max-share-pct", type=float, default=None, help="override the safety cap")
    g.add_argument("--batch-rows", type=int, default=None)
    g.add_argument("--json", default=None)
    g.set_defaults(func=_purge)
    i = s.add_parser("store", help="create the shared store tables")
    i.add_argument("action", choices=["init"])
    i.add_argument("--db", default=None)
    i.set_defaults(func=_store_init)

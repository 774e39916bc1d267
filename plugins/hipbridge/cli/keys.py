"""`hipbridge keys list | rotate`: the key registry and key rotation (docs/密码应用方案.md)."""

from __future__ import annotations

import json
import sys


def _life(args):
    from hipbridge.sharing.service import Lifecycle

    return Lifecycle.open(getattr(args, "db", None))


def _list(args) -> int:
    life = _life(args)
    rows = life.ring.entries()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return 0
    print(f"{'key_id':<14} {'purpose':<8} {'alg':<9} {'provider':<9} {'kcv':<7} {'status':<9} created / activated / "
          f"retired ({life.specs.defaults.timezone})")
    for r in rows:
        times = " / ".join(f"{r[k]:%Y-%m-%d %H:%M}" if r[k] else "-" for k in ("created", "activated", "retired"))
        print(f"{r['key_id']:<14} {r['purpose']:<8} {r['alg']:<9} {r['provider']:<9} {r['kcv']:<7} "
              f"{r['status']:<9} {times}")
    return 0


def _rotate(args) -> int:
    from tqdm import tqdm

    from hipbridge.crypto.config import crypto_config
    from hipbridge.crypto.rotate import rotate

    life = _life(args)
    bar = tqdm(total=0, unit="row", desc=f"rotate {args.purpose}", file=sys.stderr, disable=args.quiet,
               dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    rep = rotate(life, args.purpose, args.batch_rows or crypto_config().rotation.batch_rows, progress)
    bar.close()
    print(f"新密钥 {rep.new_key} 已启用; 重新加密 {sum(rep.rewritten.values())} 行; 停用 {', '.join(rep.retired) or '-'}")
    if rep.tampered:
        print(f"完整性校验失败的行未重新计算 (保留原样): {rep.tampered}", file=sys.stderr)
        return 3
    return 0


def register(sub) -> None:
    p = sub.add_parser("keys", help="密钥: 密钥登记表, 密钥轮换")
    s = p.add_subparsers(dest="keys_command", metavar="ACTION")
    s.required = True
    ls = s.add_parser("list", help="the key registry (never a key itself)")
    ls.add_argument("--db", default=None, help="front-end database URL (default: HIPBRIDGE_FRONTEND_URL)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    r = s.add_parser("rotate", help="new active key, re-encrypt in batches (old keys readable until done), retire")
    r.add_argument("--db", default=None)
    r.add_argument("--purpose", choices=["data", "row"], default="data")
    r.add_argument("--batch-rows", type=int, default=None, help="rows per transaction (config: rotation.batch_rows)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_rotate)

"""`hipbridge keys list | rotate | rotate-kek | destroy`: the key registry, key rotation and destruction (docs/密码应用方案.md)."""

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


def _destroy(args) -> int:
    from hipbridge.crypto.rotate import KeyInUse, destroy

    life = _life(args)
    try:
        destroy(life, args.key_id)
    except KeyInUse as exc:
        print(f"hipbridge keys destroy: {exc}", file=sys.stderr)
        return 2
    print(f"密钥 {args.key_id} 已销毁 (封装的密钥已清除, 以其加密的数据不可恢复)")
    return 0


def _rotate_kek(args) -> int:
    life = _life(args)
    rep = life.ring.rewrap_all(args.purpose)
    print(f"KEK ({rep['purpose']}) 已轮换为 v{rep['kek_version']}; 重新封装 {len(rep['rewrapped'])} 个密钥; 旧 KEK 已删除")
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
    d = s.add_parser("destroy", help="crypto-shred a retired key (refused while any ciphertext or MAC uses it)")
    d.add_argument("key_id")
    d.add_argument("--db", default=None)
    d.set_defaults(func=_destroy)
    k = s.add_parser("rotate-kek", help="new KEK for a purpose, re-wrap its DEKs, delete the old KEK (data unchanged)")
    k.add_argument("--purpose", choices=["data", "row"], default="data")
    k.add_argument("--db", default=None)
    k.set_defaults(func=_rotate_kek)

"""`hipbridge door-token create|list|revoke`: caller tokens with roles for every web endpoint of ours."""

from __future__ import annotations

import json
from datetime import datetime

from hipbridge.settings import hospital_tz


def _store():
    from hipbridge.sharing.callers import CallerStore

    return CallerStore.for_keys()


def _shown(iso: str | None) -> str:
    """A stored UTC instant as the hospital reads it: Asia/Shanghai, zone named."""
    if not iso:
        return "-"

    tz = hospital_tz()
    return datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") + f" ({tz.key})"


def run(args) -> int:
    from hipbridge.sharing.callers import CallerError

    store = _store()
    try:
        if args.action in ("create", "add"):
            if not args.name:
                raise CallerError("缺少调用方名称: hipbridge door-token create NAME --role booking")
            roles = args.role or ["booking"]
            token = store.create(args.name, roles)
            print(f"调用方 {args.name} (角色 {', '.join(sorted(set(roles)))}) 的令牌 (只显示一次, 仅保存其 SM3 散列):")
            print(token)
        elif args.action == "list":
            rows = [r.as_dict() for r in store.list()]
            if args.json:
                print(json.dumps({"callers": rows}, ensure_ascii=False, indent=2))
            else:
                if not rows:
                    print(f"没有调用方 ({store.path})")
                for r in rows:
                    state = f"已吊销 {_shown(r['revoked'])}" if r["revoked"] else "有效"
                    print(f"{r['name']:<24} {','.join(r['roles']):<24} {state:<40} 创建 {_shown(r['created'])}"
                          f"  指纹 {r['fingerprint']}")
        elif args.action == "revoke":
            if not args.name:
                raise CallerError("缺少调用方名称: hipbridge door-token revoke NAME")
            rec = store.revoke(args.name)
            print(f"调用方 {rec.name} 已吊销 ({_shown(rec.revoked)}); 其令牌立即失效")
    except CallerError as exc:
        print(f"hipbridge door-token: error: {exc}")
        return 1
    return 0


def add_arguments(p) -> None:
    from hipbridge.sharing.roles import ROLES  # not .callers: that loads FastAPI for every command's parser

    p.add_argument("action", choices=["create", "add", "list", "revoke"])
    p.add_argument("name", nargs="?", help="caller name, e.g. his-booking, emr-workstation")
    p.add_argument("--role", action="append", choices=sorted(ROLES),
                   help="role of the caller (repeatable): " + "; ".join(f"{k} = {v}" for k, v in ROLES.items()))
    p.add_argument("--json", action="store_true", help="list as JSON")
    p.set_defaults(func=run)


def register(sub) -> None:
    p = sub.add_parser("door-token", help="caller tokens with roles (booking, workstation, admin) for the web endpoints")
    add_arguments(p)

"""`hipbridge profile | doctor | monitor`: the production switch, readiness checks, alerts."""

from __future__ import annotations

import json
import sys
from unicodedata import east_asian_width


def _table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> str:
    def width(s: str) -> int:
        return sum(2 if east_asian_width(ch) in "WF" else 1 for ch in s)

    cols = [max(width(h), *(width(r[i]) for r in rows)) if rows else width(h) for i, h in enumerate(headers)]

    def line(cells) -> str:
        return "  ".join(c + " " * (w - width(c)) for c, w in zip(cells, cols, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in cols]), *(line(r) for r in rows)])


def _profile_show(args) -> int:
    from hipbridge import profiles

    p = profiles.active()
    print(f"当前环境: {p.name} ({p.label})")
    print(f"  平台地址: {p.platform.base_url or '(config/platform.yaml)'}")
    print(f"  机构: {p.institution.code + ' ' + p.institution.name if p.institution else '(table_specs/_defaults.yaml)'}")
    print(f"  密钥: {p.key_provider}")
    print(f"可用环境: {', '.join(profiles.available())}")
    return 0


def _profile_use(args) -> int:
    from hipbridge import profiles

    profile, steps, ok = profiles.use(args.name, confirmed_by=args.confirmed_by)
    print(f"切换到 {profile.name} ({profile.label}) 的检查清单:")
    rows = [("✓" if s.ok else "✗", "人工确认" if s.manual else "自动检查", s.label, s.detail) for s in steps]
    print(_table(rows, ("结果", "类型", "项目", "说明")))
    if ok:
        print(f"\n已切换到 {profile.name}。请运行 `hipbridge doctor` 复核。")
        return 0
    hint = "" if args.confirmed_by else "；人工确认项请在核对后以 --confirmed-by <姓名> 确认"
    print(f"\n未切换：有检查未通过{hint}。", file=sys.stderr)
    return 1


def _doctor(args) -> int:
    from hipbridge.monitor.doctor import failed, run_doctor

    only = set(args.only.split(",")) if args.only else None
    checks = run_doctor(args.db, only=only)
    if args.json:
        print(json.dumps({"ok": not failed(checks), "checks": [c.as_dict() for c in checks]},
                         ensure_ascii=False, indent=2))
    else:
        print(_table([(c.area, c.name, c.status, c.detail) for c in checks], ("范围", "检查项", "结果", "说明")))
    return 1 if failed(checks) else 0


def _monitor(args) -> int:
    from hipbridge.monitor.alerts import run_monitor

    report = run_monitor(args.db, send_alerts=not args.dry_run)
    if args.json:
        print(json.dumps({"active": [a.__dict__ for a in report.active], "sent": report.sent,
                          "resolved": report.resolved, "errors": report.errors}, ensure_ascii=False, indent=2))
    else:
        rows = [(a.severity, a.title, a.detail[:80], "已发送" if a.key in report.sent else "") for a in report.active]
        print(_table(rows, ("级别", "告警", "说明", "本轮")) if rows else "无告警")
        for key in report.resolved:
            print(f"已恢复: {key}")
        for err in report.errors:
            print(f"发送失败: {err}", file=sys.stderr)
    return 1 if report.errors else 0


def register(sub) -> None:
    p = sub.add_parser("profile", help="deployment profiles (test / production) and the production switch")
    ps = p.add_subparsers(dest="action", required=True)
    show = ps.add_parser("show", help="the active profile")
    show.set_defaults(func=_profile_show)
    use = ps.add_parser("use", help="switch profile after its checklist passes")
    use.add_argument("name")
    use.add_argument("--confirmed-by", help="who checked the manual items of the checklist")
    use.set_defaults(func=_profile_use)

    d = sub.add_parser("doctor", help="check sources, SQL, front-end, platform, Airflow and disk (中文表格)")
    d.add_argument("--db", help="front-end database URL (default HIPBRIDGE_FRONTEND_URL or the embedded default)")
    d.add_argument("--only", help="comma-separated areas: profile,specs,sources,frontend,platform,airflow,disk")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_doctor)

    m = sub.add_parser("monitor", help="evaluate alert rules and send alerts (webhook, e-mail)")
    ms = m.add_subparsers(dest="action", required=True)
    chk = ms.add_parser("check", help="one round: evaluate, announce new / due / cleared alerts")
    chk.add_argument("--db", help="front-end database URL")
    chk.add_argument("--dry-run", action="store_true", help="evaluate only, send nothing")
    chk.add_argument("--json", action="store_true")
    chk.set_defaults(func=_monitor)

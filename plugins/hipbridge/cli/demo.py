"""`hipbridge demo init | run`: build the demo hospital (HIS, LIS, PACS as SQLite); run it end to end.

Other demo actions are added in `_actions` with one `s.add_parser(...)` block each.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path


def _init(args) -> int:
    from hipbridge.demo import build  # numpy/pandas/Faker only when the command runs
    from hipbridge.io.engines import home

    out = Path(args.out) if args.out else home() / "demo"
    end = date.fromisoformat(args.end_date) if args.end_date else None
    summary = build(out, seed=args.seed, days=args.days, scale=args.scale, end_date=end, register=True)
    w = summary["window"]
    print(f"演示医院数据已生成: {out}")
    if out.resolve() == (home() / "demo").resolve():  # the demo's own sources: start its front-end again
        from hipbridge.demo.build import reset_demo_frontend

        reset = reset_demo_frontend()
        if reset:
            print(f"  演示前置机及其运行状态已重置（删除 {', '.join(p.name for p in reset)}）")
        elif reset is None:
            print("  HIPBRIDGE_FRONTEND_URL 已设置：该前置机未重置，请以 hipbridge run all --full 重新上传")
    print(f"  覆盖 {w['start']} … {w['end']}（{w['days']} 天）, scale={w['scale']}, seed={w['seed']}")
    for system in ("his", "lis", "pacs"):
        counts = summary[system]
        print(f"\n{system}.db  ({sum(counts.values()):,} 行)")
        width = max(len(t) for t in counts)
        for table, n in counts.items():
            print(f"  {table:<{width}}  {n:>10,}")
    t = summary["timings"]
    print(f"\n用时 {t['total_s']} s（生成 {t['events_s']} s, 整理 {t['frames_s']} s, 写入 {t['write_s']} s）")
    return 0


def _run(args) -> int:
    from hipbridge.demo.run import run_demo

    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    return run_demo(days=args.days, scale=args.scale, seed=args.seed, tables=tables)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return value


def _scale(text: str) -> float:
    value = float(text)
    if not 0 < value <= 5:
        raise argparse.ArgumentTypeError(f"expected a scale in (0, 5], got {text!r}")
    return value


def _iso_date(text: str) -> str:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None
    return text


def _actions(p: argparse.ArgumentParser):
    """The `demo` actions; add another with one more `s.add_parser(...)` block."""
    s = p.add_subparsers(dest="demo_command", metavar="ACTION")
    s.required = True
    i = s.add_parser("init", help="build the demo HIS/LIS/PACS SQLite files and print their row counts")
    i.add_argument("--out", default=None, help="output folder (default: $HIPBRIDGE_HOME/demo)")
    i.add_argument("--seed", type=int, default=7, help="random seed; the same seed and end date give the same data")
    i.add_argument("--days", type=_positive_int, default=3, help="calendar days of data ending at --end-date")
    i.add_argument("--scale", type=_scale, default=0.02,
                   help="1 ≈ 6,000 outpatient visits, 300 admissions, 300,000 charge lines a day")
    i.add_argument("--end-date", default=None, type=_iso_date,
                   help="last covered day YYYY-MM-DD (default: yesterday in Asia/Shanghai)")
    i.set_defaults(func=_init)
    r = s.add_parser("run", help="build the demo, create the front-end, run every table DAG through Airflow")
    r.add_argument("--seed", type=int, default=7, help="random seed")
    r.add_argument("--days", type=_positive_int, default=3, help="calendar days of demo data")
    r.add_argument("--scale", type=_scale, default=0.02, help="1 ≈ one day of a large (三甲) hospital")
    r.add_argument("--tables", default=None, help="comma-separated table ids to run (default: every table)")
    r.set_defaults(func=_run)
    return s


def register(sub) -> None:
    p = sub.add_parser("demo", help="the demo hospital (演示医院): build its HIS/LIS/PACS sources, run it end to end")
    _actions(p)

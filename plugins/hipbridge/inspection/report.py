"""Build, render and store the weekly 巡检报告: HTML (inline SVG charts, no external file) and XLSX.

`write_inspection()` is what the CLI (`hipbridge inspection report`) and the weekly DAG call.
Files: `inspection_<week>_<local time>_UTC+0800.html|xlsx`; the week's figures and configuration
hashes go to the ops schema, where next week's report finds them for the drift and the trend.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from hipbridge.io.engines import PROJECT_ROOT, home
from hipbridge.reporting import ReportClock
from hipbridge.reporting.charts import bar_chart, line_chart
from hipbridge.reporting.page import environment
from hipbridge.reporting.xlsx import ReportBook
from hipbridge.settings import ops_schema_name, org_code, org_name
from hipbridge.spec import SpecSet

from . import collect
from .advice import recommendations
from .config import InspectionConfig, load_inspection_config
from .drift import combined_hash, compare, config_hashes
from .store import past_reports, previous_report, save_report

# openpyxl (the workbook) loads only when the XLSX is written.

TEMPLATES = Path(__file__).parent / "templates"
SECTIONS = [("advice", "一、巡检结论与整改建议"), ("runs", "二、运行情况"), ("volumes", "三、数据量"),
            ("quality", "四、数据质量趋势"), ("errors", "五、错误与隔离"), ("sharing", "六、平台交互与授权"),
            ("deletions", "七、数据删除证明"), ("drift", "八、配置漂移"), ("health", "九、数据库与磁盘"),
            ("notes", "十、说明")]


def _drift(engine: Engine, schema: str, week: collect.Week, cfg: InspectionConfig, root: Path) -> dict[str, Any]:
    files = config_hashes(root, cfg.watched)
    prev = previous_report(engine, schema, week.label)
    return {"files": files, "hash": combined_hash(files), "previous_week": prev and prev["week"],
            "previous_hash": prev and prev["config_hash"],
            "changes": compare(files, prev["config_files"] if prev else None), "watched": list(cfg.watched)}


def _weekly_volumes(engine: Engine, schema: str, week: collect.Week, cfg: InspectionConfig,
                    published: int) -> dict[str, int | None]:
    """Rows published per week: stored summaries of earlier reports, then this week."""
    trend: dict[str, int | None] = {week.shifted(-k).label: None for k in range(cfg.trend_weeks - 1, 0, -1)}
    for r in past_reports(engine, schema, week.label, cfg.trend_weeks):
        if r["week"] in trend:
            trend[r["week"]] = r["summary"].get("published")
    trend[week.label] = published
    return trend


def _charts(d: dict[str, Any]) -> dict[str, str]:
    daily = d["runs"]["daily"]
    q = d["quality"]["trend"]
    vols = d["weekly_volumes"]
    return {
        "daily_batches": bar_chart({k: v["batches"] for k, v in daily.items()}, unit=" 批"),
        "daily_published": bar_chart({k: v["published"] for k, v in daily.items()}, unit=" 行"),
        "weekly_published": bar_chart({k: (v or 0) for k, v in vols.items()}, unit=" 行", highlight_zero=False),
        "quality_trend": line_chart({"总体得分": list(q.values())}, list(q),
                                    y_min=max(0.0, min([v for v in q.values() if v is not None] or [10]) // 10 * 10 - 10)),
    }


def collect_week(engine: Engine, specs: SpecSet, week_label: str | None = None, *, cfg: InspectionConfig | None = None,
                 root: Path = PROJECT_ROOT, now: datetime | None = None,
                 disks: dict[str, Path] | None = None) -> dict[str, Any]:
    """Everything the report shows for one ISO week (default: the week holding yesterday)."""
    cfg = cfg or load_inspection_config()
    clock = ReportClock(specs.defaults.timezone)
    now = clock.local(now) if now else clock.now()
    week = collect.parse_week(week_label, now)
    schema = ops_schema_name(specs.defaults, engine)
    labels = {tid: s.label for tid, s in specs.specs.items()}
    d: dict[str, Any] = {"week": week, "now": now, "clock": clock, "schema": schema}
    d["runs"] = collect.runs(engine, schema, week, labels)
    d["tables"] = collect.table_state(engine, schema, specs, week)
    d["quarantine"] = collect.quarantine(engine, schema, week, labels)
    d["alerts"] = collect.alerts(engine, schema, week)
    d["quality"] = collect.quality(engine, schema, week, cfg.trend_weeks)
    d["sharing"] = collect.sharing(engine, schema, week)
    d["deletions"] = collect.deletions(engine, schema, week)
    d["drift"] = _drift(engine, schema, week, cfg, root)
    d["database"] = collect.database_health(engine, schema)
    d["disks"] = collect.disk_health(disks or {"hipbridge 工作目录": home()})
    d["weekly_volumes"] = _weekly_volumes(engine, schema, week, cfg, d["runs"]["total"].get("published", 0))
    d["advice"] = recommendations(d, cfg.thresholds)
    d["thresholds"] = cfg.thresholds
    return d


def summary(d: dict[str, Any]) -> dict[str, Any]:
    """The headline figures stored with the week (next week's trend reads `published`)."""
    t = d["runs"]["total"]
    last = d["quality"].get("last") or {}
    return {"batches": t.get("batches", 0), "failed": t.get("failed", 0), "published": t.get("published", 0),
            "quarantined": t.get("quarantined", 0), "overall": last.get("overall"),
            "advice": {lvl: sum(1 for a in d["advice"] if a["level"] == lvl) for lvl in ("严重", "注意", "提示")}}


def context(d: dict[str, Any], specs: SpecSet) -> dict[str, Any]:
    clock, week = d["clock"], d["week"]
    return {**d, "title": f"每周巡检报告 {week.label}", "sections": SECTIONS, "zone": clock.zone_label,
            "org_code": org_code(specs.defaults), "org_name": org_name(specs.defaults),
            "generated": clock.fmt(d["now"]), "period": f"{week.start:%Y-%m-%d} 至 {week.end - timedelta(days=1):%Y-%m-%d}",
            "as_of": clock.fmt(week.as_of), "charts": _charts(d), "summary": summary(d)}


def render_html(ctx: dict[str, Any]) -> str:
    env = environment(TEMPLATES)
    env.filters["t"] = lambda v: ctx["clock"].fmt(v, zone=False) if v else "—"
    env.filters["size"] = _size
    return env.get_template("weekly.html.j2").render(**ctx)


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def write_xlsx(ctx: dict[str, Any], path: Path) -> None:
    from .workbook import fill

    book = ReportBook(ctx["clock"])
    fill(book, ctx)
    book.save(path)


def write_inspection(engine: Engine, specs: SpecSet, out_dir: Path | None = None, week: str | None = None, *,
                     cfg: InspectionConfig | None = None, root: Path = PROJECT_ROOT, now: datetime | None = None,
                     disks: dict[str, Path] | None = None, store: bool = True) -> dict[str, Any]:
    """Collect the week, write HTML + XLSX, store the week's summary and hashes; return paths and figures."""
    out_dir = out_dir or home() / "reports"
    d = collect_week(engine, specs, week, cfg=cfg, root=root, now=now,
                     disks=disks or {"hipbridge 工作目录": home(), "报告目录": out_dir})
    ctx = context(d, specs)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"inspection_{d['week'].label}_{d['clock'].stamp(d['now'])}"
    html_path, xlsx_path = out_dir / f"{stem}.html", out_dir / f"{stem}.xlsx"
    html_path.write_text(render_html(ctx), encoding="utf-8")
    write_xlsx(ctx, xlsx_path)
    if store:
        save_report(engine, d["schema"], d["week"].label, d["now"], d["drift"]["hash"], d["drift"]["files"],
                    ctx["summary"], str(html_path), str(xlsx_path))
    return {"html": html_path, "xlsx": xlsx_path, "week": d["week"].label, "generated": ctx["generated"],
            "summary": ctx["summary"], "advice": d["advice"], "drift": d["drift"]["changes"]}

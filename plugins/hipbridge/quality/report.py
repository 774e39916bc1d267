"""数据质量评估报告: HTML (Jinja2, inline SVG charts, no CDN) and an XLSX export, laid out like the province's.

Sections (quality.md §7): 概述, 总体得分, 数据集明细, 数据元明细, 及时性分析, 问题清单 (with 整改建议),
趋势 over past report runs (read from the ops schema). The report shows sample KEYS only.
"""

from __future__ import annotations

import contextlib
import html
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Engine

from hipbridge.settings import ops_schema_name, org_code, org_name
from hipbridge.spec import SpecSet

from .check import RunOutcome, period_volume
from .config import QualityConfig
from .engine import FAILED, STATUS_LABELS

SEVERITY_LABELS = {"fatal": "致命", "error": "错误", "warning": "警告", "info": "提示"}
COLUMN_TEMPLATES = {"C01": "完整率", "S01": "值域符合率", "S02": "代码名称一致率", "S03": "身份证校验",
                    "S04": "格式符合率", "S05": "精度符合率", "S06": "长度符合率", "S07": "手机号符合率",
                    "S08": "区划代码符合率", "S09": "字典符合率", "P04": "范围合理率", "P05": "范围合理率", "P02": "非未来时间率"}
PALETTE = ["#1f6fb2", "#d9534f", "#5cb85c", "#f0ad4e", "#8e44ad", "#16a085", "#7f8c8d", "#c0392b"]


# ---------------------------------------------------------------- inline SVG charts


def line_chart(series: dict[str, list[float | None]], labels: list[str], width: int = 760, height: int = 260,
               y_min: float = 0, y_max: float = 100, target: float | None = None) -> str:
    """A self-contained SVG line chart (no scripts, no external files)."""
    left, right, top, bottom = 46, 150, 14, 40
    w, h = width - left - right, height - top - bottom
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (w * i / (n - 1) if n > 1 else w / 2)

    def y(v: float) -> float:
        return top + h - (h * (v - y_min) / ((y_max - y_min) or 1))

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img">')]
    for k in range(5):
        v = y_min + (y_max - y_min) * k / 4
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + w}" y2="{y(v):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:g}</text>')
    if target is not None:
        out.append(f'<line x1="{left}" y1="{y(target):.1f}" x2="{left + w}" y2="{y(target):.1f}" '
                   f'stroke="#d9534f" stroke-dasharray="4 3"/>')
    step = max(1, n // 8)
    for i, lab in enumerate(labels):
        if i % step == 0 or i == n - 1:
            out.append(f'<text x="{x(i):.1f}" y="{top + h + 16}" font-size="10" text-anchor="middle">'
                       f'{html.escape(lab)}</text>')
    for si, (name, vals) in enumerate(series.items()):
        color = PALETTE[si % len(PALETTE)]
        pts = [(x(i), y(v)) for i, v in enumerate(vals) if v is not None]
        if len(pts) > 1:
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                       + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
        for a, b in pts:
            out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>')
        ly = top + 14 + 16 * si
        out.append(f'<rect x="{left + w + 12}" y="{ly - 9}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{left + w + 26}" y="{ly}" font-size="12">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(values: dict[str, int], width: int = 760, height: int = 220, highlight_zero: bool = True) -> str:
    left, top, bottom = 46, 14, 40
    w, h = width - left - 14, height - top - bottom
    n = max(len(values), 1)
    vmax = max(list(values.values()) + [1])
    bw = w / n
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img">'),
           f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#999"/>',
           f'<text x="{left - 6}" y="{top + 10}" font-size="11" text-anchor="end">{vmax}</text>']
    step = max(1, n // 10)
    for i, (lab, v) in enumerate(values.items()):
        bh = h * v / vmax
        color = "#d9534f" if (highlight_zero and v == 0) else "#1f6fb2"
        out.append(f'<rect x="{left + i * bw + 1:.1f}" y="{top + h - bh:.1f}" width="{max(bw - 2, 1):.1f}" '
                   f'height="{max(bh, 0 if v else 2):.1f}" fill="{color}"><title>{html.escape(lab)}: {v}</title></rect>')
        if i % step == 0:
            out.append(f'<text x="{left + i * bw + bw / 2:.1f}" y="{top + h + 16}" font-size="10" '
                       f'text-anchor="middle">{html.escape(lab[5:] if len(lab) == 10 else lab)}</text>')
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------- report data


def _batches(engine: Engine, schema: str, since: datetime) -> dict[str, int]:
    """上传批次数, 接收 / 入库 / 拒收 records from the pipeline's batch log (when there is one)."""
    from hipbridge.io.ops import ops_for

    out = {"batches": 0, "extracted": 0, "published": 0, "quarantined": 0, "blocked": 0}
    try:
        if "batch_log" not in inspect(engine).get_table_names(schema=schema):
            return out
        bl = ops_for(schema).table("batch_log")
        with engine.connect() as conn:
            row = conn.execute(select(func.count(), func.sum(bl.c.extracted), func.sum(bl.c.published),
                                      func.sum(bl.c.quarantined)).where(bl.c.started_at >= since)).one()
            blocked = conn.execute(select(func.count()).where(bl.c.started_at >= since, bl.c.status == "blocked")
                                   .select_from(bl)).scalar()
        out.update(batches=int(row[0] or 0), extracted=int(row[1] or 0), published=int(row[2] or 0),
                   quarantined=int(row[3] or 0), blocked=int(blocked or 0))
    except Exception as exc:  # noqa: BLE001 - a database that is not ours has no batch log
        out["note"] = f"{type(exc).__name__}"
    return out


def _floor(series: dict[str, list[float | None]]) -> float:
    """Lower bound of the y axis: 10 below the lowest value, in steps of 10 (a 0–100 axis hides changes)."""
    vals = [v for vs in series.values() for v in vs if v is not None]
    return max(0.0, (min(vals) // 10) * 10 - 10) if vals else 0.0


def _pct(v: float | None) -> str:
    """Rounded DOWN to 0.01 %: 99.9999 % must not show as 100.00 % beside a 100 % 达标线."""
    if v is None:
        return "—"
    return f"{math.floor(v * 100 + 1e-9) / 100:.2f}%"


def build_context(engine: Engine, specs: SpecSet, outcome: RunOutcome, cfg: QualityConfig,
                  days: int = 30) -> dict[str, Any]:
    from .store import past_runs

    schema = ops_schema_name(specs.defaults, engine)
    scoring = cfg.scoring
    scores = outcome.scores
    now = outcome.finished
    since = now - timedelta(days=days)
    runs: list[dict[str, Any]] = []
    with contextlib.suppress(Exception):   # trend is optional when the ops schema cannot be read
        runs = past_runs(engine, schema, kind="report", limit=int(scoring.get("trend_runs", 30)))
    if not any(r["run_id"] == outcome.run_id for r in runs):
        runs.append({"run_id": outcome.run_id, "started_at": outcome.started, "overall": scores.get("overall"),
                     "scores": scores})
    previous = next((r for r in reversed(runs[:-1]) if r.get("overall") is not None), None)
    labels = [f"{r['started_at']:%m-%d %H:%M}" if isinstance(r["started_at"], datetime) else str(r["started_at"])[5:16]
              for r in runs]
    dims = list(scoring.get("dimensions", {}))
    overall_series = {"总体得分": [r.get("overall") for r in runs]}
    dim_series = {d: [((r.get("scores") or {}).get("dimensions") or {}).get(d, {}).get("rate") for r in runs]
                  for d in dims}
    trend_overall = line_chart(overall_series, labels, y_min=_floor(overall_series),
                               target=float(max(g["min"] for g in scoring.get("grades", [{"min": 0}]))))
    trend_dims = line_chart(dim_series, labels, y_min=_floor(dim_series))
    labels_by_table = {tid: s.label for tid, s in specs.specs.items()}
    col_labels: dict[tuple[str, str], str] = {}
    for tid, s in specs.specs.items():
        for c in s.columns:
            col_labels[(tid, c.name)] = c.label
        for a in specs.defaults.audit_columns:
            col_labels[(tid, a.name)] = a.label
    results = outcome.results
    # 数据集明细
    datasets = []
    for tid in outcome.tables:
        t = scores["tables"].get(tid, {})
        datasets.append({"id": tid, "label": labels_by_table.get(tid, tid), "target": t.get("target"),
                         "score": t.get("score"), "grade": t.get("grade"), "dims": t.get("dimensions", {}),
                         "rules": t.get("rules"), "failed": t.get("failed"), "na": t.get("not_applicable"),
                         "errors": t.get("errors")})
    # 数据元明细: one row per column with its rates by template
    elements: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        if r.template not in COLUMN_TEMPLATES or not r.columns:
            continue
        key = (r.table, r.columns[0])
        e = elements.setdefault(key, {"table": labels_by_table.get(r.table, r.table), "target": r.target,
                                      "column": r.columns[0], "label": col_labels.get(key, r.columns[0]),
                                      "rates": {}, "dimension": {}})
        rate = None if r.status not in ("Passed", "Failed") or not r.denominator else \
            100.0 * (1 - (r.violated or 0) / r.denominator)
        e["rates"][COLUMN_TEMPLATES[r.template]] = {"rate": rate, "n": r.denominator, "bad": r.violated,
                                                    "status": r.status}
        e["dimension"][COLUMN_TEMPLATES[r.template]] = r.dimension
    element_cols = [c for c in dict.fromkeys(COLUMN_TEMPLATES.values())
                    if any(c in e["rates"] for e in elements.values())]
    dim_targets = {d: float(m.get("target", 0)) for d, m in scoring.get("dimensions", {}).items()}
    # 问题清单
    issues = sorted((r for r in results if r.status in (FAILED, "Error")),
                    key=lambda r: (["fatal", "error", "warning", "info"].index(r.severity)
                                   if r.severity in ("fatal", "error", "warning", "info") else 9,
                                   -(r.pct or 0)))
    # 及时性
    timeliness = []
    volumes = period_volume(engine, specs, outcome.tables, days=days, now=now)
    for tid in outcome.tables:
        tl = scores.get("timeliness", {}).get(tid)
        t01 = next((r for r in results if r.table == tid and r.template == "T01"), None)
        if not tl and not t01:
            continue
        timeliness.append({"label": labels_by_table.get(tid, tid), "target": t01.target if t01 else tid,
                           "event": col_labels.get((tid, (tl or {}).get("event", "")), (tl or {}).get("event")),
                           "buckets": (tl or {}).get("buckets", {}),
                           "rate": None if not t01 or not t01.denominator else
                           100.0 * (1 - (t01.violated or 0) / t01.denominator),
                           "status": t01.status if t01 else None})
    days_list = [(since + timedelta(days=i + 1)).strftime("%Y-%m-%d") for i in range(days)]
    daily = {d: sum(v.get(d, 0) for v in volumes.values()) for d in days_list}
    gap_days = {tid: [d for d in days_list if d not in v] for tid, v in volumes.items() if v}
    return {
        "title": "数据质量评估报告", "generated": now.strftime("%Y-%m-%d %H:%M:%S"),
        "period": f"{since:%Y-%m-%d} 至 {now:%Y-%m-%d}", "org_code": org_code(specs.defaults),
        "org_name": org_name(specs.defaults), "run_id": outcome.run_id, "database": outcome.extra.get("database"),
        "overall": scores.get("overall"), "grade": scores.get("grade"),
        "previous": previous, "delta": None if not previous or scores.get("overall") is None
        else round(scores["overall"] - previous["overall"], 2),
        "batches": _batches(engine, schema, since),
        "dims": scores.get("dimensions", {}), "dim_names": dims, "dim_targets": dim_targets,
        "datasets": datasets, "elements": list(elements.values()), "element_cols": element_cols,
        "issues": issues, "timeliness": timeliness, "bucket_names": next(
            (list(t["buckets"]) for t in timeliness if t["buckets"]), []),
        "daily_chart": bar_chart(daily), "gap_days": gap_days, "labels_by_table": labels_by_table,
        "trend_overall": trend_overall, "trend_dims": trend_dims, "runs": len(runs),
        "results": results, "status_labels": STATUS_LABELS, "severity_labels": SEVERITY_LABELS,
        "pct": _pct, "rule_count": len(results),
        "failed_count": sum(1 for r in results if r.status == FAILED),
        "na_count": sum(1 for r in results if r.status == "Not Applicable"),
        "error_count": sum(1 for r in results if r.status == "Error"),
    }


def render_html(ctx: dict[str, Any]) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["samples"] = lambda s: "; ".join(",".join(f"{v}" for v in d.values()) for d in (s or []))
    return env.get_template("report.html.j2").render(**ctx)


def write_xlsx(ctx: dict[str, Any], path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    red = PatternFill("solid", fgColor="F8D7DA")
    bold = Font(bold=True)
    wb = Workbook()

    def sheet(title: str, header: list[str], rows: list[list[Any]], first: bool = False):
        ws = wb.active if first else wb.create_sheet()
        ws.title = title
        ws.append(header)
        for c in ws[1]:
            c.font = bold
        for r in rows:
            ws.append(r)
        for i, _ in enumerate(header, start=1):
            ws.column_dimensions[ws.cell(1, i).column_letter].width = 16
        ws.freeze_panes = "A2"
        return ws

    b = ctx["batches"]
    sheet("概述", ["项目", "值"], [
        ["评估周期", ctx["period"]], ["医疗机构代码", ctx["org_code"]], ["医疗机构名称", ctx["org_name"]],
        ["上传批次数", b["batches"]], ["接收记录数", b["extracted"]], ["入库记录数", b["published"]],
        ["拒收(隔离)记录数", b["quarantined"]], ["被拦截批次数", b["blocked"]],
        ["总得分", ctx["overall"]], ["等级", ctx["grade"]], ["与上期对比", ctx["delta"]],
        ["规则数", ctx["rule_count"]], ["未通过", ctx["failed_count"]], ["不适用", ctx["na_count"]],
        ["执行错误", ctx["error_count"]], ["运行编号", ctx["run_id"]], ["生成时间", ctx["generated"]]], first=True)
    ws = sheet("总体得分", ["维度", "检查记录数", "问题记录数", "合格率(%)", "权重", "得分", "达标线(%)", "是否达标"],
               [[d, v["checked"], v["violated"], v["rate"], v["weight"], v["score"], v["target"],
                 "—" if v["met"] is None else ("是" if v["met"] else "否")] for d, v in ctx["dims"].items()])
    for row in ws.iter_rows(min_row=2):
        if row[7].value == "否":
            for c in row:
                c.fill = red
    sheet("数据集明细", ["表名", "物理表名", "得分", "等级", *ctx["dim_names"], "规则数", "未通过", "不适用", "执行错误"],
          [[d["label"], d["target"], d["score"], d["grade"], *[d["dims"].get(x) for x in ctx["dim_names"]],
            d["rules"], d["failed"], d["na"], d["errors"]] for d in ctx["datasets"]])
    cols = ctx["element_cols"]
    sheet("数据元明细", ["表名", "字段名", "数据元名称", *[f"{c}(%)" for c in cols]],
          [[e["table"], e["column"], e["label"], *[(e["rates"].get(c) or {}).get("rate") for c in cols]]
           for e in ctx["elements"]])
    sheet("及时性分析", ["表名", "事件时间", "按时率(%)", *ctx["bucket_names"]],
          [[t["label"], t["event"], t["rate"], *[t["buckets"].get(k) for k in ctx["bucket_names"]]]
           for t in ctx["timeliness"]])
    sheet("问题清单", ["规则编号", "规则描述", "表名", "物理表名", "字段", "维度", "严重程度", "状态", "问题数",
                     "检查数", "问题率(%)", "阈值(%)", "示例记录主键", "整改建议"],
          [[r.rule_id, r.message, ctx["labels_by_table"].get(r.table, r.table), r.target, ",".join(r.columns),
            r.dimension, SEVERITY_LABELS.get(r.severity, r.severity), STATUS_LABELS.get(r.status, r.status),
            r.violated, r.denominator, r.pct, r.threshold,
            "; ".join(",".join(str(v) for v in s.values()) for s in r.samples) or (r.error or ""), r.advice]
           for r in ctx["issues"]])
    sheet("规则结果", ["规则编号", "模板", "表", "物理表名", "字段", "维度", "严重程度", "状态", "问题数", "检查数",
                     "问题率(%)", "阈值(%)", "说明"],
          [[r.rule_id, r.template, r.table, r.target, ",".join(r.columns), r.dimension, r.severity, r.status,
            r.violated, r.denominator, r.pct, r.threshold, r.error or ""] for r in ctx["results"]])
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


def write_report(engine: Engine, specs: SpecSet, outcome: RunOutcome, cfg: QualityConfig, out_dir: Path,
                 days: int = 30) -> dict[str, Path]:
    """Write `quality_<date>.html` and `.xlsx` under out_dir; return their paths."""
    ctx = build_context(engine, specs, outcome, cfg, days=days)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"quality_{outcome.finished:%Y%m%d_%H%M%S}"
    html_path, xlsx_path = out_dir / f"{stem}.html", out_dir / f"{stem}.xlsx"
    html_path.write_text(render_html(ctx), encoding="utf-8")
    write_xlsx(ctx, xlsx_path)
    return {"html": html_path, "xlsx": xlsx_path}

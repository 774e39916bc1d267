"""数据质量评估报告: HTML (Jinja2, inline SVG charts, no CDN) and an XLSX export, laid out like the province's.

Sections, in reading order (quality.md §7): 问题清单 (with 整改建议) first, then 概述, 总体得分, 数据集明细,
及时性分析, 趋势 over past report runs (read from the ops schema) and 数据元明细 last, folded per table
(it is the long one). The page opens on a table of contents, fits a 1,400 px window, and shows every
time in the hospital's zone with the zone named. The 评估周期 starts at the first upload inside the
chosen number of days, so a three-day-old front-end is not reported with 27 empty days.
The report shows sample KEYS only.

It lives in `reporting/`, above both `quality` and `recognition`, because its 互认 section reads
recognition's KPI: inside `quality/` it closed an import cycle (quality → recognition → display →
sharing → quality, sharing's push-back checks running the quality engine).
"""

from __future__ import annotations

import contextlib
import math
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Engine

from hipbridge.io.ops import ops_for
from hipbridge.quality.check import RunOutcome, period_volume
from hipbridge.quality.config import QualityConfig
from hipbridge.quality.engine import ERROR, FAILED, NOT_APPLICABLE, PASSED, STATUS_LABELS, RuleResult
from hipbridge.quality.store import past_runs
from hipbridge.quality.templates import column_labels
from hipbridge.settings import ops_schema_name, org_code, org_name
from hipbridge.spec import SpecSet
from hipbridge.statuses import BatchStatus

from .charts import bar_chart, line_chart
from .clock import ReportClock
from .page import environment, num, pct
from .xlsx import ReportBook

# recognition/ is imported only when the front-end holds 互认 tables: it brings the display's web stack
# with it, which a quality report without 互认 does not need.

SEVERITY_LABELS = {"fatal": "致命", "error": "错误", "warning": "警告", "info": "提示"}
SEVERITY_ORDER = ["fatal", "error", "warning", "info"]
COLUMN_TEMPLATES = column_labels()   # template → its column in 数据元明细 (from the registry)
SECTIONS = [("issues", "一、问题清单"), ("overview", "二、概述"), ("scores", "三、总体得分"),
            ("datasets", "四、数据集明细"), ("timeliness", "五、及时性分析"), ("trend", "六、趋势"),
            ("elements", "七、数据元明细"), ("recognition", "八、检查检验结果互认"), ("notes", "九、说明")]
TEMPLATES = Path(__file__).parent / "templates"   # quality_report.html.j2 beside the shared base.html.j2


# ---------------------------------------------------------------- report data, one piece per function


def _batches(engine: Engine, schema: str, since: datetime) -> dict[str, int]:
    """上传批次数, 接收 / 入库 / 拒收 records from the pipeline's batch log (when there is one)."""
    out = {"batches": 0, "extracted": 0, "published": 0, "quarantined": 0, "blocked": 0}
    try:
        if "batch_log" not in inspect(engine).get_table_names(schema=schema):
            return out
        bl = ops_for(schema).table("batch_log")
        with engine.connect() as conn:
            row = conn.execute(select(func.count(), func.sum(bl.c.extracted), func.sum(bl.c.published),
                                      func.sum(bl.c.quarantined)).where(bl.c.started_at >= since)).one()
            blocked = conn.execute(select(func.count()).where(bl.c.started_at >= since, bl.c.status == BatchStatus.BLOCKED)
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


def _rate(r: RuleResult) -> float | None:
    """Pass rate of one rule; None when it has nothing to say (not applicable, error, empty)."""
    if r.status not in (PASSED, FAILED) or not r.denominator:
        return None
    return 100.0 * (1 - (r.violated or 0) / r.denominator)


def _trend(engine: Engine, schema: str, outcome: RunOutcome, cfg: QualityConfig,
           clock: ReportClock) -> dict[str, Any]:
    """总体得分 and per-dimension lines over past report runs; 与上期对比."""
    scoring, scores = cfg.scoring, outcome.scores
    runs: list[dict[str, Any]] = []
    with contextlib.suppress(Exception):   # the trend is optional when the ops schema cannot be read
        runs = past_runs(engine, schema, kind="report", limit=int(scoring.get("trend_runs", 30)))
    if not any(r["run_id"] == outcome.run_id for r in runs):
        runs.append({"run_id": outcome.run_id, "started_at": outcome.started, "overall": scores.get("overall"),
                     "scores": scores})
    previous = next((r for r in reversed(runs[:-1]) if r.get("overall") is not None), None)
    labels = [f"{clock.local(r['started_at']):%m-%d %H:%M}" if isinstance(r["started_at"], datetime)
              else str(r["started_at"])[5:16] for r in runs]
    overall = {"总体得分": [r.get("overall") for r in runs]}
    dims = {d: [((r.get("scores") or {}).get("dimensions") or {}).get(d, {}).get("rate") for r in runs]
            for d in scoring.get("dimensions", {})}
    top_grade = float(max(g["min"] for g in scoring.get("grades", [{"min": 0}])))
    delta = None if not previous or scores.get("overall") is None else round(scores["overall"] - previous["overall"], 2)
    return {"trend_overall": line_chart(overall, labels, y_min=_floor(overall), target=top_grade),
            "trend_dims": line_chart(dims, labels, y_min=_floor(dims)), "runs": len(runs),
            "previous": previous, "delta": delta}


def _labels(specs: SpecSet) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    tables = {tid: s.label for tid, s in specs.specs.items()}
    columns: dict[tuple[str, str], str] = {}
    for tid, s in specs.specs.items():
        columns.update({(tid, c.name): c.label for c in s.columns})
        columns.update({(tid, a.name): a.label for a in specs.defaults.audit_columns})
    return tables, columns


def _datasets(outcome: RunOutcome, tables: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for tid in outcome.tables:
        t = outcome.scores["tables"].get(tid, {})
        out.append({"id": tid, "label": tables.get(tid, tid), "target": t.get("target"), "score": t.get("score"),
                    "grade": t.get("grade"), "dims": t.get("dimensions", {}), "rules": t.get("rules"),
                    "failed": t.get("failed"), "na": t.get("not_applicable"), "errors": t.get("errors")})
    return out


def _elements(results: list[RuleResult], tables: dict[str, str], columns: dict[tuple[str, str], str],
              dim_targets: dict[str, float]) -> tuple[list[dict[str, Any]], list[str]]:
    """数据元明细: one row per column with its rates by template, grouped per table (folded in the page)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        if r.template not in COLUMN_TEMPLATES or not r.columns:
            continue
        key = (r.table, r.columns[0])
        e = rows.setdefault(key, {"table_id": r.table, "table": tables.get(r.table, r.table), "target": r.target,
                                  "column": r.columns[0], "label": columns.get(key, r.columns[0]),
                                  "rates": {}, "dimension": {}, "below": 0})
        name = COLUMN_TEMPLATES[r.template]
        rate = _rate(r)
        e["rates"][name] = {"rate": rate, "n": r.denominator, "bad": r.violated, "status": r.status}
        e["dimension"][name] = r.dimension
        if rate is not None and rate < dim_targets.get(r.dimension, 0):
            e["below"] += 1
    cols = [c for c in dict.fromkeys(COLUMN_TEMPLATES.values()) if any(c in e["rates"] for e in rows.values())]
    return list(rows.values()), cols


def _element_groups(elements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for e in elements:
        g = groups.setdefault(e["table_id"], {"table": e["table"], "target": e["target"], "rows": [], "below": 0,
                                              "lowest": None})
        g["rows"].append(e)
        g["below"] += 1 if e["below"] else 0
        rates = [x["rate"] for x in e["rates"].values() if x["rate"] is not None]
        if rates and (g["lowest"] is None or min(rates) < g["lowest"]):
            g["lowest"] = min(rates)
    return sorted(groups.values(), key=lambda g: (-g["below"], g["lowest"] if g["lowest"] is not None else 101))


def _severity_rank(r: RuleResult) -> int:
    return SEVERITY_ORDER.index(r.severity) if r.severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


def _issues(results: list[RuleResult]) -> list[RuleResult]:
    """问题清单: failed and erroneous rules, fatal first, then by problem rate."""
    return sorted((r for r in results if r.status in (FAILED, ERROR)), key=lambda r: (_severity_rank(r), -(r.pct or 0)))


def _timeliness(outcome: RunOutcome, tables: dict[str, str],
                columns: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    out = []
    for tid in outcome.tables:
        tl = outcome.scores.get("timeliness", {}).get(tid) or {}
        t01 = next((r for r in outcome.results if r.table == tid and r.template == "T01"), None)
        if not tl and not t01:
            continue
        out.append({"label": tables.get(tid, tid), "target": t01.target if t01 else tid,
                    "event": columns.get((tid, tl.get("event", "")), tl.get("event")),
                    "buckets": tl.get("buckets", {}), "rate": _rate(t01) if t01 else None,
                    "status": t01.status if t01 else None})
    return out


def _period(engine: Engine, specs: SpecSet, outcome: RunOutcome, days: int, as_of: datetime) -> dict[str, Any]:
    """评估周期 from the first upload (数据采集时间) inside `days` up to the report day, uploads per day, 断档日."""
    volumes = period_volume(engine, specs, outcome.tables, days=days, now=as_of)
    end = as_of.date()
    earliest = end - timedelta(days=days - 1)
    seen = sorted(d for v in volumes.values() for d in v if str(earliest) <= d <= str(end))
    start = date.fromisoformat(seen[0]) if seen else end
    day_list = [str(start + timedelta(days=i)) for i in range((end - start).days + 1)]
    daily = {d: sum(v.get(d, 0) for v in volumes.values()) for d in day_list}
    gaps = {tid: [d for d in day_list if d not in v] for tid, v in volumes.items() if v}
    return {"start": start, "end": end, "days": len(day_list), "max_days": days, "has_data": bool(seen),
            "daily": daily, "daily_chart": bar_chart(daily, unit=" 行"), "gap_days": gaps,
            "since": datetime.combine(start, datetime.min.time())}


def _recognition(engine: Engine, schema: str, specs: SpecSet, as_of: datetime) -> dict[str, Any]:
    """The report month's 互认 KPI (recognition.kpi, the same figures as `hipbridge recognition kpi`), when
    this front-end runs the reminder (its ops tables exist)."""
    month = f"{as_of:%Y-%m}"
    try:
        if not inspect(engine).has_table("recognition_reminder", schema=schema):
            return {"month": month, "kpi": None, "note": "本前置库未运行互认提醒 (无提醒记录表)"}
        from hipbridge.recognition import state as _state  # noqa: F401 - registers the tables
        from hipbridge.recognition.catalog import recognition_config
        from hipbridge.recognition.kpi import monthly_kpi

        kpi = monthly_kpi(engine, ops_for(schema), recognition_config(), org_code(specs.defaults), month)
        return {"month": month, "kpi": kpi, "note": None}
    except Exception as exc:  # noqa: BLE001 - the quality report stands without this section
        return {"month": month, "kpi": None, "note": f"互认指标读取失败: {type(exc).__name__}"}


def _counts(results: list[RuleResult]) -> dict[str, int]:
    return {"rule_count": len(results), "failed_count": sum(1 for r in results if r.status == FAILED),
            "na_count": sum(1 for r in results if r.status == NOT_APPLICABLE),
            "error_count": sum(1 for r in results if r.status == ERROR)}


def build_context(engine: Engine, specs: SpecSet, outcome: RunOutcome, cfg: QualityConfig,
                  days: int = 30) -> dict[str, Any]:
    """Everything the template and the XLSX need, in the hospital's clock."""
    clock = ReportClock(specs.defaults.timezone)
    schema = ops_schema_name(specs.defaults, engine)
    as_of = outcome.as_of or outcome.finished
    tables, columns = _labels(specs)
    dim_targets = {d: float(m.get("target", 0)) for d, m in cfg.scoring.get("dimensions", {}).items()}
    period = _period(engine, specs, outcome, days, as_of)
    elements, element_cols = _elements(outcome.results, tables, columns, dim_targets)
    timeliness = _timeliness(outcome, tables, columns)
    scores = outcome.scores
    return {
        "title": "数据质量评估报告", "sections": SECTIONS, "clock": clock, "zone": clock.zone_label,
        "generated": clock.fmt(outcome.finished), "generated_at": outcome.finished,
        "period": f"{period['start']} 至 {period['end']}", "period_info": period,
        "org_code": org_code(specs.defaults), "org_name": org_name(specs.defaults), "run_id": outcome.run_id,
        "database": outcome.extra.get("database"), "overall": scores.get("overall"), "grade": scores.get("grade"),
        **_trend(engine, schema, outcome, cfg, clock),
        "batches": _batches(engine, schema, period["since"]),
        "dims": scores.get("dimensions", {}), "dim_names": list(cfg.scoring.get("dimensions", {})),
        "dim_targets": dim_targets, "datasets": _datasets(outcome, tables),
        "elements": elements, "element_groups": _element_groups(elements), "element_cols": element_cols,
        "issues": _issues(outcome.results), "timeliness": timeliness,
        "recognition": _recognition(engine, schema, specs, as_of),
        "bucket_names": next((list(t["buckets"]) for t in timeliness if t["buckets"]), []),
        "daily_chart": period["daily_chart"], "gap_days": period["gap_days"], "labels_by_table": tables,
        "results": outcome.results, "status_labels": STATUS_LABELS, "severity_labels": SEVERITY_LABELS,
        "pct": pct, "num": num, **_counts(outcome.results),
    }


def _sample_keys(samples: list[dict[str, Any]] | None, shown: int = 3) -> tuple[list[str], int]:
    """The first few sample keys (one per line on the page) and how many more the XLSX lists."""
    keys = [",".join(str(v) for v in d.values()) for d in (samples or [])]
    return keys[:shown], max(0, len(keys) - shown)


def render_html(ctx: dict[str, Any]) -> str:
    env = environment(TEMPLATES)
    env.filters["sample_keys"] = _sample_keys
    return env.get_template("quality_report.html.j2").render(**ctx)


# ---------------------------------------------------------------- XLSX


def _samples(r: RuleResult) -> str:
    return "; ".join(",".join(str(v) for v in s.values()) for s in r.samples) or (r.error or "")


def _floor2(v: float | None) -> float | None:
    """Rates in the XLSX are cut like the page's (99.999 is 99.99, never 100.00)."""
    return None if v is None else math.floor(v * 100 + 1e-9) / 100


def write_xlsx(ctx: dict[str, Any], path: Path) -> None:
    book = ReportBook(ctx["clock"])
    zone = ctx["clock"].timezone
    b = ctx["batches"]
    p = ctx["period_info"]
    book.sheet("概述", ["项目", "值"], [
        ["评估周期", f"{ctx['period']}（{p['days']} 天，自首次上传起，最多 {p['max_days']} 天）"],
        ["医疗机构代码", ctx["org_code"]], ["医疗机构名称", ctx["org_name"]],
        ["上传批次数", b["batches"]], ["接收记录数", b["extracted"]], ["入库记录数", b["published"]],
        ["拒收(隔离)记录数", b["quarantined"]], ["被拦截批次数", b["blocked"]],
        ["总得分", ctx["overall"]], ["等级", ctx["grade"]], ["与上期对比", ctx["delta"]],
        ["规则数", ctx["rule_count"]], ["未通过", ctx["failed_count"]], ["不适用", ctx["na_count"]],
        ["执行错误", ctx["error_count"]], ["运行编号", ctx["run_id"]], ["生成时间", ctx["generated"]],
        ["时区", ctx["zone"]]])
    sev, st, labels = SEVERITY_LABELS, STATUS_LABELS, ctx["labels_by_table"]
    book.sheet("问题清单", ["规则编号", "规则描述", "表名", "物理表名", "字段", "维度", "严重程度", "状态", "问题数",
                        "检查数", "问题率(%)", "阈值(%)", "示例记录主键", "整改建议"],
               [[r.rule_id, r.message, labels.get(r.table, r.table), r.target, ",".join(r.columns), r.dimension,
                 sev.get(r.severity, r.severity), st.get(r.status, r.status), r.violated, r.denominator,
                 r.pct, r.threshold, _samples(r), r.advice] for r in ctx["issues"]])
    book.sheet("总体得分", ["维度", "检查记录数", "问题记录数", "合格率(%)", "权重", "得分", "达标线(%)", "是否达标"],
               [[d, v["checked"], v["violated"], _floor2(v["rate"]), v["weight"], v["score"], v["target"],
                 "—" if v["met"] is None else ("是" if v["met"] else "否")] for d, v in ctx["dims"].items()],
               red_when=lambda row: row[7] == "否")
    dims = ctx["dim_names"]
    book.sheet("数据集明细", ["表名", "物理表名", "得分", "等级", *[f"{d}(%)" for d in dims], "规则数", "未通过",
                         "不适用", "执行错误"],
               [[d["label"], d["target"], d["score"], d["grade"], *[_floor2(d["dims"].get(x)) for x in dims],
                 d["rules"], d["failed"], d["na"], d["errors"]] for d in ctx["datasets"]])
    book.sheet("及时性分析", ["表名", "事件时间", "按时率(%)", *ctx["bucket_names"]],
               [[t["label"], t["event"], _floor2(t["rate"]), *[t["buckets"].get(k) for k in ctx["bucket_names"]]]
                for t in ctx["timeliness"]])
    book.sheet("每日上传量", [f"日期({zone})", "上传记录数", "是否断档"],
               [[d, n, "是" if n == 0 else "否"] for d, n in p["daily"].items()], red_when=lambda row: row[1] == 0)
    cols = ctx["element_cols"]
    book.sheet("数据元明细", ["表名", "物理表名", "字段名", "数据元名称", *[f"{c}(%)" for c in cols], "未达标项数"],
               [[e["table"], e["target"], e["column"], e["label"],
                 *[_floor2((e["rates"].get(c) or {}).get("rate")) for c in cols], e["below"]]
                for e in ctx["elements"]])
    rc = ctx["recognition"]
    k = rc["kpi"]
    rows = [["统计月份", f"{rc['month']} ({zone})"]]
    if k is None:
        rows.append(["说明", rc["note"]])
    else:
        rows += [["提醒(份)", k["reminded"]], ["互认", k["recognised"]], ["不互认(计入)", k["notRecognised"]],
                 ["不计入(98/99)", k["excluded"]], ["未处理", k["undecided"]],
                 ["互认率(%)", None if k["rate"] is None else _floor2(k["rate"] * 100)]]
        rows += [[f"不互认理由 {r['code']}{'' if r['counted'] else ' (不计入)'}", r["count"]] for r in k["byReason"]]
    book.sheet("检查检验结果互认", ["项目", "值"], rows)
    book.sheet("规则结果", ["规则编号", "模板", "表", "物理表名", "字段", "维度", "严重程度", "状态", "问题数", "检查数",
                        "问题率(%)", "阈值(%)", "说明"],
               [[r.rule_id, r.template, r.table, r.target, ",".join(r.columns), r.dimension, sev.get(r.severity, r.severity),
                 st.get(r.status, r.status),
                 r.violated, r.denominator, r.pct, r.threshold, r.error or ""] for r in ctx["results"]])
    book.save(path)


def write_report(engine: Engine, specs: SpecSet, outcome: RunOutcome, cfg: QualityConfig, out_dir: Path,
                 days: int = 30) -> dict[str, Any]:
    """Write `quality_<local time>_UTC+0800.html` and `.xlsx` under out_dir; return their paths (and the local generation time, zone named)."""
    ctx = build_context(engine, specs, outcome, cfg, days=days)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"quality_{ctx['clock'].stamp(outcome.finished)}"
    html_path, xlsx_path = out_dir / f"{stem}.html", out_dir / f"{stem}.xlsx"
    html_path.write_text(render_html(ctx), encoding="utf-8")
    write_xlsx(ctx, xlsx_path)
    return {"html": html_path, "xlsx": xlsx_path, "generated": ctx["generated"]}

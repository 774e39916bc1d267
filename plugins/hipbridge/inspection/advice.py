"""整改建议: findings of the week turned into recommendations, by the thresholds of `config/inspection.yaml`.

Each recommendation says where (area, table), what was found (with the figure) and what to do.
Levels: 严重 (act this week), 注意 (look at it), 提示 (for the record).
"""

from __future__ import annotations

from typing import Any

SEVERE, WARN, NOTE = "严重", "注意", "提示"
LEVEL_ORDER = {SEVERE: 0, WARN: 1, NOTE: 2}


def _rec(level: str, area: str, finding: str, action: str) -> dict[str, str]:
    return {"level": level, "area": area, "finding": finding, "action": action}


def _runs(d: dict[str, Any], th: dict[str, float]) -> list[dict[str, str]]:
    out = []
    total = d["runs"]["total"]
    if not d["runs"]["enabled"]:
        return [_rec(WARN, "运行", "运行库中没有批次日志", "确认数据抽取任务已部署并在 Airflow 中启用")]
    if total.get("batches", 0) == 0:
        out.append(_rec(SEVERE, "运行", "本周没有任何抽取批次", "检查 Airflow 调度器与各表 DAG 是否暂停"))
    for t in d["runs"]["tables"]:
        if t["failed"]:
            level = SEVERE if 100.0 * t["failed"] / t["batches"] > th["run_failure_pct"] else WARN
            out.append(_rec(level, f"运行 · {t['label']}", f"{t['failed']} / {t['batches']} 个批次失败或被质控拦截",
                            "查看失败批次的错误信息，修复后在 Airflow 中以 window 模式重跑该时段"))
        if t["max_seconds"] and t["max_seconds"] > th["slow_batch_seconds"]:
            out.append(_rec(NOTE, f"运行 · {t['label']}", f"最长批次耗时 {t['max_seconds']:.0f} 秒",
                            "检查源库查询计划与分块大小 (source.chunk_rows)"))
    return out


def _tables(d: dict[str, Any], th: dict[str, float]) -> list[dict[str, str]]:
    out = []
    for t in d["tables"]:
        if t["last_published"] is None:
            out.append(_rec(WARN, f"数据断传 · {t['label']}", "从未成功上传", "确认该表的源库连接与抽取 SQL (hipbridge doctor)"))
        elif t["days_since"] is not None and t["days_since"] > th["stale_table_days"]:
            out.append(_rec(SEVERE, f"数据断传 · {t['label']}", f"最近一次成功上传在 {t['days_since']:.1f} 天前",
                            "检查该表 DAG 的运行记录与源库连接，补传断档时段 (hipbridge backfill)"))
    return out


def _quarantine(d: dict[str, Any], th: dict[str, float]) -> list[dict[str, str]]:
    out = []
    extracted = {t["table"]: t["extracted"] for t in d["runs"]["tables"]}
    for q in d["quarantine"]["by_table"]:
        n = extracted.get(q["table"]) or 0
        share = 100.0 * q["rows"] / n if n else None
        if share is None or share > th["quarantine_pct"]:
            shown = "—" if share is None else f"{share:.2f}%"
            out.append(_rec(WARN, f"隔离 · {q['label']}", f"{q['rows']} 行被隔离 (占抽取 {shown})",
                            "按隔离原因处理：补全对码 (hipbridge mapping gaps) 或修正源数据，然后重跑"))
    return out


def _alerts(d: dict[str, Any], th: dict[str, float]) -> list[dict[str, str]]:
    a = d["alerts"]
    if not a["enabled"] or not a["open"]:
        return []
    return [_rec(WARN, "告警", f"{a['open']} 条监控告警到统计截至时仍未恢复", "逐条处理告警所指的问题；恢复后告警自动关闭")]


def _quality(d: dict[str, Any], th: dict[str, float]) -> list[dict[str, str]]:
    q = d["quality"]
    if not q["enabled"] or not q["last"]:
        return [_rec(WARN, "质控", "本周没有数据质量评估报告运行", "确认 hipbridge_quality_report DAG 已启用")]
    out = []
    score = q["last"]["overall"]
    if score is not None and score < th["quality_min"]:
        out.append(_rec(SEVERE, "质控", f"总体得分 {score:.2f}，低于 {th['quality_min']:g}",
                        "按质量评估报告的问题清单逐项整改"))
    earlier = [v for k, v in q["trend"].items() if v is not None and k < d["week"].label]
    if score is not None and earlier and earlier[-1] - score > th["quality_drop"]:
        out.append(_rec(WARN, "质控", f"总体得分较上周下降 {earlier[-1] - score:.2f} 分",
                        "对比两期报告的问题清单，找出新增问题"))
    if q["blocked"]:
        out.append(_rec(WARN, "质控", f"{q['blocked']} 个批次被质控闸门拦截(致命规则未通过)", "见失败批次的拦截原因"))
    return out


def _sharing(d: dict[str, Any], th: dict[str, float]) -> list[dict[str, str]]:
    s, out = d["sharing"], []
    if not s.get("enabled"):
        return out
    if s["backlog"] > th["outbox_backlog"]:
        out.append(_rec(SEVERE, "平台交互", f"发件箱积压 {s['backlog']} 条", "检查平台连通性与签名证书 (hipbridge doctor)"))
    if s["oldest_hours"] is not None and s["oldest_hours"] > th["outbox_oldest_hours"]:
        out.append(_rec(WARN, "平台交互", f"最早未确认的调用已等待 {s['oldest_hours']:.1f} 小时", "检查平台应答与重试记录"))
    if s["failed"]:
        out.append(_rec(WARN, "平台交互", f"{len(s['failed'])} 条平台调用最终失败", "按失败原因与平台核对，必要时人工补报"))
    return out


def _deletions(d: dict[str, Any], th: dict[str, float]) -> list[dict[str, str]]:
    x, out = d["deletions"], []
    if x.get("enabled") and (x["failed_runs"] or x["purge_failed"]):
        out.append(_rec(SEVERE, "数据删除", f"{len(x['failed_runs'])} 次删除作业失败或中止，{x['purge_failed']} 名患者删除失败",
                        "查看删除作业日志；到期数据必须在 15 天内删除"))
    return out


def _drift(d: dict[str, Any], th: dict[str, float]) -> list[dict[str, str]]:
    c = d["drift"]["changes"]
    if not c:
        return []
    n = len(c["added"]) + len(c["removed"]) + len(c["changed"])
    if not n:
        return []
    return [_rec(NOTE, "配置漂移", f"与上周相比 {n} 个配置文件有变化", "确认每项变更都经过评审并有记录；意外的变化应回退")]


def _health(d: dict[str, Any], th: dict[str, float]) -> list[dict[str, str]]:
    out = []
    if not d["database"].get("ok"):
        out.append(_rec(SEVERE, "数据库", f"前置机库无法连接：{d['database'].get('error')}", "检查数据库服务"))
    for disk in d["disks"]:
        if disk["free_pct"] is not None and disk["free_pct"] < th["disk_free_pct"]:
            out.append(_rec(SEVERE, "磁盘", f"{disk['label']} 所在磁盘剩余 {disk['free_pct']:.1f}%",
                            "清理旧报告与日志，或扩容"))
    return out


def recommendations(d: dict[str, Any], thresholds: dict[str, float]) -> list[dict[str, str]]:
    recs = [r for check in (_runs, _tables, _quarantine, _alerts, _quality, _sharing, _deletions, _drift, _health)
            for r in check(d, thresholds)]
    return sorted(recs, key=lambda r: LEVEL_ORDER[r["level"]])

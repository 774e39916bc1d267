"""The 巡检报告's XLSX: the same sections as the page, one sheet each, filterable, figures rounded."""

from __future__ import annotations

from typing import Any

from hipbridge.reporting.labels import zh
from hipbridge.reporting.xlsx import ReportBook


def fill(book: ReportBook, ctx: dict[str, Any]) -> None:
    zone = ctx["clock"].timezone
    s, t = ctx["summary"], ctx["runs"]["total"]
    book.sheet("概述", ["项目", "值"], [
        ["报告", ctx["title"]], ["医疗机构代码", ctx["org_code"]], ["医疗机构名称", ctx["org_name"]],
        ["巡检周期", ctx["period"]], ["统计截至", ctx["as_of"]], ["生成时间", ctx["generated"]], ["时区", ctx["zone"]],
        ["批次数", t.get("batches", 0)], ["失败/拦截批次", t.get("failed", 0)], ["入库记录数", t.get("published", 0)],
        ["隔离记录数", t.get("quarantined", 0)], ["总体得分(本周最后一次)", s.get("overall")],
        ["严重", s["advice"]["严重"]], ["注意", s["advice"]["注意"]], ["提示", s["advice"]["提示"]],
        ["配置指纹(SHA-256)", ctx["drift"]["hash"]]])
    book.sheet("整改建议", ["级别", "范围", "发现", "建议"],
               [[a["level"], a["area"], a["finding"], a["action"]] for a in ctx["advice"]],
               red_when=lambda row: row[0] == "严重")
    book.sheet("运行情况", ["表", "表名", "批次数", "失败/拦截", "抽取", "入库", "新增", "变更", "作废", "未变", "隔离",
                        "平均耗时(秒)", "最长耗时(秒)", "跳过(无变更时间)", "源端已删除"],
               [[r["table"], r["label"], r["batches"], r["failed"], r["extracted"], r["published"], r["inserted"],
                 r["updated"], r["voided"], r["unchanged"], r["quarantined"], r["avg_seconds"], r["max_seconds"],
                 r["skipped"], r["deleted"]]
                for r in ctx["runs"]["tables"]], red_when=lambda row: bool(row[3]))
    book.sheet("每日运行", [f"日期({zone})", "批次数", "入库记录数", "失败/拦截"],
               [[k, v["batches"], v["published"], v["failed"]] for k, v in ctx["runs"]["daily"].items()])
    book.sheet("失败批次", ["表", "表名", "批次", "状态", f"开始时间({zone})", "错误信息"],
               [[f["table"], f["label"], f["batch_id"], zh(f["status"], "batch_status"), f["started_at"], f["message"]]
                for f in ctx["runs"]["failures"]])
    book.sheet("表状态", ["表", "表名", "物理表名", "前置机行数", f"最近成功上传({zone})", "距今天数"],
               [[r["table"], r["label"], r["target"], r["rows"], r["last_published"], r["days_since"]]
                for r in ctx["tables"]])
    book.sheet("告警", ["规则", "级别", "告警", f"首次({zone})", f"最近({zone})", f"恢复({zone})", "发送次数"],
               [[r["rule"], r["severity"], r["title"], r["first_seen"], r["last_seen"], r["resolved_at"], r["sent_count"]]
                for r in ctx["alerts"]["rows"]])
    book.sheet("隔离原因", ["表", "表名", "原因", "行数"],
               [[r["table"], r["label"], r["reason"], r["rows"]] for r in ctx["quarantine"]["reasons"]])
    book.sheet("质量趋势", ["周", "总体得分(该周最后一次)"], [[k, v] for k, v in ctx["quality"]["trend"].items()])
    sh = ctx["sharing"]
    book.sheet("平台交互", ["项目", "值"], [] if not sh.get("enabled") else [
        *[[f"本周新建调用 · {zh(k, 'outbox_status')}", v] for k, v in sh["created"].items()], ["周末积压(NEW+SENT)", sh["backlog"]],
        ["最早未确认", sh["oldest_pending"]], ["最早未确认等待(小时)", sh["oldest_hours"]],
        *[[f"本周授权 · {zh(k, 'auth_status')}", v] for k, v in sh["authorizations"].items()],
        *[[f"失败调用 · {zh(f['kind'], 'outbox_kind')} {f['appointment_id']}", f"{f['last_code'] or ''} {f['last_error'] or ''}"[:300]]
          for f in sh["failed"]]])
    book.sheet("删除证明", ["作业", "范围", "演练", "状态", f"开始({zone})", f"结束({zone})", "候选", "删除行数", "说明"],
               [[r["run_id"], zh(r["scope"], "deletion_scope"), "是" if r["dry_run"] else "否", zh(r["status"], "deletion_run"), r["started_at"], r["finished_at"],
                 r["candidates"], r["deleted_rows"], r.get("message") or ""] for r in ctx["deletions"]["runs"]])
    book.sheet("配置漂移", ["变化", "文件"], _drift_rows(ctx["drift"]))
    book.sheet("数据库与磁盘", ["项目", "值"], [
        ["数据库", ctx["database"]["url"]], ["版本", ctx["database"].get("version")],
        ["连接", "正常" if ctx["database"].get("ok") else f"失败 {ctx['database'].get('error')}"],
        *[[f"大小 · {k} (MB)", round(v / 1048576, 2)] for k, v in (ctx["database"].get("sizes") or {}).items()],
        *[[f"磁盘剩余 · {x['label']} (%)", x["free_pct"]] for x in ctx["disks"]]])


def _drift_rows(drift: dict[str, Any]) -> list[list[str]]:
    if drift["changes"] is None:
        return [["首次巡检，无上周基线", ""]]
    labels = {"changed": "修改", "added": "新增", "removed": "删除"}
    rows = [[label, path] for kind, label in labels.items() for path in drift["changes"][kind]]
    return rows or [["无变化", ""]]

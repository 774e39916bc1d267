"""Airflow DAG `hipbridge_inspection_report`: the weekly 巡检报告 (HTML + XLSX) of the week just ended.

Schedule: `schedule` of config/inspection.yaml (default Mondays 07:00 hospital time; env
HIPBRIDGE_INSPECTION_CRON overrides). A scheduled run reports the ISO week holding the day before
it fired; the `week` param (e.g. 2026-W49) reports another. Parse time stays cheap: only PyYAML
here, every hipbridge import inside the task.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import yaml
from airflow.sdk import DAG, Param, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable
from hipbridge.settings import settings  # a leaf module (no database, no pandas): cheap at parse time

_CONFIG = settings().config / "inspection.yaml"


def _schedule() -> str:
    if settings().inspection_cron:
        return settings().inspection_cron
    try:
        return str((yaml.safe_load(_CONFIG.read_text(encoding="utf-8")) or {}).get("schedule") or "0 7 * * 1")
    except FileNotFoundError:
        return "0 7 * * 1"


with DAG(
    dag_id="hipbridge_inspection_report",
    description="每周巡检报告 (HTML / XLSX)",
    schedule=CronTriggerTimetable(_schedule(), timezone=settings().tz),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
    tags=["hipbridge", "inspection"],
    doc_md="每周巡检：运行与耗时、数据量、质控趋势、错误与隔离、平台发件箱与授权、删除证明、配置漂移(与上周对比)、"
           "数据库与磁盘、整改建议；生成中文巡检报告(HTML，图表内嵌)与导出(XLSX)。",
    params={"week": Param(None, type=["null", "string"], pattern=r"^\d{4}-W\d{2}$",
                          description="ISO 周，如 2026-W49；空 = 触发前一天所在的周")},
) as dag:

    @task(task_id="inspection_report")
    def inspection_report() -> dict:
        from hipbridge.inspection.collect import parse_week
        from hipbridge.inspection.report import write_inspection
        from hipbridge.io.engines import default_frontend_url, engine_for, home
        from hipbridge.reporting import ReportClock
        from hipbridge.settings import ops_schema_name
        from hipbridge.spec import load_specs

        ctx = get_current_context()
        specs = load_specs()
        url = default_frontend_url()
        engine = engine_for(url, ops_schema_name(specs.defaults, url))
        clock = ReportClock(specs.defaults.timezone)
        fired = ctx.get("logical_date") or ctx.get("data_interval_end")
        week = ctx["params"].get("week") or parse_week(None, clock.local(fired) if fired else clock.now()).label
        out_dir = settings().report_dir or home() / "reports"
        out = write_inspection(engine, specs, out_dir, week)
        return {"week": out["week"], "html": str(out["html"]), "xlsx": str(out["xlsx"]), **out["summary"]["advice"]}

    inspection_report()

"""Airflow DAG `hipbridge_quality_report`: the daily 数据质量评估报告 (HTML + XLSX) over the front-end tables.

Parse time stays cheap: no pandas, Great Expectations or database work here — every import of
hipbridge.quality happens inside the task. Output: $HIPBRIDGE_HOME/reports (or HIPBRIDGE_REPORT_DIR),
results and scores per run in the operations schema (the trend charts read them).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable
from hipbridge.settings import settings  # a leaf module (no database, no pandas): cheap at parse time

with DAG(
    dag_id="hipbridge_quality_report",
    description="每日数据质量评估报告 (HTML / XLSX)",
    schedule=CronTriggerTimetable(settings().quality_cron, timezone=settings().tz),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
    tags=["hipbridge", "quality"],
    doc_md="每日质控：对前置机全部标准表执行质控规则(7个维度)，写入运行库，并生成中文评估报告(HTML)与导出(XLSX)。",
    params={
        "tables": Param(None, type=["null", "string"], description="逗号分隔的表标识；空 = 全部"),
        "days": Param(30, type="integer", minimum=1, description="评估周期(天)"),
    },
) as dag:

    @task(task_id="quality_report")
    def quality_report() -> dict:

        from hipbridge.io.engines import default_frontend_url, engine_for, home
        from hipbridge.quality.check import check_database
        from hipbridge.quality.config import load_config
        from hipbridge.reporting.quality import write_report
        from hipbridge.settings import ops_schema_name
        from hipbridge.spec import load_specs

        params = get_current_context()["params"]
        specs = load_specs()
        cfg = load_config()
        engine = engine_for(default_frontend_url(), ops_schema_name(specs.defaults, default_frontend_url()))
        tables = [t.strip() for t in (params.get("tables") or "").split(",") if t.strip()] or None
        outcome = check_database(engine, specs, tables, cfg=cfg, kind="report")
        out_dir = settings().report_dir or home() / "reports"
        paths = write_report(engine, specs, outcome, cfg, out_dir, days=int(params.get("days") or 30))
        return {"run_id": outcome.run_id, "overall": outcome.scores.get("overall"),
                "grade": outcome.scores.get("grade"), "html": str(paths["html"]), "xlsx": str(paths["xlsx"])}

    quality_report()

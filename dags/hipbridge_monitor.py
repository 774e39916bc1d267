"""Airflow DAG `hipbridge_monitor`: one monitoring round every 15 minutes (config/monitoring.yaml).

Failed runs, watermark lag, the platform unreachable, an outbox backlog, a quality score drop and
a failed purge are announced by webhook and e-mail; the task fails when a channel could not be
reached, so Airflow's own view shows that the alerts themselves are not getting through.
Parse time stays cheap: hipbridge is imported inside the task.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task
from airflow.timetables.trigger import CronTriggerTimetable
from hipbridge.settings import settings  # a leaf module (no database, no pandas): cheap at parse time

TZ = settings().tz

with DAG(
    dag_id="hipbridge_monitor",
    description="运行监控: 失败、水位滞后、平台不可达、发件箱积压、质控下降、删除失败 → 告警",
    schedule=CronTriggerTimetable(settings().monitor_cron, timezone=TZ),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
    tags=["hipbridge", "operations"],
    doc_md="每 15 分钟按 `config/monitoring.yaml` 评估告警规则，经 Webhook（企业微信/钉钉）和邮件发送新告警、"
           "到期重发的告警与已恢复通知；告警状态记录在运行库 alert_state。",
) as monitor_dag:

    @task(task_id="monitor_round")
    def monitor_round() -> dict:
        from hipbridge.monitor.alerts import run_monitor

        report = run_monitor()
        if report.errors:
            raise RuntimeError("告警发送失败: " + "; ".join(report.errors))
        return {"active": len(report.active), "sent": report.sent, "resolved": report.resolved}

    monitor_round()

"""Airflow DAGs of the sharing lifecycle (共享数据生命周期):

- `hipbridge_push_verify`  every 5 min: verify new batches the platform pushed into the shared store,
  then move them into the encrypted tables and delete the landing copy
  (manifest, digests, authorization, required fields, references, then the quality engine).
- `hipbridge_share_purge`  daily 02:00 (hospital time): delete shared data 15 days after the visit,
  at once after a revocation, at expiry for a no-show; dry-run param; fails (alerts) when the
  safety cap aborts the run.
- `hipbridge_platform_outbox` every 5 min: send due platform calls (grant / revoke) with back-off;
  once a night (the run between 01:00 and 01:05) also AUTH_QUERY every live authorization.

Parse time stays cheap: no database, network, pandas or hipbridge imports at module level; every
import happens inside the tasks, except `hipbridge.settings` (a leaf module: the HIPBRIDGE_* schedules).
Times: HIPBRIDGE_TZ (default Asia/Shanghai).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable
from hipbridge.settings import settings  # a leaf module (no database, no pandas): cheap at parse time

TZ = settings().tz
PURGE_CRON = settings().purge_cron    # retention.yaml run.schedule documents it
DEFAULTS = {"retries": 2, "retry_delay": timedelta(minutes=5)}

with DAG(
    dag_id="hipbridge_push_verify",
    description="数据回推核验: 新回推批次的清单、摘要、授权、必填、关联与质控",
    schedule=CronTriggerTimetable(settings().push_verify_cron, timezone=TZ),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["hipbridge", "sharing"],
    doc_md="对省平台回推到前置机共享库的新批次逐一核验 (interfaces.md §A8)，结果写入运行库 push_check / push_problem，"
           "质控结果以 kind=push 存入 quality_run，进入质量报告。",
    params={"quality": Param(True, type="boolean", description="同时运行质控引擎")},
) as verify_dag:

    @task(task_id="verify_new_batches")
    def verify_new_batches() -> dict:
        from hipbridge.sharing.service import Lifecycle

        params = get_current_context()["params"]
        rep = Lifecycle.open().verify(run_quality=bool(params.get("quality", True)))
        return {"batches": len(rep.batches), "rejected": sum(b.status == "REJECTED" for b in rep.batches),
                "quality_run_id": rep.quality_run_id, "orphans_deleted": rep.orphans_deleted}

    @task(task_id="ingest_encrypted")
    def ingest_encrypted() -> dict:
        """Move the verified rows from the landing tables into the encrypted tables (secure.py)."""
        from hipbridge.sharing.service import Lifecycle

        return Lifecycle.open().ingest().as_dict()

    verify_new_batches() >> ingest_encrypted()


with DAG(
    dag_id="hipbridge_share_purge",
    description="共享数据删除: 就诊结束15天后、撤销授权即时、爽约到期",
    schedule=CronTriggerTimetable(PURGE_CRON, timezone=TZ),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["hipbridge", "sharing", "retention"],
    doc_md="每日删除到期的共享库数据 (interfaces.md §A12)。分批删除；dry_run 只统计不删除；单表删除比例超过安全上限时"
           "整次中止并告警 (任务失败)。删除日志只含计数与散列键。",
    params={
        "dry_run": Param(False, type="boolean", description="只统计与记录, 不删除"),
        "max_share_pct": Param(None, type=["null", "number"], description="覆盖安全上限 (%)"),
    },
) as purge_dag:

    @task(task_id="purge_shared")
    def purge_shared() -> dict:
        from airflow.exceptions import AirflowFailException
        from hipbridge.sharing.service import Lifecycle

        params = get_current_context()["params"]
        kw = {"dry_run": bool(params.get("dry_run"))}
        if params.get("max_share_pct") is not None:
            kw["max_share_pct"] = float(params["max_share_pct"])
        life = Lifecycle.open()
        reports = [life.purge(**kw)]
        uploaded = life.purge_uploaded(**kw)
        if uploaded is not None:
            reports.append(uploaded)
        out = [r.as_dict() for r in reports]
        bad = [r for r in reports if r.status != "OK"]
        if bad:
            raise AirflowFailException("; ".join(f"{r.scope}: {r.status} {r.message or ''}" for r in bad))
        return {"runs": out}

    purge_shared()


with DAG(
    dag_id="hipbridge_platform_outbox",
    description="平台调用发件箱: 预约授权 / 取消授权的异步发送与重试",
    schedule=CronTriggerTimetable(settings().outbox_cron, timezone=TZ),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0},
    tags=["hipbridge", "sharing", "platform"],
    doc_md="发送到期的平台调用 (授权、撤销)，失败按 1分/5分/15分/1时… 退避重试，24小时后转人工。",
) as outbox_dag:

    @task(task_id="drain_outbox")
    def drain_outbox() -> dict:
        from hipbridge.sharing.service import Lifecycle

        life = Lifecycle.open()
        client = life.client()
        try:
            r = life.drain_outbox(client)
        finally:
            client.close()
        return {"sent": r.sent, "acked": r.acked, "retry": r.retry, "failed": r.failed, "codes": r.codes}

    @task(task_id="reconcile_authorizations")
    def reconcile_authorizations() -> dict:
        """Once a night (the first run after 01:00): AUTH_QUERY every live authorization."""
        from hipbridge.sharing.service import Lifecycle

        life = Lifecycle.open()
        if not (1 <= life.now().hour < 2 and life.now().minute < 5):
            return {"skipped": True}
        client = life.client()
        try:
            r = life.reconcile(client)
        finally:
            client.close()
        return {"checked": r.checked, "changed": r.changed, "unreachable": r.unreachable}

    drain_outbox() >> reconcile_authorizations()

"""Chinese names of the codes hipbridge stores (batch status and mode, outbox and authorization status,
deletion runs and results), for what hospital staff read: report pages and the Airflow plugin. The
stored codes stay English; an unknown code is shown as it is."""

from __future__ import annotations

from hipbridge.mapping.local import STATUS_LABELS

LABELS: dict[str, dict[str, str]] = {
    "batch_status": {"planned": "已计划", "extracted": "已抽取", "staged": "已暂存", "blocked": "质控拦截",
                     "published": "已发布", "failed": "失败"},
    "run_mode": {"incremental": "增量", "full": "全量", "window": "窗口重跑"},
    "outbox_status": {"NEW": "待发送", "SENT": "已发送待确认", "ACKED": "已确认", "FAILED": "失败"},
    "outbox_kind": {"grant": "授权", "revoke": "撤销授权"},
    "auth_status": {"PENDING": "待生效", "ACTIVE": "生效中", "REVOKED": "已撤销", "EXPIRED": "已过期",
                    "FAILED": "失败"},
    "deletion_scope": {"shared": "外院共享数据", "uploaded": "本院已上传数据"},
    "deletion_run": {"RUNNING": "进行中", "OK": "完成", "ABORTED": "中止", "FAILED": "失败"},
    "deletion_result": {"DELETED": "已删除", "WOULD_DELETE": "演练(将删除)", "PURGE_FAILED": "删除失败"},
    "deletion_reason": {"visit_end": "就诊结束", "revoked": "授权撤销", "expired": "授权过期", "orphan": "无主数据",
                        "policy": "保存期满"},
}


def _mapping_status() -> dict[str, str]:
    return STATUS_LABELS


def zh(code: object, kind: str) -> str:
    """The Chinese name of `code` in vocabulary `kind` (a KeyError for an unknown vocabulary)."""
    if code is None:
        return "—"
    names = _mapping_status() if kind == "mapping_status" else LABELS[kind]
    return names.get(str(code), str(code))

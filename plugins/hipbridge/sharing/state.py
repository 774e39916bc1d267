"""Operations tables of the sharing lifecycle: push-back checks and problems, deletion runs and log.

No personal data: patients appear only as `patient_key` (HMAC-SM3 blind index) and
authorization ids only as keyed hashes in the deletion log.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Index, Integer, MetaData, String, Table, Text

from hipbridge.io.ops import register_ops_tables


@register_ops_tables
def _sharing_tables(md: MetaData) -> None:
    Table(
        "push_check", md,
        Column("batch_id", String(64), primary_key=True),
        Column("table_name", String(64), primary_key=True),
        Column("table_id", String(64)),
        Column("status", String(12), nullable=False, comment="PASSED | WARN | REJECTED"),
        Column("manifest_rows", BigInteger),
        Column("received_rows", BigInteger),
        Column("digest_ok", Boolean),
        Column("blocking", Integer, nullable=False, default=0),
        Column("warnings", Integer, nullable=False, default=0),
        Column("quality_run_id", String(64)),
        Column("checked_at", DateTime, nullable=False),
        comment="回推核验结果: 每批次每表一行",
    )
    Table(
        "push_problem", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("batch_id", String(64), nullable=False),
        Column("table_name", String(64), nullable=False),
        Column("rule_id", String(32), nullable=False),
        Column("severity", String(8), nullable=False, comment="blocking | warning"),
        Column("violated", BigInteger),
        Column("message", Text, nullable=False),
        Column("checked_at", DateTime, nullable=False),
        Index("ix_push_problem_batch", "batch_id"),
        comment="回推核验问题清单 (进入质量报告)",
    )
    Table(
        "deletion_run", md,
        Column("run_id", String(64), primary_key=True),
        Column("scope", String(12), nullable=False, comment="shared | uploaded"),
        Column("dry_run", Boolean, nullable=False),
        Column("status", String(12), nullable=False, comment="RUNNING | OK | ABORTED | FAILED"),
        Column("started_at", DateTime, nullable=False),
        Column("finished_at", DateTime),
        Column("candidates", Integer, nullable=False, default=0),
        Column("deleted_rows", BigInteger, nullable=False, default=0),
        Column("message", Text),
        comment="删除作业运行记录",
    )
    Table(
        "deletion_log", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("run_id", String(64), nullable=False),
        Column("scope", String(12), nullable=False),
        Column("patient_key", String(64), comment="HMAC-SM3 blind index (shared scope)"),
        Column("auth_keys", Text, comment="keyed hashes of the authIds covered"),
        Column("reason", String(16), comment="visit_end | revoked | no_show | stale_visit | orphan | policy"),
        Column("purge_due", DateTime),
        Column("table_counts", Text, nullable=False, comment="JSON {table: rows}"),
        Column("rows_deleted", BigInteger, nullable=False),
        Column("dry_run", Boolean, nullable=False),
        Column("result", String(16), nullable=False, comment="DELETED | WOULD_DELETE | PURGE_FAILED"),
        Column("executed_at", DateTime, nullable=False),
        Index("ix_deletion_log_run", "run_id"),
        Index("ix_deletion_log_patient", "patient_key"),
        comment="删除日志 (删除证明): 计数与散列键, 无个人信息",
    )

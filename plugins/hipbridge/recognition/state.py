"""Operations tables of the 互认 reminder client."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, UniqueConstraint

from hipbridge.io.ops import register_ops_tables


@register_ops_tables
def _recognition_tables(md: MetaData) -> None:
    Table(
        "recognition_gap", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("org_code", String(22), nullable=False),
        Column("kind", String(8), nullable=False, comment="lab | exam"),
        Column("local_code", String(64), nullable=False, comment="the order's local item code"),
        Column("reason", String(24), nullable=False, comment="NO_MAPPING | PART_MISMATCH | METHOD_MISMATCH"),
        Column("detail", String(200)),
        Column("first_seen", DateTime, nullable=False),
        Column("last_seen", DateTime, nullable=False),
        Column("times", Integer, nullable=False, default=1),
        UniqueConstraint("org_code", "kind", "local_code", "reason", name="uq_recognition_gap"),
        comment="互认提醒: 无法映射到互认项目的医嘱 (供目录维护)",
    )


@register_ops_tables
def _reminder_tables(md: MetaData) -> None:
    Table(
        "recognition_reminder", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("remind_id", String(32), nullable=False, comment="提醒记录 remindId (GUID), created once"),
        Column("org_code", String(22), nullable=False),
        Column("visit_id", String(64), nullable=False, comment="GHId"),
        Column("patient_id", String(64), nullable=False),
        Column("doctor_id", String(64), nullable=False),
        Column("search_type", String(2), nullable=False, comment="1 接诊历史提醒 / 2 开单重复提醒"),
        Column("order_id", String(64), comment="the HIS order line (开单)"),
        Column("order_code", String(64), comment="the order's local item code"),
        Column("kind", String(8), nullable=False, comment="lab | exam"),
        Column("item_code", String(32), nullable=False, comment="互认项目代码"),
        Column("report_org_code", String(22), nullable=False),
        Column("report_org_name", String(200)),
        Column("report_no", String(64), nullable=False),
        Column("report_name", String(200)),
        Column("report_time", DateTime, nullable=False),
        Column("valid_until", DateTime, nullable=False),
        Column("created_at", DateTime, nullable=False),
        UniqueConstraint("remind_id", name="uq_recognition_remind_id"),
        UniqueConstraint("visit_id", "doctor_id", "report_org_code", "report_no", "search_type", "order_id",
                         name="uq_recognition_reminder"),
        comment="互认提醒: 每 (就诊, 医生, 外院报告, 提醒类型, 医嘱) 一行",
    )
    Table(
        "recognition_card", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("card_uuid", String(36), nullable=False),
        Column("hook", String(24), nullable=False),
        Column("hook_instance", String(64)),
        Column("reminder_id", Integer, nullable=False, comment="recognition_reminder.id"),
        Column("created_at", DateTime, nullable=False),
        UniqueConstraint("card_uuid", "reminder_id", name="uq_recognition_card"),
        comment="CDS Hooks cards answered: card uuid → the reminders it shows",
    )
    Table(
        "recognition_feedback", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("card_uuid", String(36), nullable=False),
        Column("outcome", String(12), nullable=False, comment="accepted | overridden"),
        Column("reason_code", String(8), comment="不互认理由代码 (overridden)"),
        Column("comment", String(500), comment="userComment (99: the diagnosis)"),
        Column("doctor_id", String(64)),
        Column("outcome_at", DateTime, nullable=False),
        Column("received_at", DateTime, nullable=False),
        UniqueConstraint("card_uuid", "outcome", name="uq_recognition_feedback"),
        comment="CDS Hooks feedback on a 互认 card",
    )


@register_ops_tables
def _decision_tables(md: MetaData) -> None:
    Table(
        "recognition_decision", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("org_code", String(22), nullable=False),
        Column("visit_id", String(64), nullable=False, comment="GH_ID"),
        Column("patient_id", String(64), nullable=False),
        Column("doctor_id", String(64), nullable=False),
        Column("report_org_code", String(22), nullable=False),
        Column("report_no", String(64), nullable=False, comment="REPORT_ID"),
        Column("reminder_id", Integer, nullable=False, comment="recognition_reminder.id"),
        Column("status", String(2), nullable=False, comment="RECOGNITION_STATUS: 0 不互认, 1 互认, 2 未处理"),
        Column("action", String(12), nullable=False, comment="recognize | decline | ignore | undo"),
        Column("reason_code", String(8)),
        Column("diag_name", String(200)),
        Column("counted", Integer, comment="1: counted as a refusal in 互认率 (98 / 99: 0)"),
        Column("mr_id", String(32), comment="the last 互认记录 mrId (撤销不互认 names it)"),
        Column("decided_at", DateTime, nullable=False),
        UniqueConstraint("visit_id", "report_org_code", "report_no", "doctor_id", name="uq_recognition_decision"),
        comment="互认决定: 每 (就诊, 外院报告, 医生) 一行, 当前状态",
    )
    Table(
        "recognition_citation", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("decision_id", Integer, nullable=False),
        Column("quote_id", String(32), nullable=False, comment="引用记录 quoteId"),
        Column("citation", Text, nullable=False, comment="SM4-encrypted JSON: institution, report no, date, values"),
        Column("created_at", DateTime, nullable=False),
        UniqueConstraint("quote_id", name="uq_recognition_citation"),
        comment="病历引用记录 (医院病历的一部分, 不随共享数据删除)",
    )


@register_ops_tables
def _reason_tables(md: MetaData) -> None:
    Table(
        "recognition_reason", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("code", String(8), nullable=False),
        Column("name", String(200), nullable=False),
        Column("fetched_at", DateTime, nullable=False),
        comment="不互认理由字典: 平台最近一次给出的列表 (平台不可用时使用)",
    )

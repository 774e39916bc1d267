"""Alerts from what hipbridge recorded: failed runs, watermark lag, the platform, the outbox, quality, purges.

Conditions are read from the operations schema (batch log, watermarks, outbox, quality runs,
deletion runs) and, for the platform, from a live signed round trip. Each alert has a stable key;
`alert_state` remembers what was sent, so a condition is announced once, again after
`repeat_after` while it lasts, and once more when it clears. Events (a failed batch, a score
drop, a failed purge) are announced once each. A channel that fails leaves the alert unsent, to
be retried on the next round; nothing is marked sent that was not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, func, select
from sqlalchemy.engine import Engine

import hipbridge.platform.state
import hipbridge.quality.store
import hipbridge.sharing.state  # noqa: F401 - registers the deletion run table read here
from hipbridge.io import engines
from hipbridge.io.ops import Ops, ensure_ops, register_ops_tables
from hipbridge.settings import hospital_now, ops_schema_name, org_name
from hipbridge.spec import SpecSet, load_specs
from hipbridge.statuses import BatchStatus

from .channels import ChannelError, send
from .config import AlertsConfig, MonitoringConfig, monitoring_config
from .doctor import FAIL, platform_checks

EVENT_LOOKBACK = timedelta(days=2)     # older failures were someone else's morning: not re-announced


@register_ops_tables
def _alert_tables(md: MetaData) -> None:
    Table(
        "alert_state", md,
        Column("alert_key", String(200), primary_key=True),
        Column("rule", String(32), nullable=False),
        Column("severity", String(8), nullable=False),
        Column("title", Text, nullable=False),
        Column("first_seen", DateTime, nullable=False),
        Column("last_seen", DateTime, nullable=False),
        Column("last_sent", DateTime),
        Column("sent_count", Integer, nullable=False, default=0),
        Column("resolved_at", DateTime),
        Column("last_error", Text),
        comment="告警状态: 已发送的告警与恢复, 防止重复轰炸",
    )


@dataclass(frozen=True)
class Alert:
    key: str
    rule: str
    severity: str
    title: str
    detail: str
    event: bool = False        # an event is announced once; a condition repeats while it lasts


@dataclass
class MonitorReport:
    active: list[Alert] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _fmt(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M") if dt else "—"


# ---------------------------------------------------------------- conditions


def failed_runs(engine: Engine, ops: Ops, cfg: AlertsConfig, now: datetime) -> list[Alert]:
    rule = cfg.rule("failed_run")
    if rule is None:
        return []
    t = ops.table("batch_log")
    with engine.connect() as c:
        rows = c.execute(select(t.c.batch_id, t.c.table_id, t.c.status, t.c.started_at, t.c.message)
                         .where(t.c.status.in_(BatchStatus.unsuccessful()), t.c.started_at >= now - EVENT_LOOKBACK)
                         .order_by(t.c.started_at)).all()
    what = {BatchStatus.FAILED: "上传失败", BatchStatus.BLOCKED: "质控拦截未发布"}
    return [Alert(f"failed_run:{r.batch_id}", "failed_run", rule.severity,
                  f"{r.table_id} {what[r.status]}",
                  f"批次 {r.batch_id}，开始于 {_fmt(r.started_at)}：{(r.message or '').splitlines()[0][:300] if r.message else '无信息'}",
                  event=True)
            for r in rows]


def watermark_lag(engine: Engine, ops: Ops, cfg: AlertsConfig, specs: SpecSet, now: datetime) -> list[Alert]:
    rule = cfg.rule("watermark_lag")
    if rule is None or rule.threshold is None:
        return []
    t = ops.table("watermark")
    with engine.connect() as c:
        marks = dict(c.execute(select(t.c.table_id, t.c.watermark)).all())
    out = []
    for table_id, spec in sorted(specs.specs.items()):
        if spec.source.watermark is None or spec.schedule is None:
            continue
        mark = marks.get(table_id)
        if mark is None or now - mark > rule.threshold:
            lag = "从未上传" if mark is None else f"水位 {_fmt(mark)}，滞后 {(now - mark).total_seconds() / 3600:.1f} 小时"
            out.append(Alert(f"watermark_lag:{table_id}", "watermark_lag", rule.severity,
                             f"{table_id} ({spec.label}) 上传滞后", f"{lag}（阈值 {rule.threshold}）"))
    return out


def outbox_backlog(engine: Engine, ops: Ops, cfg: AlertsConfig, now: datetime) -> list[Alert]:
    rule = cfg.rule("outbox_backlog")
    if rule is None:
        return []
    t = ops.table("outbox")
    with engine.connect() as c:
        pending, oldest = c.execute(select(func.count(), func.min(t.c.created_at))
                                    .where(t.c.status.in_(("NEW", "SENT")))).one()
    too_many = rule.max_pending is not None and pending > rule.max_pending
    too_old = rule.max_age is not None and oldest is not None and now - oldest > rule.max_age
    if not (too_many or too_old):
        return []
    return [Alert("outbox_backlog", "outbox_backlog", rule.severity, "平台调用积压",
                  f"待发送 {pending} 条，最早 {_fmt(oldest)}（阈值 {rule.max_pending} 条 / {rule.max_age}）")]


def quality_drop(engine: Engine, ops: Ops, cfg: AlertsConfig, now: datetime) -> list[Alert]:
    rule = cfg.rule("quality_drop")
    if rule is None or rule.points is None:
        return []
    t = ops.table("quality_run")
    with engine.connect() as c:
        runs = c.execute(select(t.c.run_id, t.c.overall, t.c.started_at)
                         .where(t.c.kind == "report", t.c.overall.is_not(None))
                         .order_by(t.c.started_at.desc()).limit(2)).all()
    if len(runs) < 2 or runs[0].started_at < now - EVENT_LOOKBACK:
        return []
    latest, before = runs
    drop = before.overall - latest.overall
    if drop < rule.points:
        return []
    return [Alert(f"quality_drop:{latest.run_id}", "quality_drop", rule.severity, "质控得分下降",
                  f"总分 {before.overall:.1f} → {latest.overall:.1f}（下降 {drop:.1f} 分，阈值 {rule.points:g}），"
                  f"质控运行 {latest.run_id}", event=True)]


def purge_failures(engine: Engine, ops: Ops, cfg: AlertsConfig, now: datetime) -> list[Alert]:
    rule = cfg.rule("purge_failure")
    if rule is None:
        return []
    t = ops.table("deletion_run")
    with engine.connect() as c:
        rows = c.execute(select(t.c.run_id, t.c.scope, t.c.status, t.c.started_at, t.c.message)
                         .where(t.c.status.in_(("FAILED", "ABORTED")), t.c.started_at >= now - EVENT_LOOKBACK)).all()
    return [Alert(f"purge_failure:{r.run_id}", "purge_failure", rule.severity, "共享数据定期删除失败",
                  f"删除作业 {r.run_id} ({r.scope}) {r.status}，开始于 {_fmt(r.started_at)}：{(r.message or '')[:300]}",
                  event=True)
            for r in rows]


def platform_unreachable(cfg: MonitoringConfig, frontend_url: str, specs: SpecSet) -> list[Alert]:
    rule = cfg.alerts.rule("platform_unreachable")
    if rule is None:
        return []

    bad = [c for c in platform_checks(cfg.doctor, frontend_url, specs) if c.status == FAIL]
    if not bad:
        return []
    return [Alert("platform_unreachable", "platform_unreachable", rule.severity, "省平台不可达",
                  "；".join(c.detail for c in bad))]


def evaluate(engine: Engine, ops: Ops, cfg: MonitoringConfig, specs: SpecSet, now: datetime,
             frontend_url: str) -> list[Alert]:
    a = cfg.alerts
    return (failed_runs(engine, ops, a, now) + watermark_lag(engine, ops, a, specs, now)
            + platform_unreachable(cfg, frontend_url, specs) + outbox_backlog(engine, ops, a, now)
            + quality_drop(engine, ops, a, now) + purge_failures(engine, ops, a, now))


# ---------------------------------------------------------------- announcing


def _message(org_name: str, alert: Alert, now: datetime, tz: str, resolved: bool = False) -> tuple[str, str, dict]:
    stamp = f"{now:%Y-%m-%d %H:%M:%S} ({tz})"
    head = "【已恢复】" if resolved else f"【{alert.severity}】"
    subject = f"{head}hipbridge {org_name}: {alert.title}"
    body = f"{alert.detail}\n时间: {stamp}\n告警键: {alert.key}"
    payload = {"key": alert.key, "rule": alert.rule, "severity": alert.severity, "resolved": resolved,
               "title": alert.title, "detail": alert.detail, "time": now.replace(tzinfo=ZoneInfo(tz)).isoformat()}
    return subject, body, payload


def run_monitor(frontend_url: str | None = None, now: datetime | None = None, send_alerts: bool = True,
                cfg: MonitoringConfig | None = None, specs: SpecSet | None = None) -> MonitorReport:
    """Evaluate every rule, announce what is new or due again, and what has cleared."""

    cfg = cfg or monitoring_config()
    specs = specs or load_specs()
    tz = specs.defaults.timezone
    now = now or hospital_now(tz)
    url = frontend_url or engines.default_frontend_url()
    schema = ops_schema_name(specs.defaults, url)
    engine = engines.engine_for(url, schema)
    ops = ensure_ops(engine, schema)
    st = ops.table("alert_state")
    report = MonitorReport(active=evaluate(engine, ops, cfg, specs, now, url))
    hospital = org_name(specs.defaults)
    with engine.connect() as c:
        known = {r.alert_key: r for r in c.execute(select(st)).all()}
    for alert in report.active:
        row = known.get(alert.key)
        with engine.begin() as c:
            if row is None:
                c.execute(st.insert().values(alert_key=alert.key, rule=alert.rule, severity=alert.severity,
                                             title=alert.title, first_seen=now, last_seen=now, sent_count=0))
            else:
                c.execute(st.update().where(st.c.alert_key == alert.key)
                          .values(last_seen=now, resolved_at=None, title=alert.title))
        resend = (row is not None and row.last_sent is not None and row.resolved_at is None
                  and not alert.event and now - row.last_sent >= cfg.alerts.repeat_after)
        reopened = row is not None and row.resolved_at is not None and not alert.event
        due = row is None or row.last_sent is None or resend or reopened
        if due and send_alerts:
            _announce(engine, st, cfg, alert, hospital, now, tz, report, sent_count=(row.sent_count if row else 0))
    active_keys = {a.key for a in report.active}
    for key, row in known.items():
        if key in active_keys or row.resolved_at is not None:
            continue
        cleared = Alert(key, row.rule, row.severity, row.title, "告警条件已消除")
        with engine.begin() as c:
            c.execute(st.update().where(st.c.alert_key == key).values(resolved_at=now))
        report.resolved.append(key)
        if send_alerts and row.last_sent is not None and not key.startswith(_EVENT_PREFIXES):
            try:
                send(cfg.alerts.channels, *_message(hospital, cleared, now, tz, resolved=True))
            except ChannelError as exc:
                report.errors.append(f"{key} (恢复通知): {exc}")
    return report


_EVENT_PREFIXES = ("failed_run:", "quality_drop:", "purge_failure:")


def _announce(engine, st: Table, cfg: MonitoringConfig, alert: Alert, hospital: str, now: datetime, tz: str,
              report: MonitorReport, sent_count: int) -> None:
    try:
        used = send(cfg.alerts.channels, *_message(hospital, alert, now, tz))
    except ChannelError as exc:
        report.errors.append(f"{alert.key}: {exc}")
        with engine.begin() as c:
            c.execute(st.update().where(st.c.alert_key == alert.key).values(last_error=str(exc)[:2000]))
        return
    if not used:      # no channel enabled: shown by the CLI, but not marked as sent to anyone
        return
    with engine.begin() as c:
        c.execute(st.update().where(st.c.alert_key == alert.key)
                  .values(last_sent=now, sent_count=sent_count + 1, last_error=None))
    report.sent.append(alert.key)

"""Typed view of `config/monitoring.yaml`; unknown keys are errors naming the file and key."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hipbridge.settings import config_dir, settings
from hipbridge.spec import parse_duration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DoctorConfig(_Strict):
    clock_skew_warn_s: float = Field(30, gt=0)
    clock_skew_fail_s: float = Field(300, gt=0)
    disk_free_warn_pct: float = Field(15, ge=0, le=100)
    disk_free_fail_pct: float = Field(5, ge=0, le=100)
    airflow_url: str = "http://127.0.0.1:8080"
    connect_timeout_s: float = Field(5, gt=0)

    @property
    def airflow(self) -> str:
        return (settings().airflow_url or self.airflow_url).rstrip("/")


class Webhook(_Strict):
    enabled: bool = False
    url: str | None = None
    format: str = Field("wecom", pattern="^(wecom|dingtalk|generic)$")


class Email(_Strict):
    enabled: bool = False
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    sender: str = "hipbridge@localhost"
    recipients: list[str] = Field(default_factory=list)


class Channels(_Strict):
    webhook: Webhook = Webhook()
    email: Email = Email()


class Rule(_Strict):
    enabled: bool = True
    severity: str = "警告"
    threshold: timedelta | None = None
    max_pending: int | None = None
    max_age: timedelta | None = None
    points: float | None = None

    @field_validator("threshold", "max_age", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta | None:
        return None if v is None else parse_duration(v)


RULES = ("failed_run", "watermark_lag", "platform_unreachable", "outbox_backlog", "quality_drop", "purge_failure")


class AlertsConfig(_Strict):
    repeat_after: timedelta = timedelta(hours=6)
    channels: Channels = Channels()
    rules: dict[str, Rule] = Field(default_factory=dict)

    @field_validator("repeat_after", mode="before")
    @classmethod
    def _repeat(cls, v: Any) -> timedelta:
        return parse_duration(v)

    @field_validator("rules")
    @classmethod
    def _known(cls, v: dict[str, Rule]) -> dict[str, Rule]:
        unknown = set(v) - set(RULES)
        if unknown:
            raise ValueError(f"unknown rule(s) {sorted(unknown)}; known: {', '.join(RULES)}")
        return v

    def rule(self, name: str) -> Rule | None:
        r = self.rules.get(name)
        return r if r is not None and r.enabled else None


class MonitoringConfig(_Strict):
    doctor: DoctorConfig = DoctorConfig()
    alerts: AlertsConfig = AlertsConfig()


def monitoring_config(path=None) -> MonitoringConfig:
    path = path or config_dir() / "monitoring.yaml"
    if not path.exists():
        return MonitoringConfig()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        return MonitoringConfig(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path}: {problems}") from None


def reference(value: str | None) -> str | None:
    """`env:NAME` → that variable (None when unset); anything else is the value itself."""
    if value and value.startswith("env:"):
        return os.environ.get(value[4:]) or None
    return value

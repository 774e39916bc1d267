"""Typed view of `config/platform.yaml`, `config/sharing.yaml` and `config/retention.yaml`.

Every province-specific literal (service codes, paths, field names, error codes, windows) is read
from these files; unknown keys are errors naming the file, so a typo never passes silently.
Folder: env `HIPBRIDGE_CONFIG`, else `<repo>/config`.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hipbridge import profiles
from hipbridge.settings import DEFAULT_TIMEZONE, config_dir, hospital_now, settings
from hipbridge.spec import parse_duration
from hipbridge.yamlconfig import ConfigError, load_model
from hipbridge.yamlconfig import StrictModel as _Strict

__all__ = ["ConfigError", "PlatformConfig", "RetentionConfig", "SharingConfig", "config_dir", "load_model",
           "platform_config", "retention_config", "sharing_config"]





# ---------------------------------------------------------------- platform.yaml


class Envelope(_Strict):
    version: str
    enc_type: str
    sign_type: str
    sm2_user_id: str
    timestamp_window_s: int = Field(ge=1)
    nonce_ttl_s: int = Field(ge=1)
    fields: dict[str, str]

    @field_validator("fields")
    @classmethod
    def _all_roles(cls, v: dict[str, str]) -> dict[str, str]:
        need = {"app_id", "org_code", "service_code", "version", "request_id", "timestamp", "nonce",
                "enc_type", "sign_type", "enc_key", "iv", "biz_content", "digest", "sign", "code", "msg",
                "request_nonce"}
        missing = need - set(v)
        if missing:
            raise ValueError(f"envelope.fields lacks {sorted(missing)}")
        return v


class Service(_Strict):
    code: str
    path: str


class Codes(_Strict):
    success: str
    treat_as_success: list[str] = Field(default_factory=list)
    retry_prefixes: list[str]
    retry_codes: list[str] = Field(default_factory=list)
    envelope: dict[str, str]
    business: dict[str, str]
    messages: dict[str, str] = Field(default_factory=dict)

    def retryable(self, code: str) -> bool:
        return code in self.retry_codes or any(code.startswith(p) for p in self.retry_prefixes)

    def message(self, code: str) -> str:
        return self.messages.get(code, code)


class Retry(_Strict):
    backoff: list[timedelta]
    give_up_after: timedelta

    @field_validator("backoff", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> list[timedelta]:
        return [parse_duration(x) for x in v]

    @field_validator("give_up_after", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        return parse_duration(v)

    def delay(self, attempts: int) -> timedelta:
        """Back-off after the `attempts`-th failure (1-based): 1 m, 5 m, 15 m, 1 h … then the last."""
        return self.backoff[min(attempts, len(self.backoff)) - 1]


class PlatformConfig(_Strict):
    base_url: str
    app_id: str
    timeout_s: float = 10
    time_format: str
    timezone: str = DEFAULT_TIMEZONE
    envelope: Envelope
    services: dict[str, Service]
    messages: dict[str, dict[str, str]]
    auth_status: dict[str, str]
    revoke_types: dict[str, str]
    codes: Codes
    retry: Retry

    @property
    def url(self) -> str:
        """HIPBRIDGE_PLATFORM_URL, else the active profile's platform address, else `base_url`."""
        return settings().platform_url or profiles.active().platform.base_url or self.base_url

    def local_now(self):
        """Naive local time in `timezone` (the time base of every stored and exchanged datetime)."""
        return hospital_now(self.timezone)

    def service(self, role: str) -> Service:
        try:
            return self.services[role]
        except KeyError:
            raise KeyError(f"config/platform.yaml: services has no {role!r} (have {sorted(self.services)})") from None

    def status_role(self, value: str) -> str | None:
        return next((k for k, v in self.auth_status.items() if v == value), None)


# ---------------------------------------------------------------- sharing.yaml


class Door(_Strict):
    host: str
    port: int
    callers_file: str


class Authorization(_Strict):
    scope: list[str]
    end_after_visit_days: int
    inpatient_extension_days: int
    channels: dict[str, str]
    consent_methods: list[str]
    consent_text_version: str
    consent_text: str
    guardian_age_below: int = 14


class Manifest(_Strict):
    table: str
    columns: dict[str, str]


class Store(_Strict):
    schema_: str = Field(alias="schema")
    tables: list[str]
    columns: dict[str, str]
    manifest: Manifest

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def schema_name(self) -> str:
        return settings().share_schema or self.schema_


class Verification(_Strict):
    quality_engine: bool = True
    orphan_grace: timedelta = timedelta(hours=24)
    skip_quality_rules: list[str] = Field(default_factory=list)

    @field_validator("orphan_grace", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        return parse_duration(v)


class Hospital(_Strict):
    code: str
    name: str


class Simulator(_Strict):
    host: str
    port: int
    org_codes: list[str]
    other_hospitals: list[Hospital]
    rows_per_table: dict[str, int]
    max_auth_days: int


class SharingConfig(_Strict):
    door: Door
    authorization: Authorization
    store: Store
    verification: Verification
    simulator: Simulator


# ---------------------------------------------------------------- retention.yaml


class SharedRetention(_Strict):
    anchor: str
    days: int = Field(ge=0)
    revoke: str
    no_show: str
    stale_open_visit_days: int = Field(ge=1)


class UploadedRetention(_Strict):
    tables: list[str] = Field(default_factory=list)


class VisitEndSource(_Strict):
    table: str
    visit_column: str
    end_column: str
    visit_type: str
    links: list[str] = Field(default_factory=list, description="other tables' columns that may hold this visit's number")


class RetentionRun(_Strict):
    schedule: str
    batch_rows: int = Field(ge=1)
    max_share_pct: float = Field(gt=0, le=100)
    cap_min_rows: int = Field(ge=0)


class RetentionConfig(_Strict):
    shared: SharedRetention
    uploaded: UploadedRetention = Field(default_factory=UploadedRetention)
    visit_end_sources: list[VisitEndSource] = Field(default_factory=list)
    run: RetentionRun


# ---------------------------------------------------------------- loading


def _load(name: str, model: type[BaseModel], directory: Path | None):
    return load_model(model, (directory or config_dir()) / name)


@lru_cache(maxsize=8)
def _cached(name: str, model_name: str, directory: str) -> Any:
    model = {"platform": PlatformConfig, "sharing": SharingConfig, "retention": RetentionConfig}[model_name]
    return _load(name, model, Path(directory))


def platform_config(directory: Path | None = None) -> PlatformConfig:
    return _cached("platform.yaml", "platform", str(directory or config_dir()))


def sharing_config(directory: Path | None = None) -> SharingConfig:
    return _cached("sharing.yaml", "sharing", str(directory or config_dir()))


def retention_config(directory: Path | None = None) -> RetentionConfig:
    return _cached("retention.yaml", "retention", str(directory or config_dir()))

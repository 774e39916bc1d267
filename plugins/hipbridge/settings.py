"""Deployment settings: every `HIPBRIDGE_*` environment variable, typed, in one place; the hospital's clock.

Only deployment facts live here (where the front-end is, which ops schema, which institution code,
where the working folder is); everything province-specific stays in YAML. No other module reads a
`HIPBRIDGE_*` variable from `os.environ` (tests/test_settings.py checks the source), so this file is
the complete list of what the environment can change.

`settings()` reads the environment when it is called (cached per distinct set of `HIPBRIDGE_*`
values, so a test's `monkeypatch.setenv` takes effect at once and a hot path pays a dict scan).
An empty variable counts as unset, as `os.environ.get(X) or default` did before.

This module is a leaf: it imports nothing from hipbridge at run time (`io`, `spec` and `profiles`
import it; the one import inside a function below, of `profiles`, avoids that cycle).
"""

from __future__ import annotations

import hashlib
import os
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from hipbridge.spec import Defaults

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PREFIX = "HIPBRIDGE_"
# The hospital's zone: the one literal in Python. `_defaults.yaml` / `platform.yaml` name it for the data they
# describe, HIPBRIDGE_TZ for the DAG schedules; all default to this.
DEFAULT_TIMEZONE = "Asia/Shanghai"


class Settings(BaseSettings):
    """`HIPBRIDGE_<NAME>` for each field (`home` ← HIPBRIDGE_HOME); source connections: `source_url`."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, case_sensitive=False, env_ignore_empty=True,
                                      extra="ignore", frozen=True)

    # --------------------------------------------------------------- where things are
    home: Path = Field(PROJECT_ROOT / ".hipbridge", description="working folder: embedded front-end, demo, keys")
    config: Path = Field(PROJECT_ROOT / "config", description="config/ (platform, sharing, retention, profiles)")
    specs: Path | None = Field(None, description="table_specs/ (None: the repository's)")
    expectations: Path = Field(PROJECT_ROOT / "expectations", description="quality rules folder")
    mappings: Path = Field(PROJECT_ROOT / "mappings", description="mappings/ (standard + local)")
    keys: Path | None = Field(None, description="SM2/SM4 keystore (None: $HIPBRIDGE_HOME/keys)")
    report_dir: Path | None = Field(None, description="quality / inspection reports (None: $HIPBRIDGE_HOME/reports)")
    spool_dir: str | None = Field(None, description="bulk-load spool files (None: /dev/shm when present)")
    # --------------------------------------------------------------- which databases and services
    frontend_url: str | None = Field(None, description="front-end database URL (None: SQLite under HOME)")
    ops_schema: str | None = Field(None, description="operations schema, named explicitly (tests)")
    share_schema: str | None = Field(None, description="shared-store schema (overrides sharing.yaml)")
    platform_url: str | None = Field(None, description="provincial platform base URL (overrides the profile)")
    airflow_url: str | None = Field(None, description="Airflow API server for the monitor")
    airflow_admin_password: SecretStr | None = Field(None, description="docker-compose: Airflow's admin password")
    sdf_library: str | None = Field(None, description="GM/T 0018 SDF device library (key_provider: sdf)")
    # --------------------------------------------------------------- who we are
    profile: str | None = Field(None, description="active profile (None: `hipbridge profile use`, else test)")
    org_code: str | None = Field(None, description="医疗机构代码 (overrides the profile and _defaults.yaml)")
    org_name: str | None = Field(None, description="医疗机构名称")
    hospital: str | None = Field(None, description="folder of mappings/local/ (overrides the profile)")
    tz: str = Field(DEFAULT_TIMEZONE, description="zone of the DAG schedules and of hospital_now()")
    # --------------------------------------------------------------- how the pipeline runs
    retry_attempts: int = Field(4, description="attempts of a transient step (at least 1)")
    retry_delay: float = Field(2.0, ge=0, description="seconds before the first retry (doubling)")
    backfill_parallel: int = Field(2, ge=1, description="backfill DAG runs at once")
    fast_read_mode: str = Field("1", validation_alias="HIPBRIDGE_FAST_READ", description="connectorx reads: 1 (MySQL/PostgreSQL), all, or 0/false/no/off")
    bulk_load: bool = Field(True, description="LOAD DATA / COPY into staging (false: executemany)")
    staging_engine: str = Field("aria", description="MariaDB staging engine: aria, or anything else for the default")
    debug: bool = Field(False, description="CLI: print tracebacks")
    # --------------------------------------------------------------- schedules (DAG parse time)
    quality_cron: str = "30 6 * * *"
    monitor_cron: str = "*/15 * * * *"
    inspection_cron: str | None = None          # None: config/inspection.yaml's schedule
    purge_cron: str = "0 2 * * *"
    push_verify_cron: str = "*/5 * * * *"
    outbox_cron: str = "*/5 * * * *"

    @property
    def fast_read(self) -> str | None:
        """None when off; else `all` or the default mode."""
        value = self.fast_read_mode.lower()
        return None if value in ("0", "false", "no", "off") else value

    def source_url(self, conn_id: str) -> str | None:
        """`HIPBRIDGE_CONN_<ID>`: a source connection's SQLAlchemy URL given in the environment."""
        return _environment().get(f"{PREFIX}CONN_{conn_id.upper()}") or None


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(PREFIX)}


class SettingsError(ValueError):
    """A HIPBRIDGE_* variable with a value of the wrong type (named, with what was expected)."""


@lru_cache(maxsize=16)
def _settings(snapshot: tuple[tuple[str, str], ...]) -> Settings:
    try:
        return Settings()   # reads os.environ, whose HIPBRIDGE_* values are `snapshot`
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False):
            name = str(e["loc"][0]) if e["loc"] else "?"
            var = name if name.startswith(PREFIX) else PREFIX + name.upper()
            problems.append(f"{var}={e.get('input')!r}: {e['msg']}")
        raise SettingsError("invalid environment: " + "; ".join(problems)) from None


def settings() -> Settings:
    """The settings of the environment as it is now (tests' monkeypatch included)."""
    return _settings(tuple(sorted(_environment().items())))


def setting_names() -> list[str]:
    """Every HIPBRIDGE_* variable this module knows (HIPBRIDGE_CONN_<ID> stands for the source URLs)."""
    names = [str(f.validation_alias or PREFIX + n.upper()) for n, f in Settings.model_fields.items()]
    return sorted(names) + [f"{PREFIX}CONN_<ID>"]


# ------------------------------------------------------------------- the hospital's clock


def hospital_tz(name: str | None = None) -> ZoneInfo:
    """The hospital's zone: `name` (a YAML `timezone`) or HIPBRIDGE_TZ / Asia/Shanghai."""
    return ZoneInfo(name or settings().tz)


def hospital_now(tz: str | None = None, *, precise: bool = False) -> datetime:
    """Hospital-local wall time, naive like the source systems' timestamps (to the second unless `precise`).

    The one clock for "now" in hipbridge: recorded times, windows, report stamps. Never the machine's
    zone, so a run recorded at 02:40 Shanghai is not shown as 18:40 of the day before.
    """
    now = datetime.now(hospital_tz(tz)).replace(tzinfo=None)
    return now if precise else now.replace(microsecond=0)


def hospital_today(tz: str | None = None) -> date:
    return hospital_now(tz).date()


# ------------------------------------------------------------------- derived settings


def config_dir() -> Path:
    """`config/` (platform, sharing, retention, profiles): env `HIPBRIDGE_CONFIG`, else the repo's."""
    return settings().config


def ops_schema_name(defaults: Defaults, frontend) -> str:
    """The operations schema of one front-end database: `<front-end database>_<ops_schema>`.

    frontend: the front-end's URL (str or URL) or Engine. One operations schema per front-end,
    never per server: two front-end databases on one MariaDB server get two schemas (an earlier
    version used `hipbridge_ops` for every database of the server; `ensure_ops` migrates it).
    On SQLite the operations schema is a file next to the front-end file and keeps the plain name.
    `HIPBRIDGE_OPS_SCHEMA` names it explicitly (tests; ownership is still checked).
    """
    return settings().ops_schema or derive_ops_schema(frontend, defaults.ops_schema)


# MariaDB and PostgreSQL allow 64 and 63 characters in a schema name
_MAX_SCHEMA_NAME = 63


def derive_ops_schema(frontend, base: str) -> str:
    """`<front-end database>_<base>` on MariaDB/PostgreSQL; `base` on SQLite (a file next to the front-end).

    frontend: an SQLAlchemy URL (or its text) or Engine.
    """
    url = getattr(frontend, "url", frontend)   # an Engine's URL
    if not hasattr(url, "get_backend_name"):
        # every command imports this module: SQLAlchemy waits for a caller that has a URL to read
        from sqlalchemy.engine import make_url

        url = make_url(str(url))
    if url.get_backend_name() == "sqlite" or not url.database:
        return base
    name = f"{url.database}_{base}"
    if len(name) > _MAX_SCHEMA_NAME:
        digest = hashlib.sha1(url.database.encode()).hexdigest()[:8]
        name = f"{url.database[:_MAX_SCHEMA_NAME - len(base) - 10]}_{digest}_{base}"
    return name


def org_code(defaults: Defaults) -> str:
    """HIPBRIDGE_ORG_CODE, else the active profile's institution, else `_defaults.yaml`."""
    return settings().org_code or _profile_institution("code") or defaults.institution.code


def org_name(defaults: Defaults) -> str:
    return settings().org_name or _profile_institution("name") or defaults.institution.name


def _profile_institution(field: str) -> str | None:
    from hipbridge import profiles  # profiles reads config/ through this module

    inst = profiles.active().institution
    return getattr(inst, field) if inst else None

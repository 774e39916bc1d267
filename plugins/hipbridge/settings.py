"""Deployment settings that may override `_defaults.yaml` from the environment.

Only deployment facts live here (which ops schema, which institution code); everything
province-specific stays in YAML. Tests use the overrides to isolate their databases.
"""

from __future__ import annotations

import os
from pathlib import Path

from hipbridge.spec import Defaults


def config_dir() -> Path:
    """`config/` (platform, sharing, retention, profiles): env `HIPBRIDGE_CONFIG`, else the repo's."""
    env = os.environ.get("HIPBRIDGE_CONFIG")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "config"


def ops_schema_name(defaults: Defaults) -> str:
    return os.environ.get("HIPBRIDGE_OPS_SCHEMA") or defaults.ops_schema


def org_code(defaults: Defaults) -> str:
    """HIPBRIDGE_ORG_CODE, else the active profile's institution, else `_defaults.yaml`."""
    return os.environ.get("HIPBRIDGE_ORG_CODE") or _profile_institution("code") or defaults.institution.code


def org_name(defaults: Defaults) -> str:
    return os.environ.get("HIPBRIDGE_ORG_NAME") or _profile_institution("name") or defaults.institution.name


def _profile_institution(field: str) -> str | None:
    from hipbridge import profiles  # profiles reads config/ through this module

    inst = profiles.active().institution
    return getattr(inst, field) if inst else None

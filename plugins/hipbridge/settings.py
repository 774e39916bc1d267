"""Deployment settings that may override `_defaults.yaml` from the environment.

Only deployment facts live here (which ops schema, which institution code); everything
province-specific stays in YAML. Tests use the overrides to isolate their databases.
"""

from __future__ import annotations

import os
from pathlib import Path

from hipbridge.io.ops import derive_ops_schema
from hipbridge.spec import Defaults


def config_dir() -> Path:
    """`config/` (platform, sharing, retention, profiles): env `HIPBRIDGE_CONFIG`, else the repo's."""
    env = os.environ.get("HIPBRIDGE_CONFIG")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "config"


def ops_schema_name(defaults: Defaults, frontend) -> str:
    """The operations schema of one front-end database: `<front-end database>_<ops_schema>`.

    frontend: the front-end's URL (str or URL) or Engine. One operations schema per front-end,
    never per server: two front-end databases on one MariaDB server get two schemas (an earlier
    version used `hipbridge_ops` for every database of the server; `ensure_ops` migrates it).
    On SQLite the operations schema is a file next to the front-end file and keeps the plain name.
    `HIPBRIDGE_OPS_SCHEMA` names it explicitly (tests; ownership is still checked).
    """
    return os.environ.get("HIPBRIDGE_OPS_SCHEMA") or derive_ops_schema(frontend, defaults.ops_schema)


def org_code(defaults: Defaults) -> str:
    """HIPBRIDGE_ORG_CODE, else the active profile's institution, else `_defaults.yaml`."""
    return os.environ.get("HIPBRIDGE_ORG_CODE") or _profile_institution("code") or defaults.institution.code


def org_name(defaults: Defaults) -> str:
    return os.environ.get("HIPBRIDGE_ORG_NAME") or _profile_institution("name") or defaults.institution.name


def _profile_institution(field: str) -> str | None:
    from hipbridge import profiles  # profiles reads config/ through this module

    inst = profiles.active().institution
    return getattr(inst, field) if inst else None

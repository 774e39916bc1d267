"""Deployment settings that may override `_defaults.yaml` from the environment.

Only deployment facts live here (which ops schema, which institution code); everything
province-specific stays in YAML. Tests use the overrides to isolate their databases.
"""

from __future__ import annotations

import os

from hipbridge.io.ops import derive_ops_schema
from hipbridge.spec import Defaults


def ops_schema_overridden() -> bool:
    return bool(os.environ.get("HIPBRIDGE_OPS_SCHEMA"))


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
    return os.environ.get("HIPBRIDGE_ORG_CODE") or defaults.institution.code


def org_name(defaults: Defaults) -> str:
    return os.environ.get("HIPBRIDGE_ORG_NAME") or defaults.institution.name

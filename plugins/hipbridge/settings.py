"""Deployment settings that may override `_defaults.yaml` from the environment.

Only deployment facts live here (which ops schema, which institution code); everything
province-specific stays in YAML. Tests use the overrides to isolate their databases.
"""

from __future__ import annotations

import os

from hipbridge.spec import Defaults


def ops_schema_name(defaults: Defaults) -> str:
    return os.environ.get("HIPBRIDGE_OPS_SCHEMA") or defaults.ops_schema


def org_code(defaults: Defaults) -> str:
    return os.environ.get("HIPBRIDGE_ORG_CODE") or defaults.institution.code


def org_name(defaults: Defaults) -> str:
    return os.environ.get("HIPBRIDGE_ORG_NAME") or defaults.institution.name

"""Code mapping (数据对码): standard value domains, reviewed local mappings, apply, gap report.

Nothing is read at import time. `load_catalog()` reads `mappings/standard/` and the configured
hospital's `mappings/local/<hospital>/`, validates every file and caches the parsed CSVs.
"""

from __future__ import annotations

from pathlib import Path

from hipbridge import profiles
from hipbridge.settings import settings

from . import ops as _ops  # noqa: F401 - registers the mapping_gap table in the operations schema
from .catalog import COUNT_KEYS, Catalog, MappingResult
from .domains import load_domains
from .files import MappingConfigError, MappingFileError
from .local import load_hospital

__all__ = ["COUNT_KEYS", "Catalog", "MappingConfigError", "MappingFileError", "MappingResult",
           "default_hospital", "default_mappings_dir", "load_catalog"]

_PROJECT_ROOT = Path(__file__).resolve().parents[3]


def default_mappings_dir() -> Path:
    return settings().mappings


def default_hospital() -> str:
    """The hospital whose local mappings apply: env HIPBRIDGE_HOSPITAL, else the active profile's
    `mapping_hospital`. No default: production must never pick up the demo's mappings silently."""
    env = settings().hospital
    if env:
        return env
    profile = profiles.active()
    if profile.mapping_hospital:
        return profile.mapping_hospital
    raise MappingConfigError(
        f"no hospital for the local code mappings: set HIPBRIDGE_HOSPITAL to a folder of "
        f"{default_mappings_dir() / 'local'} or `mapping_hospital:` in "
        f"{profiles.profiles_dir() / (profile.name + '.yaml')} (profile {profile.name!r})")


def load_catalog(mappings_dir: Path | str | None = None, hospital: str | None = None) -> Catalog:
    """Standard domains + the hospital's local sets (`default_hospital()`: env HIPBRIDGE_HOSPITAL or the profile).

    Never raises for a bad file: the errors are in `catalog.errors`, and `apply` refuses a column
    whose domain or local set failed validation (nothing is applied from an invalid file).
    """
    root = Path(mappings_dir) if mappings_dir else default_mappings_dir()
    domains, errors = load_domains(root / "standard")
    hosp = load_hospital(root / "local", hospital or default_hospital(), domains)
    errors = list(errors) + list(hosp.errors)
    for s in hosp.sets.values():
        errors.extend(e for e in s.errors if e not in errors)
    return Catalog(root, domains, hosp, errors)

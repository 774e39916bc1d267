"""Table specs: the YAML contract integrators edit (models, loading, JSON Schema)."""

from .load import SpecError, SpecLoadError, SpecSet, default_spec_dir, load_specs
from .models import Column, Defaults, TableSpec
from .types import ColumnType, parse_duration, parse_type

__all__ = ["Column", "ColumnType", "Defaults", "SpecError", "SpecLoadError", "SpecSet", "TableSpec",
           "default_spec_dir", "load_specs", "parse_duration", "parse_type"]

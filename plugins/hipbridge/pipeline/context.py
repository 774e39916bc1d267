"""What every pipeline step needs: the specs, the front-end engine and the operations schema."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Engine

from hipbridge.io import engines, state
from hipbridge.io.dialects import FrontendDialect, frontend_dialect
from hipbridge.io.frontend import create_frontend, ledger_table
from hipbridge.io.ops import Ops, ensure_ops
from hipbridge.io.staging import batch_staging_table
from hipbridge.mapping import load_catalog
from hipbridge.settings import hospital_now, ops_schema_name
from hipbridge.spec import SpecSet, TableSpec, load_specs


@dataclass
class Context:
    """What every step needs: the specs, the front-end engine and the operations schema."""

    specs: SpecSet
    frontend_url: str
    mappings_dir: Path | None = None

    @classmethod
    def create(cls, specs_dir: str | Path | None = None, frontend_url: str | None = None,
               mappings_dir: Path | None = None) -> Context:
        # Only _defaults.yaml must be valid here: a table's own spec is required when it runs
        # (`specs.get(table)`), so one broken file never stops the other tables (README, design decisions).
        specs = load_specs(specs_dir).require_defaults()
        return cls(specs, frontend_url or engines.default_frontend_url(), mappings_dir)

    @property
    def defaults(self):
        return self.specs.defaults

    @cached_property
    def ops_schema(self) -> str:
        return ops_schema_name(self.defaults, self.frontend_url)

    @cached_property
    def engine(self) -> Engine:
        return engines.engine_for(self.frontend_url, self.ops_schema)

    @cached_property
    def ops(self) -> Ops:
        return ensure_ops(self.engine, self.ops_schema)

    @cached_property
    def catalog(self):
        return load_catalog(self.mappings_dir)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.defaults.timezone)

    def now(self) -> datetime:
        """Hospital-local wall time, naive like the source systems' timestamps."""
        return hospital_now(self.defaults.timezone)

    @cached_property
    def encrypted(self) -> dict[str, frozenset[str]]:
        """Table id → columns encrypted in its front-end table (config/crypto.yaml `frontend`)."""
        from hipbridge.crypto.frontend import frontend_columns

        return frontend_columns(self.specs)

    def ensure_frontend(self, tables: list[str] | None = None) -> None:
        _ = self.ops
        create_frontend(self.engine, self.specs, tables, encrypted=self.encrypted)

    @property
    def dialect(self) -> FrontendDialect:
        return frontend_dialect(self.engine)

    def tables_for(self, spec: TableSpec, batch: state.Batch, constants: dict | None = None) -> tuple[Table, Table]:
        """(staging, ledger) of a batch: the batch's own staging table and the table's ledger.

        constants: per-batch column values the staging table gets as defaults (transfer creates
        the table with them; the other steps only need its name and columns).
        """
        staging = batch_staging_table(spec, self.defaults, self.ops_schema, batch.batch_id, self.dialect,
                                      constants=constants, encrypted=self.encrypted.get(spec.table, frozenset()))
        return staging, ledger_table(spec, self.defaults, self.ops_schema, MetaData(), self.engine.dialect.name)

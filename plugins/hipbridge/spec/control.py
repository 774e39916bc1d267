"""The layout of the province's control tables (数据量记录汇总, 数据对账表): `table_specs/_control.yaml`.

Spec data, read by the reconciliation (pipeline/reconcile.py, which computes the tables) and by the
quality rule C03 (quality/templates.py, which checks each table's daily volume against them).
"""

from __future__ import annotations

from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from hipbridge.spec import SpecSet

CONTROL_FILE = "_control.yaml"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Named(_M):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    label: str


class VolumeColumns(_M):
    business_start: Named
    business_end: Named
    platform_table: Named
    expected: Named
    detail_flag: Named


class VolumeSpec(_M):
    name: str
    label: str
    primary_key: list[str]
    columns: VolumeColumns
    detail_flag_value: str = "1"


class Measure(_M):
    name: str
    label: str
    table: str
    date: str
    count: bool = False
    sum: str | None = None
    where: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def kind(self) -> Literal["count", "sum"]:
        return "sum" if self.sum else "count"


class ReconColumns(_M):
    key: Named
    period_start: Named
    period_end: Named
    table_label: Named
    sent: Named


class ReconSpec(_M):
    name: str
    label: str
    primary_key: list[str]
    columns: ReconColumns
    measures: list[Measure]


class ControlSpec(_M):
    volume: VolumeSpec
    reconciliation: ReconSpec


def load_control(specs: SpecSet) -> ControlSpec:
    path = specs.directory / CONTROL_FILE
    control = ControlSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    for m in control.reconciliation.measures:
        spec = specs.get(m.table)  # raises with the known tables listed
        for col in [m.date, m.sum, *m.where]:
            if col and spec.column(col) is None:
                raise ValueError(f"{path}: measure {m.name}: table {m.table} has no column {col}")
    return control

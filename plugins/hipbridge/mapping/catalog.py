"""The mapping catalog: standard domains + the configured hospital's local sets, and `apply()`.

`apply` works per coded column: one hash lookup of every value against the applying raw codes (as
`Series.map` does) and two array takes (code, name); only the misses — empty cells, values needing
normalisation, unmapped codes — are handled per distinct value. The cost per row does not depend on
the size of the code lists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .domains import ValueDomain, find_domain
from .files import MappingConfigError, MappingFileError
from .local import HospitalConfig, LocalSet

if TYPE_CHECKING:
    from hipbridge.spec import Column, TableSpec

COUNT_KEYS = ("mapped", "empty", "unmapped_kept", "unmapped_other", "unmapped_quarantined")
MAPPED, EMPTY, UNMAPPED = 0, 1, 2


@dataclass
class MappingResult:
    frame: pd.DataFrame
    row_errors: pd.Series
    counts: dict[str, dict[str, int]]
    # {column: {local code: rows}} for values that were not mapped (kept, other or quarantined)
    unmapped: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def quarantined(self) -> int:
        return int(self.row_errors.notna().sum())


@dataclass
class ColumnResolver:
    """How one spec column's values become standard codes: a dict lookup plus the unmapped policy."""

    column: Column
    domain: ValueDomain
    local: LocalSet | None
    lookup: dict[str, str]          # raw (normalised) value → standard code
    policy: str
    other_code: str | None
    _index: object = None
    _codes: np.ndarray | None = None
    _names: np.ndarray | None = None

    def arrays(self):
        """(pandas Index of mapped raw values, their standard codes, their standard names) — built once."""
        if self._index is None:
            keys = list(self.lookup)
            self._index = pd.Index(keys, dtype=object)
            self._codes = np.array([self.lookup[k] for k in keys], dtype=object)
            self._names = np.array([self.domain.codes.get(self.lookup[k]) for k in keys], dtype=object)
        return self._index, self._codes, self._names

    @property
    def reason_prefix(self) -> str:
        return f"{self.column.label}({self.column.name})"

    def reason(self, value: str) -> str:
        if self.local is not None:
            return f"{self.reason_prefix} 本地码 {value!r} 未对照到 {self.domain.id}"
        return f"{self.reason_prefix} 值 {value!r} 不是 {self.domain.id}（{self.domain.label}）的代码"

    def resolve(self, values: list[str | None]) -> tuple[list[str | None], np.ndarray]:
        """Standard code (or None) and state (MAPPED / EMPTY / UNMAPPED) for each distinct value."""
        codes: list[str | None] = []
        states = np.empty(len(values), dtype=np.int8)
        get = self.lookup.get
        for i, v in enumerate(values):
            if v is None:
                codes.append(None)
                states[i] = EMPTY
                continue
            std = get(v)
            codes.append(std)
            states[i] = UNMAPPED if std is None else MAPPED
        return codes, states


def normalise_value(v: object) -> str | None:
    """Raw cell → the string looked up: stripped; None/NaN/'' → None; 1.0 → '1'."""
    if v is None:
        return None
    if isinstance(v, str):
        s = v.strip()
        return s or None
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer():
            return str(int(v))
    try:
        if v is pd.NA or v is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    s = str(v).strip()
    return s or None


class Catalog:
    """Standard value domains and one hospital's local mappings, validated and cached."""

    def __init__(self, mappings_dir: Path, domains: dict[str, ValueDomain], hospital: HospitalConfig,
                 errors: list[MappingFileError]):
        self.mappings_dir = mappings_dir
        self.domains = domains
        self.hospital = hospital
        self.errors = errors
        self._resolvers: dict[tuple, ColumnResolver] = {}

    @property
    def sets(self) -> dict[str, LocalSet]:
        return self.hospital.sets

    @property
    def apply_statuses(self) -> tuple[str, ...]:
        return self.hospital.apply_statuses

    def domain(self, domain_id: str) -> ValueDomain:
        dom = find_domain(self.domains, domain_id)
        if dom is None:
            raise MappingConfigError(f"未知值域 {domain_id!r}（mappings/standard/_domains.yaml 中没有）")
        return dom

    def find_domain(self, domain_id: str | None) -> ValueDomain | None:
        """A domain by id or alias, or None (never raises; for readers such as the quality rules)."""
        return find_domain(self.domains, domain_id) if domain_id else None

    def domain_for(self, column: Column) -> ValueDomain | None:
        """The domain a coded column's values end up in: codes.domain, else its local set's domain."""
        b = column.codes
        if b is None:
            return None
        if b.domain:
            return self.find_domain(b.domain)
        local = self.sets.get(b.local or "")
        return self.find_domain(local.domain) if local else None

    # ------------------------------------------------------------ per column

    def resolver(self, column: Column, table: str = "") -> ColumnResolver:
        """Validate a coded column's binding against the catalog; raise MappingConfigError if unusable."""
        b = column.codes
        if b is None:
            raise ValueError(f"column {column.name} has no codes binding")
        key = (table, column.name, b.domain, b.local, b.unmapped, b.other_code)
        hit = self._resolvers.get(key)
        if hit is not None:
            return hit
        where = f"{table}.{column.name}" if table else column.name
        local: LocalSet | None = None
        if b.local:
            local = self.sets.get(b.local)
            if local is None:
                raise MappingConfigError(
                    f"{where}: 本地码表 {b.local!r} 未在 {self.hospital.folder / '_sets.yaml'} 中声明")
            if b.domain and self.domain(b.domain).id != local.domain:
                raise MappingConfigError(f"{where}: 规范声明值域 {b.domain}，但本地码表 {b.local} 的目标值域是 "
                                         f"{local.domain}（{self.hospital.folder / '_sets.yaml'}）")
            if not local.valid:
                raise MappingConfigError(local.errors)
        domain = self.domain(b.domain or local.domain)
        if not domain.valid:
            raise MappingConfigError(domain.errors)
        if local is not None:
            lookup = local.lookup(self.apply_statuses)
        else:
            lookup = {c: c for c in domain.codes}
        other = None
        if b.unmapped == "other":
            other = b.other_code or domain.other
            if other is None:
                raise MappingConfigError(f"{where}: unmapped: other，但值域 {domain.id} 没有 other 代码；"
                                         f"请在规范中写 other_code")
            if other not in domain.codes:
                raise MappingConfigError(f"{where}: other_code {other!r} 不在值域 {domain.id} 中")
        res = ColumnResolver(column, domain, local, lookup, b.unmapped, other)
        self._resolvers[key] = res
        return res

    def check_spec(self, spec: TableSpec) -> list[str]:
        """Binding problems of one spec (for `mapping check`), without raising."""
        problems = []
        for col in spec.columns:
            if col.codes is None:
                continue
            try:
                self.resolver(col, spec.table)
            except MappingConfigError as exc:
                problems.append(str(exc))
        return problems

    # ------------------------------------------------------------ apply

    def apply(self, frame: pd.DataFrame, spec: TableSpec) -> MappingResult:
        """Map every coded column of `spec` present in `frame` (TARGET column names).

        Fast path: one hash lookup of every value against the approved raw values (what
        `Series.map` does). Only the misses — empty cells, values needing normalisation (' M ',
        1.0), unmapped codes — go through the per-distinct-value slow path.
        """
        out = frame.copy(deep=False)
        n = len(frame)
        counts: dict[str, dict[str, int]] = {}
        unmapped_values: dict[str, dict[str, int]] = {}
        errors: np.ndarray | None = None
        for col in spec.columns:
            if col.codes is None or col.name not in frame.columns:
                continue
            res = self.resolver(col, spec.table)
            index, code_arr, name_arr = res.arrays()
            series = frame[col.name]
            pos = index.get_indexer(series)
            miss = np.flatnonzero(pos < 0)
            counts_col = dict.fromkeys(COUNT_KEYS, 0)
            counts_col["mapped"] = n - len(miss)
            reasons: list[str | None] | None = None
            if len(miss):
                ridx, runiq = pd.factorize(series.iloc[miss], use_na_sentinel=True)
                values = [normalise_value(u) for u in runiq]
                codes, states = res.resolve(values)
                names = [None if c is None else res.domain.codes.get(c) for c in codes]
                freq = np.bincount(ridx + 1, minlength=len(values) + 1)  # slot 0 = missing
                counts_col["mapped"] += int(freq[1:][states == MAPPED].sum())
                counts_col["empty"] = int(freq[0] + freq[1:][states == EMPTY].sum())
                bad = np.flatnonzero(states == UNMAPPED)
                if len(bad):
                    n_bad = int(freq[1:][bad].sum())
                    unmapped_values[col.name] = {values[i]: int(freq[i + 1]) for i in bad}
                    if res.policy == "keep":
                        counts_col["unmapped_kept"] = n_bad
                        for i in bad:
                            codes[i] = values[i]
                    elif res.policy == "other":
                        counts_col["unmapped_other"] = n_bad
                        other_name = res.domain.codes.get(res.other_code)
                        for i in bad:
                            codes[i], names[i] = res.other_code, other_name
                    else:
                        counts_col["unmapped_quarantined"] = n_bad
                        reasons = [None] * len(values)
                        for i in bad:
                            codes[i] = values[i]
                            reasons[i] = res.reason(values[i])
                # residual values are appended after the fast-path keys; -1 (missing) lands on the final None
                base = len(code_arr)
                pos[miss] = np.where(ridx < 0, base + len(values), base + ridx)
                code_arr = np.concatenate([code_arr, np.array(codes + [None], dtype=object)])
                name_arr = np.concatenate([name_arr, np.array(names + [None], dtype=object)])
                if reasons is not None:
                    col_err = np.full(n, None, dtype=object)
                    col_err[miss] = np.array(reasons + [None], dtype=object).take(ridx)
                    if errors is None:
                        errors = col_err
                    else:
                        both = (errors != None) & (col_err != None)
                        if both.any():
                            errors[both] = [f"{a}；{b}" for a, b in zip(errors[both], col_err[both])]
                        only_new = (errors == None) & (col_err != None)
                        errors[only_new] = col_err[only_new]
            counts[col.name] = counts_col
            out[col.name] = pd.Series(code_arr.take(pos), index=frame.index, dtype=object, copy=False)
            if col.codes.name_column:
                out[col.codes.name_column] = pd.Series(name_arr.take(pos), index=frame.index, dtype=object,
                                                       copy=False)
        if errors is None:
            row_errors = pd.Series(np.full(n, None, dtype=object), index=frame.index, dtype=object, copy=False)
        else:
            row_errors = pd.Series(errors, index=frame.index, dtype=object, copy=False)
        return MappingResult(out, row_errors, counts, unmapped_values)

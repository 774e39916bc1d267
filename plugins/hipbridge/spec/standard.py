"""Compare the table specs with the collection standard's column lists (`table_specs/_standard/`).

`columns.csv` is the machine-readable copy of the reference's §3 column lists (tables.md): per table
and data element (Chinese label) its type and length, whether it is required (`PK` / `M`) and its
conditional requirement. `deviations.yaml` lists, with a reason, every place where a spec knowingly
differs. `differences()` reports what the specs do not match; `unexplained()` keeps only what the
deviations file does not explain, plus deviations that no longer happen (so the file only shrinks
when the specs catch up, and never hides a fixed gap).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import yaml

from .load import SpecSet
from .models import Column, TableSpec
from .types import parse_type

STANDARD_DIR = "_standard"
KINDS = ("missing", "extra", "type", "required", "required_when", "name")


@dataclass(frozen=True)
class StandardColumn:
    table: str
    name: str          # physical name we assign (the reference has none); empty = not yet in a spec
    label: str
    type: str
    required: str      # "" | "M" | "PK"
    required_when: str  # "" | "<label>=<code>|<code>" | "<label>=*" | "<table>.<label>=<code>"
    note: str
    line: int


@dataclass(frozen=True)
class Difference:
    table: str
    label: str
    kind: str
    standard: str
    spec: str

    def __str__(self) -> str:
        return f"{self.table}.{self.label}: {self.kind} (standard {self.standard or '—'}, spec {self.spec or '—'})"


class StandardError(ValueError):
    """A malformed standard or deviations file; the message names the file and line."""


def load_standard(directory: Path) -> dict[str, list[StandardColumn]]:
    path = directory / STANDARD_DIR / "columns.csv"
    out: dict[str, list[StandardColumn]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        expected = ["table", "name", "label", "type", "required", "required_when", "note"]
        if reader.fieldnames != expected:
            raise StandardError(f"{path}:1: header must be {','.join(expected)} (got {reader.fieldnames})")
        seen: set[tuple[str, str]] = set()
        for n, row in enumerate(reader, start=2):
            where = f"{path}:{n}"
            try:
                parse_type(row["type"])
            except ValueError as exc:
                raise StandardError(f"{where}: type: {exc} (got {row['type']!r})") from None
            if row["required"] not in ("", "M", "PK"):
                raise StandardError(f"{where}: required: expected '', M or PK (got {row['required']!r})")
            if row["required_when"] and "=" not in row["required_when"]:
                raise StandardError(f"{where}: required_when: expected <label>=<codes> (got {row['required_when']!r})")
            key = (row["table"], row["label"])
            if key in seen:
                raise StandardError(f"{where}: {row['table']}.{row['label']} is listed twice")
            seen.add(key)
            out.setdefault(row["table"], []).append(StandardColumn(
                row["table"], row["name"], row["label"], row["type"], row["required"], row["required_when"],
                row["note"], n))
    return out


def load_deviations(directory: Path) -> dict[tuple[str, str, str], str]:
    path = directory / STANDARD_DIR / "deviations.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[tuple[str, str, str], str] = {}
    for i, entry in enumerate(data.get("deviations") or []):
        where = f"{path}: deviations[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"table", "label", "kind", "reason"}:
            raise StandardError(f"{where}: expected keys table, label, kind, reason (got {entry!r})")
        if entry.get("kind") not in KINDS:
            raise StandardError(f"{where}: kind must be one of {', '.join(KINDS)} (got {entry.get('kind')!r})")
        if not str(entry.get("reason") or "").strip():
            raise StandardError(f"{where}: every deviation needs its reason")
        key = (str(entry.get("table")), str(entry.get("label")), entry["kind"])
        if key in out:
            raise StandardError(f"{where}: {key} is listed twice")
        out[key] = str(entry["reason"]).strip()
    return out


def _condition(spec: TableSpec, col: Column) -> str:
    rw = col.required_when
    if rw is None:
        return ""
    other = spec.column(rw.column)
    label = other.label if other is not None else rw.column
    return f"{label}=*" if rw.filled else f"{label}=" + "|".join(rw.in_ or [])


def differences(specs: SpecSet, standard: dict[str, list[StandardColumn]] | None = None) -> list[Difference]:
    standard = standard if standard is not None else load_standard(specs.directory)
    defaults = specs.defaults
    out: list[Difference] = []
    for table in sorted(set(standard) | set(specs.specs)):
        spec = specs.specs.get(table)
        std = standard.get(table, [])
        if spec is None:
            out.extend(Difference(table, s.label, "missing", s.type, "") for s in std)
            continue
        cols = {c.label: c for c in spec.columns}
        audit = {a.label: a for a in defaults.audit_columns}
        audit_required = {defaults.audit(role).name for role in spec.required_audit}
        std_labels = {s.label for s in std}
        pk = set(spec.target.primary_key)
        for s in std:
            col = cols.get(s.label)
            if col is None and s.label in audit:
                a = audit[s.label]
                req = a.required or a.name in pk or a.name in audit_required
                got = (a.name, a.type, req, "")
            elif col is None:
                out.append(Difference(table, s.label, "missing", s.type, ""))
                continue
            else:
                got = (col.name, col.type, col.required or col.name in pk, _condition(spec, col))
            name, ctype, req, cond = got
            if s.name and s.name != name:
                out.append(Difference(table, s.label, "name", s.name, name))
            if ctype.replace(" ", "") != s.type.replace(" ", ""):
                out.append(Difference(table, s.label, "type", s.type, ctype))
            if req != bool(s.required):
                out.append(Difference(table, s.label, "required", s.required or "optional",
                                      "required" if req else "optional"))
            if cond != s.required_when:
                out.append(Difference(table, s.label, "required_when", s.required_when, cond))
        for label, col in cols.items():
            if label in std_labels:
                continue
            # tables.md §4 "coded pairs": every …代码 column may be followed by its …名称 column
            if label.endswith("名称") and (label[:-2] + "代码") in std_labels:
                continue
            out.append(Difference(table, label, "extra", "", col.type))
    return out


def unexplained(specs: SpecSet) -> tuple[list[Difference], list[tuple[str, str, str]]]:
    """(differences the deviations file does not list, deviations that no longer occur)."""
    diffs = differences(specs)
    deviations = load_deviations(specs.directory)
    found = {(d.table, d.label, d.kind) for d in diffs}
    return ([d for d in diffs if (d.table, d.label, d.kind) not in deviations],
            sorted(k for k in deviations if k not in found))

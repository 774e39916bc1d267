"""Load and validate `table_specs/`: every problem is reported with file, line, key, value and expectation.

Loading is cheap enough for DAG parse time: libyaml's CSafeLoader plus pydantic. The slower
line-tracking pass (yaml.compose) only runs for a file that has errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .models import Defaults, TableSpec

DEFAULTS_FILE = "_defaults.yaml"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class SpecError:
    file: str
    line: int | None
    key: str
    message: str
    value: Any = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{where}: {self.key}: {self.message}{shown}"


class SpecLoadError(Exception):
    """Raised when specs are required to be valid (CLI runs, tests)."""

    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        super().__init__("invalid table specs:\n" + "\n".join(f"  {e}" for e in errors))


@dataclass
class SpecSet:
    directory: Path
    defaults: Defaults | None
    specs: dict[str, TableSpec] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)

    def errors_by_file(self) -> dict[str, list[SpecError]]:
        out: dict[str, list[SpecError]] = {}
        for e in self.errors:
            out.setdefault(e.file, []).append(e)
        return out

    def require_valid(self) -> SpecSet:
        if self.errors:
            raise SpecLoadError(self.errors)
        return self

    def get(self, table: str) -> TableSpec:
        try:
            return self.specs[table]
        except KeyError:
            known = ", ".join(sorted(self.specs)) or "none"
            raise KeyError(f"no table spec {table!r} in {self.directory} (known: {known})") from None

    def query_text(self, spec: TableSpec) -> str:
        if spec.source.query_is_file:
            return (self.directory / spec.source.query.strip()).read_text(encoding="utf-8")
        return spec.source.query


def default_spec_dir() -> Path:
    env = os.environ.get("HIPBRIDGE_SPECS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "table_specs"


# ---------------------------------------------------------------- line lookup


def _node_for(root: yaml.Node | None, loc: tuple) -> yaml.Node | None:
    node = root
    for part in loc:
        if node is None:
            return None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            nxt = None
            for k, v in node.value:
                if k.value == part:
                    nxt = v if part != loc[-1] else k
                    break
            if nxt is None:
                return node
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def _line_of(text: str, loc: tuple) -> int | None:
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    node = _node_for(root, loc)
    return node.start_mark.line + 1 if node is not None else None


def _value_at(data: Any, loc: tuple) -> Any:
    cur = data
    for part in loc:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return None
    return cur if isinstance(cur, (str, int, float, bool)) else None


def _key_text(loc: tuple, data: Any) -> str:
    """`columns[3] (JYMXLSH).type` — the column name helps more than an index."""
    parts: list[str] = []
    cur = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            try:
                item = cur[part]
                if isinstance(item, dict) and "name" in item:
                    label = f"[{part}] ({item['name']})"
                cur = item
            except (IndexError, KeyError, TypeError):
                cur = None
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(part))
            try:
                cur = cur[part]
            except (KeyError, TypeError, IndexError):
                cur = None
    return "".join(parts) or "(document)"


def _validation_errors(file: str, text: str, data: Any, exc: ValidationError) -> list[SpecError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (misspelled?); see `hipbridge spec schema` for the allowed keys"
        elif err["type"] == "missing":
            msg = "required key is missing"
        msg = msg.removeprefix("Value error, ")
        out.append(SpecError(file, _line_of(text, loc), _key_text(loc, data), msg, _value_at(data, loc)))
    return out


def _read_yaml(path: Path) -> tuple[str, Any, list[SpecError]]:
    text = path.read_text(encoding="utf-8")
    try:
        return text, yaml.load(text, Loader=_Loader), []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return text, None, [SpecError(str(path), line, "(syntax)", f"YAML syntax error: {problem}")]


# ---------------------------------------------------------------- loading


def load_defaults(directory: Path) -> tuple[Defaults | None, list[SpecError]]:
    path = directory / DEFAULTS_FILE
    if not path.exists():
        return None, [SpecError(str(path), None, "(file)", "missing: every spec folder needs _defaults.yaml")]
    text, data, errors = _read_yaml(path)
    if errors:
        return None, errors
    try:
        return Defaults.model_validate(data), []
    except ValidationError as exc:
        return None, _validation_errors(str(path), text, data, exc)


def load_spec_file(path: Path) -> tuple[TableSpec | None, list[SpecError]]:
    text, data, errors = _read_yaml(path)
    if errors:
        return None, errors
    if not isinstance(data, dict):
        return None, [SpecError(str(path), 1, "(document)", "a table spec must be a mapping of keys")]
    try:
        spec = TableSpec.model_validate(data)
    except ValidationError as exc:
        return None, _validation_errors(str(path), text, data, exc)
    if spec.table != path.stem:
        twin = path.parent / f"{spec.table}.yaml"
        message = (f"duplicate table id: {twin.name} already declares table {spec.table!r} "
                   f"(the table id must equal the file name)" if twin.exists()
                   else f"table id must equal the file name {path.stem!r}")
        return None, [SpecError(str(path), _line_of(text, ("table",)), "table", message, spec.table)]
    return spec, []


def _cross_errors(spec: TableSpec, path: Path, defaults: Defaults | None,
                  specs: dict[str, TableSpec], broken: set[str] = frozenset()) -> list[SpecError]:
    """Checks that need the whole set: keys, references, columns named by quality/retention."""
    text: str | None = None

    def err(loc: tuple, message: str, value: Any = None) -> SpecError:
        nonlocal text
        if text is None:
            text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_Loader)
        return SpecError(str(path), _line_of(text, loc), _key_text(loc, data), message, value)

    audit = {c.name for c in defaults.audit_columns} if defaults else set()
    names = {c.name for c in spec.columns}
    known = names | audit
    out: list[SpecError] = []
    for i, key in enumerate(spec.target.primary_key):
        if key not in known:
            out.append(err(("target", "primary_key", i), "primary-key column is not a column of this table", key))
    filled_by_mapping = {c.codes.name_column for c in spec.columns if c.codes and c.codes.name_column}
    for i, col in enumerate(spec.columns):
        if col.name in audit:
            out.append(err(("columns", i, "name"), "audit columns come from _defaults.yaml; do not redeclare",
                           col.name))
        if col.source is None and col.value is None and col.name not in filled_by_mapping:
            out.append(err(("columns", i), "column needs 'from' (a source column) or 'value' (a constant)"))
        if col.codes and col.codes.name_column and col.codes.name_column not in names:
            out.append(err(("columns", i, "codes", "name_column"), "name column is not a column of this table",
                           col.codes.name_column))
        if col.required_when and col.required_when.column not in known:
            out.append(err(("columns", i, "required_when", "column"), "not a column of this table",
                           col.required_when.column))
        ref = col.reference_target
        if ref:
            t, c = ref
            if not c:
                out.append(err(("columns", i, "references"), "expected <table_id>.<COLUMN>", col.references))
            elif t in broken:
                out.append(err(("columns", i, "references"),
                               f"references table {t}, whose spec {t}.yaml is invalid (fix that file first)",
                               col.references))
            elif t not in specs:
                out.append(err(("columns", i, "references"), "references a table that has no spec",
                               col.references))
            else:
                other = specs[t]
                if other.column(c) is None and c not in audit:
                    out.append(err(("columns", i, "references"),
                                   f"table {t} has no column {c}", col.references))
    wm = spec.source.watermark
    for key in ("column", "fallback") if wm else ():
        name = getattr(wm, key)
        fed = [c for c in spec.columns if name and c.source and c.source.lower() == name.lower()]
        for col in fed:
            if col.ctype.kind in ("varchar", "text"):
                out.append(err(("source", "watermark", key), f"a watermark must be a date/time column; column "
                               f"{col.name} reads it as {col.type} (text compares as text, not as time)", name))
    q = spec.quality
    if q.timeliness and q.timeliness.event not in known:
        out.append(err(("quality", "timeliness", "event"), "not a column of this table", q.timeliness.event))
    for i, pair in enumerate(q.time_order):
        for side in ("before", "after"):
            if getattr(pair, side) not in known:
                out.append(err(("quality", "time_order", i, side), "not a column of this table",
                               getattr(pair, side)))
    r = spec.retention
    if r:
        if r.anchor != "visit_end" and r.anchor not in known:
            out.append(err(("retention", "anchor"), "expected visit_end or a column of this table", r.anchor))
        if r.visit_link and r.visit_link not in known:
            out.append(err(("retention", "visit_link"), "not a column of this table", r.visit_link))
        if r.header and r.header not in specs:
            out.append(err(("retention", "header"), "references a table that has no spec", r.header))
    if spec.source.query_is_file and not (path.parent / spec.source.query.strip()).exists():
        out.append(err(("source", "query"), "SQL file not found (paths are relative to table_specs/)",
                       spec.source.query))
    return out


def load_specs(directory: Path | str | None = None) -> SpecSet:
    """Load every `*.yaml` spec under `directory`; never raises for a bad spec — see `.errors`."""
    directory = Path(directory) if directory else default_spec_dir()
    defaults, errors = load_defaults(directory)
    result = SpecSet(directory=directory, defaults=defaults, errors=list(errors))
    files = sorted(p for p in directory.glob("*.yaml") if not p.name.startswith("_"))
    by_id: dict[str, list[tuple[Path, TableSpec]]] = {}
    for path in files:
        spec, errs = load_spec_file(path)
        result.errors.extend(errs)
        if spec is not None:
            by_id.setdefault(spec.table, []).append((path, spec))
    valid: dict[str, TableSpec] = {}
    paths: dict[str, Path] = {}
    for table, entries in by_id.items():
        if len(entries) > 1:
            others = ", ".join(p.name for p, _ in entries)
            for path, _ in entries:
                text = path.read_text(encoding="utf-8")
                result.errors.append(SpecError(str(path), _line_of(text, ("table",)), "table",
                                               f"duplicate table id, also declared in {others}", table))
            continue
        paths[table], valid[table] = entries[0]
    broken = {p.stem for p in files} - set(valid)
    for table in sorted(valid):
        errs = _cross_errors(valid[table], paths[table], defaults, valid, broken)
        if errs:
            result.errors.extend(errs)
        else:
            result.specs[table] = valid[table]
            result.paths[table] = paths[table]
    return result

"""Load and validate `table_specs/`: every problem is reported with file, line, key, value and expectation.

Loading is cheap enough for DAG parse time: libyaml's CSafeLoader plus pydantic. The slower
line-tracking pass (yaml.compose) only runs for a file that has errors.

One bad file hides only itself: every file is read on its own (a file that is not UTF-8, a key
written twice, a YAML syntax error, a misspelled key each make that one spec invalid), and a spec
that references an invalid spec stays valid with a warning — its table keeps uploading, only the
referential check against the broken parent cannot run. `SpecSet.get(table)` raises that table's
own errors, so a run of one table never fails because of another table's file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from hipbridge.settings import settings

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
    table: str | None = None          # the table id whose spec this problem belongs to
    severity: str = "error"           # "warning": reported, the spec stays valid

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        shown = "" if self.value is None else f" (got {self.value!r})"
        level = "warning: " if self.severity == "warning" else ""
        return f"{where}: {self.key}: {level}{self.message}{shown}"


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
    warnings: list[SpecError] = field(default_factory=list)

    def errors_by_file(self) -> dict[str, list[SpecError]]:
        out: dict[str, list[SpecError]] = {}
        for e in self.errors:
            out.setdefault(e.file, []).append(e)
        return out

    def require_valid(self) -> SpecSet:
        if self.errors:
            raise SpecLoadError(self.errors)
        return self

    def require_defaults(self) -> SpecSet:
        """This set, if `_defaults.yaml` is valid (every table needs it); the table specs may still have errors."""
        if self.defaults is None:
            raise SpecLoadError([e for e in self.errors if Path(e.file).name == DEFAULTS_FILE])
        return self

    def invalid_tables(self) -> dict[str, list[SpecError]]:
        """Table id → the problems that keep its spec from running (files that are not specs excluded)."""
        out: dict[str, list[SpecError]] = {}
        for e in self.errors:
            if e.table and e.table not in self.specs:
                out.setdefault(e.table, []).append(e)
        return out

    def errors_of(self, table: str) -> list[SpecError]:
        """The problems that make this table's spec invalid (its own file, its SQL file, _defaults.yaml)."""
        own = [e for e in self.errors if e.table == table]
        if self.defaults is None:
            own = [e for e in self.errors if Path(e.file).name == DEFAULTS_FILE] + own
        return own

    def warnings_of(self, table: str) -> list[SpecError]:
        return [w for w in self.warnings if w.table == table]

    def require_table(self, table: str) -> TableSpec:
        """The table's spec; SpecLoadError with that table's own problems when it is invalid."""
        if self.defaults is not None and table in self.specs:
            return self.specs[table]
        own = self.errors_of(table)
        if own:
            raise SpecLoadError(own)
        known = ", ".join(sorted(self.specs)) or "none"
        raise KeyError(f"no table spec {table!r} in {self.directory} (known: {known})")

    get = require_table

    def error_at(self, table: str, loc: tuple, message: str, value: Any = None) -> SpecError:
        """A problem found later (at run time) reported like a load error: `file:line: key: message`."""
        path = self.paths.get(table) or self.directory / f"{table}.yaml"
        text = read_text(path)[0]
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError:
            data = None
        return SpecError(str(path), _line_of(text, loc), _key_text(loc, data), message, value, table)

    def query_text(self, spec: TableSpec) -> str:
        if spec.source.query_is_file:
            path = self.directory / spec.source.query.strip()
            text, err = read_text(path, table=spec.table)
            if err is not None:
                raise SpecLoadError([err])
            return text
        return spec.source.query


def default_spec_dir() -> Path:
    return settings().specs or Path(__file__).resolve().parents[3] / "table_specs"


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


line_of = _line_of   # public: configuration loaders beside the specs report lines the same way


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


def _validation_errors(file: str, text: str, data: Any, exc: ValidationError,
                       schema_hint: str = "see `hipbridge spec schema` for the allowed keys") -> list[SpecError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key (misspelled?); {schema_hint}"
        elif err["type"] == "missing":
            msg = "required key is missing"
        msg = msg.removeprefix("Value error, ")
        out.append(SpecError(file, _line_of(text, loc), _key_text(loc, data), msg, _value_at(data, loc)))
    return out


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key written twice in one mapping: YAML would silently keep the last one."""

    def __init__(self, key: Any, first: yaml.Mark, again: yaml.Mark):
        super().__init__(None, None, f"key {key!r} is written twice in one mapping "
                                     f"(first on line {first.line + 1}); YAML would keep only the last", again)
        self.key, self.first, self.again = key, first, again


class _UniqueKeyLoader(_Loader):
    """libyaml's parser with a constructor that refuses duplicate keys (merge keys `<<` may still override)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base constructor reports it
                    continue
                if first is not None:
                    raise DuplicateKeyError(key, first, key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _not_utf8(path: Path, raw: bytes, exc: UnicodeDecodeError, table: str | None) -> SpecError:
    line = raw[:exc.start].count(b"\n") + 1
    column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
    try:
        raw.decode("gb18030")
        hint = "it reads as GBK/GB18030: save it as UTF-8 (in Notepad: 另存为 → 编码 UTF-8)"
    except UnicodeDecodeError:
        hint = "save it as UTF-8"
    return SpecError(str(path), line, "(encoding)",
                     f"file is not UTF-8 (byte 0x{raw[exc.start]:02x} at column {column}); {hint}", table=table)


def read_text(path: Path, table: str | None = None) -> tuple[str, SpecError | None]:
    """A spec or SQL file as text: UTF-8 (a BOM is allowed); anything else is a SpecError naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return "", SpecError(str(path), None, "(file)", f"cannot be read: {exc.strerror or exc}", table=table)
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return "", _not_utf8(path, raw, exc, table)


def _read_yaml(path: Path) -> tuple[str, Any, list[SpecError]]:
    table = None if path.name.startswith("_") else path.stem
    text, err = read_text(path, table)
    if err is not None:
        return text, None, [err]
    try:
        return text, yaml.load(text, Loader=_UniqueKeyLoader), []
    except DuplicateKeyError as exc:
        line = exc.again.line + 1
        loc = _loc_at(text, exc.again)
        key = _key_text(loc, yaml.load(text, Loader=_Loader)) if loc else str(exc.key)
        return text, None, [SpecError(str(path), line, key, f"written twice in one mapping (first on line "
                                      f"{exc.first.line + 1}); YAML would keep only the last — remove one",
                                      table=table)]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return text, None, [SpecError(str(path), line, "(syntax)", f"YAML syntax error: {problem}", table=table)]


def load_yaml_model(path: Path, model: type[BaseModel], schema_hint: str) -> tuple[Any, list[SpecError]]:
    """One YAML file validated as `model`, with the spec loader's errors (`file:line: key: problem`).

    For configuration files beside the specs (`expectations/_rules.yaml` …): encoding, syntax, a key
    written twice and an unknown or mistyped key are each reported with file, line and key.
    """
    text, data, errors = _read_yaml(path)
    if errors:
        return None, errors
    try:
        return model.model_validate(data or {}), []
    except ValidationError as exc:
        return None, _validation_errors(str(path), text, data, exc, schema_hint)


def _loc_at(text: str, mark: yaml.Mark) -> tuple | None:
    """The key path (as pydantic writes it) of the mapping key at `mark`, for the error's key text."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None

    def walk(node, loc):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.start_mark.index == mark.index:
                    return (*loc, k.value)
                found = walk(v, (*loc, k.value))
                if found:
                    return found
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found = walk(item, (*loc, i))
                if found:
                    return found
        return None

    return walk(root, ())


# ---------------------------------------------------------------- loading


def load_defaults(directory: Path) -> tuple[Defaults | None, list[SpecError]]:
    path = directory / DEFAULTS_FILE
    if not path.exists():
        return None, [SpecError(str(path), None, "(file)", "missing: every spec folder needs _defaults.yaml")]
    text, data, errors = _read_yaml(path)
    if errors:
        return None, errors
    if not isinstance(data, dict):
        return None, [SpecError(str(path), 1, "(document)", "_defaults.yaml must be a mapping of keys")]
    try:
        return Defaults.model_validate(data), []
    except ValidationError as exc:
        return None, _validation_errors(str(path), text, data, exc)


def load_spec_file(path: Path) -> tuple[TableSpec | None, list[SpecError]]:
    """One spec file on its own; every problem is returned, never raised."""
    try:
        spec, errors = _load_spec_file(path)
    except Exception as exc:  # noqa: BLE001 - one unreadable file must not stop the folder
        return None, [SpecError(str(path), None, "(file)", f"could not be loaded: {type(exc).__name__}: {exc}")]
    return spec, [e if e.table else replace(e, table=path.stem) for e in errors]


def _load_spec_file(path: Path) -> tuple[TableSpec | None, list[SpecError]]:
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
    """Checks that need the whole set: keys, references, columns named by quality/retention.

    A reference to a spec that is itself invalid is a warning (severity "warning"): the table
    still uploads; only the referential check against that parent cannot run until it is fixed.
    """
    text: str | None = None

    def err(loc: tuple, message: str, value: Any = None, severity: str = "error") -> SpecError:
        nonlocal text
        if text is None:
            text = read_text(path)[0]
        data = yaml.load(text, Loader=_Loader)
        return SpecError(str(path), _line_of(text, loc), _key_text(loc, data), message, value, spec.table,
                         severity)

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
                               f"references table {t}, whose spec {t}.yaml is invalid: this table still "
                               f"uploads, the reference is not checked until {t}.yaml is fixed",
                               col.references, severity="warning"))
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
        if r.header and r.header in broken:
            out.append(err(("retention", "header"), f"header table {r.header} has an invalid spec "
                           f"({r.header}.yaml): rows are purged on their own until it is fixed", r.header,
                           severity="warning"))
        elif r.header and r.header not in specs:
            out.append(err(("retention", "header"), "references a table that has no spec", r.header))
    if spec.source.query_is_file:
        sql_path = path.parent / spec.source.query.strip()
        if not sql_path.exists():
            out.append(err(("source", "query"), "SQL file not found (paths are relative to table_specs/)",
                           spec.source.query))
        else:
            _, problem = read_text(sql_path, spec.table)
            if problem is not None:
                out.append(problem)
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
                text = read_text(path)[0]
                result.errors.append(SpecError(str(path), _line_of(text, ("table",)), "table",
                                               f"duplicate table id, also declared in {others}", table,
                                               path.stem))
            continue
        paths[table], valid[table] = entries[0]
    broken = {p.stem for p in files} - set(valid)
    found = {t: _cross_errors(valid[t], paths[t], defaults, valid, broken) for t in sorted(valid)}
    invalid = {t for t, errs in found.items() if any(e.severity != "warning" for e in errs)}
    if invalid:  # a reference to a spec that failed the cross checks is a warning too
        found = {t: errs if t in invalid else _cross_errors(valid[t], paths[t], defaults, valid, broken | invalid)
                 for t, errs in found.items()}
    for table, errs in found.items():
        result.warnings.extend(e for e in errs if e.severity == "warning")
        if table in invalid:
            result.errors.extend(e for e in errs if e.severity != "warning")
        else:
            result.specs[table] = valid[table]
            result.paths[table] = paths[table]
    return result

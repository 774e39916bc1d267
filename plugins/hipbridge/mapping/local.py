"""Per-hospital local → standard mappings (`mappings/local/<hospital>/`), reviewed as in OHDSI Usagi.

`_sets.yaml` names each local code set and its target domain (so the domain is known without
reading specs) and which review statuses apply. Each `<set>.csv` row carries provenance: local code,
local name, standard code, status (unchecked / approved / flagged / ignored), equivalence, reviewer,
reviewed_at, comment. A file that fails validation contributes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .domains import ValueDomain, find_domain
from .files import MappingFileError, decode_utf8, read_csv

SETS_FILE = "_sets.yaml"
LOCAL_COLUMNS = ["local_code", "local_name", "standard_code", "status", "equivalence", "reviewer",
                 "reviewed_at", "comment"]
STATUSES = ("unchecked", "approved", "flagged", "ignored")
EQUIVALENCES = ("EQUAL", "EQUIVALENT", "WIDER", "NARROWER", "INEXACT", "UNMATCHED", "UNREVIEWED")
# Chinese headers and status words, as the export for coding staff writes them
LOCAL_HEADER_ALIASES = {
    "本地代码": "local_code", "本地名称": "local_name", "标准代码": "standard_code", "状态": "status",
    "审核状态": "status", "等价关系": "equivalence", "审核人": "reviewer", "审核时间": "reviewed_at", "备注": "comment",
}
STATUS_LABELS = {"unchecked": "未审核", "approved": "已批准", "flagged": "存疑", "ignored": "忽略"}
STATUS_ALIASES = {**{v: k for k, v in STATUS_LABELS.items()}, **{k: k for k in STATUSES}}
_SET_KEYS = {"domain", "label", "system", "dictionary"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# parsed and validated set files, keyed by path; invalidated when the file or its domain file changes
_SET_CACHE: dict[Path, tuple[tuple, list, list]] = {}


@dataclass
class MappingRow:
    local_code: str
    local_name: str
    standard_code: str
    status: str
    equivalence: str
    reviewer: str
    reviewed_at: str
    comment: str
    line: int = 0


@dataclass
class LocalSet:
    id: str
    domain: str
    label: str
    path: Path
    system: str | None = None
    dictionary: dict | None = None
    rows: list[MappingRow] = field(default_factory=list)
    errors: list[MappingFileError] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def lookup(self, statuses: tuple[str, ...]) -> dict[str, str]:
        """local code → standard code for rows whose status applies (nothing if the file is invalid)."""
        if self.errors:
            return {}
        return {r.local_code: r.standard_code for r in self.rows if r.status in statuses and r.standard_code}

    def names(self) -> dict[str, str]:
        return {r.local_code: r.local_name for r in self.rows if r.local_name}


@dataclass
class HospitalConfig:
    hospital: str
    folder: Path
    label: str = ""
    apply_statuses: tuple[str, ...] = ("approved",)
    sets: dict[str, LocalSet] = field(default_factory=dict)
    errors: list[MappingFileError] = field(default_factory=list)


def normalise_status(value: str) -> str | None:
    return STATUS_ALIASES.get(value.strip().lower() if value.strip().isascii() else value.strip())


def validate_rows(rows: list[dict[str, str]], numbers: list[int], file: str, domain: ValueDomain | None,
                  ) -> tuple[list[MappingRow], list[MappingFileError]]:
    """Row checks shared by the repository CSVs and the staff's reviewed XLSX/CSV."""
    out: list[MappingRow] = []
    errors: list[MappingFileError] = []
    seen: dict[str, MappingRow] = {}
    for row, line in zip(rows, numbers):
        code = row.get("local_code", "")
        if not code:
            errors.append(MappingFileError(file, line, "local_code", "本地代码为空"))
            continue
        status = normalise_status(row.get("status", "") or "unchecked")
        if status is None:
            errors.append(MappingFileError(file, line, "status",
                                           f"状态必须是 {' / '.join(STATUSES)}（或 {' / '.join(STATUS_LABELS.values())}）",
                                           row.get("status")))
            continue
        std = row.get("standard_code", "")
        if std and domain is not None and domain.valid and std not in domain.codes:
            errors.append(MappingFileError(file, line, "standard_code",
                                           f"标准代码不在值域 {domain.id}（{domain.label}）中", std))
            continue
        if status == "approved" and not std:
            errors.append(MappingFileError(file, line, "standard_code", "状态为 approved 的行必须填写标准代码"))
            continue
        eq = (row.get("equivalence", "") or "").upper()
        if eq and eq not in EQUIVALENCES:
            errors.append(MappingFileError(file, line, "equivalence", f"等价关系必须是 {' / '.join(EQUIVALENCES)}",
                                           row.get("equivalence")))
            continue
        reviewed_at = row.get("reviewed_at", "")
        if reviewed_at and not _DATE.match(reviewed_at):
            errors.append(MappingFileError(file, line, "reviewed_at", "审核时间格式应为 YYYY-MM-DD[ HH:MM[:SS]]",
                                           reviewed_at))
            continue
        item = MappingRow(code, row.get("local_name", ""), std, status, eq, row.get("reviewer", ""), reviewed_at,
                          row.get("comment", ""), line)
        prev = seen.get(code)
        if prev is not None:
            if prev.standard_code != std or prev.status != status:
                errors.append(MappingFileError(
                    file, line, "local_code",
                    f"本地代码重复且对照目标冲突：第{prev.line}行 → {prev.standard_code or '(空)'}/{prev.status}，"
                    f"本行 → {std or '(空)'}/{status}", code))
            continue
        seen[code] = item
        out.append(item)
    return out, errors


def load_local_set(set_id: str, path: Path, domain_id: str, domains: dict[str, ValueDomain],
                   label: str = "", system: str | None = None, dictionary: dict | None = None) -> LocalSet:
    domain = find_domain(domains, domain_id)
    ls = LocalSet(set_id, domain.id if domain else domain_id, label, path, system, dictionary)
    if domain is None:
        ls.errors.append(MappingFileError(str(path.parent / SETS_FILE), None, set_id,
                                          f"码表 {set_id} 的目标值域 {domain_id!r} 未在 standard/_domains.yaml 中定义"))
        return ls
    if not domain.valid:
        ls.errors.append(MappingFileError(str(path), None, None, f"目标值域 {domain_id} 的文件校验失败"))
        return ls
    if not path.exists():
        ls.errors.append(MappingFileError(str(path), None, None, f"_sets.yaml 声明了码表 {set_id}，但文件不存在"))
        return ls
    st, dst = path.stat(), domain.file.stat()
    key = (st.st_mtime_ns, st.st_size, str(domain.file), dst.st_mtime_ns, dst.st_size)
    hit = _SET_CACHE.get(path)
    if hit and hit[0] == key:
        ls.rows, ls.errors = list(hit[1]), list(hit[2])
        return ls
    rows, numbers, errors = read_csv(path, LOCAL_COLUMNS, aliases=LOCAL_HEADER_ALIASES)
    if errors:
        ls.errors = errors
    else:
        ls.rows, ls.errors = validate_rows(rows, numbers, str(path), domain)
    _SET_CACHE[path] = (key, list(ls.rows), list(ls.errors))
    return ls


def load_hospital(local_root: Path, hospital: str, domains: dict[str, ValueDomain]) -> HospitalConfig:
    folder = local_root / hospital
    cfg = HospitalConfig(hospital, folder)
    index = folder / SETS_FILE
    if not index.exists():
        if folder.exists() and any(folder.glob("*.csv")):
            cfg.errors.append(MappingFileError(str(index), None, None, "缺少 _sets.yaml（码表 → 目标值域）"))
        return cfg
    text, err = decode_utf8(index.read_bytes(), str(index))
    if err:
        cfg.errors.append(err)
        return cfg
    try:
        data = yaml.load(text, Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        cfg.errors.append(MappingFileError(str(index), mark.line + 1 if mark else None, None, f"YAML 语法错误: {exc}"))
        return cfg
    cfg.label = str(data.get("label", ""))
    statuses = data.get("apply_statuses", ["approved"])
    bad = [s for s in statuses if s not in STATUSES]
    if bad:
        cfg.errors.append(MappingFileError(str(index), None, "apply_statuses", f"未知状态 {bad}；允许 {STATUSES}"))
    else:
        cfg.apply_statuses = tuple(statuses)
    sets = data.get("sets") or {}
    if not isinstance(sets, dict):
        cfg.errors.append(MappingFileError(str(index), None, "sets", "需要 sets: {码表标识: {domain, label}}"))
        return cfg
    for set_id, meta in sets.items():
        meta = meta or {}
        unknown = set(meta) - _SET_KEYS
        if unknown or "domain" not in meta:
            cfg.errors.append(MappingFileError(str(index), None, f"sets.{set_id}",
                                               f"需要 domain；未知键 {sorted(unknown)}" if unknown else "缺少 domain"))
            continue
        cfg.sets[str(set_id)] = load_local_set(str(set_id), folder / f"{set_id}.csv", str(meta["domain"]), domains,
                                               str(meta.get("label", "")), meta.get("system"), meta.get("dictionary"))
    for path in sorted(folder.glob("*.csv")):
        if path.stem not in cfg.sets:
            cfg.errors.append(MappingFileError(str(path), None, None,
                                               f"码表文件未在 _sets.yaml 中声明（请添加 sets.{path.stem}: {{domain: ...}}）"))
    return cfg

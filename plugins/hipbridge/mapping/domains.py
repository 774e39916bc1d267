"""Standard value domains (数据元值域代码): `mappings/standard/_domains.yaml` and one CSV per domain.

A domain is a dict code → standard name plus metadata (label, standard, version, the 'other' code).
ICD-10 and ICD-9-CM-3 ship as subsets; `import_standard_file` converts a hospital's full list into the
domain's `full_file`, which then replaces the subset.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .files import MappingFileError, decode_utf8, read_csv

# openpyxl loads only to import a standard's XLSX; `default_mappings_dir` is imported in the function
# because the package's __init__ imports this module.

DOMAINS_FILE = "_domains.yaml"
STANDARD_COLUMNS = ["code", "name", "standard", "version"]
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_META_KEYS = {"label", "standard", "version", "file", "other", "status", "full_file", "aliases"}


@dataclass
class ValueDomain:
    id: str
    label: str
    standard: str
    version: str
    file: Path
    other: str | None = None
    status: str = "complete"
    codes: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    errors: list[MappingFileError] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def name(self, code: str) -> str | None:
        return self.codes.get(code)


# parsed CSVs, keyed by path and invalidated by (mtime, size): ICD subsets are thousands of rows
_CSV_CACHE: dict[Path, tuple[tuple[int, int], dict[str, str], list[MappingFileError]]] = {}


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _read_domain_csv(path: Path) -> tuple[dict[str, str], list[MappingFileError]]:
    try:
        key = _stat_key(path)
    except OSError:
        return {}, [MappingFileError(str(path), None, None, "值域文件不存在")]
    hit = _CSV_CACHE.get(path)
    if hit and hit[0] == key:
        return hit[1], hit[2]
    rows, numbers, errors = read_csv(path, ["code", "name"], ["standard", "version"],
                                     aliases={"代码": "code", "名称": "name", "标准": "standard", "版本": "version"})
    codes: dict[str, str] = {}
    first_row: dict[str, int] = {}
    for row, line in zip(rows, numbers):
        code, name = row["code"], row["name"]
        if not code:
            errors.append(MappingFileError(str(path), line, "code", "代码为空"))
            continue
        if not name:
            errors.append(MappingFileError(str(path), line, "name", "名称为空", code))
        if code in codes:
            errors.append(MappingFileError(str(path), line, "code",
                                           f"代码重复（首次出现在第{first_row[code]}行）", code))
            continue
        codes[code] = name
        first_row[code] = line
    _CSV_CACHE[path] = (key, codes, errors)
    return codes, errors


def load_domains(standard_dir: Path) -> tuple[dict[str, ValueDomain], list[MappingFileError]]:
    """All domains declared in `_domains.yaml`; a domain whose file is invalid carries its errors."""
    index = standard_dir / DOMAINS_FILE
    if not index.exists():
        return {}, [MappingFileError(str(index), None, None, "缺少值域目录文件 _domains.yaml")]
    raw = index.read_bytes()
    text, err = decode_utf8(raw, str(index))
    if err:
        return {}, [err]
    try:
        data = yaml.load(text, Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return {}, [MappingFileError(str(index), mark.line + 1 if mark else None, None, f"YAML 语法错误: {exc}")]
    entries = data.get("domains") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        return {}, [MappingFileError(str(index), 1, "domains", "需要 domains: {值域标识: {label, standard, ...}}")]
    out: dict[str, ValueDomain] = {}
    errors: list[MappingFileError] = []
    for dom_id, meta in entries.items():
        dom_id = str(dom_id)
        if not isinstance(meta, dict):
            errors.append(MappingFileError(str(index), None, dom_id, "值域定义必须是映射"))
            continue
        unknown = set(meta) - _META_KEYS
        missing = {"label", "standard", "version", "file"} - set(meta)
        if unknown or missing:
            msg = "; ".join(filter(None, [f"未知键 {sorted(unknown)}" if unknown else "",
                                          f"缺少键 {sorted(missing)}" if missing else ""]))
            errors.append(MappingFileError(str(index), None, dom_id, msg))
            continue
        path = standard_dir / str(meta["file"])
        if meta.get("full_file") and (standard_dir / str(meta["full_file"])).exists():
            path = standard_dir / str(meta["full_file"])
        codes, file_errors = _read_domain_csv(path)
        other = None if meta.get("other") is None else str(meta["other"])
        aliases = tuple(str(a) for a in meta.get("aliases") or ())
        dom = ValueDomain(dom_id, str(meta["label"]), str(meta["standard"]), str(meta["version"]), path,
                          other, str(meta.get("status", "complete")), codes, aliases, list(file_errors))
        if other is not None and not file_errors and other not in codes:
            dom.errors.append(MappingFileError(str(index), None, dom_id,
                                               f"other 代码 {other!r} 不在值域文件 {path.name} 中"))
        errors.extend(dom.errors)
        out[dom_id] = dom
    taken = set(out)
    for dom in list(out.values()):
        for alias in dom.aliases:
            if alias in taken:
                errors.append(MappingFileError(str(index), None, dom.id, f"别名 {alias!r} 与其他值域标识或别名重复"))
            taken.add(alias)
    return out, errors


def find_domain(domains: dict[str, ValueDomain], domain_id: str) -> ValueDomain | None:
    """A domain by id or by one of its aliases."""
    dom = domains.get(domain_id)
    if dom is not None:
        return dom
    return next((d for d in domains.values() if domain_id in d.aliases), None)


# ---------------------------------------------------------------- hospital's full ICD files

_CODE_HEADERS = ("code", "代码", "编码", "疾病编码", "疾病代码", "诊断编码", "诊断代码", "手术编码", "手术代码",
                 "手术操作编码", "手术操作代码", "icd编码", "icd代码")
_NAME_HEADERS = ("name", "名称", "疾病名称", "诊断名称", "手术名称", "手术操作名称", "疾病诊断名称")


def _rows_from_file(path: Path, encoding: str | None) -> list[list[str]]:
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
        ws = wb.worksheets[0]
        rows = [["" if v is None else str(v).strip() for v in r] for r in ws.iter_rows(values_only=True)]
        wb.close()
        return rows
    raw = path.read_bytes()
    if encoding:
        text = raw.decode(encoding)
    else:  # national code files are often published in GBK: accept both here, explicitly
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("gb18030")
    dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;|") if text else csv.excel
    return [[c.strip() for c in r] for r in csv.reader(text.splitlines(), dialect)]


def import_standard_file(domain_id: str, source: Path, mappings_dir: Path | None = None,
                         encoding: str | None = None) -> tuple[Path, int, list[str]]:
    """Convert a hospital's full code list (CSV/TSV/XLSX, UTF-8 or GBK) into the domain's full_file.

    Returns (written path, number of codes, subset codes missing from the full list).
    """
    from . import default_mappings_dir

    standard_dir = (mappings_dir or default_mappings_dir()) / "standard"
    meta = yaml.load((standard_dir / DOMAINS_FILE).read_text(encoding="utf-8"), Loader=_Loader)["domains"]
    if domain_id not in meta:
        raise ValueError(f"未知值域 {domain_id!r}；已知: {', '.join(sorted(meta))}")
    target_name = meta[domain_id].get("full_file")
    if not target_name:
        raise ValueError(f"值域 {domain_id} 在 _domains.yaml 中没有 full_file，不接受完整文件")
    rows = _rows_from_file(Path(source), encoding)
    if not rows:
        raise ValueError(f"{source}: 文件为空")
    header = [h.lower().replace(" ", "") for h in rows[0]]
    ci = next((header.index(h) for h in _CODE_HEADERS if h in header), None)
    ni = next((header.index(h) for h in _NAME_HEADERS if h in header), None)
    if ci is None or ni is None:
        raise ValueError(f"{source} 第1行: 找不到代码列/名称列（表头 {rows[0]}；"
                         f"代码列可用 {'/'.join(_CODE_HEADERS[:6])}，名称列可用 {'/'.join(_NAME_HEADERS[:4])}）")
    codes: dict[str, str] = {}
    problems: list[str] = []
    for n, r in enumerate(rows[1:], start=2):
        code = r[ci] if ci < len(r) else ""
        name = r[ni] if ni < len(r) else ""
        if not code:
            continue
        if code in codes and codes[code] != name:
            problems.append(f"{source} 第{n}行 [{rows[0][ci]}]: 代码 {code!r} 重复且名称不同")
        codes.setdefault(code, name)
    if problems:
        raise ValueError("\n".join(problems[:20]))
    target = standard_dir / target_name
    std, ver = str(meta[domain_id]["standard"]), str(meta[domain_id]["version"])
    with open(target, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(STANDARD_COLUMNS)
        for code, name in codes.items():
            w.writerow([code, name, std, ver])
    subset_path = standard_dir / str(meta[domain_id]["file"])
    subset, _ = _read_domain_csv(subset_path)
    missing = sorted(set(subset) - set(codes))
    return target, len(codes), missing

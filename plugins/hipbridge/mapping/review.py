"""The coding staff's round trip: export the gap report to XLSX/CSV, import their reviewed file back.

The sheet has Chinese headers and status words; staff fill 标准代码 and 状态 (and may change
等价关系 / 审核人 / 备注). Import validates every row first — unknown code set, a standard code
outside the domain, a bad status, conflicting duplicates — naming the row and the column as the
spreadsheet shows them; only a file without errors is merged into `mappings/local/<hospital>/`.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from hipbridge.settings import hospital_now

from .catalog import Catalog
from .files import MappingFileError, decode_utf8
from .gaps import GapReport
from .local import LOCAL_COLUMNS, STATUS_LABELS, MappingRow, validate_rows

# openpyxl loads only for the review workbook's export and import, not for every mapping command.

SHEET_GAPS = "待对照"
SHEET_COVERAGE = "覆盖率"
SHEET_HELP = "说明"
# (header, canonical key): the order of the export; import matches headers by name, not position
EXPORT_COLUMNS = [
    ("本地码表", "set_id"), ("目标值域", "domain"), ("本地代码", "local_code"), ("本地名称", "local_name"),
    ("出现频次", "frequency"), ("出现列", "columns"), ("当前状态", "current_status"),
    ("候选1", "candidate1"), ("候选2", "candidate2"), ("候选3", "candidate3"),
    ("标准代码", "standard_code"), ("状态", "status"), ("等价关系", "equivalence"), ("审核人", "reviewer"),
    ("审核时间", "reviewed_at"), ("备注", "comment"),
]
IMPORT_ALIASES = {h: k for h, k in EXPORT_COLUMNS}
IMPORT_REQUIRED = ["set_id", "local_code", "standard_code", "status"]
HEADER_OF = {k: h for h, k in EXPORT_COLUMNS}
CURRENT_STATUS_LABELS = {**STATUS_LABELS, "missing": "码表中无此代码"}


def _export_rows(report: GapReport) -> list[dict]:
    out = []
    for r in report.by_code():
        row = {"set_id": r["set_id"], "domain": r["domain"], "local_code": r["local_code"],
               "local_name": r["local_name"], "frequency": r["frequency"], "columns": "; ".join(r["columns"]),
               "current_status": CURRENT_STATUS_LABELS.get(r["status"], r["status"]),
               "standard_code": "", "status": "", "equivalence": "", "reviewer": "", "reviewed_at": "", "comment": ""}
        for i in range(3):
            c = r["candidates"][i] if i < len(r["candidates"]) else None
            row[f"candidate{i + 1}"] = str(c) if c else ""
        out.append(row)
    return out


def export_csv(report: GapReport, path: Path) -> int:
    rows = _export_rows(report)
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:  # BOM: Excel opens UTF-8 correctly
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([h for h, _ in EXPORT_COLUMNS])
        for r in rows:
            w.writerow([r[k] for _, k in EXPORT_COLUMNS])
    return len(rows)


def export_xlsx(report: GapReport, path: Path) -> int:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.worksheet.datavalidation import DataValidation

    rows = _export_rows(report)
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET_GAPS
    ws.append([h for h, _ in EXPORT_COLUMNS])
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="FFF2CC")
    editable = {"standard_code", "status", "equivalence", "reviewer", "reviewed_at", "comment"}
    for i, (_, key) in enumerate(EXPORT_COLUMNS, start=1):
        cell = ws.cell(row=1, column=i)
        cell.font = bold
        if key in editable:
            cell.fill = fill
    for r in rows:
        ws.append([r[k] for _, k in EXPORT_COLUMNS])
    last = max(len(rows) + 1, 2)
    text_cols = [i for i, (_, k) in enumerate(EXPORT_COLUMNS, start=1) if k in ("local_code", "standard_code")]
    for col in text_cols:  # codes are text: keep 01 from becoming 1
        for row in range(2, last + 200):
            ws.cell(row=row, column=col).number_format = "@"
    status_col = next(i for i, (_, k) in enumerate(EXPORT_COLUMNS, start=1) if k == "status")
    letter = ws.cell(row=1, column=status_col).column_letter
    dv = DataValidation(type="list", formula1='"' + ",".join(STATUS_LABELS.values()) + '"', allow_blank=True)
    dv.add(f"{letter}2:{letter}{last + 200}")
    ws.add_data_validation(dv)
    widths = {"set_id": 16, "domain": 14, "local_code": 12, "local_name": 20, "frequency": 9, "columns": 28,
              "current_status": 12, "candidate1": 30, "candidate2": 30, "candidate3": 30, "standard_code": 12,
              "status": 9, "equivalence": 12, "reviewer": 10, "reviewed_at": 18, "comment": 40}
    for i, (_, key) in enumerate(EXPORT_COLUMNS, start=1):
        ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = widths.get(key, 12)
    ws.freeze_panes = "C2"
    ws.auto_filter.ref = f"A1:{ws.cell(row=1, column=len(EXPORT_COLUMNS)).column_letter}{last}"   # sort / filter by set

    cv = wb.create_sheet(SHEET_COVERAGE)
    cv.append(["表", "列", "列名", "本地码表", "目标值域", "源数据非空行数", "已对照行数", "覆盖率(按频次)", "不同代码数",
               "未对照代码数"])
    for c in cv[1]:
        c.font = bold
    for c in report.coverage:
        cv.append([c.table, c.column, c.column_label, c.set_id or "", c.domain, c.rows, c.mapped_rows,
                   None if c.coverage is None else round(c.coverage, 4), c.distinct, c.unmapped_distinct])
        if c.coverage is not None:
            cv.cell(row=cv.max_row, column=8).number_format = "0.00%"
    help_ws = wb.create_sheet(SHEET_HELP)
    for line in [
        f"医院: {report.hospital}    生成时间: {report.created_at:%Y-%m-%d %H:%M} {report.timezone}",
        "在“待对照”表中为每个本地代码填写【标准代码】和【状态】（已批准 / 存疑 / 忽略 / 未审核），可填写等价关系、审核人、备注。",
        "只有“已批准”的对照会在上传时生效；“忽略”表示确认不对照（按列的未对照策略处理），不再出现在缺口报告中。",
        "候选列按名称（汉字与拼音）相似度给出，仅供参考；标准代码必须是目标值域中的代码。",
        "等价关系可选: EQUAL（相同） / EQUIVALENT（等价） / WIDER（本地更宽） / NARROWER（本地更窄） / INEXACT（近似）。",
        "填好后保存为 .xlsx，交给实施人员执行: hipbridge mapping import <文件>；任何一行有错都不会写入，错误会指出行号和列名。",
    ]:
        help_ws.append([line])
    help_ws.column_dimensions["A"].width = 120
    wb.save(path)
    return len(rows)


# ---------------------------------------------------------------- import


@dataclass
class ImportResult:
    errors: list[MappingFileError]
    updated: dict[str, int]   # set id → rows replaced
    added: dict[str, int]     # set id → rows appended
    skipped: int              # untouched rows (no standard code and no decision)

    @property
    def ok(self) -> bool:
        return not self.errors


def _cell_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, date):
        return v.strftime("%Y-%m-%d")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _read_reviewed(path: Path) -> tuple[list[dict[str, str]], list[int], dict[str, str], list[MappingFileError]]:
    """Rows keyed canonically, their spreadsheet row numbers, canonical→header shown, errors."""
    file = str(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - corrupt or not an xlsx
            return [], [], {}, [MappingFileError(file, None, None, f"无法打开 XLSX: {exc}")]
        ws = wb[SHEET_GAPS] if SHEET_GAPS in wb.sheetnames else wb.worksheets[0]
        table = [[_cell_text(v) for v in r] for r in ws.iter_rows(values_only=True)]
        wb.close()
        sheet = f"{file}!{ws.title}"
    else:
        text, err = decode_utf8(path.read_bytes(), file)
        if err:
            return [], [], {}, [err]
        table = [[c.strip() for c in r] for r in csv.reader(io.StringIO(text, newline=""))]
        sheet = file
    if not table:
        return [], [], {}, [MappingFileError(sheet, 1, None, "文件为空")]
    header = table[0]
    canon: list[str | None] = []
    shown: dict[str, str] = {}
    for h in header:
        key = IMPORT_ALIASES.get(h, h if h in LOCAL_COLUMNS or h == "set_id" else None)
        canon.append(key)
        if key:
            shown[key] = h
    errors = [MappingFileError(sheet, 1, HEADER_OF.get(k, k), "缺少必需的列") for k in IMPORT_REQUIRED
              if k not in canon]
    if errors:
        return [], [], shown, errors
    rows, numbers = [], []
    for n, rec in enumerate(table[1:], start=2):
        if not any(rec):
            continue
        rows.append({k: (rec[i] if i < len(rec) else "") for i, k in enumerate(canon) if k})
        numbers.append(n)
    return rows, numbers, shown, []


def _write_set(path: Path, rows: list[MappingRow]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(LOCAL_COLUMNS)
        for r in rows:
            w.writerow([r.local_code, r.local_name, r.standard_code, r.status, r.equivalence, r.reviewer,
                        r.reviewed_at, r.comment])
    os.replace(tmp, path)


def import_reviewed(catalog: Catalog, path: Path, reviewer: str = "", dry_run: bool = False) -> ImportResult:
    """Validate the staff's file completely, then merge decided rows into the local set CSVs."""
    path = Path(path)
    rows, numbers, shown, errors = _read_reviewed(path)
    sheet = f"{path}!{SHEET_GAPS}" if path.suffix.lower() in (".xlsx", ".xlsm") else str(path)
    if errors:
        return ImportResult(errors, {}, {}, 0)
    by_set: dict[str, tuple[list[dict], list[int]]] = {}
    skipped = 0
    now = hospital_now().strftime("%Y-%m-%d %H:%M:%S")
    for row, n in zip(rows, numbers):
        status_text = row.get("status", "")
        if not row.get("standard_code") and status_text in ("", STATUS_LABELS["unchecked"], "unchecked"):
            skipped += 1
            continue
        set_id = row.get("set_id", "")
        if set_id not in catalog.sets:
            errors.append(MappingFileError(sheet, n, shown.get("set_id", "本地码表"),
                                           "未知本地码表（该列未配置 codes.local，或 _sets.yaml 未声明）", set_id))
            continue
        row.setdefault("status", "")
        if not row["status"]:
            row["status"] = "unchecked"
        by_set.setdefault(set_id, ([], []))
        by_set[set_id][0].append(row)
        by_set[set_id][1].append(n)
    decided: dict[str, list[MappingRow]] = {}
    for set_id, (srows, nums) in by_set.items():
        ls = catalog.sets[set_id]
        if not ls.valid:
            errors.append(MappingFileError(str(ls.path), None, None, "现有码表文件校验失败，请先修正（hipbridge mapping check）"))
            continue
        domain = catalog.domains[ls.domain]
        good, errs = validate_rows(srows, nums, sheet, domain)
        for e in errs:  # show the spreadsheet's own header for the column
            errors.append(MappingFileError(e.file, e.row, shown.get(e.column or "", HEADER_OF.get(e.column or "",
                                                                                                    e.column)),
                                           e.message, e.value))
        for r in good:
            if r.status != "unchecked":
                r.reviewer = r.reviewer or reviewer
                r.reviewed_at = r.reviewed_at or now
            if r.equivalence == "" and r.status == "approved":
                r.equivalence = "EQUIVALENT"
        decided[set_id] = good
    if errors:
        return ImportResult(errors, {}, {}, skipped)
    updated: dict[str, int] = {}
    added: dict[str, int] = {}
    for set_id, new_rows in decided.items():
        ls = catalog.sets[set_id]
        existing = {r.local_code: r for r in ls.rows}
        order = [r.local_code for r in ls.rows]
        for r in new_rows:
            prev = existing.get(r.local_code)
            if prev is not None:  # blank cells keep what the file said (name, and the reason it was flagged)
                r.local_name = r.local_name or prev.local_name
                r.comment = r.comment or prev.comment
            if r.local_code in existing:
                updated[set_id] = updated.get(set_id, 0) + 1
            else:
                order.append(r.local_code)
                added[set_id] = added.get(set_id, 0) + 1
            existing[r.local_code] = r
        if not dry_run:
            _write_set(ls.path, [existing[c] for c in order])
    return ImportResult([], updated, added, skipped)

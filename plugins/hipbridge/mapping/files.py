"""Strict reading of mapping CSV files: UTF-8 only, required columns, every problem with file, row and column.

Row numbers are the line numbers a spreadsheet shows (header = row 1, first data row = row 2), so
coding staff can go straight to the cell.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MappingFileError:
    """One problem in one file: where (file, row, column), what was found and what was expected."""

    file: str
    row: int | None
    column: str | None
    message: str
    value: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" 第{self.row}行"
        if self.column:
            where += f" [{self.column}]"
        shown = "" if self.value is None else f"（实际值 {self.value!r}）"
        return f"{where}: {self.message}{shown}"


class MappingConfigError(Exception):
    """Mapping files a caller needs are invalid or missing; nothing from them was applied."""

    def __init__(self, errors: list[MappingFileError] | str):
        self.errors = [] if isinstance(errors, str) else list(errors)
        text = errors if isinstance(errors, str) else "\n".join(f"  {e}" for e in self.errors)
        super().__init__(text if isinstance(errors, str) else "对码文件校验失败，未应用：\n" + text)


def decode_utf8(raw: bytes, file: str) -> tuple[str | None, MappingFileError | None]:
    """UTF-8 (BOM allowed). A GBK file is the usual mistake of Excel on Chinese Windows: say so."""
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        row = raw[: exc.start].count(b"\n") + 1
        hint = ""
        try:
            raw.decode("gb18030")
            hint = "；看起来是 GBK/GB18030 编码（Excel 另存为 CSV 的默认编码），请另存为“CSV UTF-8”"
        except UnicodeDecodeError:
            pass
        return None, MappingFileError(file, row, _column_at(raw, exc.start),
                                      f"文件不是 UTF-8 编码（字节位置 {exc.start}）{hint}")


def _column_at(raw: bytes, offset: int) -> str | None:
    """The header name of the CSV field holding byte `offset` (quotes ignored: a hint, not a parse)."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    field_no = raw[line_start:offset].count(b",")
    header = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    names = [h.strip() for h in header.split(",")]
    return names[field_no] if line_start > 0 and field_no < len(names) else None


def read_csv(path: Path, required: list[str], optional: list[str] = (),
             aliases: dict[str, str] | None = None) -> tuple[list[dict[str, str]], list[int], list[MappingFileError]]:
    """Rows as dicts keyed by canonical column names, their spreadsheet row numbers, and errors.

    `aliases` maps accepted header spellings (e.g. Chinese headers) to canonical names. A missing
    required column is one error naming the column; unknown columns are errors too (typos).
    """
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [], [], [MappingFileError(file, None, None, f"无法读取文件: {exc}")]
    text, err = decode_utf8(raw, file)
    if err:
        return [], [], [err]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], [], [MappingFileError(file, 1, None, f"文件为空；需要表头 {','.join(required)}")]
    except csv.Error as exc:
        return [], [], [MappingFileError(file, 1, None, f"CSV 格式错误: {exc}")]
    aliases = aliases or {}
    known = set(required) | set(optional)
    canon: list[str | None] = []
    errors: list[MappingFileError] = []
    for h in header:
        key = h.strip()
        key = aliases.get(key, aliases.get(key.lower(), key))
        if key not in known:
            errors.append(MappingFileError(file, 1, h, f"未知列；允许的列: {', '.join(list(required) + list(optional))}"))
            canon.append(None)
        elif key in canon:
            errors.append(MappingFileError(file, 1, h, "列重复"))
            canon.append(None)
        else:
            canon.append(key)
    for col in required:
        if col not in canon:
            errors.append(MappingFileError(file, 1, col, "缺少必需的列"))
    if errors:
        return [], [], errors
    rows: list[dict[str, str]] = []
    numbers: list[int] = []
    width = len(canon)
    try:
        for record in reader:
            line = reader.line_num
            if not record or all(not c.strip() for c in record):
                continue
            if len(record) != width:
                errors.append(MappingFileError(file, line, None,
                                               f"列数为 {len(record)}，表头为 {width} 列（逗号未加引号？）"))
                continue
            rows.append({k: v.strip() for k, v in zip(canon, record) if k is not None})
            numbers.append(line)
    except csv.Error as exc:
        errors.append(MappingFileError(file, reader.line_num, None, f"CSV 格式错误: {exc}"))
    for k in optional:
        for r in rows:
            r.setdefault(k, "")
    return rows, numbers, errors

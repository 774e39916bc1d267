"""Gap report against a real SQLite source, the XLSX/CSV round trip for coding staff, and the CLI."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from hipbridge.cli import main
from hipbridge.mapping import load_catalog
from hipbridge.mapping.gaps import compute_gaps
from hipbridge.mapping.review import export_csv, export_xlsx, import_reviewed
from hipbridge.spec import load_specs
from openpyxl import load_workbook

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
table: gap_patient
label: 缺口测试患者表
source:
  system: his
  connection: gaphis
  query: |
    SELECT p.PID AS patient_id, p.SEX AS sex, p.NATION AS nation, p.MARRY AS marital,
           p.OCC AS occupation
    FROM PATIENT p  -- the spec's SQL, wrapped by the gap query
target: {name: GAPT, primary_key: [HZID]}
columns:
  - {name: HZID, label: 患者标识, type: varchar(32), from: patient_id}
  - {name: XBDM, label: 性别代码, type: varchar(2), from: sex,
     codes: {domain: GB/T 2261.1, local: his_sex, name_column: XBMC, unmapped: quarantine}}
  - {name: XBMC, label: 性别名称, type: varchar(20)}
  - {name: MZDM, label: 民族代码, type: varchar(2), from: nation, codes: {local: his_nation, name_column: MZMC}}
  - {name: MZMC, label: 民族名称, type: varchar(20)}
  - {name: HYZKDM, label: 婚姻状况代码, type: varchar(2), from: marital, codes: {domain: GB/T 2261.2}}
  - {name: ZYDM, label: 职业代码, type: varchar(2), from: occupation, codes: {local: his_occupation, unmapped: other}}
"""

# sex: 'X' unmapped ×3 (absent from the file); nation '88' fine; occupation 'XS' is a demo gap (unchecked)
PATIENTS = (
    [("p1", "M", "1", "20", "NM")] * 5 + [("p2", "F", "8", "10", "XS")] * 4 + [("p3", "X", "13", "99", "GR")] * 3
    + [("p4", "U", "88", None, "XS")] * 2 + [("p5", None, "1", "20", "LT")]
)


@pytest.fixture
def env(tmp_path, monkeypatch, hb_home):
    mdir = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mdir, ignore=shutil.ignore_patterns("*_full.csv"))
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(ROOT / "table_specs" / "_defaults.yaml", specs)
    (specs / "gap_patient.yaml").write_text(SPEC, encoding="utf-8")
    db = tmp_path / "gaphis.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE PATIENT (PID TEXT, SEX TEXT, NATION TEXT, MARRY TEXT, OCC TEXT)")
        conn.executemany("INSERT INTO PATIENT VALUES (?,?,?,?,?)", PATIENTS)
    monkeypatch.setenv("HIPBRIDGE_CONN_GAPHIS", f"sqlite:///{db}")
    monkeypatch.setenv("HIPBRIDGE_MAPPINGS", str(mdir))
    monkeypatch.setenv("HIPBRIDGE_SPECS", str(specs))
    monkeypatch.setenv("HIPBRIDGE_HOSPITAL", "demo")
    return {"mappings": mdir, "specs": specs}


def report_of(env):
    specs = load_specs(env["specs"]).require_valid()
    return compute_gaps(load_catalog(env["mappings"], "demo"), specs)


def test_gap_report_lists_unmapped_codes_with_frequency_candidates_and_coverage(env):
    report = report_of(env)
    assert report.problems == []
    got = {(e.column, e.local_code): (e.frequency, e.status, e.policy) for e in report.entries}
    assert got == {("XBDM", "X"): (3, "missing", "quarantine"), ("HYZKDM", "99"): (3, "missing", "keep"),
                   ("ZYDM", "XS"): (6, "unchecked", "other")}
    xs = next(e for e in report.entries if e.local_code == "XS")
    assert xs.local_name == "学生" and xs.set_id == "his_occupation" and xs.domain == "GB/T 6565"
    assert 1 <= len(xs.candidates) <= 3
    cov = {c.column: (c.rows, c.mapped_rows, c.unmapped_distinct) for c in report.coverage}
    assert cov == {"XBDM": (14, 11, 1), "MZDM": (15, 15, 0), "HYZKDM": (13, 10, 1), "ZYDM": (15, 9, 1)}
    assert next(c for c in report.coverage if c.column == "XBDM").coverage == pytest.approx(11 / 14)
    # stamped on the hospital's clock (this machine runs in UTC), so the snapshot shown in Airflow is not 8 h off
    from datetime import datetime
    from zoneinfo import ZoneInfo

    shanghai = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    assert report.timezone == "Asia/Shanghai" and abs((report.created_at - shanghai).total_seconds()) < 600


def test_candidates_rank_chinese_names_by_characters_and_pinyin():
    from hipbridge.mapping.similarity import NameMatcher

    catalog = load_catalog(ROOT / "mappings", "demo")
    top = lambda dom, name, code="": NameMatcher.for_domain(catalog.domain(dom)).candidates(name, code)[0].code
    assert top("GB/T 2261.1", "男") == "1"                    # containment: 男 → 男性
    assert top("GB/T 2261.2", "以婚") == "20"                  # homophone typo found through pinyin
    assert top("CV07.10.005", "城乡居民医保") == "02"
    assert top("ICD-10", "", "J18.9") == "J18.900"            # a short local ICD code finds its extension
    assert top("CV06.00.102", "静脉滴注") == "404"


def test_json_export_format(env, tmp_path):
    out = tmp_path / "gaps.json"
    assert main(["mapping", "gaps", "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert {tuple(sorted(d)) for d in data} == {tuple(sorted(["table", "column", "local_code", "local_name",
                                                              "frequency", "candidates", "local_set", "domain",
                                                              "status", "policy"]))}
    xs = next(d for d in data if d["local_code"] == "XS")
    assert (xs["table"], xs["column"], xs["frequency"]) == ("gap_patient", "ZYDM", 6)
    assert set(xs["candidates"][0]) == {"code", "name", "score", "basis"}


def fill(ws, decisions: dict[str, tuple[str, str]]) -> None:
    header = [c.value for c in ws[1]]
    ci, si, code_i = header.index("标准代码") + 1, header.index("状态") + 1, header.index("本地代码") + 1
    for r in range(2, ws.max_row + 1):
        code = ws.cell(row=r, column=code_i).value
        if code in decisions:
            ws.cell(row=r, column=ci).value, ws.cell(row=r, column=si).value = decisions[code]


def test_xlsx_round_trip_closes_the_gaps(env, tmp_path):
    report = report_of(env)
    xlsx = tmp_path / "review.xlsx"
    assert export_xlsx(report, xlsx) == 3
    wb = load_workbook(xlsx)
    assert wb.sheetnames == ["待对照", "覆盖率", "说明"]
    ws = wb["待对照"]
    assert [c.value for c in ws[1]][:6] == ["本地码表", "目标值域", "本地代码", "本地名称", "出现频次", "出现列"]
    assert ws.auto_filter.ref.startswith("A1:") and ws.auto_filter.ref.endswith("4")   # header + 3 gaps, filterable
    assert wb["说明"]["A1"].value.endswith("Asia/Shanghai")                              # the zone named
    # staff decide: X → 0 未知的性别 (approved); XS → 8 (approved). 婚姻 99 has no local set: left blank.
    fill(ws, {"X": ("0", "已批准"), "XS": ("8", "已批准")})
    rows = {ws.cell(row=r, column=3).value: ws.cell(row=r, column=1).value for r in range(2, ws.max_row + 1)
            if ws.cell(row=r, column=3).value}
    assert rows == {"X": "his_sex", "XS": "his_occupation", "99": None}   # 婚姻 has no local set (domain only)
    wb.save(xlsx)
    catalog = load_catalog(env["mappings"], "demo")
    result = import_reviewed(catalog, xlsx, reviewer="病案室 王工")
    assert result.ok, result.errors
    assert result.updated == {"his_occupation": 1} and result.added == {"his_sex": 1} and result.skipped == 1
    after = report_of(env)
    assert {(e.column, e.local_code) for e in after.entries} == {("HYZKDM", "99")}
    rowx = next(r for r in load_catalog(env["mappings"], "demo").sets["his_sex"].rows if r.local_code == "X")
    assert (rowx.standard_code, rowx.status, rowx.reviewer) == ("0", "approved", "病案室 王工")
    assert rowx.reviewed_at


def test_csv_export_and_reimport(env, tmp_path):
    path = tmp_path / "review.csv"
    export_csv(report_of(env), path)
    text = path.read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("本地码表,目标值域,本地代码,本地名称,出现频次")
    lines = text.splitlines()
    header = lines[0].split(",")
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        if cells[2] == "XS":
            cells[header.index("标准代码")], cells[header.index("状态")] = "8", "approved"
        out.append(",".join(cells))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    result = import_reviewed(load_catalog(env["mappings"], "demo"), path, reviewer="x")
    assert result.ok and result.updated == {"his_occupation": 1}


def test_import_errors_name_row_and_column_and_write_nothing(env, tmp_path):
    report = report_of(env)
    xlsx = tmp_path / "review.xlsx"
    export_xlsx(report, xlsx)
    wb = load_workbook(xlsx)
    ws = wb["待对照"]
    fill(ws, {"X": ("5", "已批准"), "XS": ("8", "完成")})
    header = [c.value for c in ws[1]]
    ws.append(["no_such_set", "", "Q", "", "", "", "", "", "", "", "1", "已批准"] + [None] * (len(header) - 12))
    wb.save(xlsx)
    before = (env["mappings"] / "local" / "demo" / "his_occupation.csv").read_bytes()
    result = import_reviewed(load_catalog(env["mappings"], "demo"), xlsx)
    assert not result.ok
    by_col = {(e.row, e.column): e for e in result.errors}
    rows = {ws.cell(row=r, column=3).value: r for r in range(2, ws.max_row + 1)}
    assert (rows["X"], "标准代码") in by_col and by_col[(rows["X"], "标准代码")].value == "5"
    assert (rows["XS"], "状态") in by_col
    assert (rows["Q"], "本地码表") in by_col
    assert all("review.xlsx" in str(e) for e in result.errors)
    assert (env["mappings"] / "local" / "demo" / "his_occupation.csv").read_bytes() == before
    # the CLI says the same and exits 1
    assert main(["mapping", "import", str(xlsx)]) == 1


def test_import_missing_column_and_conflicting_duplicates(env, tmp_path):
    catalog = load_catalog(env["mappings"], "demo")
    p = tmp_path / "r.csv"
    p.write_text("本地码表,本地代码,标准代码\nhis_sex,X,0\n", encoding="utf-8")
    (e,) = import_reviewed(catalog, p).errors
    assert (e.row, e.column) == (1, "状态")
    p.write_text("本地码表,本地代码,标准代码,状态\nhis_sex,X,0,已批准\nhis_sex,X,9,已批准\n", encoding="utf-8")
    (e,) = import_reviewed(catalog, p).errors
    assert (e.row, e.column) == (3, "本地代码") and "冲突" in e.message
    p.write_bytes("本地码表,本地代码,标准代码,状态\nhis_sex,X,0,已批准\n".encode("gbk"))
    (e,) = import_reviewed(catalog, p).errors
    assert "GBK" in e.message


def test_cli_check_ok_and_failing(env, capsys):
    assert main(["mapping", "check"]) == 0
    assert "ok:" in capsys.readouterr().out
    bad = env["mappings"] / "local" / "demo" / "his_sex.csv"
    bad.write_text(bad.read_text(encoding="utf-8") + "M,男,2,approved,EQUAL,张三,2026-11-20,\n", encoding="utf-8")
    assert main(["mapping", "check"]) == 1
    err = capsys.readouterr().err
    assert "his_sex.csv 第5行 [local_code]" in err and "冲突" in err


def test_cli_check_reports_spec_binding_errors(env, capsys):
    spec = env["specs"] / "gap_patient.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("local: his_nation", "local: his_nationality"),
                    encoding="utf-8")
    assert main(["mapping", "check"]) == 1
    assert "his_nationality" in capsys.readouterr().err


def test_cli_gaps_exports_and_stores_snapshot(env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HIPBRIDGE_OPS_SCHEMA", "hipbridge_ops")
    x, c = tmp_path / "g.xlsx", tmp_path / "g.csv"
    assert main(["mapping", "gaps", "--table", "gap_patient", "--xlsx", str(x), "--csv", str(c), "--store"]) == 0
    out = capsys.readouterr().out
    assert "gap_patient.XBDM" in out and "78.6%" in out and x.exists() and c.exists()
    from hipbridge.io.engines import default_frontend_url, engine_for
    from sqlalchemy import text

    eng = engine_for(default_frontend_url(), "hipbridge_ops")
    with eng.connect() as conn:
        rows = conn.execute(text("SELECT column_name, local_code, frequency FROM hipbridge_ops.mapping_gap "
                                 "WHERE local_code IS NOT NULL ORDER BY column_name")).all()
    assert [tuple(r) for r in rows] == [("HYZKDM", "99", 3), ("XBDM", "X", 3), ("ZYDM", "XS", 6)]
    assert main(["mapping", "gaps", "--fail-on-gaps"]) == 1

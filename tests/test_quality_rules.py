"""Each rule template finds exactly the faults injected into a small fixture (counts, not just 'failed').

The fixture is three tiny front-end tables built from fixture specs (copied `_defaults.yaml`),
created with `create_frontend` on real MariaDB and SQLite, filled with rows that carry known faults.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hipbridge.io.engines import engine_for
from hipbridge.io.frontend import create_frontend, target_table
from hipbridge.quality import gb11643
from hipbridge.quality.config import load_config
from hipbridge.settings import ops_schema_name
from hipbridge.spec import load_specs
from sqlalchemy import MetaData, insert

ROOT = Path(__file__).resolve().parents[1]
ORG = "451002000001"
NOW = datetime.now().replace(microsecond=0)
DOMAINS = {
    "GB/T 2261.1": {"0": "未知的性别", "1": "男性", "2": "女性", "9": "未说明的性别"},
    "CV02.01.101": {"01": "居民身份证", "02": "居民户口簿", "99": "其他法定有效证件"},
    "ICD-10": {"J18.900": "肺炎", "O80.000": "单胎顺产", "N40.x00": "前列腺增生", "O9A.100": "妊娠合并恶性肿瘤"},
    "GB/T 2260": {"45": "广西壮族自治区", "4510": "百色市", "451002": "右江区"},
}

PATIENT = """
table: patient
label: 患者基本信息表
source: {system: his, connection: his, query: "select 1"}
target: {name: HZJBXXB, primary_key: [HZWYBSH, YLJGDM]}
columns:
  - {name: HZWYBSH, label: 患者唯一标识号, type: varchar(32), required: true, from: a}
  - {name: XM, label: 姓名, type: varchar(4), required: true, from: b, sensitive: true}
  - {name: XBDM, label: 性别代码, type: varchar(2), required: true, from: c,
     codes: {domain: GB/T 2261.1, name_column: XBMC}}
  - {name: XBMC, label: 性别名称, type: varchar(20)}
  - {name: CSRQ, label: 出生日期, type: date, from: d, range: {min: "1900-01-01"}}
  - {name: ZJLXDM, label: 证件类型代码, type: varchar(2), from: e, codes: {domain: CV02.01.101}}
  - {name: ZJHM, label: 证件号码, type: varchar(32), from: f, sensitive: true, checks: [gb11643]}
  - {name: SJHM, label: 手机号码, type: varchar(20), from: g, checks: [mobile]}
  - {name: XZQH, label: 行政区划代码, type: varchar(12), from: h, checks: [division_code]}
  - {name: SG, label: 身高, type: 'decimal(4,1)', from: i, range: {min: 20, max: 250}}
  - {name: BM, label: 病案号, type: varchar(10), from: j, pattern: "^BA[0-9]+$"}
  - {name: YWSJSCSJ, label: 业务数据生成时间, type: timestamp, from: k}
quality:
  time_order: [{before: CSRQ, after: YWSJSCSJ, rule: P03}]
  timeliness: {event: YWSJSCSJ, max_lag: 24h}
"""

VISIT = """
table: visit
label: 门诊就诊记录
source: {system: his, connection: his, query: "select 1"}
target: {name: MZJZJL, primary_key: [JZLSH, YLJGDM]}
columns:
  - {name: JZLSH, label: 门诊就诊流水号, type: varchar(32), required: true, from: a}
  - {name: HZWYBSH, label: 患者唯一标识号, type: varchar(32), from: b, references: patient.HZWYBSH}
  - {name: JZKSSJ, label: 就诊开始时间, type: timestamp, required: true, from: c}
  - {name: JZJSSJ, label: 就诊结束时间, type: timestamp, from: d}
  - {name: ZFY, label: 总费用, type: 'decimal(12,2)', from: e}
  - {name: XBDM, label: 性别代码, type: varchar(2), from: f, codes: {domain: GB/T 2261.1}}
  - {name: CSRQ, label: 出生日期, type: date, from: g}
  - {name: NLS, label: 年龄(岁), type: decimal(3), from: h}
  - {name: ZDDM, label: 诊断代码, type: varchar(20), from: i, codes: {domain: ICD-10}}
quality:
  time_order: [{before: JZKSSJ, after: JZJSSJ}]
"""

FEE = """
table: fee
label: 费用明细
source: {system: his, connection: his, query: "select 1"}
target: {name: FYMX, primary_key: [MXLSH, YLJGDM]}
columns:
  - {name: MXLSH, label: 明细流水号, type: varchar(32), required: true, from: a}
  - {name: JZLSH, label: 门诊就诊流水号, type: varchar(32), from: b, references: visit.JZLSH}
  - {name: JE, label: 金额, type: 'decimal(12,2)', from: c}
"""

LAB = """
table: lab
label: 检验明细
source: {system: lis, connection: lis, query: "select 1"}
target: {name: JYMX, primary_key: [JYMXLSH, YLJGDM]}
columns:
  - {name: JYMXLSH, label: 检验明细流水号, type: varchar(32), required: true, from: a}
  - {name: LOINCDM, label: LOINC代码, type: varchar(10), from: b}
  - {name: JYJGLXDM, label: 检验结果类型代码, type: varchar(1), from: e}
  - {name: JYDLJG, label: 检验定量结果, type: varchar(10), from: c, required_when: {column: JYJGLXDM, in: ["1"]}}
  - {name: JYDXJG, label: 检验定性结果, type: varchar(200), from: f, required_when: {column: JYJGLXDM, in: ["2", "3"]}}
  - {name: JYJLDW, label: 检验计量单位, type: varchar(20), from: d, required_when: {column: JYDLJG, filled: true}}
"""

EMPTY = """
table: empty_tab
label: 空表
source: {system: his, connection: his, query: "select 1"}
target: {name: KB, primary_key: [LSH, YLJGDM]}
columns:
  - {name: LSH, label: 流水号, type: varchar(32), required: true, from: a}
  - {name: DM, label: 性别代码, type: varchar(2), from: b, codes: {domain: GB/T 2261.1}}
"""

CUSTOM = """
description: 跨表规则(测试)
rules:
  - id: K04.visit.total
    template: K04
    table: visit
    columns: [ZFY]
    filter: "{总费用} IS NOT NULL"
    violation: >-
      ABS({总费用} - COALESCE((SELECT SUM(d.{fee:金额}) FROM {@fee} d
      WHERE {d.JZLSH} = {JZLSH} AND d.{fee:医疗机构代码} = {医疗机构代码}), 0)) > 0.01
    message: 总费用与费用明细金额合计不一致
  - id: X01.visit.long
    dimension: 准确性
    severity: warning
    threshold: 50
    table: visit
    columns: [JZKSSJ, JZJSSJ]
    filter: "{JZJSSJ} IS NOT NULL"
    violation: "{JZJSSJ} > :now"
    message: 就诊结束时间晚于当前时间
  - id: X02.visit.bad_label
    template: K06
    table: visit
    violation: "{不存在的数据元} IS NULL"
  - id: X03.nowhere
    template: K06
    table: no_such_table
    violation: "1=1"
"""


def valid_id(first17: str) -> str:
    return first17 + gb11643.check_char(first17)


ID_M = valid_id("45100219800101001")   # 男 (17th digit 1 odd), born 1980-01-01
ID_F = valid_id("45100219900202002")   # 女, born 1990-02-02


def write_fixture(folder: Path, custom: bool = True) -> tuple[Path, Path]:
    specs_dir, exp_dir = folder / "specs", folder / "expectations"
    specs_dir.mkdir(parents=True, exist_ok=True)
    exp_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "table_specs" / "_defaults.yaml", specs_dir / "_defaults.yaml")
    for name, body in (("patient", PATIENT), ("visit", VISIT), ("fee", FEE), ("lab", LAB), ("empty_tab", EMPTY)):
        (specs_dir / f"{name}.yaml").write_text(body, encoding="utf-8")
    for name in ("_rules.yaml", "_scoring.yaml"):
        shutil.copy(ROOT / "expectations" / name, exp_dir / name)
    if custom:
        (exp_dir / "fixture_rules.yaml").write_text(CUSTOM, encoding="utf-8")
    return specs_dir, exp_dir


def audit(i: int, org: str = ORG, lag_hours: float = 1) -> dict:
    up = NOW - timedelta(days=1)
    return {"YLJGDM": org, "YLJGMC": "测试医院", "XGBZ": "1", "MJ": "0", "SJGXSJ": up,
            "SJCJSJ": up + timedelta(hours=lag_hours)}


def patient_rows() -> list[dict]:
    """10 patients; every fault listed in EXPECTED below, each injected a known number of times."""
    base = {"XM": "张三", "XBDM": "1", "XBMC": "男性", "CSRQ": datetime(1980, 1, 1).date(), "ZJLXDM": "01", "ZJHM": ID_M,
                "SJHM": "13800138000", "XZQH": "451002001001", "SG": Decimal("170.0"), "BM": "BA1",
                "YWSJSCSJ": NOW - timedelta(days=1)}
    rows = []
    for i in range(10):
        r = {**audit(i), **base, "HZWYBSH": f"P{i:03d}"}
        rows.append(r)
    rows[0]["XM"] = None                                  # C01 XM ×2 (null, placeholder '-')
    rows[1]["XM"] = " - "
    rows[2]["XBDM"], rows[2]["XBMC"] = "5", None          # S01 XBDM ×1
    rows[3]["XBMC"] = "女性"                              # S02 ×1 (1 + 女性)
    rows[4]["ZJHM"] = ID_M[:17] + ("0" if ID_M[17] != "0" else "1")   # S03 checksum ×1
    rows[5]["XBDM"], rows[5]["XBMC"], rows[5]["ZJHM"] = "2", "女性", ID_M   # K01 ×1 (even code, odd ID)
    rows[6]["CSRQ"] = datetime(1981, 1, 1).date()         # K02 ×1
    rows[7]["ZJLXDM"], rows[7]["ZJHM"] = "02", "NOT-AN-ID"  # not a 居民身份证: S03 does not apply
    rows[8]["ZJHM"] = "451002900202002"                   # 15-digit, upgrades to 19900202 birth, even: 女
    rows[8]["XBDM"], rows[8]["XBMC"], rows[8]["CSRQ"] = "2", "女性", datetime(1990, 2, 2).date()
    rows[1]["SJHM"] = "12345"                             # S07 ×1
    rows[2]["XZQH"] = "45100"                             # S08 ×3: malformed,
    rows[4]["XZQH"] = "451002"                            # a county code in a 12-digit column,
    rows[6]["XZQH"] = "459999001001"                      # a county not in GB/T 2260
    rows[3]["SG"] = Decimal("300.0")                      # P05 ×1
    rows[4]["BM"] = "XX9"                                 # S04 ×1
    rows[5]["CSRQ"] = datetime(1850, 1, 1).date()         # P04 ×1 (and K02: ID says 1980-01-01)
    rows[6]["YWSJSCSJ"] = datetime(1970, 1, 1)            # P03 ×1 (before 出生日期 1981), T01 too
    rows[7]["YWSJSCSJ"] = NOW + timedelta(days=2)         # P02 ×1 (future); negative lag is on time
    rows[9]["YLJGDM"] = "450000000000"                    # S10 ×1 (fatal)
    rows[9].update(audit(9, org="450000000000", lag_hours=48))
    rows[9]["YWSJSCSJ"] = rows[9]["SJCJSJ"] - timedelta(hours=48)     # T01 ×1 (48 h > 24 h)
    rows[0]["XM"] = None
    rows[2]["XM"] = "欧阳娜娜"                             # 4 characters = varchar(4): NOT a length fault
    rows[3]["XM"] = "司马相如君"                           # 5 characters: S06 XM ×1
    return rows


def visit_rows() -> list[dict]:
    t0 = NOW - timedelta(days=1)
    rows = []
    for i in range(6):
        rows.append({**audit(i), "JZLSH": f"V{i}", "HZWYBSH": f"P{i:03d}", "JZKSSJ": t0,
                     "JZJSSJ": t0 + timedelta(hours=1), "ZFY": Decimal("30.00")})
    rows[1]["HZWYBSH"] = "P999"                            # R01 ×1
    rows[2]["HZWYBSH"] = "-"                               # filler: not a reference fault
    rows[3]["JZJSSJ"] = t0 - timedelta(hours=1)            # P01 ×1
    rows[4]["ZFY"] = Decimal("99.00")                      # K04 ×1
    rows[5]["JZKSSJ"] = None                               # C01 JZKSSJ ×1 (K03/K05 denominators skip it)
    rows[0]["JZKSSJ"] = t0 - timedelta(days=3)             # T02 ×1: ended 3 days (71 h) before its upload > 24 h
    rows[0]["JZJSSJ"] = t0 - timedelta(days=3, hours=-1)
    # K05 sex-specific diagnoses (ranges in _rules.yaml sex_diagnosis) and K03 age vs 就诊开始时间 − 出生日期
    birth = t0.date() - timedelta(days=int(40 * 365.25) + 100)    # 40.27 years old at the visit
    for r in rows:
        r.update({"XBDM": "1", "CSRQ": birth, "NLS": Decimal(40), "ZDDM": "J18.900"})
    rows[0]["ZDDM"] = "O80.000"                            # K05 ×1: male, 妊娠分娩 (O00–O9A)
    rows[1]["ZDDM"] = "n71.000"                            # K05 ×1: male, 女性盆腔 (N70–N98), lower case; S09 ×1
    rows[2]["XBDM"], rows[2]["ZDDM"] = "2", "N40.x00"      # K05 ×1: female, 前列腺 (N40–N42)
    rows[3]["XBDM"], rows[3]["ZDDM"] = "2", "O9A.100"      # female, O9A (upper end of the range): fine
    rows[4]["ZDDM"] = "N99.000"                            # male, just outside N70–N98: fine; S09 ×1
    rows[5]["ZDDM"] = "O80.000"                            # (no 就诊开始时间 — but K05 still counts: male → K05 ×1)
    rows[0]["NLS"] = Decimal(45)                         # K03 ×1
    rows[1]["CSRQ"] = None                                 # no 出生日期: not in K03's denominator
    rows[2]["NLS"] = Decimal(41)                         # within the 1-year tolerance: fine
    rows[3]["NLS"] = Decimal(38)                         # K03 ×1
    return rows


def fee_rows() -> list[dict]:
    out = []
    for i in range(6):
        out.append({**audit(i), "MXLSH": f"F{i}a", "JZLSH": f"V{i}", "JE": Decimal("10.00")})
        out.append({**audit(i), "MXLSH": f"F{i}b", "JZLSH": f"V{i}", "JE": Decimal("20.00")})
    out[-1]["JZLSH"] = "V77"                               # R01 fee ×1 (and V5's total now 10 ≠ 30 → K04 ×2)
    return out


def lab_rows() -> list[dict]:
    """P07 (lab_limits in _rules.yaml: 718-7 血红蛋白 g/L 30–250, 2345-7 葡萄糖 mmol/L 0.5–50)."""
    vals = [("718-7", "135", "g/L"), ("718-7", "13.5", "g/dL"),     # P07 ×1: wrong unit
            ("718-7", "300", "g/L"),                                  # P07 ×1: above 250
            ("718-7", "<5", "g/L"),                                   # not a plain number: not counted
            ("2345-7", "0.4", " MMOL/L "),                            # P07 ×1: below 0.5 (unit case/space ok)
            ("2345-7", "5.6", "mmol/L"), ("2345-7", None, "mmol/L"),  # no value: not counted
            ("1234-5", "9999", None),                                 # item without limits: not counted
            ("2823-3", "12.5", "mmol/L"), ("2160-0", "85", "μmol/L")]    # P07 ×2: 钾 above 10; 肌酐 in another unit
    rows = [{**audit(i), "JYMXLSH": f"L{i}", "LOINCDM": c, "JYDLJG": v, "JYJLDW": u, "JYJGLXDM": "1", "JYDXJG": None}
            for i, (c, v, u) in enumerate(vals)]
    # C02 (required_when): type 1 without 定量结果 (L6) ×1; type 2/3 without 定性结果 (None, '-') ×2 of 3;
    # a 定量结果 without its unit (L7) ×1 of the 9 rows with a value
    rows += [{**audit(i), "JYMXLSH": f"L{i}", "LOINCDM": None, "JYDLJG": None, "JYJLDW": None, "JYJGLXDM": t, "JYDXJG": q}
             for i, (t, q) in enumerate([("2", None), ("3", " - "), ("3", "见报告")], start=len(rows))]
    return rows


# rule id → (status, violated, denominator)
EXPECTED = {
    "C01.patient.XM": ("Failed", 2, 10),
    "C01.patient.HZWYBSH": ("Passed", 0, 10),
    "S06.patient.XM": ("Failed", 1, 9),
    "S01.patient.XBDM": ("Failed", 1, 10),
    "S02.patient.XBDM": ("Failed", 1, 9),
    "S03.patient.ZJHM": ("Failed", 1, 9),
    "K01.patient.XBDM": ("Failed", 1, 7),
    "K02.patient.CSRQ": ("Failed", 2, 8),
    "S04.patient.BM": ("Failed", 1, 10),
    "S07.patient.SJHM": ("Failed", 1, 10),
    "S08.patient.XZQH": ("Failed", 3, 10),
    "P05.patient.SG": ("Failed", 1, 10),
    "P04.patient.CSRQ": ("Failed", 1, 10),
    "P03.patient.YWSJSCSJ.CSRQ": ("Failed", 1, 10),
    "P02.patient.YWSJSCSJ": ("Failed", 1, 10),
    "S10.patient.YLJGDM": ("Failed", 1, 10),
    "T01.patient.YWSJSCSJ": ("Failed", 2, 10),
    "U01.patient.pk": ("Passed", 0, 10),
    "C04.patient": ("Passed", 0, 1),
    "R01.visit.HZWYBSH": ("Failed", 1, 5),
    "P01.visit.JZJSSJ.JZKSSJ": ("Failed", 1, 5),
    "C01.visit.JZKSSJ": ("Failed", 1, 6),
    "K04.visit.total": ("Failed", 2, 6),
    "K05.visit.ZDDM": ("Failed", 4, 6),
    "K03.visit.NLS": ("Failed", 2, 4),
    "S09.visit.ZDDM": ("Failed", 2, 6),
    "T02.visit.JZJSSJ": ("Failed", 1, 6),
    "P07.lab.JYDLJG": ("Failed", 5, 7),
    "C02.lab.JYDLJG": ("Failed", 1, 10),
    "C02.lab.JYDXJG": ("Failed", 2, 3),
    "C02.lab.JYJLDW": ("Failed", 1, 9),
    "X01.visit.long": ("Passed", 0, 6),
    "X02.visit.bad_label": ("Error", None, None),
    "R01.fee.JZLSH": ("Failed", 1, 12),
    "C04.empty_tab": ("Failed", 1, 1),
    "C01.empty_tab.LSH": ("Not Applicable", 0, 0),
    "S01.empty_tab.DM": ("Not Applicable", 0, 0),
    "U01.empty_tab.pk": ("Not Applicable", 0, 0),
}


def build_fixture(url: str, folder: Path, ops: str | None = None):
    """Create the fixture's front-end tables at `url` and insert the faulty rows; return (engine, specs, cfg)."""
    specs_dir, exp_dir = write_fixture(folder)
    # the physical tables are created from a wider copy of the specs (XM varchar(10)), as in a database
    # hipbridge did not create, so that a 5-character name can be stored and S06 can find it
    phys_dir = folder / "physical"
    shutil.copytree(specs_dir, phys_dir, dirs_exist_ok=True)
    p = phys_dir / "patient.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("type: varchar(4)", "type: varchar(10)"), encoding="utf-8")
    physical = load_specs(phys_dir).require_valid()
    specs = load_specs(specs_dir).require_valid()
    engine = engine_for(url, ops or ops_schema_name(specs.defaults, url))
    create_frontend(engine, physical)
    md = MetaData()
    with engine.begin() as conn:
        for tid, rows in (("patient", patient_rows()), ("visit", visit_rows()), ("fee", fee_rows()),
                          ("lab", lab_rows())):
            conn.execute(insert(target_table(physical.get(tid), physical.defaults, md)), rows)
    return engine, specs, load_config(exp_dir)


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
def fixture_db(request, tmp_path, hb_home, monkeypatch):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fe.db'}"
    elif request.param == "mariadb":
        url = request.getfixturevalue("mariadb_url")
    else:
        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("HIPBRIDGE_OPS_SCHEMA", "hb_quality_ops")
    return build_fixture(url, tmp_path)


def test_each_template_finds_exactly_the_injected_faults(fixture_db):
    from hipbridge.quality.check import check_database

    engine, specs, cfg = fixture_db
    out = check_database(engine, specs, cfg=cfg, domains=DOMAINS.get, now=NOW, run_id="fixture-run")
    got = {r.rule_id: (r.status, r.violated, r.denominator) for r in out.results}
    wrong = {k: (got.get(k), v) for k, v in EXPECTED.items() if got.get(k) != v}
    assert not wrong, wrong
    errors = {r.rule_id: r.error for r in out.results if r.status == "Error"}
    assert list(errors) == ["X02.visit.bad_label"] and "不存在的数据元" in errors["X02.visit.bad_label"]
    # samples are primary keys only, never names or ID numbers
    by_id = {r.rule_id: r for r in out.results}
    assert by_id["S03.patient.ZJHM"].samples == [{"HZWYBSH": "P004", "YLJGDM": ORG}]
    assert by_id["C01.patient.XM"].samples == [{"HZWYBSH": "P000", "YLJGDM": ORG}, {"HZWYBSH": "P001", "YLJGDM": ORG}]
    blob = json.dumps(out.as_json(), ensure_ascii=False)
    assert ID_M not in blob and "张三" not in blob
    # scores exist for every dimension that had applicable rules, with a grade
    assert out.scores["overall"] is not None and out.scores["grade"]
    assert set(out.scores["tables"]) == {"patient", "visit", "fee", "lab", "empty_tab"}
    assert out.scores["tables"]["empty_tab"]["not_applicable"] >= 3
    # stored per run in the ops schema
    from hipbridge.quality.store import load_results, past_runs

    ops = ops_schema_name(specs.defaults, engine)
    stored = {r["rule_id"]: r for r in load_results(engine, ops, "fixture-run")}
    assert stored["K04.visit.total"]["violated"] == 2 and stored["K04.visit.total"]["status"] == "Failed"
    assert [r["run_id"] for r in past_runs(engine, ops)] == ["fixture-run"]
    # timeliness distribution for the report
    assert out.scores["timeliness"]["patient"]["buckets"]


def test_duplicate_keys_counted_as_extra_rows(tmp_path, hb_home):
    from hipbridge.quality.check import check_database

    url = f"sqlite:///{tmp_path / 'dup.db'}"
    engine, specs, cfg = build_fixture(url, tmp_path)
    from sqlalchemy import text

    with engine.begin() as conn:   # SQLite target without the PK (a foreign database may lack one)
        conn.execute(text("CREATE TABLE FYMX2 AS SELECT * FROM FYMX"))
        conn.execute(text("DROP TABLE FYMX"))
        conn.execute(text("ALTER TABLE FYMX2 RENAME TO FYMX"))
        conn.execute(text("INSERT INTO FYMX SELECT * FROM FYMX WHERE MXLSH IN ('F0a', 'F1a')"))
        conn.execute(text("INSERT INTO FYMX SELECT * FROM FYMX WHERE MXLSH = 'F0a' LIMIT 1"))
    out = check_database(engine, specs, ["fee"], cfg=cfg, domains=DOMAINS.get, now=NOW, store=False)
    u = next(r for r in out.results if r.rule_id == "U01.fee.pk")
    assert (u.status, u.violated, u.denominator) == ("Failed", 3, 15)
    assert {tuple(s.values()) for s in u.samples} == {("F0a", ORG), ("F1a", ORG)}


def test_missing_column_is_error_and_missing_table_not_applicable(tmp_path, hb_home):
    from hipbridge.quality.check import check_database
    from sqlalchemy import text

    engine, specs, cfg = build_fixture(f"sqlite:///{tmp_path / 'm.db'}", tmp_path)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE HZJBXXB DROP COLUMN SJHM"))
        conn.execute(text("DROP TABLE KB"))
    out = check_database(engine, specs, ["patient", "empty_tab"], cfg=cfg, domains=DOMAINS.get, now=NOW,
                         store=False)
    by_id = {r.rule_id: r for r in out.results}
    assert by_id["S07.patient.SJHM"].status == "Error" and "SJHM" in by_id["S07.patient.SJHM"].error
    assert by_id["S01.patient.XBDM"].violated == 1          # the others still ran
    assert by_id["C04.empty_tab"].status == "Failed"
    assert by_id["S01.empty_tab.DM"].status == "Not Applicable"


def test_gx_engine_gives_the_same_counts(fixture_db):
    """The same rules through Great Expectations' UnexpectedRowsExpectation: identical counts."""
    from hipbridge.quality.check import check_database
    from hipbridge.quality.gx import check_database_gx

    engine, specs, cfg = fixture_db
    native = check_database(engine, specs, cfg=cfg, domains=DOMAINS.get, now=NOW, store=False)
    via_gx = check_database_gx(engine, specs, cfg=cfg, domains=DOMAINS.get, now=NOW, store=False)
    a = {r.rule_id: (r.status, r.violated, r.denominator) for r in native.results}
    b = {r.rule_id: (r.status, r.violated, r.denominator) for r in via_gx.results}
    assert a == b


def test_project_configuration_loads_every_template_and_r02_runs_as_r01():
    from hipbridge.io.dialects import frontend_dialect
    from hipbridge.quality.rules import build_rules
    from sqlalchemy.dialects import sqlite

    cfg = load_config(ROOT / "expectations")
    # quality.md §3 counts 39; R02 (visit → patient master index) has no template of its own: it is
    # the R01 rule of every visit spec's `references: patient_info.HZWYBSH`
    assert len(cfg.templates) == 38 and "R02" not in cfg.templates
    specs = load_specs(ROOT / "table_specs")
    for visit in ("op_visit", "ip_admission"):
        rules = build_rules(specs.get(visit), specs, cfg, frontend_dialect(sqlite.dialect()))
        assert f"R01.{visit}.HZWYBSH" in {r.rule_id for r in rules}
    assert set(cfg.dimensions) == {t.dimension for t in cfg.templates.values()}
    weights = sum(float(d["weight"]) for d in cfg.scoring["dimensions"].values())
    assert weights == 100


def test_bad_custom_rule_file_names_file_and_key(tmp_path):
    from hipbridge.quality.config import ConfigError

    _, exp_dir = write_fixture(tmp_path)
    (exp_dir / "broken.yaml").write_text("rules:\n  - id: Z1\n    table: visit\n    violaton: '1=1'\n",
                                         encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(exp_dir)
    assert "broken.yaml" in str(err.value) and "violaton" in str(err.value)


def test_why_length_rules_are_ours_gx_counts_bytes_on_mariadb(tmp_path, hb_home, mariadb_url):
    """GX's own length expectation flags 欧阳娜娜 (4 characters, 12 bytes) as longer than 4; S06 does not."""
    import great_expectations as gx
    from hipbridge.quality.check import check_database
    from hipbridge.quality.gx import _gx_context

    engine, specs, cfg = build_fixture(mariadb_url, tmp_path)
    _, ctx = _gx_context()
    ds = ctx.data_sources.add_sql(name="fe", connection_string=engine.url.render_as_string(hide_password=False))
    batch = ds.add_table_asset(name="p", table_name="HZJBXXB").add_batch_definition_whole_table("all").get_batch()
    res = batch.validate(gx.expectations.ExpectColumnValueLengthsToBeBetween(column="XM", max_value=4),
                         result_format="COMPLETE")
    assert "欧阳娜娜" in res.result["unexpected_list"]           # bytes, not characters
    ours = {r.rule_id: r for r in check_database(engine, specs, ["patient"], cfg=cfg, domains=DOMAINS.get,
                                                  now=NOW, store=False).results}
    assert ours["S06.patient.XM"].violated == 1                   # only 司马相如君 (5 characters)


def test_new_templates_on_a_subset_dictionary_and_on_empty_tables(tmp_path, hb_home):
    """S09 on a dictionary shipped as a subset is a warning with the note; K03/K05/S09 on no rows: Not Applicable."""
    from hipbridge.quality.check import check_database
    from sqlalchemy import text

    engine, specs, cfg = build_fixture(f"sqlite:///{tmp_path / 'n.db'}", tmp_path)

    def domains(d):
        return DOMAINS.get(d)

    domains.status = lambda d: "subset" if d == "ICD-10" else "complete"   # as mappings/standard/_domains.yaml
    out = check_database(engine, specs, ["visit"], cfg=cfg, domains=domains, now=NOW, store=False)
    s09 = next(r for r in out.results if r.rule_id == "S09.visit.ZDDM")
    assert (s09.status, s09.violated, s09.severity) == ("Failed", 2, "warning")
    assert s09.message.endswith(cfg.rules.incomplete_domain.note)
    assert {tuple(s.values()) for s in s09.samples} == {("V1", ORG), ("V4", ORG)}
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM MZJZJL"))
    out = check_database(engine, specs, ["visit"], cfg=cfg, domains=DOMAINS.get, now=NOW, store=False)
    got = {r.rule_id: r.status for r in out.results}
    assert got["K03.visit.NLS"] == got["K05.visit.ZDDM"] == got["S09.visit.ZDDM"] == "Not Applicable"


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb"])
def test_c05_discharged_inpatients_have_a_child_record(dialect, tmp_path, hb_home, request):
    """C05 (expectations/cross_table.yaml) on the project's own specs: 10 discharges, 2 without any child."""
    from hipbridge.quality.check import check_database

    url = f"sqlite:///{tmp_path / 'c05.db'}" if dialect == "sqlite" else request.getfixturevalue("mariadb_url")
    specs = load_specs(ROOT / "table_specs").require_valid()
    cfg = load_config(ROOT / "expectations")
    engine = engine_for(url, ops_schema_name(specs.defaults, url))
    md = MetaData()
    tabs = {t: target_table(specs.get(t), specs.defaults, md)
            for t in ("ip_discharge", "mr_homepage", "discharge_summary", "fee_settlement")}
    md.create_all(engine)

    def row(**kw):
        return {"YLJGDM": ORG, "XGBZ": "1", **kw}

    with engine.begin() as conn:
        conn.execute(insert(tabs["ip_discharge"]), [row(ZYJZLSH=f"Z{i}") for i in range(10)]
                     + [row(ZYJZLSH="Z10", XGBZ="3")])                       # revoked: not in the denominator
        conn.execute(insert(tabs["mr_homepage"]), [row(ZYJZLSH=f"Z{i}") for i in (0, 1, 2)]
                     + [row(ZYJZLSH="Z7", XGBZ="3")])                        # a revoked homepage does not count
        conn.execute(insert(tabs["discharge_summary"]), [row(CYXJLSH=f"S{i}", ZYJZLSH=f"Z{i}") for i in (3, 4)])
        conn.execute(insert(tabs["fee_settlement"]),
                     [row(JSLSH=f"J{i}", ZYJZLSH=f"Z{i}", JSLXDM="3") for i in (5, 6)]
                     + [row(JSLSH="J8", ZYJZLSH="Z8", JSLXDM="4"),          # 中途结算 only: no coverage
                        row(JSLSH="J9", ZYJZLSH="Z9", JSLXDM="3")])
    out = check_database(engine, specs, ["ip_discharge"], cfg=cfg, domains=lambda d: None, now=NOW, store=False)
    c05 = next(r for r in out.results if r.rule_id == "C05.ip_discharge.children")
    assert (c05.status, c05.violated, c05.denominator, c05.severity) == ("Failed", 2, 10, "warning")
    assert {s["ZYJZLSH"] for s in c05.samples} == {"Z7", "Z8"}
    with engine.begin() as conn:
        conn.execute(tabs["ip_discharge"].delete())
    out = check_database(engine, specs, ["ip_discharge"], cfg=cfg, domains=lambda d: None, now=NOW, store=False)
    assert next(r for r in out.results if r.rule_id == "C05.ip_discharge.children").status == "Not Applicable"


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb", "postgresql"])
def test_t03_counts_days_without_uploads(dialect, tmp_path, hb_home, request, monkeypatch):
    """T03: fee uploaded on 5 of the 6 whole days since its first upload → 1 gap day; a sparse table is N/A."""
    from hipbridge.quality.check import check_database
    from sqlalchemy import text

    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 't03.db'}"
    elif dialect == "mariadb":
        url = request.getfixturevalue("mariadb_url")
    else:
        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("HIPBRIDGE_OPS_SCHEMA", "hb_quality_ops")
    engine, specs, cfg = build_fixture(url, tmp_path)
    q = engine.dialect.identifier_preparer.quote
    today = datetime.combine(NOW.date(), datetime.min.time())
    ago = [6, 6, 5, 4, 2, 1, 1, 1, 0, 0, 4, 5]               # F0a … F5b: nothing 3 days ago; today is not counted
    with engine.begin() as conn:
        for i, key in enumerate(f"F{n}{s}" for n in range(6) for s in "ab"):
            conn.execute(text(f"UPDATE {q('FYMX')} SET {q('SJCJSJ')} = :t WHERE {q('MXLSH')} = :k"),
                         {"t": today - timedelta(days=ago[i]) + timedelta(hours=9), "k": key})
        for i in range(6):                                     # visits: uploads only 10 and 1 days ago
            conn.execute(text(f"UPDATE {q('MZJZJL')} SET {q('SJCJSJ')} = :t WHERE {q('JZLSH')} = :k"),
                         {"t": today - timedelta(days=10 if i < 3 else 1, hours=-8), "k": f"V{i}"})
    out = check_database(engine, specs, ["fee", "visit", "empty_tab"], cfg=cfg, domains=DOMAINS.get, now=NOW,
                         store=False)
    by_id = {r.rule_id: r for r in out.results}
    t03 = by_id["T03.fee.SJCJSJ"]
    assert (t03.status, t03.violated, t03.denominator) == ("Failed", 1, 6)
    assert t03.samples == [{"日期": (NOW.date() - timedelta(days=3)).isoformat()}]
    assert "30天" in t03.message
    visit = by_id["T03.visit.SJCJSJ"]                          # 2 of 10 days (< min_active_share 50 %)
    assert visit.status == "Not Applicable" and "20%" in visit.error
    assert by_id["T03.empty_tab.SJCJSJ"].status == "Not Applicable"


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb"])
def test_c03_registrations_without_an_uploaded_visit(dialect, tmp_path, hb_home, request):
    """C03 (expectations/cross_table.yaml): 8 past, valid 挂号; 2 without a (not revoked) visit (25 % > 5 %)."""
    from hipbridge.quality.check import check_database

    url = f"sqlite:///{tmp_path / 'c03.db'}" if dialect == "sqlite" else request.getfixturevalue("mariadb_url")
    specs = load_specs(ROOT / "table_specs").require_valid()
    cfg = load_config(ROOT / "expectations")
    engine = engine_for(url, ops_schema_name(specs.defaults, url))
    md = MetaData()
    reg, visit = (target_table(specs.get(t), specs.defaults, md) for t in ("op_registration", "op_visit"))
    md.create_all(engine)
    past, today = NOW.date() - timedelta(days=2), NOW.date()

    def row(i, **kw):
        return {"YLJGDM": ORG, "XGBZ": "1", "GHLSH": f"G{i}", "MZJZLSH": f"M{i}", "MZRQ": past, "THBZ": "0", **kw}

    regs = [row(i) for i in range(8)]
    regs += [row(8, THBZ="1"), row(9, XGBZ="3"), row(10, MZRQ=today)]   # 退号, revoked, today: not counted
    with engine.begin() as conn:
        conn.execute(insert(reg), regs)
        conn.execute(insert(visit), [{"YLJGDM": ORG, "XGBZ": "1", "MZJZLSH": f"M{i}"} for i in range(6)]
                     + [{"YLJGDM": ORG, "XGBZ": "3", "MZJZLSH": "M6"}])  # revoked visit: M6 uncovered
    out = check_database(engine, specs, ["op_registration"], cfg=cfg, domains=lambda d: None, now=NOW,
                         store=False)
    c03 = next(r for r in out.results if r.rule_id == "C03.op_registration.visits")
    assert (c03.status, c03.violated, c03.denominator, c03.severity) == ("Failed", 2, 8, "error")
    assert {s["GHLSH"] for s in c03.samples} == {"G6", "G7"}


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb"])
def test_r04_lab_report_visit_of_another_patient(dialect, tmp_path, hb_home, request):
    """R04 (expectations/cross_table.yaml): 6 reports; 2 name a HIS visit that belongs to another patient."""
    from hipbridge.quality.check import check_database

    url = f"sqlite:///{tmp_path / 'r04.db'}" if dialect == "sqlite" else request.getfixturevalue("mariadb_url")
    specs = load_specs(ROOT / "table_specs").require_valid()
    cfg = load_config(ROOT / "expectations")
    engine = engine_for(url, ops_schema_name(specs.defaults, url))
    md = MetaData()
    lab, opv, ipa = (target_table(specs.get(t), specs.defaults, md) for t in ("lab_report", "op_visit", "ip_admission"))
    md.create_all(engine)
    a = {"YLJGDM": ORG, "XGBZ": "1"}
    reports = [("1", "M1", "-", "P1"),        # matches the HIS visit
               ("2", "M2", "-", "P9"),        # R04 ×1: M2 is P2's visit
               ("3", "-", "Z1", "P1"),        # matches
               ("3", "-", "Z2", "P1"),        # R04 ×1: Z2 is P2's stay
               ("1", "M404", "-", "P1"),      # visit not uploaded: R01's finding, not R04's
               ("1", "M1", "-", None)]        # no patient id: not counted
    with engine.begin() as conn:
        conn.execute(insert(opv), [{**a, "MZJZLSH": "M1", "HZWYBSH": "P1"}, {**a, "MZJZLSH": "M2", "HZWYBSH": "P2"}])
        conn.execute(insert(ipa), [{**a, "ZYJZLSH": "Z1", "HZWYBSH": "P1"}, {**a, "ZYJZLSH": "Z2", "HZWYBSH": "P2"}])
        conn.execute(insert(lab), [{**a, "JYJLLSH": f"R{i}", "JZSJLXDM": t, "MZJZLSH": m, "ZYJZLSH": z, "HZWYBSH": p}
                                   for i, (t, m, z, p) in enumerate(reports)])
    out = check_database(engine, specs, ["lab_report"], cfg=cfg, domains=lambda d: None, now=NOW, store=False)
    r04 = next(r for r in out.results if r.rule_id == "R04.lab_report.patient")
    assert (r04.status, r04.violated, r04.denominator, r04.severity) == ("Failed", 2, 5, "warning")
    assert {s["JYJLLSH"] for s in r04.samples} == {"R1", "R3"}


def test_typo_in_rules_yaml_names_file_line_and_key(tmp_path):
    """A misspelled key of `_rules.yaml` is an error like a spec typo (`file:line: key: …`), never ignored."""
    from hipbridge.quality.config import ConfigError

    exp_dir = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", exp_dir)
    rules = exp_dir / "_rules.yaml"
    text = rules.read_text(encoding="utf-8")
    assert "\nsex_diagnosis:\n" in text
    rules.write_text(text.replace("\nsex_diagnosis:\n", "\nsex_diagnosys:\n"), encoding="utf-8")
    line = text[: text.index("\nsex_diagnosis:\n") + 1].count("\n") + 1
    with pytest.raises(ConfigError) as err:
        load_config(exp_dir)
    assert f"{rules}:{line}: sex_diagnosys: unknown key" in str(err.value)
    # a typo inside a template, and a value of the wrong type, are reported the same way
    rules.write_text(text.replace("C04: {dimension: 完整性, severity: error, threshold: 0, gate: false,",
                                  "C04: {dimension: 完整性, severity: eror, threshold: 0, gate: false,")
                     .replace("sample_keys: 5 ", "sample_keys: five "), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(exp_dir)
    c04 = text[: text.index("C04: {")].count("\n") + 1
    sample = text[: text.index("sample_keys:")].count("\n") + 1
    assert f"{rules}:{c04}: templates.C04.severity:" in str(err.value) and "'eror'" in str(err.value)
    assert f"{rules}:{sample}: sample_keys:" in str(err.value)


def test_template_registry_and_rules_yaml_agree(tmp_path):
    """Each generated template has its policy in `_rules.yaml`; a policy without a generator must say custom."""
    from hipbridge.quality.config import ConfigError
    from hipbridge.quality.templates import GENERATED, column_labels

    cfg = load_config(ROOT / "expectations")
    assert GENERATED == {tid for tid, t in cfg.templates.items() if not t.custom}
    assert column_labels()["C01"] == "完整率" and "K01" not in column_labels()
    exp_dir = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", exp_dir)
    rules = exp_dir / "_rules.yaml"
    text = rules.read_text(encoding="utf-8")
    rules.write_text(text.replace("  C05: {dimension: 完整性, severity: warning, threshold: 5, custom: true,",
                                  "  C05: {dimension: 完整性, severity: warning, threshold: 5,"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"_rules\.yaml:\d+: templates\.C05: no generator"):
        load_config(exp_dir)

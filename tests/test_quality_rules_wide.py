"""The rules as wide as the reference, on the project's own specs: each finds exactly the injected faults.

Tables are created from `table_specs/` (real SQLite and MariaDB), filled with a few rows that carry known
faults, and checked with `check_database`; every assertion is (status, violated, denominator). The last
test runs every rule of the 27 tables through both engines on an empty front-end: they must agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hipbridge.io.engines import engine_for
from hipbridge.io.frontend import target_table
from hipbridge.quality.check import check_database
from hipbridge.quality.config import load_config
from hipbridge.settings import ops_schema_name
from hipbridge.spec import load_specs
from sqlalchemy import MetaData, insert

ROOT = Path(__file__).resolve().parents[1]
ORG = "451002000001"
NOW = datetime.now().replace(microsecond=0)
T0 = NOW - timedelta(days=2)
SPECS = load_specs(ROOT / "table_specs").require_valid()
CFG = load_config(ROOT / "expectations")


def _engine(dialect, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'wide.db'}" if dialect == "sqlite" else request.getfixturevalue("mariadb_url")
    return engine_for(url, ops_schema_name(SPECS.defaults, url))


def _load(engine, rows: dict[str, list[dict]]) -> None:
    md = MetaData()
    tables = {t: target_table(SPECS.get(t), SPECS.defaults, md) for t in rows}
    md.create_all(engine)
    with engine.begin() as conn:
        for t, batch in rows.items():
            cols = {c.name for c in tables[t].columns}
            full = [{c: r.get(c) for c in cols} | {"YLJGDM": ORG, "XGBZ": r.get("XGBZ", "1")} for r in batch]
            conn.execute(insert(tables[t]), full)


def _results(engine, tables: list[str]) -> dict:
    out = check_database(engine, SPECS, tables, cfg=CFG, domains=lambda d: None, now=NOW, store=False)
    return {r.rule_id: (r.status, r.violated, r.denominator) for r in out.results}


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb"])
def test_revocation_propagates_to_details_r03(dialect, tmp_path, hb_home, request):
    """R03 generated from references to a voidable header: 2 of 4 live results sit under a revoked report."""
    engine = _engine(dialect, tmp_path, request)
    _load(engine, {
        "lab_report": [{"JYJLLSH": "R1", "XGBZ": "3"}, {"JYJLLSH": "R2"}],
        "lab_result": [{"JYMXLSH": "a", "JYBGLSH": "R1"}, {"JYMXLSH": "b", "JYBGLSH": "R1"},      # R03 ×2
                       {"JYMXLSH": "c", "JYBGLSH": "R1", "XGBZ": "3"},                          # revoked too
                       {"JYMXLSH": "d", "JYBGLSH": "R2"}, {"JYMXLSH": "e", "JYBGLSH": "R2", "XGBZ": "2"}],
        "mr_homepage": [{"ZYJZLSH": "Z1", "XGBZ": "3"}],
        "mr_homepage_diagnosis": [{"ZYJZLSH": "Z1", "ZDXH": "1", "XGBZ": "3"}, {"ZYJZLSH": "Z1", "ZDXH": "2"}],
    })
    got = _results(engine, ["lab_result", "mr_homepage_diagnosis"])
    assert got["R03.lab_result.JYBGLSH"] == ("Failed", 2, 4)
    assert got["R03.mr_homepage_diagnosis.ZYJZLSH"] == ("Failed", 1, 1)


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb"])
def test_visit_pair_and_conditional_requirements(dialect, tmp_path, hb_home, request):
    """K07 (the '-' rule on all four pair tables) and C02 from `required_when`, counted per row."""
    engine = _engine(dialect, tmp_path, request)
    fee = [("1", "M1", "-"), ("3", "-", "Z1"),          # fine
           ("3", None, "Z2"),                          # K07: 住院 with an empty 门诊 instead of '-'
           ("1", "-", "-"),                            # K07 and C02 (门诊 filled only with the filler)
           ("3", "M3", "-")]                           # K07 and C02 (住院 without 住院就诊流水号)
    _load(engine, {
        "fee_detail": [{"SFMXLSH": f"F{i}", "JZSJLXDM": t, "MZJZLSH": m, "ZYJZLSH": z} for i, (t, m, z) in enumerate(fee)],
        "mr_homepage": [{"ZYJZLSH": "A", "LYFSDM": "5", "SWHZSJBZ": "1"}, {"ZYJZLSH": "B", "LYFSDM": "5"},
                        {"ZYJZLSH": "C", "LYFSDM": "2", "NJSYLJGMC": " - "}, {"ZYJZLSH": "D", "LYFSDM": "1"}],
    })
    got = _results(engine, ["fee_detail", "mr_homepage"])
    assert got["K07.fee_detail.visit_no"] == ("Failed", 3, 5)
    assert got["C02.fee_detail.MZJZLSH"] == ("Failed", 1, 2)
    assert got["C02.fee_detail.ZYJZLSH"] == ("Failed", 1, 3)
    assert got["C02.mr_homepage.SWHZSJBZ"] == ("Failed", 1, 2)        # 死亡 without 尸检标志
    assert got["C02.mr_homepage.NJSYLJGMC"] == ("Failed", 1, 1)       # 转院 with a placeholder


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb"])
def test_header_totals_same_facts_and_amounts(dialect, tmp_path, hb_home, request):
    """K04 (处方, 首页 fee buckets, 处方明细 line), K06 (首页 入院时间 / 出院科室), P06 (结算, 发药数量, 住院天数)."""
    engine = _engine(dialect, tmp_path, request)
    d = Decimal
    _load(engine, {
        "op_prescription": [{"CFBH": "P1", "CFJE": d("30.00")}, {"CFBH": "P2", "CFJE": d("99.00")},   # K04 ×1
                            {"CFBH": "P3", "CFJE": d("5.00"), "XGBZ": "3"}],                        # revoked
        "op_prescription_item": [
            {"CFMXLSH": "i1", "CFBH": "P1", "JE": d("10.00"), "DJ": d("5"), "FYSL": d("2")},
            {"CFMXLSH": "i2", "CFBH": "P1", "JE": d("20.00"), "DJ": d("10"), "FYSL": d("2")},
            {"CFMXLSH": "i3", "CFBH": "P2", "JE": d("9.00"), "DJ": d("4"), "FYSL": d("2")},      # line ×1
            {"CFMXLSH": "i4", "CFBH": "P2", "JE": d("0"), "DJ": d("4"), "FYSL": d("0")}],        # 数量 ×1
        "ip_admission": [{"ZYJZLSH": "Z1", "RYSJ": T0}, {"ZYJZLSH": "Z2", "RYSJ": T0}],
        "ip_discharge": [{"ZYJZLSH": "Z1", "CYKSDM": "0301"}, {"ZYJZLSH": "Z2", "CYKSDM": "0302"}],
        "mr_homepage": [
            {"ZYJZLSH": "Z1", "RYSJ": T0, "CYKSDM": "0301", "SJZYTS": d(3), "ZYZFY": d("100.00"),
             "XYFY": d("60.00"), "ZLLFY": d("40.00")},
            {"ZYJZLSH": "Z2", "RYSJ": T0 + timedelta(hours=1), "CYKSDM": "0303", "SJZYTS": d(400),   # K06 ×2, P06
             "ZYZFY": d("100.00"), "XYFY": d("60.00")}],                                          # K04 buckets
        "fee_settlement": [{"JSLSH": "S1", "ZFY": d("-5.00"), "TFBZ": "1"}, {"JSLSH": "S2", "ZFY": d("-5.00"),
                                                                                "TFBZ": "0"}],    # P06 ×1
    })
    got = _results(engine, ["op_prescription", "op_prescription_item", "mr_homepage", "fee_settlement"])
    assert got["K04.op_prescription.total"] == ("Failed", 1, 2)
    assert got["K04.op_prescription_item.line"] == ("Failed", 1, 4)
    assert got["P06.op_prescription_item.quantity"] == ("Failed", 1, 4)
    assert got["K04.mr_homepage.fee_buckets"] == ("Failed", 1, 2)
    assert got["K06.mr_homepage.admit_time"] == ("Failed", 1, 2)
    assert got["K06.mr_homepage.discharge_dept"] == ("Failed", 1, 2)
    assert got["P06.mr_homepage.long_stay"] == ("Failed", 1, 2)
    assert got["P06.fee_settlement.amount"] == ("Failed", 1, 2)


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb"])
def test_identity_linkage_and_ages(dialect, tmp_path, hb_home, request):
    """U02 (one 标识号 ⇔ one person), R04 (细菌 ↔ 报告), K03 (年龄(月) vs 年龄(岁)), P04 (年龄 range)."""
    engine = _engine(dialect, tmp_path, request)
    d = Decimal
    _load(engine, {
        "patient_info": [{"HZWYBSH": "P1", "ZJLXDM": "01", "ZJHM": "451002198001010011"},
                         {"HZWYBSH": "P2", "ZJLXDM": "01", "ZJHM": "451002199002020022"}],
        "ip_admission": [{"ZYJZLSH": "Z1", "HZWYBSH": "P1", "ZJLXDM": "01", "ZJHM": "451002198001010011"},
                         {"ZYJZLSH": "Z2", "HZWYBSH": "P2", "ZJLXDM": "01", "ZJHM": "451002198001010011"},  # U02
                         {"ZYJZLSH": "Z3", "HZWYBSH": "P2", "ZJLXDM": "03", "ZJHM": "E12345678"}],    # passport
        "lab_report": [{"JYJLLSH": "R1", "HZWYBSH": "P1"}],
        "lab_bacteria": [{"XJJGLSH": "B1", "JYBGLSH": "R1", "HZWYBSH": "P1"},
                         {"XJJGLSH": "B2", "JYBGLSH": "R1", "HZWYBSH": "P2"}],                       # R04 ×1
        "op_visit": [{"MZJZLSH": "V1", "NLS": d(40), "NLY": d(485)}, {"MZJZLSH": "V2", "NLS": d(40), "NLY": d(12)},
                     {"MZJZLSH": "V3", "NLS": d(160), "NLY": d(1920)}],                              # P04
    })
    got = _results(engine, ["ip_admission", "lab_bacteria", "op_visit"])
    assert got["U02.ip_admission.identity"] == ("Failed", 1, 2)
    assert got["R04.lab_bacteria.patient"] == ("Failed", 1, 2)
    assert got["K03.op_visit.NLY"] == ("Failed", 1, 3)
    assert got["P04.op_visit.NLS"] == ("Failed", 1, 3)


# The tables whose rules span every custom (cross-table) template and every generated one: GX runs two
# queries per rule, so the whole 27-table set (≈1,800 rules) would cost minutes; these cost seconds.
GX_TABLES = ["fee_settlement", "lab_result", "lab_bacteria", "mr_homepage", "op_registration", "ip_discharge"]


def test_gx_agrees_with_sql_on_every_rule_of_an_empty_front_end(tmp_path, hb_home):
    """Both engines on an empty front-end: the same status and counts for every rule (Not Applicable for an
    empty table, also for cross-table rules such as K04.fee_settlement.total, which GX used to report as Error)."""
    from hipbridge.io.frontend import create_frontend
    from hipbridge.quality.gx import check_database_gx

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = engine_for(url, ops_schema_name(SPECS.defaults, url))
    create_frontend(engine, SPECS)
    native = check_database(engine, SPECS, GX_TABLES, cfg=CFG, domains=lambda d: None, now=NOW, store=False)
    via_gx = check_database_gx(engine, SPECS, GX_TABLES, cfg=CFG, domains=lambda d: None, now=NOW, store=False)
    a = {r.rule_id: (r.status, r.violated, r.denominator) for r in native.results}
    b = {r.rule_id: (r.status, r.violated, r.denominator) for r in via_gx.results}
    assert a == b
    assert a["K04.fee_settlement.total"][0] == "Not Applicable"
    templates = {r.template for r in native.results}
    assert {"C02", "C03", "C05", "K04", "K06", "K07", "P06", "R01", "R03", "R04", "S08"} <= templates
    assert {s for s, _, _ in a.values()} <= {"Not Applicable", "Failed"}    # C04 fails: no data at all

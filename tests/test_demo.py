"""The demo hospital: deterministic, consistent across HIS/LIS/PACS, valid IDs, every local code used.

Real SQLite files in tmp_path; one small build per module keeps the whole file fast.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from hipbridge.demo import build
from hipbridge.demo.codes import LOCAL_CODE_SETS
from hipbridge.demo.people import check_digit, is_valid_id

END = date(2026, 11, 24)

# Where each local code set is stored in the vendor schemas: (database, SQL returning the codes).
CODE_LOCATIONS: dict[str, list[tuple[str, str]]] = {
    "his_sex": [("his", "SELECT SEX FROM PAT_MASTER_INDEX")],
    "his_education": [("his", "SELECT EDU_CODE FROM PAT_MASTER_INDEX")],
    "his_insur_type": [("his", "SELECT INSUR_TYPE FROM PAT_VISIT"), ("his", "SELECT INSUR_TYPE FROM FEE_SETTLE")],
    "his_tcm_disease": [("his", "SELECT TCM_DISEASE FROM OUTP_DIAGNOSIS")],
    "his_tcm_syndrome": [("his", "SELECT TCM_SYNDROME FROM OUTP_DIAGNOSIS")],
    "his_diag_system": [("his", "SELECT DIAG_SYSTEM FROM PAT_VISIT"), ("his", "SELECT DIAG_SYSTEM FROM OUTP_DIAGNOSIS"),
                        ("his", "SELECT DIAG_SYSTEM FROM INP_DIAGNOSIS"), ("his", "SELECT DIAG_SYSTEM FROM OUTP_MR")],
    "his_id_type": [("his", "SELECT ID_TYPE FROM PAT_MASTER_INDEX")],
    "his_nation": [("his", "SELECT NATION FROM PAT_MASTER_INDEX")],
    "his_marital": [("his", "SELECT MARRY FROM PAT_MASTER_INDEX")],
    "his_country": [("his", "SELECT COUNTRY FROM PAT_MASTER_INDEX")],
    "his_occupation": [("his", "SELECT OCCUPATION FROM PAT_MASTER_INDEX")],
    "his_occupation_homepage": [("his", "SELECT OCCUPATION FROM PAT_MASTER_INDEX")],
    "his_relation": [("his", "SELECT CONTACT_RELATION FROM PAT_MASTER_INDEX")],
    "his_division": [("his", "SELECT AREA_CODE FROM PAT_MASTER_INDEX")],
    "his_card_type": [("his", "SELECT CARD_TYPE FROM PAT_MASTER_INDEX")],
    "his_pay_method": [("his", "SELECT PAY_METHOD FROM PAT_MASTER_INDEX")],
    "his_dept": [("his", "SELECT DEPT_CODE FROM STAFF_DICT"), ("his", "SELECT DEPT_CODE FROM DEPT_DICT")],
    "his_title": [("his", "SELECT TITLE FROM STAFF_DICT")],
    "his_visit_type": [("his", "SELECT VISIT_TYPE FROM CLINIC_MASTER"), ("his", "SELECT VISIT_TYPE FROM FEE_DETAIL")],
    "his_reg_type": [("his", "SELECT REG_TYPE FROM CLINIC_MASTER")],
    "his_reg_channel": [("his", "SELECT REG_CHANNEL FROM CLINIC_MASTER")],
    "his_presc_type": [("his", "SELECT PRESC_TYPE FROM OUTP_PRESC")],
    "his_dosage_form": [("his", "SELECT FORM FROM OUTP_PRESC_DETAIL")],
    "his_route": [("his", "SELECT ROUTE FROM OUTP_PRESC_DETAIL"), ("his", "SELECT ROUTE FROM INP_ORDERS")],
    "his_frequency": [("his", "SELECT FREQ FROM OUTP_PRESC_DETAIL"), ("his", "SELECT FREQ FROM INP_ORDERS")],
    "his_diag": [("his", "SELECT DIAG_CODE FROM OUTP_DIAGNOSIS"), ("his", "SELECT DIAG_CODE FROM INP_DIAGNOSIS")],
    "his_diag_type": [("his", "SELECT DIAG_TYPE FROM OUTP_DIAGNOSIS"), ("his", "SELECT DIAG_TYPE FROM INP_DIAGNOSIS")],
    "his_admit_route": [("his", "SELECT ADMIT_ROUTE FROM PAT_VISIT")],
    "his_discharge_way": [("his", "SELECT DISCHARGE_WAY FROM PAT_VISIT")],
    "his_admit_condition": [("his", "SELECT ADMIT_CONDITION FROM INP_DIAGNOSIS")],
    "his_order_class": [("his", "SELECT ORDER_CLASS FROM INP_ORDERS")],
    "his_order_term": [("his", "SELECT ORDER_TERM FROM INP_ORDERS")],
    "his_abo": [("his", "SELECT ABO FROM MR_HOMEPAGE"), ("his", "SELECT ABO FROM OPER_RECORD")],
    "his_rh": [("his", "SELECT RH FROM MR_HOMEPAGE"), ("his", "SELECT RH FROM OPER_RECORD")],
    "his_oper": [("his", "SELECT OPER_CODE FROM OPER_RECORD")],
    "his_oper_level": [("his", "SELECT OPER_LEVEL FROM OPER_RECORD")],
    "his_anesthesia": [("his", "SELECT ANES_METHOD FROM OPER_RECORD")],
    "his_incision": [("his", "SELECT INCISION FROM OPER_RECORD")],
    "his_healing": [("his", "SELECT HEALING FROM OPER_RECORD")],
    "his_fee_class": [("his", "SELECT FEE_CLASS FROM FEE_DETAIL")],
    "his_settle_type": [("his", "SELECT SETTLE_TYPE FROM FEE_SETTLE")],
    "lis_panel": [("lis", "SELECT PANEL_CODE FROM LAB_TEST_MASTER")],
    "lis_item": [("lis", "SELECT ITEM_CODE FROM LAB_RESULT")],
    "lis_sex": [("lis", "SELECT SEX FROM LAB_TEST_MASTER")],
    "lis_specimen": [("lis", "SELECT SPECIMEN FROM LAB_TEST_MASTER")],
    "lis_bacteria": [("lis", "SELECT BACT_CODE FROM LAB_MICRO_RESULT")],
    "lis_antibiotic": [("lis", "SELECT ANTI_CODE FROM LAB_ANTI_RESULT")],
    "lis_sir": [("lis", "SELECT SIR FROM LAB_ANTI_RESULT")],
    "lis_abnormal": [("lis", "SELECT ABNORMAL_FLAG FROM LAB_RESULT")],
    "pacs_modality": [("pacs", "SELECT MODALITY FROM EXAM_REPORT")],
    "pacs_item": [("pacs", "SELECT EXAM_CODE FROM EXAM_REPORT")],
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    build(out, seed=7, days=3, scale=0.02, end_date=END)     # the CLI defaults
    return out


def _db(demo: Path) -> sqlite3.Connection:
    """HIS with LIS and PACS attached, so cross-system joins read like the checks they are."""
    conn = sqlite3.connect(demo / "his.db")
    conn.execute(f"ATTACH DATABASE '{demo / 'lis.db'}' AS lis")
    conn.execute(f"ATTACH DATABASE '{demo / 'pacs.db'}' AS pacs")
    return conn


def _checksum(path: Path) -> str:
    h = hashlib.sha256()
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for t in tables:
            h.update(t.encode())
            for row in conn.execute(f"SELECT * FROM {t} ORDER BY 1"):
                h.update(repr(row).encode())
    return h.hexdigest()


def test_same_seed_same_data(tmp_path, demo):
    again = build(tmp_path / "again", seed=7, days=3, scale=0.02, end_date=END)
    assert again["window"] == {"start": "2026-11-22", "end": "2026-11-24", "days": 3, "scale": 0.02, "seed": 7}
    for system in ("his", "lis", "pacs"):
        assert _checksum(tmp_path / "again" / f"{system}.db") == _checksum(demo / f"{system}.db"), system
    other = build(tmp_path / "other", seed=8, days=1, scale=0.02, end_date=END)
    assert _checksum(tmp_path / "other" / "his.db") != _checksum(demo / "his.db")
    assert other["his"]["CLINIC_MASTER"] > 0


def test_every_row_dated_inside_the_history_and_no_null_keys(demo):
    conn = _db(demo)
    assert conn.execute("SELECT MAX(UPDATE_TIME) FROM FEE_DETAIL").fetchone()[0] < "2026-11-25 00:00:00"
    assert conn.execute("SELECT MIN(REG_TIME) FROM CLINIC_MASTER").fetchone()[0] >= "2026-11-22 00:00:00"
    for table, key in (("PAT_MASTER_INDEX", "PAT_ID"), ("CLINIC_MASTER", "REG_NO"), ("lis.LAB_RESULT", "RESULT_ID"),
                       ("pacs.EXAM_IMAGE", "STORAGE_PATH"), ("FEE_DETAIL", "DETAIL_ID")):
        assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {key} IS NULL").fetchone()[0] == 0


def test_lab_and_exam_reports_belong_to_real_visits(demo):
    conn = _db(demo)
    for table in ("lis.LAB_TEST_MASTER", "pacs.EXAM_REPORT"):
        orphans = conn.execute(f"""
            SELECT COUNT(*) FROM {table} r
            WHERE (r.PATIENT_TYPE = 'I' AND r.VISIT_NO NOT IN (SELECT INP_NO FROM PAT_VISIT))
               OR (r.PATIENT_TYPE <> 'I' AND r.VISIT_NO NOT IN (SELECT VISIT_NO FROM OUTP_MR))
               OR r.PAT_ID NOT IN (SELECT PAT_ID FROM PAT_MASTER_INDEX)""").fetchone()[0]
        assert orphans == 0, table
    # inpatient requests come from orders of the same stay
    assert conn.execute("""SELECT COUNT(*) FROM lis.LAB_TEST_MASTER m JOIN INP_ORDERS o ON o.APPLY_NO = m.APPLY_NO
                           WHERE o.INP_NO <> m.VISIT_NO""").fetchone()[0] == 0
    assert conn.execute("""SELECT COUNT(*) FROM lis.LAB_RESULT r
                           WHERE r.TEST_NO NOT IN (SELECT TEST_NO FROM lis.LAB_TEST_MASTER)""").fetchone()[0] == 0
    assert conn.execute("""SELECT COUNT(*) FROM pacs.EXAM_IMAGE i
                           WHERE i.REPORT_ID NOT IN (SELECT REPORT_ID FROM pacs.EXAM_REPORT)""").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM lis.LAB_MICRO_RESULT").fetchone()[0] > 0
    assert conn.execute("SELECT COUNT(*) FROM lis.LAB_TEST_MASTER WHERE COLLECT_TIME > REPORT_TIME").fetchone()[0] == 0


def test_fees_add_up_to_settlements_and_prescriptions(demo):
    conn = _db(demo)
    mismatched = conn.execute("""
        SELECT COUNT(*) FROM FEE_SETTLE s
        JOIN (SELECT SETTLE_NO, ROUND(SUM(AMOUNT), 2) AS total FROM FEE_DETAIL GROUP BY SETTLE_NO) d
          ON d.SETTLE_NO = s.SETTLE_NO
        WHERE ABS(d.total - s.TOTAL) > 0.001""").fetchone()[0]
    assert mismatched == 0
    assert conn.execute("""SELECT COUNT(*) FROM FEE_SETTLE s WHERE NOT EXISTS
                           (SELECT 1 FROM FEE_DETAIL d WHERE d.SETTLE_NO = s.SETTLE_NO)""").fetchone()[0] == 0
    split = conn.execute("""SELECT COUNT(*) FROM FEE_SETTLE
                            WHERE ABS(FUND_PAY + ACCOUNT_PAY + CASH_PAY + OTHER_PAY - TOTAL) > 0.001""").fetchone()[0]
    assert split == 0
    presc = conn.execute("""
        SELECT COUNT(*) FROM OUTP_PRESC p
        JOIN (SELECT PRESC_NO, ROUND(SUM(AMOUNT), 2) AS total FROM OUTP_PRESC_DETAIL GROUP BY PRESC_NO) d
          ON d.PRESC_NO = p.PRESC_NO
        WHERE ABS(d.total - p.AMOUNT) > 0.001""").fetchone()[0]
    assert presc == 0
    assert conn.execute("SELECT COUNT(*) FROM OUTP_PRESC").fetchone()[0] > 0
    # refunds are red reversals: negative lines / settlements that name their originals
    reversals = conn.execute("""SELECT s.TOTAL, o.TOTAL, o.REFUND_FLAG FROM FEE_SETTLE s
                                JOIN FEE_SETTLE o ON o.SETTLE_NO = s.ORIG_SETTLE_NO
                                WHERE s.REFUND_FLAG = '1'""").fetchall()
    assert reversals and all(abs(r[0] + r[1]) < 0.001 and r[2] == "0" for r in reversals)
    assert conn.execute("""SELECT COUNT(*) FROM FEE_DETAIL WHERE (REFUND_FLAG = '1') <> (AMOUNT < 0)
                           OR (REFUND_FLAG = '1' AND ORIG_DETAIL_ID IS NULL)""").fetchone()[0] == 0


def test_homepage_agrees_with_the_stay(demo):
    conn = _db(demo)
    home_diag = set(conn.execute("SELECT INP_NO, CAST(DIAG_SEQ AS INTEGER), DIAG_CODE FROM MR_HOMEPAGE_DIAG"))
    stay_diag = set(conn.execute("""SELECT d.INP_NO, d.DIAG_SEQ, d.DIAG_CODE FROM INP_DIAGNOSIS d
                                    JOIN MR_HOMEPAGE h ON h.INP_NO = d.INP_NO WHERE d.DIAG_TYPE = 'CY'"""))
    assert home_diag and home_diag == stay_diag
    home_ops = set(conn.execute("SELECT INP_NO, CAST(OPER_SEQ AS INTEGER), OPER_CODE FROM MR_HOMEPAGE_OPER"))
    stay_ops = set(conn.execute("""SELECT o.INP_NO, CAST(o.OPER_SEQ AS INTEGER), o.OPER_CODE FROM OPER_RECORD o
                                   JOIN MR_HOMEPAGE h ON h.INP_NO = o.INP_NO"""))
    assert home_ops == stay_ops
    # main diagnosis, admission and discharge times equal the stay's
    assert conn.execute("""SELECT COUNT(*) FROM MR_HOMEPAGE h JOIN PAT_VISIT v ON v.INP_NO = h.INP_NO
                           WHERE h.MAIN_DIAG_CODE <> v.DISCHARGE_DIAG_CODE OR h.ADMIT_TIME <> v.ADMIT_TIME
                              OR h.DISCHARGE_TIME <> v.DISCHARGE_TIME""").fetchone()[0] == 0
    # the homepage total is the stay's charges
    assert conn.execute("""SELECT COUNT(*) FROM MR_HOMEPAGE h
                           JOIN (SELECT VISIT_NO, ROUND(SUM(AMOUNT), 2) t FROM FEE_DETAIL GROUP BY VISIT_NO) f
                             ON f.VISIT_NO = h.INP_NO WHERE ABS(f.t - h.TOTAL_FEE) > 0.001""").fetchone()[0] == 0


def test_id_numbers_are_valid_and_defects_are_few(demo):
    assert check_digit("11010519491231002") == "X"
    assert is_valid_id("11010519491231002X") and not is_valid_id("110105194912310021")
    conn = _db(demo)
    rows = conn.execute("SELECT ID_NO, SEX, BIRTHDAY, MOBILE FROM PAT_MASTER_INDEX WHERE ID_TYPE IN ('1', '2')").fetchall()
    rows += conn.execute("SELECT ID_NO, SEX, BIRTHDAY, MOBILE FROM STAFF_DICT").fetchall()
    assert all(is_valid_id(r[0]) for r in rows)
    assert all(r[0][6:14] == r[2].replace("-", "") for r in rows)
    mismatch = [r for r in rows if r[1] != ("M" if int(r[0][16]) % 2 else "F")]
    assert 1 <= len(mismatch) <= 3            # planted defects for the quality checks (K01)
    missing_mobile = sum(1 for r in rows if not r[3])
    assert 2 <= missing_mobile <= max(3, len(rows) // 100)


def test_every_local_code_occurs(demo):
    assert set(CODE_LOCATIONS) == set(LOCAL_CODE_SETS)
    conns = {s: sqlite3.connect(demo / f"{s}.db") for s in ("his", "lis", "pacs")}
    for set_id, places in CODE_LOCATIONS.items():
        seen: set[str] = set()
        for system, sql in places:
            seen |= {str(r[0]) for r in conns[system].execute(sql) if r[0] is not None}
        missing = set(LOCAL_CODE_SETS[set_id]["codes"]) - seen
        assert not missing, f"{set_id}: codes never generated: {sorted(missing)}"
        extra = seen - set(LOCAL_CODE_SETS[set_id]["codes"])
        assert not extra, f"{set_id}: codes not in the dictionary: {sorted(extra)[:5]}"

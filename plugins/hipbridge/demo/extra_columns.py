"""The collection standard's columns that the core generators do not model, added to the vendor tables.

Why a separate module with its own random streams: the core generators (his_*, lis, pacs) draw from
one seeded stream in a fixed order; drawing more numbers there would change every later value of the
demo. Each table here gets its own stream (seed + table name), and every value is derived from the
row it extends (the stay, the operation, the patient), so the added columns agree with the rest of
the row: a 急诊 operation is not 择期, a 0 类切口 is 无菌, a prophylactic antibiotic lasts 1–2 days.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from .codes import LOCAL_CODE_SETS, name_of
from .db import ts_text
from .people import id_numbers

# 手术部位 (body region) by the first two digits of the ICD-9-CM-3 code: 头颈 01, 胸 02, 腹 03, 四肢 04, 盆腔 05
_OPER_SITE = {"36": "02", "88": "02", "47": "03", "51": "03", "53": "03", "81": "04", "79": "04", "74": "05",
              "68": "05", "65": "05"}
# 手术体位: 1 仰卧位, 2 侧卧位, 3 截石位, 4 俯卧位
_POSITION = {"02": "1", "03": "1", "04": "2", "05": "3"}


def _rng(seed: int, table: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(table.encode())])


def _secs(text: pd.Series) -> np.ndarray:
    return pd.to_datetime(text).to_numpy().astype("datetime64[s]").astype("float64")


def _ts(sec: np.ndarray) -> np.ndarray:
    return ts_text(sec)


def extend(seed: int, his: dict, lis: dict, pacs: dict) -> None:
    """Add the standard's further columns to the vendor frames in place ({name: (frame, pk, change)})."""
    pmi = his["PAT_MASTER_INDEX"][0].set_index("PAT_ID")
    staff = his["STAFF_DICT"][0]
    visit = his["PAT_VISIT"][0].set_index("INP_NO")
    home = his["MR_HOMEPAGE"][0].set_index("INP_NO")
    his["OPER_RECORD"] = (_oper(_rng(seed, "OPER_RECORD"), his["OPER_RECORD"][0], pmi, staff, visit, home),
                          *his["OPER_RECORD"][1:])
    his["PAT_VISIT"] = (_pat_visit(_rng(seed, "PAT_VISIT"), his["PAT_VISIT"][0], pmi, staff), *his["PAT_VISIT"][1:])
    his["FEE_DETAIL"] = (_fee_detail(_rng(seed, "FEE_DETAIL"), his["FEE_DETAIL"][0], his["FEE_ITEM_DICT"][0],
                                     his["DRUG_DICT"][0]), *his["FEE_DETAIL"][1:])
    his["FEE_SETTLE"] = (_settle(his["FEE_SETTLE"][0], pmi), *his["FEE_SETTLE"][1:])
    his["OUTP_DIAGNOSIS"] = (_outp_diag(his["OUTP_DIAGNOSIS"][0]), *his["OUTP_DIAGNOSIS"][1:])
    his["INP_DIAGNOSIS"] = (_inp_diag(his["INP_DIAGNOSIS"][0], home), *his["INP_DIAGNOSIS"][1:])
    for name in ("PAT_VISIT", "OUTP_MR"):
        frame = his[name][0].copy()
        frame["DIAG_SYSTEM"] = "ICD10"          # the main diagnosis of a visit or stay is an ICD-10 code
        his[name] = (frame, *his[name][1:])
    his["MR_HOMEPAGE"] = (_homepage(_rng(seed, "MR_HOMEPAGE"), his["MR_HOMEPAGE"][0], pmi), *his["MR_HOMEPAGE"][1:])
    _lis(_rng(seed, "LAB_RESULT"), lis, pmi, staff)
    _pacs(_rng(seed, "EXAM_REPORT"), pacs)
    dept = his["DEPT_DICT"][0].copy()
    dept["MEMO"] = np.where(dept.WARD_FLAG == "1", dept.DEPT_NAME + "，住院病区",
                            np.where(dept.REG_FLAG == "1", dept.DEPT_NAME + "，门诊可挂号", dept.DEPT_NAME))
    his["DEPT_DICT"] = (dept, *his["DEPT_DICT"][1:])
    _dictionaries(_rng(seed, "STAFF_DICT"), his)
    _patients(_rng(seed, "PAT_MASTER_INDEX"), his)
    _outpatient(_rng(seed, "OUTP_PRESC"), his, pmi)
    _inpatient_documents(his, pmi)
    _voids(_rng(seed, "CANCEL"), his)
    mr = his["OUTP_MR"][0]
    mr["AGE_MONTH"] = (mr.AGE.to_numpy() * 12).astype(int).astype(float)
    # 就诊次数: the patient's visits so far (an earlier history the HIS knows, plus this window's)
    order = mr.sort_values("VISIT_START")
    history = _rng(seed, "OUTP_MR").integers(0, 6, len(mr))
    mr["VISIT_TIMES"] = (order.groupby("PAT_ID").cumcount().reindex(mr.index).to_numpy() + 1 + history).astype(float)


def _oper(rng: np.random.Generator, ops: pd.DataFrame, pmi: pd.DataFrame, staff: pd.DataFrame,
          visit: pd.DataFrame, home: pd.DataFrame) -> pd.DataFrame:
    if "INP_NO" not in ops.columns or ops.empty:
        return ops
    ops = ops.copy()
    n = len(ops)
    pat = pmi.reindex(ops.PAT_ID)
    ops["CARD_TYPE"], ops["CARD_NO"] = pat.CARD_TYPE.to_numpy(), pat.CARD_NO.to_numpy()
    ops["AGE_MONTH"] = (ops.AGE.to_numpy() * 12).astype(int).astype(str)
    ops["MR_NO"] = ops.INP_CODE
    ops["OUTP_NO"] = ops.PAT_ID
    ops["DEPT_NAME"] = [name_of("his_dept", d) for d in ops.DEPT_CODE]
    ops["WARD_NAME"] = [name_of("his_dept", w) for w in ops.WARD_CODE]
    stay = visit.reindex(ops.INP_NO)
    ops["ROOM_NO"] = stay.ROOM_NO.to_numpy()
    site = np.array([_OPER_SITE.get(str(c)[:2], "09") for c in ops.OPER_CODE], dtype=object)
    ops["OPER_SITE"] = site
    ops["OPER_POSITION"] = [_POSITION.get(s, "1") for s in site]
    start, end = _secs(ops.START_TIME), _secs(ops.END_TIME)
    ops["PACU_IN"] = _ts(end + 5 * 60)
    ops["PACU_OUT"] = _ts(end + (35 + rng.integers(0, 60, n)) * 60)
    major = ops.OPER_LEVEL.isin(["三级", "四级"]).to_numpy()
    second = np.full(n, None, dtype=object)
    circ = np.full(n, None, dtype=object)
    for dept in ops.DEPT_CODE.unique():
        idx = np.flatnonzero(ops.DEPT_CODE.to_numpy() == dept)
        docs = staff[(staff.DEPT_CODE == dept) & staff.TITLE.isin(["YS", "ZZ"])].JOB_NO.to_numpy()
        nurses = staff[(staff.DEPT_CODE == "B" + dept) & staff.TITLE.isin(["HS", "ZGHS"])].JOB_NO.to_numpy()
        if len(docs):
            second[idx] = docs[rng.integers(0, len(docs), len(idx))]
        if len(nurses):
            circ[idx] = nurses[rng.integers(0, len(nurses), len(idx))]
    ops["ASSIST2_NO"] = np.where(major, second, None)
    ops["CIRC_NURSE_NO"] = circ
    ops["TRANSFUSION_ML"] = np.where(major & (rng.random(n) < 0.15), rng.choice([200.0, 400.0], n), 0.0)
    complication = rng.random(n) < 0.02
    ops["COMPLICATION"] = np.where(complication, "T81.000", None)          # 操作中的出血和血肿
    # 病理: a tumour resection has a frozen section (术中) and a paraffin diagnosis (术后); appendix and
    # gallbladder specimens are read after the operation only
    cancer = stay.ADMIT_DIAG_CODE.astype(str).str.startswith("C").to_numpy()
    ops["INTRA_PATH"] = np.where(cancer, "M8140/3", None)                  # 腺癌 (ICD-O-3 形态学)
    excised = np.isin(np.array([str(c)[:2] for c in ops.OPER_CODE]), ["47", "51"])
    ops["POST_PATH"] = np.where(cancer, "M8140/3", np.where(excised, "M40000/0", None))   # 炎症
    clean = ops.INCISION.isin(["0", "1"]).to_numpy()
    prophylaxis = ops.INCISION.isin(["1", "2"]).to_numpy() & (rng.random(n) < 0.8)
    ops["PROPHYLAXIS_FLAG"] = np.where(prophylaxis, "1", "0")
    ops["PROPHYLAXIS_DAYS"] = np.where(prophylaxis, rng.integers(1, 3, n), 0).astype(float)
    ops["SSI_FLAG"] = np.where(ops.HEALING.to_numpy() == "丙", "1", "0")
    elective = ops.OPER_TYPE.to_numpy() == "1"
    los_h = (_secs(stay.DISCHARGE_TIME.fillna(stay.ADMIT_TIME)) - _secs(stay.ADMIT_TIME)) / 3600
    ops["DAY_SURGERY"] = np.where(elective & (los_h > 0) & (los_h <= 24), "1", "0")
    ops["ELECTIVE_FLAG"] = np.where(elective, "1", "0")
    ops["ELECTIVE_CANCEL"] = "0"
    ops["UNPLANNED_REOPER"] = np.where(complication & (rng.random(n) < 0.5), "1", "0")
    ops["IATROGENIC_FLAG"] = "0"
    ops["OWN_HOSPITAL"] = "1"
    ops["MAIN_OPER"] = np.where(ops.OPER_SEQ.to_numpy() == 1, "1", "0")
    ops["DEATH_FLAG"] = np.where(stay.DISCHARGE_WAY.to_numpy() == "05", "1", "0")
    ops["ASEPTIC_FLAG"] = np.where(clean, "1", "0")
    ops["OVERTIME_FLAG"] = np.where((end - start) > 4 * 3600, "1", "0")
    ops["ARCHIVE_TIME"] = home.ARCHIVE_TIME.reindex(ops.INP_NO).to_numpy()    # the stay's 病案归档 (once discharged)
    return ops


# 中西医结合: the TCM diagnosis (病名 + 证候) the doctor adds to these ICD-10 diagnoses in 中医科 and beside it
TCM_FOR = {"M54.500": ("ZYB01", ["ZYZ01", "ZYZ03"]), "G47.000": ("ZYB02", ["ZYZ02"])}
TCM_DEPTS = ("5001", "0303", "0403")


def _outp_diag(d: pd.DataFrame) -> pd.DataFrame:
    """Every diagnosis says its class and coding system; TCM visits add a 中医疾病 row (病名 + 证候)."""
    d = d.copy()
    d["DIAG_CLASS"], d["DIAG_SYSTEM"] = "1", "ICD10"
    d["TCM_DISEASE"], d["TCM_SYNDROME"] = None, None
    d["DIAG_STATUS"] = np.where(d.MAIN_FLAG.to_numpy() == "1", "2", "1")     # 2 临床诊断, 1 疑似
    d["BASIS"], d["PATHOLOGY_NO"], d["NOTE"] = "5", None, None                # 5 临床
    tcm = d[(d.MAIN_FLAG == "1") & d.DIAG_CODE.isin(list(TCM_FOR)) & d.DEPT_CODE.isin(list(TCM_DEPTS))].copy()
    if len(tcm):
        seen: dict[str, int] = {}
        syndromes = []
        for code in tcm.DIAG_CODE:
            options = TCM_FOR[code][1]
            k = seen.get(code, 0)
            seen[code] = k + 1
            syndromes.append(options[k % len(options)])
        tcm["DIAG_ID"] = tcm.DIAG_ID + "Z"
        tcm["DIAG_SEQ"] = tcm.DIAG_SEQ + 10
        tcm["MAIN_FLAG"] = np.where(tcm.DEPT_CODE.to_numpy() == "5001", "1", "0")
        tcm["DIAG_CLASS"], tcm["DIAG_SYSTEM"] = "2", "GB95"
        tcm["TCM_DISEASE"] = [TCM_FOR[c][0] for c in tcm.DIAG_CODE]
        tcm["TCM_SYNDROME"] = syndromes
        tcm["DIAG_NAME"] = [name_of("his_tcm_disease", c) for c in tcm.TCM_DISEASE]
        tcm["NOTE"] = "中西医结合诊断"
        d = pd.concat([d, tcm], ignore_index=True).sort_values(["VISIT_NO", "DIAG_SEQ"], ignore_index=True)
    return d


def _inp_diag(d: pd.DataFrame, home: pd.DataFrame) -> pd.DataFrame:
    d = d.copy()
    d["DIAG_CLASS"], d["DIAG_SYSTEM"] = "1", "ICD10"
    discharge = d.DIAG_TYPE.to_numpy() == "CY"
    d["OUTCOME_CODE"] = np.where(discharge, "2", None)                        # 2 好转 (病案首页 出院情况)
    tumour = d.DIAG_CODE.astype(str).str.startswith("C").to_numpy()
    d["DIAG_STATUS"] = np.where(tumour & discharge, "3", "2")                 # 3 病理确诊, 2 临床诊断
    d["BASIS"] = np.where(tumour, "1", "5")                                   # 1 病理, 5 临床
    d["PATHOLOGY_NO"] = np.where(tumour & discharge, "BL" + d.INP_NO.str[2:], None)
    d["NOTE"] = None
    d["ADMIT_ORDER"] = np.where(d.DIAG_TYPE.to_numpy() == "RY", d.DIAG_SEQ.astype(str), None)
    d["ARCHIVE_TIME"] = np.where(discharge, home.ARCHIVE_TIME.reindex(d.INP_NO).to_numpy(), None)
    return d


def _homepage(rng: np.random.Generator, h: pd.DataFrame, pmi: pd.DataFrame) -> pd.DataFrame:
    """病案首页 items the core stay does not carry: newborn weights, external causes, pathology, coma time."""
    h = h.copy()
    n = len(h)
    pat = pmi.reindex(h.PAT_ID)
    h["HEALTH_CARD_NO"] = np.where(pat.CARD_TYPE.isin(["1", "2", "3"]).to_numpy(), None, pat.CARD_NO.to_numpy())
    h["AGE_MONTH"] = (h.AGE.to_numpy() * 12).astype(int).astype(float)
    # 新生儿出生体重 is filled on a delivering mother's 首页 and on a newborn's; 入院体重 on a newborn's only
    infant = h.AGE.to_numpy() < 1
    delivery = h.MAIN_DIAG_CODE.astype(str).str[:3].isin(["O80", "O82"]).to_numpy()
    weight = rng.integers(2500, 4000, n).astype(float)
    h["NEWBORN_BIRTH_WEIGHT"] = np.where(infant | delivery, weight, np.nan)
    h["NEWBORN_ADMIT_WEIGHT"] = np.where(infant, weight + rng.integers(-150, 300, n), np.nan)
    h["TRANSFER_DEPTS"] = None                       # the demo's stays stay in one department
    main = h.MAIN_DIAG_CODE.astype(str)
    injury = main.str[:1].isin(["S", "T"]).to_numpy()
    h["INJURY_CAUSE"] = np.where(injury, "W19.x00", None)                  # 跌倒
    tumour = main.str.startswith("C").to_numpy()
    h["PATH_DIAG_CODE"] = np.where(tumour, "M8140/3", None)                # 腺癌 (ICD-O-3 形态学)
    h["PATH_NO"] = np.where(tumour, "BL" + h.INP_NO.str[2:], None)
    head = main.str.startswith("S06").to_numpy()
    h["COMA_BEFORE"] = np.where(head, "0天2小时30分钟", None)
    h["COMA_AFTER"] = np.where(head, "0天0小时0分钟", None)
    # 首页 fee buckets this hospital's charge classes do not reach: nothing was charged to them
    h["FEE_REHAB"], h["FEE_TCM"], h["FEE_BLOOD"] = 0.0, 0.0, 0.0
    # 现住址 as the 12-digit 统计用区划代码 (county + 乡镇/街道 + 村/社区) the HIS's address picker stores
    county = np.array([LOCAL_CODE_SETS["his_division"]["standard"].get(a, "451002") for a in h.AREA_CODE])
    town = np.char.zfill(rng.integers(1, 10, n).astype(str), 3)
    village = np.char.zfill(rng.integers(1, 31, n).astype(str), 3)
    h["ADDR_DIVISION"] = np.char.add(np.char.add(county.astype(str), town), village)
    return h


LAB_ORG = "百色市人民医院检验科"
# 设备类别 of the analysers (本院设备字典)
DEVICE_TYPE = {"XE-5000": "XY", "AU5800": "SH", "UF-1000i": "NY", "BC-5390": "XY", "CS-5100": "NX", "i2000SR": "MY",
               "HLC-723G8": "SH", "BacT/ALERT": "WS", "VITEK2": "WS"}
BODY_PART_CODE = {"头颅": "01", "胸部": "02", "上腹部": "03", "腰椎": "04", "膝关节": "05", "腹部": "06", "甲状腺": "07",
                  "子宫及附件": "08", "心脏": "09", "胃": "10"}
EXAM_METHOD = {"CT01": "平扫", "CT02": "平扫", "CT03": "增强扫描", "MR01": "平扫", "MR02": "平扫", "DR01": "正位摄影",
               "DR02": "正侧位摄影", "US01": "二维+彩色多普勒", "US02": "二维+彩色多普勒", "US03": "经腹二维",
               "US04": "二维+M型+彩色多普勒", "ES01": "电子内镜", "ECG01": "十二导联"}


def _lis(rng: np.random.Generator, lis: dict, pmi: pd.DataFrame, staff: pd.DataFrame) -> None:
    """The card the HIS order carried, the lab's name, analyser categories and the staff names on results."""
    names = staff.set_index("JOB_NO").NAME
    m = lis["LAB_TEST_MASTER"][0].copy()
    pat = pmi.reindex(m.PAT_ID)
    m["CARD_TYPE"], m["CARD_NO"] = pat.CARD_TYPE.to_numpy(), pat.CARD_NO.to_numpy()
    m["LAB_ORG_NAME"] = LAB_ORG
    lis["LAB_TEST_MASTER"] = (m, *lis["LAB_TEST_MASTER"][1:])
    r = lis["LAB_RESULT"][0].copy()
    flag = r.ABNORMAL_FLAG.fillna("").to_numpy()
    abnormal = np.isin(flag, ["↑", "↓", "阳性", "异常"])
    r["EXAM_RESULT"] = np.where(abnormal, "2", "1")
    r["RESULT_DESC"] = np.select([flag == "↑", flag == "↓", flag == "阳性"], ["结果偏高", "结果偏低", "阳性"], None)
    r["DEVICE_TYPE"] = [DEVICE_TYPE.get(i) for i in r.INSTRUMENT_NO]
    r["TESTER_NAME"] = names.reindex(r.TESTER_NO).to_numpy()
    r["AUDITOR_NAME"] = names.reindex(r.AUDITOR_NO).to_numpy()
    r["REPORT_RESULT"] = np.where(abnormal, "异常", "正常")
    r["MEMO"] = np.where(rng.random(len(r)) < 0.02, "标本轻度溶血，结果仅供参考", None)
    lis["LAB_RESULT"] = (r, *lis["LAB_RESULT"][1:])
    b = lis["LAB_MICRO_RESULT"][0].copy()
    b["DEPT_NAME"] = [name_of("his_dept", d) for d in b.DEPT_CODE]
    b["DEVICE_TYPE"] = [DEVICE_TYPE.get(i) for i in b.INSTRUMENT_NO]
    lis["LAB_MICRO_RESULT"] = (b, *lis["LAB_MICRO_RESULT"][1:])
    a = lis["LAB_ANTI_RESULT"][0].copy()
    # 庆大霉素 / 复方新诺明 / 红霉素 are also read by disc diffusion (K-B): disc content and zone diameter
    disc = a.ANTI_CODE.isin(list(DISC_CONTENT)).to_numpy()
    a["ANTI_LEVEL"] = [ANTI_LEVEL.get(c, "非限制") for c in a.ANTI_CODE]
    a["DISK_CONTENT"] = [DISC_CONTENT.get(c) for c in a.ANTI_CODE]
    a["DISK_UNIT"] = np.where(disc, "μg", None)
    a["ZONE_MM"] = np.where(disc, a.SIR.map({"敏感": "19", "中介": "14", "耐药": "9"}).to_numpy(), None)
    a["PLATE_NO"] = 1.0
    a["LAB_ORG_NAME"] = LAB_ORG
    lis["LAB_ANTI_RESULT"] = (a, *lis["LAB_ANTI_RESULT"][1:])


DISC_CONTENT = {"Y09": "10", "Y11": "1.25/23.75", "Y16": "15"}
# 抗菌药物分级 (国卫 抗菌药物临床应用管理办法) of the LIS antibiotics
ANTI_LEVEL = {"Y05": "限制", "Y06": "限制", "Y07": "特殊使用", "Y08": "特殊使用", "Y10": "限制", "Y12": "特殊使用",
              "Y14": "特殊使用", "Y15": "特殊使用", "Y16": "限制"}


def _pacs(rng: np.random.Generator, pacs: dict) -> None:
    r = pacs["EXAM_REPORT"][0].copy()
    r["BODY_PART_CODE"] = [BODY_PART_CODE.get(b) for b in r.BODY_PART]
    r["EXAM_METHOD"] = [EXAM_METHOD.get(c) for c in r.EXAM_CODE]
    r["DEVICE_TYPE"] = r.MODALITY
    r["DEVICE_NO"] = r.MODALITY + "-0" + pd.Series(rng.integers(1, 3, len(r))).astype(str).to_numpy()
    r["IMAGE_NO"] = "YX" + r.ACCESSION_NO.str[1:]
    pacs["EXAM_REPORT"] = (r, *pacs["EXAM_REPORT"][1:])


SITE_NAME = {"01": "头颈部", "02": "胸部", "03": "腹部", "04": "四肢", "05": "盆腔", "09": "其他"}
# 专业技术职务 (GB/T 8561) by the HIS title; 人员专业类别; 专业 (教育部专业类); 执业范围 by department family
TITLE_POST = {"ZR": "231", "FZR": "232", "ZZ": "233", "YS": "234", "ZGHS": "253", "HS": "254", "JS": "263",
              "YSS": "243"}
KIND_CLASS = {"医生": "11", "护士": "21", "药师": "31", "技师": "41"}
KIND_MAJOR = {"医生": "1002", "护士": "1011", "药师": "1007", "技师": "1010"}
SCOPE = {"03": "01", "04": "02", "05": "03", "07": "04", "10": "05", "11": "05", "13": "06", "19": "09",
         "20": "11", "28": "12", "26": "08", "31": "10", "32": "10", "50": "14"}
EDUCATION = {"ZR": "11", "FZR": "14", "ZZ": "14", "YS": "20", "ZGHS": "20", "HS": "30", "JS": "20", "YSS": "20"}
DEGREE = {"11": "2", "14": "3", "20": "4"}


def _dictionaries(rng: np.random.Generator, his: dict) -> None:
    """STAFF_DICT 执业 and 人事 items, HOSPITAL_INFO's location and flags, DEPT_DICT's 门诊类型."""
    st = his["STAFF_DICT"][0].copy()
    n = len(st)
    kind, title, dept = st.STAFF_TYPE.to_numpy(), st.TITLE.to_numpy(), st.DEPT_CODE.astype(str).to_numpy()
    doctor = kind == "医生"
    base = np.array([d.removeprefix("B") for d in dept])
    st["CENTER_DEPT"] = base
    st["DEPT_CATEGORY"] = "A"                                     # 诊疗科目名录
    st["POST_CODE"] = [TITLE_POST.get(t) for t in title]
    st["MAJOR_CODE"] = [KIND_MAJOR.get(k) for k in kind]
    st["STAFF_CLASS"] = [KIND_CLASS.get(k) for k in kind]
    licensed = np.isin(kind, ["医生", "护士"])
    st["QUALIFICATION_NO"] = np.where(licensed, np.char.add("ZG", rng.integers(10**9, 10**10 - 1, n).astype(str)), None)
    work = pd.to_datetime(st.WORK_START.astype(str) + "01", format="%Y%m%d")
    st["CERT_DATE"] = np.where(licensed, (work + pd.DateOffset(years=1)).dt.strftime("%Y-%m-%d").to_numpy(), None)
    st["PRACTICE_CLASS"] = np.where(doctor, np.where(base == "5001", "4", "1"), None)   # 1 临床 / 4 中医
    st["PRACTICE_SCOPE"] = np.where(doctor, [SCOPE.get(d[:2], "01") for d in base], None)
    st["MULTI_SITE"] = np.where(doctor & (title == "ZR"), "1", "0")
    st["GP_FLAG"] = "0"
    st["PRESCRIBE_LEVEL"] = np.where(doctor, np.where(np.isin(title, ["ZR", "FZR"]), "1,2,3",
                                                      np.where(title == "ZZ", "1,2", "1")), None)
    edu = np.array([EDUCATION.get(t, "20") for t in title], dtype=object)
    st["EDUCATION"] = edu
    st["DEGREE"] = [DEGREE.get(e) for e in edu]
    st["ADMIN_POST"] = np.where(title == "ZR", "1", None)          # 1 科室正职
    st["POST_NAME"] = [f"{k}岗" for k in kind]
    st["TRANSFER_STATUS"] = "0"
    st["POLITICAL"] = np.where(rng.random(n) < 0.35, "01", "13")    # GB/T 4762: 01 中共党员, 13 群众
    st["REG_CERT_NO"] = st.CERT_NO
    st["EMPLOY_FLAG"] = "1"
    senior = doctor & np.isin(title, ["ZR", "FZR"])
    names = np.array([name_of("his_dept", d) if d in LOCAL_CODE_SETS["his_dept"]["codes"] else "" for d in base])
    st["SPECIALTY"] = np.where(senior, np.char.add(np.char.add("擅长", names.astype(str)), "常见病、多发病及疑难病的诊治"), None)
    st["PROFILE"] = np.where(senior, np.char.add(st.NAME.to_numpy().astype(str),
                                                np.char.add("，从事", np.char.add(names.astype(str), "临床工作二十余年。"))), None)
    his["STAFF_DICT"] = (st, *his["STAFF_DICT"][1:])
    h = his["HOSPITAL_INFO"][0].copy()
    h["NATURE"], h["LONGITUDE"], h["LATITUDE"] = "1", 106.62, 23.90    # 1 公立; 右江区中山二路
    h["PARENT_ORG"], h["BRANCH_FLAG"], h["CLINIC_PAY_FLAG"] = None, "0", "1"
    his["HOSPITAL_INFO"] = (h, *his["HOSPITAL_INFO"][1:])
    d = his["DEPT_DICT"][0].copy()
    d["CLINIC_TYPE_CODE"] = d.CLINIC_TYPE.map({"普通": "1", "急诊": "2"})
    d["ORG_CREDIT_CODE"] = h.CREDIT_CODE.iloc[0]
    his["DEPT_DICT"] = (d, *his["DEPT_DICT"][1:])
    b = his["WARD_BED_DAILY"][0].copy()
    b["DISCHARGED_BED_DAYS"] = b.DISCHARGED
    icu = b.WARD_CODE.astype(str).str.endswith("2801").to_numpy()
    b["SPECIAL_BEDS"] = np.where(b.WARD_CODE.isin(["B0304", "B0401"]).to_numpy(), 2, 0)
    b["NEGATIVE_PRESSURE_BEDS"] = np.where(b.WARD_CODE.isin(["B0301"]).to_numpy(), 2, 0)
    b["ER_OBS_OPEN"] = 0
    b["ER_OBS_USED"] = 0
    b["REHAB_BEDS"] = np.where(icu, 0, 0)
    his["WARD_BED_DAILY"] = (b, *his["WARD_BED_DAILY"][1:])


EDU_LOCAL = {"小学": "XX", "初中": "CZ", "高中": "GZ", "大专": "DZ", "本科": "BK"}


def _patients(rng: np.random.Generator, his: dict) -> None:
    p = his["PAT_MASTER_INDEX"][0].copy()
    n = len(p)
    p["EDU_CODE"] = p.EDUCATION.map(EDU_LOCAL)
    p["INSUR_TYPE"] = _insur_type(p.PAY_METHOD.to_numpy())
    county = np.array([LOCAL_CODE_SETS["his_division"]["standard"].get(a, "") for a in p.AREA_CODE])
    p["CARD_AREA"] = np.where(p.CARD_TYPE.isin(["2"]).to_numpy(), "451000", None)   # 医保卡 issued in 百色
    p["RESIDENCE_TYPE"] = np.where(np.char.startswith(county.astype(str), "4510"), "1", "2")
    p["BIRTH_AREA"] = county
    p["HUKOU_POST"] = np.where(np.char.startswith(county.astype(str), "4510"), "533000", "530000")
    adult = pd.to_datetime(p.BIRTHDAY).dt.year.to_numpy() < 2004
    employed = adult & p.PAY_METHOD.isin(["ZG", "GF"]).to_numpy()
    unit = rng.choice(["百色市第一中学", "广西电网百色供电局", "百色市税务局", "右江区人民政府", "百色百矿集团"], n)
    p["WORK_UNIT"] = np.where(employed, unit, None)
    p["WORK_ADDR"] = np.where(employed, "广西壮族自治区百色市右江区", None)
    p["WORK_PHONE"] = np.where(employed, np.char.add("0776-28", rng.integers(10000, 99999, n).astype(str)), None)
    p["PHONE"] = np.where(rng.random(n) < 0.1, np.char.add("0776-", rng.integers(2000000, 2999999, n).astype(str)), None)
    p["CONTACT_ADDR"] = p.ADDR
    newborn = pd.to_datetime(p.BIRTHDAY).dt.year.to_numpy() >= 2026
    p["NEWBORN_FLAG"] = np.where(newborn, "1", "0")
    minor = ~adult
    p["MOTHER_NAME"] = np.where(minor & (p.CONTACT_RELATION.to_numpy() == "FM"), p.CONTACT_NAME, None)
    mother_birth = (pd.to_datetime(p.BIRTHDAY) - pd.to_timedelta(rng.integers(22 * 365, 38 * 365, n), unit="D"))
    p["MOTHER_ID_NO"] = np.where(p.MOTHER_NAME.notna().to_numpy(),
                                 id_numbers(rng, np.full(n, "451002"), mother_birth.to_numpy().astype("datetime64[D]"),
                                            np.zeros(n, bool)), None)
    p["MULTIPLE_BIRTH"] = np.where(minor, "0", None)
    p["BIRTH_ORDER"] = np.where(minor, rng.integers(1, 3, n), np.nan)
    p["HEALTH_RECORD_NO"] = np.where(rng.random(n) < 0.6, np.char.add("4510020", rng.integers(10**10, 10**11 - 1, n)
                                                                         .astype(str)), None)
    p["RECORD_ORG"] = his["HOSPITAL_INFO"][0].CREDIT_CODE.iloc[0]
    clerks = his["STAFF_DICT"][0]
    clerks = clerks[clerks.STAFF_TYPE == "护士"]
    pick = rng.integers(0, len(clerks), n)
    p["RECORD_DOCTOR_NO"] = clerks.JOB_NO.to_numpy()[pick]
    p["RECORD_DOCTOR_NAME"] = clerks.NAME.to_numpy()[pick]
    p["UPDATER_NAME"] = p.RECORD_DOCTOR_NAME
    p["UPDATER_ID_NO"] = clerks.ID_NO.to_numpy()[pick]
    his["PAT_MASTER_INDEX"] = (p, *his["PAT_MASTER_INDEX"][1:])


HERBAL_DECOCTION = "每剂加水500毫升浸泡30分钟，武火煮沸后文火煎30分钟，取汁200毫升，复煎一次"


def _outpatient(rng: np.random.Generator, his: dict, pmi: pd.DataFrame) -> None:
    c = his["CLINIC_MASTER"][0].copy()
    c["INSUR_TYPE"] = _insur_type(c.PAY_METHOD.to_numpy())
    his["CLINIC_MASTER"] = (c, *his["CLINIC_MASTER"][1:])
    sc = his["CLINIC_SCHEDULE"][0].copy()
    sc["MEMO"] = sc.REG_TYPE.map({"ZJ": "专家号，请提前预约", "TX": "特需号，自费", "JZ": "24小时急诊"})
    his["CLINIC_SCHEDULE"] = (sc, *his["CLINIC_SCHEDULE"][1:])
    h = his["OUTP_PRESC"][0].copy()
    n = len(h)
    child = h.AGE.to_numpy() < 14
    h["WEIGHT"] = np.round(np.where(child, 3 + h.AGE.to_numpy() * 2.5, rng.uniform(45, 80, n)), 1)
    tcm = h.DEPT_CODE.to_numpy() == "5001"                        # 中医科: 中药饮片 with its decoction
    h["HERB_DOSES"] = np.where(tcm, 7.0, np.nan)
    h["HERB_DECOCTION"] = np.where(tcm, HERBAL_DECOCTION, None)
    h["HERB_USAGE"] = np.where(tcm, "每日1剂，早晚饭后温服", None)
    h["PRESC_NOTE"] = np.where(child, "儿童用药，按体重计算剂量", None)
    his["OUTP_PRESC"] = (h, *his["OUTP_PRESC"][1:])
    it = his["OUTP_PRESC_DETAIL"][0].copy()
    drugs = his["DRUG_DICT"][0].set_index("DRUG_CODE")
    it["PURCHASE_CODE"] = "GXYP" + pd.Series([c[1:] for c in it.DRUG_CODE]).str.zfill(8).to_numpy()
    it["BASIC_FLAG"] = drugs.BASIC_FLAG.reindex(it.DRUG_CODE).to_numpy()
    it["TCM_CLASS"] = np.where(it.DRUG_CODE.isin(["Y0023"]).to_numpy(), "1", None)      # 1 中成药
    his["OUTP_PRESC_DETAIL"] = (it, *his["OUTP_PRESC_DETAIL"][1:])


def _inpatient_documents(his: dict, pmi: pd.DataFrame) -> None:
    s = his["DISCHARGE_SUMMARY"][0].copy()
    pat = pmi.reindex(s.PAT_ID)
    s["CARD_TYPE"], s["CARD_NO"] = pat.CARD_TYPE.to_numpy(), pat.CARD_NO.to_numpy()
    dept = his["PAT_VISIT"][0].set_index("INP_NO").ADMIT_DEPT.reindex(s.INP_NO).to_numpy()
    tcm = s.DIS_DIAG_CODE.isin(list(TCM_FOR)).to_numpy() & np.isin(dept, TCM_DEPTS)
    s["TCM_DISEASE"] = np.where(tcm, [TCM_FOR.get(c, ("", [""]))[0] for c in s.DIS_DIAG_CODE], None)
    s["TCM_SYNDROME"] = np.where(tcm, [TCM_FOR.get(c, ("", [""]))[1][-1] for c in s.DIS_DIAG_CODE], None)
    his["DISCHARGE_SUMMARY"] = (s, *his["DISCHARGE_SUMMARY"][1:])
    o = his["MR_HOMEPAGE_OPER"][0].copy()
    site = np.array([_OPER_SITE.get(str(c)[:2], "09") for c in o.OPER_CODE], dtype=object)
    o["OPER_SITE"], o["OPER_SITE_NAME"] = site, [SITE_NAME[x] for x in site]
    rec = his["OPER_RECORD"][0]
    if "ASSIST2_NO" in rec:
        second = rec.assign(OPER_SEQ=rec.OPER_SEQ.astype(int).astype(str)).set_index(["INP_NO", "OPER_SEQ"]).ASSIST2_NO
        o["ASSIST2_NO"] = second.reindex(list(zip(o.INP_NO, o.OPER_SEQ))).to_numpy()
    else:
        o["ASSIST2_NO"] = None
    his["MR_HOMEPAGE_OPER"] = (o, *his["MR_HOMEPAGE_OPER"][1:])
    d = his["MR_HOMEPAGE_DIAG"][0].copy()
    tumour = d.DIAG_CODE.astype(str).str.startswith("C").to_numpy()
    d["TUMOUR_CODE"] = np.where(tumour, "M8140/3", None)
    d["TUMOUR_NAME"] = np.where(tumour, "腺癌，非特指", None)
    his["MR_HOMEPAGE_DIAG"] = (d, *his["MR_HOMEPAGE_DIAG"][1:])


def _pick(rng: np.random.Generator, candidates: np.ndarray, share: float) -> np.ndarray:
    """A few of the candidates (at least one when there is any), as a boolean mask."""
    idx = np.flatnonzero(candidates)
    k = min(len(idx), max(1, round(len(idx) * share))) if len(idx) else 0
    mask = np.zeros(len(candidates), bool)
    mask[rng.choice(idx, k, replace=False)] = True
    return mask


def _voids(rng: np.random.Generator, his: dict) -> None:
    """作废 in the sources that can cancel a record (CANCEL_FLAG = '1'; 修改标志 3 once uploaded).

    A doctor deletes a secondary diagnosis entered in error; a 手术记录 is withdrawn; the 病案室 voids a
    首页 (with its diagnoses and operations) or a 出院小结 to re-issue it; the cashier voids a settlement
    together with its charge lines, so header and detail still add up, and the 作废 time becomes their change time.
    """
    for name, share, cand in (("OUTP_DIAGNOSIS", 0.01, lambda f: f.MAIN_FLAG == "0"),
                              ("INP_DIAGNOSIS", 0.01, lambda f: f.MAIN_FLAG == "0"),
                              ("OPER_RECORD", 0.01, lambda f: f.OPER_ID.notna()),
                              ("DISCHARGE_SUMMARY", 0.01, lambda f: f.INP_NO.notna())):
        frame = his[name][0].copy()
        if "INP_NO" in frame or "DIAG_ID" in frame:
            frame["CANCEL_FLAG"] = np.where(_pick(rng, cand(frame).to_numpy(), share), "1", "0")
        his[name] = (frame, *his[name][1:])
    home = his["MR_HOMEPAGE"][0].copy()
    operated = home.INP_NO.isin(set(his["MR_HOMEPAGE_OPER"][0].INP_NO)).to_numpy()   # one with operations
    voided = _pick(rng, operated if operated.any() else home.INP_NO.notna().to_numpy(), 0.01)
    home["CANCEL_FLAG"] = np.where(voided, "1", "0")
    his["MR_HOMEPAGE"] = (home, *his["MR_HOMEPAGE"][1:])
    gone = set(home.INP_NO[voided])
    for name in ("MR_HOMEPAGE_DIAG", "MR_HOMEPAGE_OPER"):
        frame = his[name][0].copy()
        frame["CANCEL_FLAG"] = np.where(frame.INP_NO.isin(gone).to_numpy(), "1", "0")
        his[name] = (frame, *his[name][1:])
    settle = his["FEE_SETTLE"][0].copy()
    voided = _pick(rng, (settle.REFUND_FLAG == "0").to_numpy() & settle.ORIG_SETTLE_NO.isna().to_numpy()
                   & ~settle.SETTLE_NO.isin(settle.ORIG_SETTLE_NO.dropna()).to_numpy(), 0.005)
    settle["CANCEL_FLAG"] = np.where(voided, "1", "0")
    # The 作废 is the row's last change (5–60 minutes after the settlement, the same day, so inside the window):
    # its time is the change time of the settlement and of its lines, as 退号时间 is the registration's.
    t = _secs(settle.SETTLE_TIME)
    day_end = (t // 86_400 + 1) * 86_400 - 1
    cancel_at = np.minimum(t + rng.integers(5, 61, len(settle)) * 60, day_end)
    settle["UPDATE_TIME"] = np.where(voided, _ts(cancel_at), settle.UPDATE_TIME.to_numpy())
    his["FEE_SETTLE"] = (settle, *his["FEE_SETTLE"][1:])
    detail = his["FEE_DETAIL"][0].copy()
    gone = detail.SETTLE_NO.isin(set(settle.SETTLE_NO[voided])).to_numpy()
    detail["CANCEL_FLAG"] = np.where(gone, "1", "0")
    detail["UPDATE_TIME"] = np.where(gone, settle.set_index("SETTLE_NO").UPDATE_TIME.reindex(detail.SETTLE_NO).to_numpy(),
                                     detail.UPDATE_TIME.to_numpy())
    his["FEE_DETAIL"] = (detail, *his["FEE_DETAIL"][1:])


def _insur_type(pay: np.ndarray) -> np.ndarray:
    """医疗保险类别 of the patient's 费别: self-paying (自费) patients have none."""
    return np.where(pd.Series(pay).isin(["ZG", "JM", "GF", "SY"]).to_numpy(), pay, None)


def _pat_visit(rng: np.random.Generator, v: pd.DataFrame, pmi: pd.DataFrame, staff: pd.DataFrame) -> pd.DataFrame:
    v = v.copy()
    n = len(v)
    pat = pmi.reindex(v.PAT_ID)
    v["AGE_MONTH"] = (v.AGE.to_numpy() * 12).astype(int).astype(float)
    v["INSUR_CARD_NO"] = pat.INSUR_CARD_NO.to_numpy()
    v["INSUR_TYPE"] = _insur_type(v.PAY_METHOD.to_numpy())
    v["ADMIT_ROUTE_NAME"] = [name_of("his_admit_route", r) for r in v.ADMIT_ROUTE]
    v["ADMIT_WARD_NAME"] = [name_of("his_dept", w) for w in v.ADMIT_WARD]
    v["DISCHARGE_WARD_NAME"] = [name_of("his_dept", w) if isinstance(w, str) else None for w in v.DISCHARGE_WARD]
    v["INSUR_DIAG_CODE"] = v.ADMIT_DIAG_CODE
    v["INSUR_DIAG_NAME"] = v.ADMIT_DIAG_NAME
    v["OBSERVE_FLAG"] = np.where(v.ADMIT_ROUTE.to_numpy() == "JZ", np.where(rng.random(n) < 0.1, "1", "0"), "0")
    v["MAIN_CONDITION"] = [f"因“{d}”入院" for d in v.ADMIT_DIAG_NAME]
    v["SPECIAL_PATIENT"] = np.where(v.AGE.to_numpy() >= 80, "01", None)          # 01 高龄
    referred = v.ADMIT_ROUTE.to_numpy() == "ZR"
    v["REFERRAL_FLAG"] = np.where(referred, "1", "0")
    v["REFERRAL_ORG_CODE"] = np.where(referred, "451021000001", None)
    v["REFERRAL_ORG_NAME"] = np.where(referred, "田阳区人民医院", None)
    minor = v.AGE.to_numpy() < 18
    v["GUARDIAN_NAME"] = np.where(minor, pat.CONTACT_NAME.to_numpy(), None)
    v["GUARDIAN_ID_TYPE"] = np.where(minor, "1", None)
    guardian_birth = (pd.Timestamp("1990-01-01") + pd.to_timedelta(rng.integers(0, 3650, n), unit="D")).to_numpy()
    v["GUARDIAN_ID_NO"] = np.where(minor, id_numbers(rng, np.full(n, "451002"), guardian_birth.astype("datetime64[D]"),
                                                     rng.random(n) < 0.5), None)
    v["WORK_UNIT"] = np.where(v.PAY_METHOD.to_numpy() == "ZG", "百色市右江区" + pd.Series(
        rng.choice(["第一中学", "供电局", "人民医院", "税务局", "糖厂"], n)).to_numpy(), None)
    v["CONTACT_NAME"] = pat.CONTACT_NAME.to_numpy()
    v["COVID_STATUS"] = "0"                                                   # 0 未感染
    v["OPERATOR_NAME"] = staff.set_index("JOB_NO").NAME.reindex(v.OPERATOR_NO).to_numpy()
    v["RESIDENCE_TYPE"] = np.where(pat.AREA_CODE.astype(str).str.startswith("4510").to_numpy(), "1", "2")
    v["SPECIAL_NEED_FLAG"] = "0"
    return v


def _fee_detail(rng: np.random.Generator, f: pd.DataFrame, items: pd.DataFrame, drugs: pd.DataFrame) -> pd.DataFrame:
    """医保 / 全国医疗服务项目 codes, 规格 and 单位 of each charge line from the drug and fee-item dictionaries."""
    f = f.copy()
    item = items.set_index("ITEM_CODE").reindex(f.ITEM_CODE)
    drug = drugs.set_index("DRUG_CODE").reindex(f.ITEM_CODE)
    is_drug = f.ITEM_CODE.isin(drugs.DRUG_CODE).to_numpy()
    national = item.NATIONAL_CODE.to_numpy()
    f["INSUR_ITEM_CODE"] = np.where(is_drug, drug.INSUR_CODE.to_numpy(), national)
    f["NATIONAL_ITEM_CODE"] = np.where(is_drug, None, national)
    f["DRUG_CODE"] = np.where(is_drug, f.ITEM_CODE, None)
    f["DRUG_INSUR_CODE"] = np.where(is_drug, drug.INSUR_CODE.to_numpy(), None)
    f["SPEC"] = np.where(is_drug, drug.SPEC.to_numpy(), None)
    f["UNIT"] = np.where(is_drug, drug.PACK_UNIT.to_numpy(), item.UNIT.to_numpy())
    # 自付比例: 甲类 drugs and services 0, 乙类 drugs 10 %, self-paid lines 100 %
    ratio = np.where(is_drug, np.where(drug.BASIC_FLAG.to_numpy() == "1", 0.0, 0.1), 0.0)
    f["SELF_RATIO"] = np.where(pd.isna(f.INSUR_ITEM_CODE), 1.0, ratio)
    return f


def _settle(s: pd.DataFrame, pmi: pd.DataFrame) -> pd.DataFrame:
    s = s.copy()
    s["INSUR_TYPE"] = _insur_type(s.PAY_METHOD.to_numpy())
    return s

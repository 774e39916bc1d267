"""HIS dictionaries: the hospital, departments, staff, drugs, charge items, doctor schedules.

Why: every clinical row points at a department and a staff 工号; generating the dictionaries
first lets the clinical generators sample valid references, and gives the 3 dictionary tables
(org_info, dept_info, staff_info) and the number-source table (doctor_schedule) their data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import catalog
from .codes import LOCAL_CODE_SETS, name_of
from .context import DAY, HOUR, MINUTE, Ctx
from .db import date_text, ts_text
from .people import NamePool, _birth_dates, id_numbers, mobiles

DEPT_NAMES = LOCAL_CODE_SETS["his_dept"]["codes"]


def dict_time(ctx: Ctx) -> str:
    """Dictionaries are (re)maintained at 06:30 on the first covered day, so a first run of the
    window uploads them before the clinical rows that reference them."""
    return str(ts_text(np.array([ctx.w0 + 6 * HOUR + 30 * MINUTE]))[0])


def hospital(ctx: Ctx) -> pd.DataFrame:
    """HOSPITAL_INFO: the HIS's own registration record (one row)."""
    return pd.DataFrame([{
        "HOSP_CODE": "BSRMYY", "HOSP_NAME": "百色市人民医院", "CREDIT_CODE": "12451000498541337N",
        "LICENSE_NO": "PDY00001245100211A1001", "HOSP_TYPE": "A100", "HOSP_LEVEL": "31",
        "HOSP_CLASS": "A1", "NONPROFIT": "1", "OWNER_TYPE": "1", "AREA_CODE": "451002001000",
        "ADDRESS": "广西壮族自治区百色市右江区中山二路8号", "POST_CODE": "533000", "PHONE": "0776-2825135",
        "BED_COUNT": 1800.0, "VALID_FROM": "2022-06-30", "VALID_TO": "2027-06-29",
        "ISSUER": "百色市卫生健康委员会", "POOL_AREA": "451000", "UPDATE_TIME": dict_time(ctx),
    }])


def departments(ctx: Ctx, ward_beds: dict[str, int]) -> pd.DataFrame:
    """DEPT_DICT: clinical departments, wards (B+code) and medical-technology departments."""
    rows = []
    for code, name in DEPT_NAMES.items():
        ward = code.startswith("B")
        info = catalog.DEPARTMENTS.get(code[1:] if ward else code, {})
        kind = "病区" if ward else ("医技" if code in catalog.MEDTECH else ("行政" if code == "6001" else "临床"))
        rows.append({
            "DEPT_CODE": code, "DEPT_NAME": name, "DEPT_TYPE": kind,
            "PARENT_CODE": code[1:] if ward else None,
            "WARD_FLAG": "1" if ward else "0",
            "CLINIC_TYPE": ("急诊" if code == "2001" else "普通") if info.get("op") else None,
            "REG_FLAG": "1" if (not ward and info.get("op")) else "0",
            "TCM_FLAG": "1" if code == "5001" else "0",
            "INSUR_DEPT_CODE": f"A{code[-4:]}" if not ward else None,
            "OPEN_BEDS": float(ward_beds.get(code, 0)) if ward else None,
            "STOP_FLAG": "0", "MEMO": None, "UPDATE_TIME": dict_time(ctx),
        })
    return pd.DataFrame(rows)


def staff(ctx: Ctx, pool: NamePool) -> pd.DataFrame:
    """STAFF_DICT: doctors per clinical department, nurses per ward, technicians, pharmacists.

    STAFF_ID is the HIS-internal key; JOB_NO (工号) is what clinical rows carry, unique.
    """
    plan: list[tuple[str, str, str]] = []   # (dept, kind, title)
    for code, info in catalog.DEPARTMENTS.items():
        titles = ["ZR", "FZR", "FZR", "ZZ", "ZZ", "ZZ", "YS", "YS", "YS"]
        plan += [(code, "医生", t) for t in titles]
        if info["beds"]:
            plan += [("B" + code, "护士", t) for t in ["ZGHS", "HS", "HS", "HS", "HS"]]
    for code in catalog.MEDTECH:
        titles = ["ZR", "ZZ", "ZZ", "YS"] if code in ("2601", "3101", "3201", "3205", "3206") else []
        plan += [(code, "医生", t) for t in titles] + [(code, "技师", "JS") for _ in range(4)]
    plan += [("6001", "药师", "YSS") for _ in range(6)]
    n = len(plan)
    rng = ctx.rng
    dept = np.array([p[0] for p in plan])
    kind = np.array([p[1] for p in plan])
    title = np.array([p[2] for p in plan])
    male = np.where(kind == "护士", rng.random(n) < 0.08, rng.random(n) < 0.55)
    age = rng.integers(26, 58, n)
    birth = _birth_dates(rng, ctx.end_date, age)
    area = np.where(rng.random(n) < 0.7, "451002", rng.choice(["451022", "451081", "450102", "451003"], n))
    id_no = id_numbers(rng, area, birth, male)
    job_no = np.char.add(np.where(kind == "医生", "D", np.where(kind == "护士", "N", "T")),
                         np.char.zfill(np.arange(1, n + 1).astype(str), 4))
    work_year = 2026 - (age - 24)
    return pd.DataFrame({
        "STAFF_ID": np.char.add("U", np.char.zfill(np.arange(10001, 10001 + n).astype(str), 6)),
        "JOB_NO": job_no, "NAME": pool.names(rng, male), "SEX": np.where(male, "M", "F"),
        "BIRTHDAY": date_text(birth), "NATION": ctx.pick(["1", "8", "1", "8", "13", "12"], n),
        "ID_TYPE": "1", "ID_NO": id_no, "DEPT_CODE": dept,
        "DEPT_NAME": [DEPT_NAMES[d] for d in dept], "STAFF_TYPE": kind, "TITLE": title,
        "CERT_NO": np.where(np.isin(kind, ["医生", "护士"]),
                            np.char.add("1104510", rng.integers(10_000_000, 99_999_999, n).astype(str)), None),
        "PRESCRIBE_FLAG": np.where(kind == "医生", "1", "0"), "REG_FLAG": np.where(kind == "医生", "1", "0"),
        "WORK_STATUS": "1", "HIRE_TYPE": ctx.pick(["1", "1", "1", "2", "3"], n),
        "WORK_START": [f"{y}{m:02d}" for y, m in zip(work_year, rng.integers(7, 10, n))],
        "MOBILE": mobiles(rng, n), "UPDATE_TIME": dict_time(ctx),
    })


def drugs(ctx: Ctx) -> pd.DataFrame:
    rows = [{"DRUG_CODE": k, "GENERIC_NAME": v[0], "TRADE_NAME": v[1] or None, "SPEC": v[2], "FORM": v[3],
             "DOSE": v[4], "DOSE_UNIT": v[5], "DEFAULT_FREQ": v[6], "DEFAULT_ROUTE": v[7], "PACK_UNIT": v[8],
             "PRICE": v[9], "ANTI_LEVEL": v[10] or None, "INSUR_CODE": v[11],
             "BASIC_FLAG": "1" if k in ("Y0001", "Y0005", "Y0006", "Y0010", "Y0009") else "0",
             "UPDATE_TIME": dict_time(ctx)} for k, v in catalog.DRUGS.items()]
    return pd.DataFrame(rows)


def fee_items(ctx: Ctx) -> pd.DataFrame:
    rows = [{"ITEM_CODE": k, "ITEM_NAME": v[0], "FEE_CLASS": v[1], "UNIT": v[2], "PRICE": v[3],
             "NATIONAL_CODE": v[4] or None, "UPDATE_TIME": dict_time(ctx)} for k, v in catalog.FEE_ITEMS.items()]
    for code, p in catalog.LAB_PANELS.items():
        rows.append({"ITEM_CODE": p[3], "ITEM_NAME": name_of("lis_panel", code), "FEE_CLASS": "HY",
                     "UNIT": "项", "PRICE": p[4], "NATIONAL_CODE": p[3], "UPDATE_TIME": dict_time(ctx)})
    for code, e in catalog.EXAMS.items():
        rows.append({"ITEM_CODE": e[2], "ITEM_NAME": name_of("pacs_item", code), "FEE_CLASS": "JC",
                     "UNIT": "次", "PRICE": e[3], "NATIONAL_CODE": e[2], "UPDATE_TIME": dict_time(ctx)})
    for code, o in catalog.OPERATIONS.items():
        rows.append({"ITEM_CODE": "SS" + code.replace(".", ""), "ITEM_NAME": name_of("his_oper", code),
                     "FEE_CLASS": "SS", "UNIT": "次", "PRICE": o[4], "NATIONAL_CODE": None, "UPDATE_TIME": dict_time(ctx)})
    return pd.DataFrame(rows).drop_duplicates("ITEM_CODE")


# ---------------------------------------------------------------- doctor schedules (号源)

SPANS = {"上午": (8 * HOUR, 12 * HOUR), "下午": (14 * HOUR + 30 * MINUTE, 17 * HOUR + 30 * MINUTE),
         "全天": (0, 24 * HOUR)}
BASE_LIMIT = {"PT": 40, "ZJ": 20, "TX": 10, "JZ": 80}
APPT_SHARE = {"PT": 0.5, "ZJ": 0.7, "TX": 0.8, "JZ": 0.0}


def schedules(ctx: Ctx, staff_df: pd.DataFrame, visits_per_day: float) -> pd.DataFrame:
    """Doctor sessions per outpatient department and day (the 号源 the platform books against).

    Registration numbers are filled in later by `fill_schedule_counts` from the registrations.
    """
    rows = []
    total_w = sum(i["op"] for i in catalog.DEPARTMENTS.values())
    for day in ctx.day_starts():
        for code, info in catalog.DEPARTMENTS.items():
            if not info["op"]:
                continue
            docs = staff_df[(staff_df.DEPT_CODE == code) & (staff_df.STAFF_TYPE == "医生")]
            need = visits_per_day * info["op"] / total_w
            spans = ["全天"] if code == "2001" else ["上午", "下午"]
            for span in spans:
                k = int(np.clip(np.ceil(need / (2 if span == "全天" else 1) / 35), 2, len(docs)))
                # The chief sees patients every session (专家号 mornings, 特需号 afternoons).
                order = np.r_[0, 1 + ctx.rng.permutation(len(docs) - 1)]
                chosen = docs.iloc[order[:k]]
                for i, (_, d) in enumerate(chosen.iterrows()):
                    if code == "2001":
                        rtype = "JZ"
                    elif d.TITLE == "ZR":
                        rtype = "TX" if span == "下午" else "ZJ"
                    else:
                        rtype = "ZJ" if d.TITLE == "FZR" else "PT"
                    floor = 1 if code in ("2001", "0701") else 2 + int(code[:2]) % 3
                    rows.append({
                        "DEPT_CODE": code, "DEPT_NAME": DEPT_NAMES[code], "DOCTOR_NO": d.JOB_NO,
                        "DOCTOR_NAME": d.NAME, "CLINIC_DATE": day, "TIME_SPAN": span,
                        "CLINIC_ROOM": f"门诊楼{floor}楼{DEPT_NAMES[code]}{i + 1}诊室", "REG_TYPE": rtype,
                        "REG_TYPE_NAME": name_of("his_reg_type", rtype),
                        "LIMIT_NUM": BASE_LIMIT[rtype], "APPT_LIMIT": int(BASE_LIMIT[rtype] * APPT_SHARE[rtype]),
                        "REG_FEE": {"PT": 11.0, "ZJ": 21.0, "TX": 31.0, "JZ": 16.0}[rtype],
                        "STOP_FLAG": "0",
                    })
    df = pd.DataFrame(rows)
    df["SCHEDULE_ID"] = np.char.add("PB", np.char.zfill(np.arange(1, len(df) + 1).astype(str), 8))
    # Published a week ahead; sessions of the first days count as (re)published at the window start.
    df["PUBLISH_TIME"] = np.maximum(df.CLINIC_DATE - 7 * DAY, ctx.w0) + 7 * HOUR
    return df


def fill_schedule_counts(sched: pd.DataFrame, regs: pd.DataFrame, w1: int) -> pd.DataFrame:
    """Registered/booked counts per session; the row changes with the last registration on it."""
    live = regs[regs.RETURN_FLAG == "0"]
    g = live.groupby("SCHEDULE_ID")
    n_reg = g.size()
    n_appt = live[live.APPT_FLAG == "1"].groupby("SCHEDULE_ID").size()
    last = regs.groupby("SCHEDULE_ID")["_change"].max()
    out = sched.copy()
    out["REG_NUM"] = out.SCHEDULE_ID.map(n_reg).fillna(0).astype(int)
    out["APPT_NUM"] = out.SCHEDULE_ID.map(n_appt).fillna(0).astype(int)
    out["LIMIT_NUM"] = np.maximum(out.LIMIT_NUM, out.REG_NUM + 5)
    out["APPT_LIMIT"] = np.maximum(out.APPT_LIMIT, out.APPT_NUM)
    change = out.SCHEDULE_ID.map(last).fillna(out.PUBLISH_TIME).to_numpy()
    out["UPDATE_TIME"] = ts_text(np.minimum(change, w1 - 1))
    out["CLINIC_DATE"] = date_text(out.CLINIC_DATE.to_numpy())
    out["REG_NUM"] = out.REG_NUM.astype(str)
    out["APPT_NUM"] = out.APPT_NUM.astype(str)
    return out.drop(columns=["PUBLISH_TIME"])

"""HIS outpatient flow: registration (挂号) → visit (门诊病历) → diagnoses → prescriptions,
plus the lab and exam requests the LIS and PACS will fulfil and the outpatient charges.

Why one module: these rows share the visit id and times (a visit starts after its registration,
a prescription is written during the visit, a request is sent before the visit ends), so they
are drawn together from one frame of registrations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import catalog
from .codes import name_of
from .context import DAY, HOUR, MINUTE, Ctx, seq_ids
from .his_org import SPANS

COMPLAINTS = {
    "0301": ["咳嗽、咳痰", "发热伴咳嗽", "气促"], "0302": ["上腹痛", "反酸、嗳气", "腹泻"],
    "0303": ["头痛", "头晕", "失眠"], "0304": ["胸闷", "心悸", "头晕"], "0306": ["双下肢水肿", "尿频"],
    "0307": ["口干、多饮", "乏力"], "0401": ["右下腹痛", "右上腹痛", "腹股沟区包块"],
    "0403": ["腰痛", "膝关节疼痛", "外伤后疼痛"], "0404": ["排尿困难", "尿频、尿急"], "0405": ["咳嗽、痰中带血"],
    "0501": ["下腹痛", "月经量增多"], "0502": ["停经", "下腹阵痛"], "0701": ["发热", "咳嗽", "腹泻"],
    "1001": ["视物模糊", "眼红、眼痒"], "1101": ["咽痛", "鼻塞"], "1301": ["皮疹伴瘙痒"],
    "1901": ["化疗后复查", "咳嗽"], "2001": ["发热", "腹痛", "外伤"], "2801": ["呼吸困难"], "5001": ["腰痛", "失眠"],
}
DAY_FACTOR = np.array([1.1, 1.0, 1.0, 1.0, 0.95, 0.7, 0.55])     # Mon … Sun


def _weekday(day_sec: np.ndarray) -> np.ndarray:
    return ((np.asarray(day_sec) // DAY) + 3) % 7      # 1970-01-01 was a Thursday


def sample_patients(ctx: Ctx, pats: pd.DataFrame, dept_codes: np.ndarray) -> np.ndarray:
    """Patient indexes that fit the department (儿科 children, 产科/妇科 women 18-45)."""
    band = pats.band.to_numpy()
    pools = {0: np.flatnonzero(band == 0), 1: np.flatnonzero(band == 1), "adult": np.flatnonzero(band != 0),
             "any": np.arange(len(pats))}
    out = np.empty(len(dept_codes), dtype=np.int64)
    for code in np.unique(dept_codes):
        idx = np.flatnonzero(dept_codes == code)
        want = catalog.DEPARTMENTS[code].get("band")
        pool = pools[want] if want is not None else (pools["any"] if code in ("2001", "1001", "1101", "1301",
                                                                               "5001") else pools["adult"])
        out[idx] = pool[ctx.rng.integers(0, len(pool), len(idx))]
    return out


def registrations(ctx: Ctx, pats: pd.DataFrame, sched: pd.DataFrame, per_day: float) -> pd.DataFrame:
    """CLINIC_MASTER rows: one registration per visit, ~2% returned (退号) before being seen.

    A 退号 sets RETURN_FLAG / RETURN_TIME on the registration's own row (its change time becomes the return
    time); the money goes back through a 红冲 of the registration fee (his_fees), never an edit of the charge.
    """
    rng = ctx.rng
    days = ctx.day_starts()
    n_day = rng.poisson(per_day * DAY_FACTOR[_weekday(days)])
    day = np.repeat(days, n_day)
    n = len(day)
    codes = [c for c, i in catalog.DEPARTMENTS.items() if i["op"]]
    weights = [catalog.DEPARTMENTS[c]["op"] for c in codes]
    dept = ctx.pick(codes, n, weights)
    sched_id = np.empty(n, dtype=object)
    groups = sched.groupby(["CLINIC_DATE", "DEPT_CODE"]).indices
    for (d, code), sidx in groups.items():
        ridx = np.flatnonzero((day == d) & (dept == code))
        if not len(ridx):
            continue
        spans = sched.TIME_SPAN.to_numpy()[sidx]
        w = np.where(spans == "上午", 0.65, 0.35)
        sched_id[ridx] = sched.SCHEDULE_ID.to_numpy()[sidx][rng.choice(len(sidx), len(ridx), p=w / w.sum())]
    missing = pd.isna(sched_id)
    if missing.any():       # a department without a session that day: send them to the emergency room
        dept[missing] = "2001"
        for i in np.flatnonzero(missing):
            cands = sched[(sched.CLINIC_DATE == day[i]) & (sched.DEPT_CODE == "2001")].SCHEDULE_ID.to_numpy()
            sched_id[i] = cands[rng.integers(0, len(cands))]
    s = sched.set_index("SCHEDULE_ID").loc[sched_id]
    span = s.TIME_SPAN.to_numpy()
    lo = np.array([SPANS[x][0] for x in span])
    hi = np.array([SPANS[x][1] for x in span])
    emergency = span == "全天"
    # Emergency arrivals peak in the day but come at every hour.
    e_hours = rng.choice(24, n, p=_hour_profile())
    reg_time = day + np.where(emergency, e_hours * HOUR + rng.integers(0, HOUR, n),
                              lo - 30 * MINUTE + (rng.random(n) * (hi - lo - 20 * MINUTE)).astype(np.int64))
    rtype = s.REG_TYPE.to_numpy()
    appt = (rng.random(n) < np.where(rtype == "PT", 0.35, np.where(rtype == "JZ", 0.0, 0.75)))
    channel = np.empty(n, dtype=object)
    channel[appt] = ctx.pick(["WX", "DH", "PT", "ZZJ"], int(appt.sum()), [0.6, 0.1, 0.2, 0.1])
    channel[~appt] = ctx.pick(["CK", "ZZJ"], int((~appt).sum()), [0.6, 0.4])
    appt_time = np.where(appt, reg_time - rng.integers(1, 6 * 24, n) * HOUR, np.nan)
    returned = rng.random(n) < 0.02
    return_time = reg_time + rng.integers(5, 90, n) * MINUTE
    # A 退号 happens inside the window, like the refund (红冲) of its registration fee that his_fees writes for
    # it: an emergency registration at 23:xx whose return would fall after the window stays a registration.
    returned &= return_time < ctx.w1
    return_time = np.where(returned, return_time, np.nan)
    pat = sample_patients(ctx, pats, dept)
    order = np.lexsort((reg_time,))
    df = pd.DataFrame({
        "_day": day, "_pat": pat, "DEPT_CODE": dept, "SCHEDULE_ID": sched_id, "DOCTOR_NO": s.DOCTOR_NO.to_numpy(),
        "DOCTOR_NAME": s.DOCTOR_NAME.to_numpy(), "CLINIC_DATE": day, "TIME_SPAN": span, "REG_TYPE": rtype,
        "VISIT_TYPE": np.where(emergency, "E", "O"), "REG_TIME": reg_time, "APPT_FLAG": np.where(appt, "1", "0"),
        "REG_CHANNEL": channel, "APPT_TIME": appt_time, "RETURN_FLAG": np.where(returned, "1", "0"),
        "RETURN_TIME": return_time, "FIRST_VISIT": np.where(rng.random(n) < 0.45, "1", "0"),
        "REG_FEE": 1.0, "DIAG_FEE": s.REG_FEE.to_numpy() - 1.0,
    }).iloc[order].reset_index(drop=True)
    df["REG_NO"] = seq_ids("GH", df.REG_TIME.to_numpy())
    df["VISIT_NO"] = np.char.replace(df.REG_NO.to_numpy().astype(str), "GH", "MZ").astype(object)
    df["_change"] = np.fmax(df.REG_TIME.to_numpy(), df.RETURN_TIME.to_numpy())
    return df


def _hour_profile() -> np.ndarray:
    w = np.array([2, 1.5, 1, 1, 1, 1.5, 2, 3, 5, 6, 6, 5, 4, 4, 5, 5, 5, 5, 5, 5, 4, 4, 3, 2.5])
    return w / w.sum()


def visits(ctx: Ctx, regs: pd.DataFrame, w1: int) -> pd.DataFrame:
    """OUTP_MR rows: the visits that happened (returned registrations never reach a doctor)."""
    rng = ctx.rng
    v = regs[regs.RETURN_FLAG == "0"].copy()
    n = len(v)
    start = v.REG_TIME.to_numpy() + rng.integers(3, 80, n) * MINUTE
    end = start + rng.integers(4, 25, n) * MINUTE
    keep = end < w1             # a visit still running at the window end is not recorded yet
    v, start, end = v[keep], start[keep], end[keep]
    n = len(v)
    dept = v.DEPT_CODE.to_numpy()
    main = np.empty(n, dtype=object)
    complaint = np.empty(n, dtype=object)
    for code in np.unique(dept):
        idx = np.flatnonzero(dept == code)
        main[idx] = ctx.pick(catalog.DEPARTMENTS[code]["diag"], len(idx))
        c = ctx.pick(COMPLAINTS[code], len(idx))
        complaint[idx] = [f"{x}{k}天" for x, k in zip(c, rng.integers(1, 8, len(idx)))]
    second = np.where(rng.random(n) < 0.22, ctx.pick(["I10.x00", "E11.900", "E78.500", "K29.500"], n), None)
    second = np.where(second == main, None, second)
    v["VISIT_START"] = start
    v["VISIT_END"] = end
    v["MAIN_DIAG"] = main
    v["MAIN_DIAG_NAME"] = [name_of("his_diag", c) for c in main]
    v["SECOND_DIAG"] = second
    v["CHIEF_COMPLAINT"] = complaint
    v["PRESENT_ILLNESS"] = [f"患者{c}，自服药物效果欠佳，遂来我院就诊。" for c in complaint]
    v["PAST_HISTORY"] = np.where(pd.notna(second), "既往有慢性病史，规律服药。", "既往体健，否认药物过敏史。")
    v["PHYSICAL_EXAM"] = "神志清，精神可，心肺听诊未闻及明显异常，腹软，无压痛。"
    v["TREATMENT"] = "予对症治疗，完善相关检查，不适随诊。"
    v["INFECTIOUS_FLAG"] = "0"
    v["REFERRAL_FLAG"] = np.where(rng.random(n) < 0.01, "1", "0")
    return v.reset_index(drop=True)


def diagnoses(visits_df: pd.DataFrame) -> pd.DataFrame:
    """OUTP_DIAGNOSIS: the main diagnosis and, for some visits, a second one."""
    main = pd.DataFrame({"VISIT_NO": visits_df.VISIT_NO, "_pat": visits_df._pat, "DIAG_SEQ": 1,
                         "DIAG_CODE": visits_df.MAIN_DIAG, "MAIN_FLAG": "1",
                         "DIAG_TIME": visits_df.VISIT_START + 4 * MINUTE, "DOCTOR_NO": visits_df.DOCTOR_NO,
                         "DEPT_CODE": visits_df.DEPT_CODE, "VISIT_TYPE": visits_df.VISIT_TYPE})
    sec = visits_df[visits_df.SECOND_DIAG.notna()]
    other = pd.DataFrame({"VISIT_NO": sec.VISIT_NO, "_pat": sec._pat, "DIAG_SEQ": 2, "DIAG_CODE": sec.SECOND_DIAG,
                          "MAIN_FLAG": "0", "DIAG_TIME": sec.VISIT_START + 5 * MINUTE, "DOCTOR_NO": sec.DOCTOR_NO,
                          "DEPT_CODE": sec.DEPT_CODE, "VISIT_TYPE": sec.VISIT_TYPE})
    d = pd.concat([main, other], ignore_index=True).sort_values(["VISIT_NO", "DIAG_SEQ"], ignore_index=True)
    d["DIAG_NAME"] = [name_of("his_diag", c) for c in d.DIAG_CODE]
    d["DIAG_ID"] = np.char.add("MD", d.VISIT_NO.str[2:].to_numpy().astype(str)) + d.DIAG_SEQ.astype(str).to_numpy()
    d["DIAG_TYPE"] = "MZ"
    return d


def prescriptions(ctx: Ctx, visits_df: pd.DataFrame, pharmacists: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """OUTP_PRESC + OUTP_PRESC_DETAIL; item amounts add up to the header amount exactly."""
    rng = ctx.rng
    has = rng.random(len(visits_df)) < 0.62
    v = visits_df[has].reset_index(drop=True)
    n = len(v)
    k = rng.integers(1, 4, n)
    rows = np.repeat(np.arange(n), k)
    item_no = np.arange(len(rows)) - np.repeat(np.cumsum(k) - k, k) + 1
    dept = v.DEPT_CODE.to_numpy()[rows]
    drug = np.empty(len(rows), dtype=object)
    for code in np.unique(dept):
        idx = np.flatnonzero(dept == code)
        drug[idx] = ctx.pick(catalog.DEPT_DRUGS[code], len(idx))
    # One drug appears once per prescription.
    items = pd.DataFrame({"_h": rows, "ITEM_NO": item_no, "DRUG_CODE": drug}).drop_duplicates(["_h", "DRUG_CODE"])
    info = pd.DataFrame.from_dict(catalog.DRUGS, orient="index",
                                  columns=["GENERIC", "TRADE", "SPEC", "FORM", "DOSE", "DOSE_UNIT", "FREQ", "ROUTE",
                                           "PACK_UNIT", "PRICE", "ANTI", "INSUR"])
    d = info.loc[items.DRUG_CODE].reset_index(drop=True)
    items = items.reset_index(drop=True)
    m = len(items)
    qty = np.where(d.FORM.isin(["SY", "FZ", "ZSY"]), rng.integers(1, 4, m), rng.integers(1, 3, m))
    price_cents = np.round(d.PRICE.to_numpy() * 100).astype(np.int64)
    items["QUANTITY"] = qty.astype(float)
    items["AMOUNT_CENTS"] = price_cents * qty
    items["DAYS"] = rng.integers(3, 8, m).astype(float)
    for c in ["GENERIC", "TRADE", "SPEC", "FORM", "DOSE", "DOSE_UNIT", "FREQ", "ROUTE", "PACK_UNIT", "PRICE",
              "ANTI", "INSUR"]:
        items[c] = d[c].to_numpy()
    head_amount = items.groupby("_h").AMOUNT_CENTS.sum()
    psy = items[items.DRUG_CODE == "Y0019"]._h.unique()
    vdept = v.DEPT_CODE.to_numpy()
    ptype = np.where(vdept == "2001", "JZ", np.where(vdept == "0701", "EK", "PT")).astype(object)
    ptype[psy] = "JS2"
    presc_time = v.VISIT_START.to_numpy() + rng.integers(5, 12, n) * MINUTE
    presc_time = np.minimum(presc_time, v.VISIT_END.to_numpy() - MINUTE)
    cancel = rng.random(n) < 0.015
    head = pd.DataFrame({
        "PRESC_NO": seq_ids("CF", presc_time), "VISIT_NO": v.VISIT_NO, "_pat": v._pat,
        "VISIT_TYPE": v.VISIT_TYPE, "PRESC_TYPE": ptype, "DEPT_CODE": v.DEPT_CODE, "DOCTOR_NO": v.DOCTOR_NO,
        "PRESC_TIME": presc_time, "PHARMACIST_NO": pharmacists[rng.integers(0, len(pharmacists), n)],
        "AUDIT_TIME": presc_time + rng.integers(1, 10, n) * MINUTE, "DIAG_CODE": v.MAIN_DIAG,
        "DIAG_NAME": v.MAIN_DIAG_NAME, "VALID_DAYS": 3.0, "AMOUNT_CENTS": head_amount.reindex(range(n)).to_numpy(),
        "CANCEL_FLAG": np.where(cancel, "1", "0"), "VISIT_END": v.VISIT_END,
    })
    head["CANCEL_TIME"] = np.where(cancel, head.AUDIT_TIME + rng.integers(5, 60, n) * MINUTE, np.nan)
    head["_change"] = np.fmax(head.AUDIT_TIME.to_numpy(), head.CANCEL_TIME.to_numpy())
    items["PRESC_NO"] = head.PRESC_NO.to_numpy()[items._h]
    items["VISIT_NO"] = head.VISIT_NO.to_numpy()[items._h]
    items["_pat"] = head._pat.to_numpy()[items._h]
    items["GROUP_NO"] = np.where(items.ROUTE == "IVGTT", "1", items.ITEM_NO.astype(str))
    items["DETAIL_ID"] = items.PRESC_NO + "-" + items.ITEM_NO.astype(str).str.zfill(2)
    items["_change"] = head._change.to_numpy()[items._h]
    return head, items


def requests(ctx: Ctx, visits_df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lab and exam requests (电子申请单) sent during outpatient visits."""
    rng = ctx.rng
    n = len(visits_df)
    has_lab = rng.random(n) < 0.75
    k = np.where(has_lab, rng.integers(1, 3, n), 0)
    rows = np.repeat(np.arange(n), k)
    dept = visits_df.DEPT_CODE.to_numpy()[rows]
    panel = np.empty(len(rows), dtype=object)
    for code in np.unique(dept):
        idx = np.flatnonzero(dept == code)
        panel[idx] = ctx.pick(catalog.DEPT_LABS[code], len(idx))
    lab = _req_frame(visits_df, rows, rng).assign(PANEL=panel).drop_duplicates(["VISIT_NO", "PANEL"])
    has_exam = rng.random(n) < 0.16
    # The first visits of each department show each of its exams once.
    rank = visits_df.groupby("DEPT_CODE").cumcount().to_numpy()
    wanted = np.array([len(catalog.DEPT_EXAMS[d]) for d in visits_df.DEPT_CODE])
    has_exam |= rank < wanted
    erows = np.flatnonzero(has_exam)
    edept = visits_df.DEPT_CODE.to_numpy()[erows]
    exam = np.empty(len(erows), dtype=object)
    for code in np.unique(edept):
        idx = np.flatnonzero(edept == code)
        exam[idx] = ctx.pick(catalog.DEPT_EXAMS[code], len(idx))
    ex = _req_frame(visits_df, erows, rng).assign(EXAM=exam)
    return lab.reset_index(drop=True), ex.reset_index(drop=True)


def _req_frame(v: pd.DataFrame, rows: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    start = v.VISIT_START.to_numpy()[rows]
    end = v.VISIT_END.to_numpy()[rows]
    t = start + ((end - start) * rng.uniform(0.3, 0.9, len(rows))).astype(np.int64)
    return pd.DataFrame({"VISIT_TYPE": v.VISIT_TYPE.to_numpy()[rows], "VISIT_NO": v.VISIT_NO.to_numpy()[rows],
                         "_pat": v._pat.to_numpy()[rows], "DEPT_CODE": v.DEPT_CODE.to_numpy()[rows],
                         "DOCTOR_NO": v.DOCTOR_NO.to_numpy()[rows], "APPLY_TIME": t, "ORDER_NO": None,
                         "DIAG_CODE": v.MAIN_DIAG.to_numpy()[rows]})

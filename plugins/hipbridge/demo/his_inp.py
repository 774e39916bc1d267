"""HIS inpatient flow: admission (PAT_VISIT) → orders → operations → discharge → 出院小结 →
病案首页 with its diagnoses and operations, plus the daily ward census (床位日报).

Why stays start before the window: a hospital's discharges in a window belong to patients
admitted days earlier, so stays are drawn from CARRY_IN_DAYS before the window; rows dated
before the window are history that an incremental extraction of the window never reads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import catalog
from .codes import name_of
from .context import CARRY_IN_DAYS, DAY, HOUR, MINUTE, Ctx, seq_ids
from .his_outp import DAY_FACTOR, _weekday, sample_patients

LOS_MEAN = {"0502": 3.5, "1001": 3.0, "2801": 6.0, "1901": 6.0, "0403": 9.0, "0405": 10.0}
COMORBID = ["I10.x00", "E11.900", "E78.500", "N18.900", "K29.500"]


def _staff_of(staff: pd.DataFrame, dept: str, titles: list[str]) -> np.ndarray:
    s = staff[(staff.DEPT_CODE == dept) & staff.TITLE.isin(titles)]
    return s.JOB_NO.to_numpy()


def stays(ctx: Ctx, pats: pd.DataFrame, staff: pd.DataFrame, per_day: float) -> pd.DataFrame:
    """PAT_VISIT: admissions from CARRY_IN_DAYS before the window to its end; ~0.5% voided."""
    rng = ctx.rng
    days = ctx.day_starts(CARRY_IN_DAYS)
    n_day = rng.poisson(per_day * np.sqrt(DAY_FACTOR[_weekday(days)]))
    day = np.repeat(days, n_day)
    n = len(day)
    codes = [c for c, i in catalog.DEPARTMENTS.items() if i["beds"]]
    dept = ctx.pick(codes, n, [catalog.DEPARTMENTS[c]["beds"] for c in codes])
    # The earliest stays show every operation: one stay per department, plus one per operation.
    showcase = [c for c in codes for _ in range(1 + len(catalog.DEPARTMENTS[c]["ops"]))]
    if n >= 2 * len(showcase):
        dept[: len(showcase)] = showcase
    route = np.full(n, "JZ", dtype=object)                   # ICU admissions come through 急诊
    ward = np.flatnonzero(dept != "2801")
    route[ward] = ctx.pick(["MZ", "JZ", "ZR", "QT"], len(ward), [0.68, 0.27, 0.04, 0.01])
    hour = np.where(route == "JZ", rng.integers(0, 24, n), rng.integers(8, 18, n))
    admit = day + hour * HOUR + rng.integers(0, HOUR, n)
    los = np.array([LOS_MEAN.get(d, 7.5) for d in dept])
    los_days = np.maximum(1, np.round(rng.lognormal(np.log(los), 0.45))).astype(np.int64)
    dis_day = (admit // DAY + los_days) * DAY
    discharge = dis_day + rng.integers(9 * HOUR, 17 * HOUR, n)
    cancel = rng.random(n) < 0.005
    discharged = (discharge < ctx.w1) & ~cancel
    pat = sample_patients(ctx, pats, dept)
    order = np.argsort(admit, kind="stable")
    s = pd.DataFrame({"_pat": pat, "DEPT_CODE": dept, "ADMIT_ROUTE": route, "ADMIT_TIME": admit,
                      "DISCHARGE_TIME": np.where(discharged, discharge, np.nan), "CANCEL_FLAG": cancel}
                     ).iloc[order].reset_index(drop=True)
    n = len(s)
    s["INP_NO"] = seq_ids("ZY", s.ADMIT_TIME.to_numpy(), 4)
    s["TIMES"] = s.groupby("_pat").cumcount().to_numpy() + 1 + rng.integers(0, 3, n) * (rng.random(n) < 0.3)
    s["WARD_CODE"] = "B" + s.DEPT_CODE
    s["BED_NO"] = rng.integers(1, 60, n).astype(str)
    s["ROOM_NO"] = ((s.BED_NO.astype(int) - 1) // 3 + 1).astype(str).str.zfill(2)
    dept = s.DEPT_CODE.to_numpy()
    main = np.empty(n, dtype=object)
    for code in np.unique(dept):
        idx = np.flatnonzero(dept == code)
        main[idx] = ctx.pick(catalog.DEPARTMENTS[code]["diag"], len(idx))
        for col, titles in (("RESIDENT_NO", ["YS"]), ("ATTENDING_NO", ["ZZ"]), ("CHIEF_NO", ["ZR", "FZR"])):
            pool = _staff_of(staff, code, titles)
            s.loc[idx, col] = pool[rng.integers(0, len(pool), len(idx))]
        nurses = _staff_of(staff, "B" + code, ["ZGHS", "HS"])
        s.loc[idx, "NURSE_NO"] = nurses[rng.integers(0, len(nurses), len(idx))]
    s["ADMIT_DIAG"] = main
    s["DIS_MAIN_DIAG"] = main
    s["OTHER_DIAGS"] = [list(dict.fromkeys(x for x in rng.choice(COMORBID, k) if x != m))
                        for m, k in zip(main, rng.choice([0, 0, 1, 1, 2, 3], n))]
    # Drawn among discharged stays only, so even a small demo shows every way of leaving.
    way = np.full(n, "01", dtype=object)
    done = s.DISCHARGE_TIME.notna().to_numpy()
    icu, ward = np.flatnonzero(done & (dept == "2801")), np.flatnonzero(done & (dept != "2801"))
    way[icu] = ctx.pick(["01", "02", "05", "04"], len(icu), [0.7, 0.15, 0.1, 0.05])
    way[ward] = ctx.pick(["01", "02", "03", "04", "05", "99"], len(ward), [0.9, 0.03, 0.02, 0.03, 0.005, 0.015])
    s["DISCHARGE_WAY"] = way
    s["ADMIT_CONDITION"] = ctx.pick(["Y", "LC", "BM", "W"], n, [0.8, 0.12, 0.05, 0.03])
    s["REG_TIME"] = s.ADMIT_TIME + rng.integers(2, 30, n) * MINUTE
    s["CANCEL_TIME"] = np.where(s.CANCEL_FLAG, s.REG_TIME + rng.integers(10, 120, n) * MINUTE, np.nan)
    s["CANCEL_FLAG"] = np.where(s.CANCEL_FLAG, "1", "0")
    # In-hospital stays are touched by the HIS every day (cost totals, last order execution), so
    # their admission row changes inside the window even when admitted long before it.
    running = (s.CANCEL_FLAG == "0").to_numpy() & s.DISCHARGE_TIME.isna().to_numpy()
    touch = ctx.w1 - 1 - rng.integers(HOUR, 5 * HOUR, n)
    s["LAST_ACTIVITY"] = np.where(running, np.maximum(touch, s.ADMIT_TIME.to_numpy() + HOUR), np.nan)
    # 病案归档: coders archive the homepage within a day of discharge; the HIS stamps PAT_VISIT.
    dis = s.DISCHARGE_TIME.to_numpy()
    s["ARCHIVE_TIME"] = np.where(np.isnan(dis), np.nan,
                                 np.minimum(dis + rng.integers(1, 20, n) * HOUR, ctx.w1 - 1))
    # Blood groups reach the homepage of discharged stays: draw them there first so all codes show.
    order = np.r_[np.flatnonzero(done & (s.CANCEL_FLAG == "0").to_numpy()),
                  np.flatnonzero(~(done & (s.CANCEL_FLAG == "0").to_numpy()))]
    abo = np.empty(n, dtype=object)
    rh = np.empty(n, dtype=object)
    abo[order] = ctx.pick(["A", "B", "O", "AB", "U", "W"], n, [0.26, 0.22, 0.42, 0.06, 0.02, 0.02])
    rh[order] = ctx.pick(["阳", "阴", "不详", "未查"], n, [0.95, 0.01, 0.02, 0.02])
    s["ABO"], s["RH"] = abo, rh
    return s


def operations(ctx: Ctx, st: pd.DataFrame, staff: pd.DataFrame) -> pd.DataFrame:
    """OPER_RECORD: one theatre episode for most surgical stays (PCI = angiography + stent)."""
    rng = ctx.rng
    live = st[(st.CANCEL_FLAG == "0")]
    rows = []
    anaes = _staff_of(staff, "2601", ["ZR", "ZZ", "YS"])
    for code in sorted(live.DEPT_CODE.unique()):
        ops = catalog.DEPARTMENTS[code]["ops"]
        if not ops:
            continue
        sub = live[live.DEPT_CODE == code]
        # Only stays that are still in hospital long enough for the operation can have one.
        first_start = sub.ADMIT_TIME.to_numpy() + (2 if code == "0502" else 20) * HOUR
        limit = np.fmin(sub.DISCHARGE_TIME.to_numpy(), ctx.w1)
        fits = first_start + 8 * HOUR < limit
        operated = fits & (rng.random(len(sub)) < catalog.OPERATED_SHARE.get(code, 0.75))
        operated[np.flatnonzero(fits)[: len(ops)]] = True     # every operation at least once
        chosen = sub[operated]
        picks = ctx.pick(ops, len(chosen))
        surgeons = _staff_of(staff, code, ["ZR", "FZR", "ZZ"])
        assistants = _staff_of(staff, code, ["YS", "ZZ"])
        nurses = _staff_of(staff, "B" + code, ["HS", "ZGHS"])
        for stay, op in zip(chosen.to_dict("records"), picks):
            stay = pd.Series(stay)
            procs = ["88.5500", "36.0700"] if op == "36.0700" else [op]
            end_limit = stay.DISCHARGE_TIME if not np.isnan(stay.DISCHARGE_TIME) else ctx.w1
            lo = 2 if code == "0502" else 20
            hi = max(lo + 1, min(60 if code != "0502" else 20, int((min(end_limit, ctx.w1) - stay.ADMIT_TIME)
                                                                    // HOUR) - 8))
            start = stay.ADMIT_TIME + int(rng.integers(lo, hi)) * HOUR
            cursor = start
            for seq, p in enumerate(procs, 1):
                level, anes, incision, minutes, _ = catalog.OPERATIONS[p]
                dur = int(minutes * rng.uniform(0.7, 1.4)) * MINUTE
                if cursor + dur + 3 * HOUR >= min(end_limit, ctx.w1):
                    break
                rows.append({"INP_NO": stay.INP_NO, "_pat": stay._pat, "DEPT_CODE": code, "OPER_SEQ": seq,
                             "OPER_CODE": p, "OPER_LEVEL": level, "ANES_METHOD": anes, "INCISION": incision,
                             "START_TIME": cursor, "END_TIME": cursor + dur,
                             "SURGEON_NO": surgeons[rng.integers(0, len(surgeons))],
                             "ASSIST1_NO": assistants[rng.integers(0, len(assistants))],
                             "ANESTHETIST_NO": anaes[rng.integers(0, len(anaes))],
                             "NURSE_NO": nurses[rng.integers(0, len(nurses))],
                             "PRE_DIAG": stay.ADMIT_DIAG, "POST_DIAG": stay.DIS_MAIN_DIAG,
                             "ASA": ["P1", "P2", "P2", "P3"][int(rng.integers(0, 4))],
                             "BLOOD_LOSS": float(rng.integers(5, 60) * (5 if level in ("三级", "四级") else 1)),
                             "EMERGENCY": "2" if stay.ADMIT_ROUTE == "JZ" else "1"})
                cursor += dur + 10 * MINUTE
    ops = pd.DataFrame(rows)
    if ops.empty:
        return ops
    ops["OPER_NAME"] = [name_of("his_oper", c) for c in ops.OPER_CODE]
    healing = np.full(len(ops), "其他", dtype=object)          # no incision: nothing to heal
    cut = np.flatnonzero(ops.INCISION.to_numpy() != "0")
    healing[cut] = ctx.pick(["甲", "乙", "丙"], len(cut), [0.93, 0.05, 0.02])
    ops["HEALING"] = healing
    ops["ANES_START"] = ops.START_TIME - 20 * MINUTE
    ops["ANES_END"] = ops.END_TIME + 10 * MINUTE
    ops["ROOM"] = "手术间" + pd.Series(rng.integers(1, 13, len(ops))).astype(str).str.zfill(2)
    ops["OPER_GROUP"] = ops.groupby("INP_NO").ngroup().astype(str).str.zfill(6).to_numpy()
    ops["OPER_ID"] = seq_ids("SS", ops.START_TIME.to_numpy(), 4)
    ops["UPDATE_TIME"] = np.minimum(ops.END_TIME + 40 * MINUTE, ctx.w1 - 1)
    return ops


def stay_days(ctx: Ctx, st: pd.DataFrame, since: int | None = None) -> pd.DataFrame:
    """One row per stay and calendar day the patient spends in hospital, from `since` (default:
    the window start) to the window end."""
    live = st[st.CANCEL_FLAG == "0"]
    first = np.maximum(live.ADMIT_TIME.to_numpy() // DAY * DAY, ctx.w0 if since is None else since)
    end = np.where(np.isnan(live.DISCHARGE_TIME), ctx.w1 - 1, live.DISCHARGE_TIME).astype(np.int64)
    last = end // DAY * DAY
    k = np.maximum(0, (last - first) // DAY + 1)
    rows = np.repeat(np.arange(len(live)), k)
    day = np.repeat(first, k) + (np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)) * DAY
    return pd.DataFrame({"_stay": live.index.to_numpy()[rows], "DAY": day,
                         "ADMIT_TIME": live.ADMIT_TIME.to_numpy()[rows], "END": end[rows]})


def orders(ctx: Ctx, st: pd.DataFrame, days: pd.DataFrame, ops: pd.DataFrame, staff: pd.DataFrame
           ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """INP_ORDERS (long-term care, diet and drugs; temporary labs, exams and surgery) and the
    lab / exam requests they send to LIS and PACS."""
    rng = ctx.rng
    live = st[st.CANCEL_FLAG == "0"]
    out = []
    # Long-term orders, written at admission.
    n = len(live)
    base = {"_stay": live.index.to_numpy(), "START": live.ADMIT_TIME.to_numpy() + 40 * MINUTE,
            "STOP": live.DISCHARGE_TIME.to_numpy()}
    for cls, code, name in (("H", "120100002", "二级护理"), ("I", "YS01", "普食")):
        out.append(pd.DataFrame({**base, "CLASS": cls, "TERM": "1", "ITEM_CODE": code, "ITEM_NAME": name}))
    oxygen = (live.DEPT_CODE.isin(["0301", "0304", "2801"]) | (rng.random(n) < 0.15)).to_numpy()
    out.append(pd.DataFrame({k: v[oxygen] for k, v in base.items()}).assign(
        CLASS="E", TERM="1", ITEM_CODE="120800001", ITEM_NAME="持续低流量吸氧"))
    k = rng.integers(1, 4, n)
    rows = np.repeat(np.arange(n), k)
    dept = live.DEPT_CODE.to_numpy()[rows]
    drug = np.empty(len(rows), dtype=object)
    for code in np.unique(dept):
        idx = np.flatnonzero(dept == code)
        drug[idx] = ctx.pick(catalog.DEPT_DRUGS[code], len(idx))
    d = pd.DataFrame({"_stay": live.index.to_numpy()[rows], "START": base["START"][rows] + 5 * MINUTE,
                      "STOP": base["STOP"][rows], "CLASS": "A", "TERM": "1", "ITEM_CODE": drug})
    d = d.drop_duplicates(["_stay", "ITEM_CODE"])
    d["ITEM_NAME"] = [catalog.DRUGS[c][0] for c in d.ITEM_CODE]
    out.append(d)
    # Temporary lab orders: admission panels, then a few per day in hospital.
    adm = live[live.ADMIT_TIME >= ctx.w0]
    k = rng.integers(3, 6, len(adm))
    r = np.repeat(np.arange(len(adm)), k)
    lab_a = pd.DataFrame({"_stay": adm.index.to_numpy()[r],
                          "START": adm.ADMIT_TIME.to_numpy()[r] + rng.integers(30, 180, len(r)) * MINUTE,
                          "ITEM_CODE": ctx.pick(catalog.ADMISSION_LABS, len(r))})
    # Daily labs, drawn from a few days before the window so slow cultures report inside it.
    lab_days = stay_days(ctx, st, ctx.w0 - 3 * DAY)
    per = rng.poisson(3.2, len(lab_days))
    r = np.repeat(np.arange(len(lab_days)), per)
    dd = lab_days.iloc[r]
    ddept = st.DEPT_CODE.to_numpy()[dd._stay.to_numpy()]
    panel = np.empty(len(r), dtype=object)
    for code in np.unique(ddept):
        idx = np.flatnonzero(ddept == code)
        panel[idx] = ctx.pick(catalog.DEPT_LABS[code] + ["XCG", "DJZ"], len(idx))
    lab_d = pd.DataFrame({"_stay": dd._stay.to_numpy(),
                          "START": dd.DAY.to_numpy() + rng.integers(6 * HOUR, 10 * HOUR, len(r)),
                          "ITEM_CODE": panel})
    # Before the window only the slow cultures matter (their reports land inside it).
    lab_d = lab_d[(lab_d.START >= ctx.w0) | lab_d.ITEM_CODE.isin(["XPY", "NPY"])]
    lab = pd.concat([lab_a, lab_d], ignore_index=True)
    lab = lab[(lab.START > st.ADMIT_TIME.to_numpy()[lab._stay]) & (lab.START < days_end(st, lab._stay, ctx))]
    lab = lab.drop_duplicates(["_stay", "ITEM_CODE", "START"])
    lab = lab.assign(CLASS="C", TERM="0", STOP=np.nan, ITEM_NAME=[name_of("lis_panel", c) for c in lab.ITEM_CODE])
    out.append(lab)
    # Exams: one or two per admission in the window.
    k = rng.integers(1, 3, len(adm))
    r = np.repeat(np.arange(len(adm)), k)
    edept = adm.DEPT_CODE.to_numpy()[r]
    exam = np.empty(len(r), dtype=object)
    for code in np.unique(edept):
        idx = np.flatnonzero(edept == code)
        exam[idx] = ctx.pick(catalog.DEPT_EXAMS[code], len(idx))
    ex = pd.DataFrame({"_stay": adm.index.to_numpy()[r],
                       "START": adm.ADMIT_TIME.to_numpy()[r] + rng.integers(1, 20, len(r)) * HOUR,
                       "ITEM_CODE": exam})
    ex = ex[ex.START < days_end(st, ex._stay, ctx)].drop_duplicates(["_stay", "ITEM_CODE"])
    ex = ex.assign(CLASS="D", TERM="0", STOP=np.nan, ITEM_NAME=[name_of("pacs_item", c) for c in ex.ITEM_CODE])
    out.append(ex)
    if not ops.empty:
        inp_index = pd.Series(st.index.to_numpy(), index=st.INP_NO)
        first = ops[ops.OPER_SEQ == 1]
        out.append(pd.DataFrame({"_stay": inp_index.loc[first.INP_NO].to_numpy(),
                                 "START": first.START_TIME.to_numpy() - 18 * HOUR, "CLASS": "F", "TERM": "0",
                                 "STOP": np.nan, "ITEM_CODE": "SS" + first.OPER_CODE.str.replace(".", ""),
                                 "ITEM_NAME": first.OPER_NAME.to_numpy(), "_oper_inp": first.INP_NO.to_numpy()}))
    o = pd.concat(out, ignore_index=True)
    o["START"] = np.maximum(o.START.to_numpy(), st.ADMIT_TIME.to_numpy()[o._stay] + 10 * MINUTE)
    o = o[o.START < ctx.w1].copy()
    stays_ = st.loc[o._stay]
    o["INP_NO"] = stays_.INP_NO.to_numpy()
    o["_pat"] = stays_._pat.to_numpy()
    o["DEPT_CODE"] = stays_.DEPT_CODE.to_numpy()
    o["WARD_CODE"] = stays_.WARD_CODE.to_numpy()
    o["BED_NO"] = stays_.BED_NO.to_numpy()
    o["TIMES"] = stays_.TIMES.to_numpy()
    o["DOCTOR_NO"] = stays_.RESIDENT_NO.to_numpy()
    o["NURSE_NO"] = stays_.NURSE_NO.to_numpy()
    o["WRITE_TIME"] = o.START - rng.integers(1, 20, len(o)) * MINUTE
    o["AUDIT_TIME"] = o.WRITE_TIME + rng.integers(2, 30, len(o)) * MINUTE
    o = o.sort_values(["WRITE_TIME", "_stay", "ITEM_CODE"], kind="stable").reset_index(drop=True)
    o["ORDER_NO"] = seq_ids("YZ", o.WRITE_TIME.to_numpy(), 6)
    o["ORDER_GROUP"] = o.ORDER_NO
    cancel = (rng.random(len(o)) < 0.01) & (o.CLASS.isin(["A", "C"]))
    o["CANCEL_FLAG"] = np.where(cancel, "1", "0")
    o["STATUS"] = np.where(cancel, "作废", np.where(o.STOP.notna() | (o.TERM == "0"), "停止", "执行"))
    o.loc[o.TERM == "0", "STOP"] = o.START + 30 * MINUTE
    if not ops.empty:       # a surgery order is completed when its operation ends
        op_end = ops.groupby("INP_NO").END_TIME.max()
        surg = (o.CLASS == "F").to_numpy()
        o.loc[surg, "STOP"] = op_end.reindex(o.INP_NO[surg]).to_numpy()
    o["STOP"] = np.where(o.STOP.to_numpy() >= ctx.w1, np.nan, o.STOP.to_numpy())
    o["_change"] = np.minimum(np.fmax(o.AUDIT_TIME.to_numpy(), o.STOP.to_numpy()), ctx.w1 - 1)
    # A running long-term order records its last execution (LAST_PERFORM_TIME) on the row.
    running = (o.TERM == "1").to_numpy() & o.STOP.isna().to_numpy() & (o.CANCEL_FLAG == "0").to_numpy()
    last = st.LAST_ACTIVITY.to_numpy()[o._stay.to_numpy()]
    o["_change"] = np.where(running, np.fmax(o._change.to_numpy(), last), o._change.to_numpy())
    drug_info = pd.DataFrame.from_dict(catalog.DRUGS, orient="index").iloc[:, [4, 5, 6, 7, 11]]
    drug_info.columns = ["DOSE", "DOSE_UNIT", "FREQ", "ROUTE", "INSUR"]
    is_drug = o.CLASS == "A"
    for c in drug_info.columns:
        o[c] = None
        o.loc[is_drug, c] = drug_info.loc[o.ITEM_CODE[is_drug], c].to_numpy()
    o["EXEC_DEPT"] = np.select([o.CLASS == "C", o.CLASS == "D", o.CLASS == "A", o.CLASS == "F"],
                               ["3001", [catalog.EXAMS.get(c, ("",) * 5)[4] for c in o.ITEM_CODE], "6001", "2601"],
                               o.WARD_CODE)
    o["APPLY_NO"] = np.where(o.CLASS.isin(["C", "D", "F"]), "SQ" + o.ORDER_NO.str[2:], None)
    live_o = o[o.CANCEL_FLAG == "0"]
    lab_req = _requests(live_o[live_o.CLASS == "C"], st).rename(columns={"ITEM_CODE": "PANEL"})
    exam_req = _requests(live_o[live_o.CLASS == "D"], st).rename(columns={"ITEM_CODE": "EXAM"})
    return o, lab_req, exam_req


def days_end(st: pd.DataFrame, idx: pd.Series, ctx: Ctx) -> np.ndarray:
    dis = st.DISCHARGE_TIME.to_numpy()[np.asarray(idx)]
    return np.where(np.isnan(dis), ctx.w1, dis)


def _requests(o: pd.DataFrame, st: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"VISIT_TYPE": "I", "VISIT_NO": o.INP_NO.to_numpy(), "_pat": o._pat.to_numpy(),
                         "DEPT_CODE": o.DEPT_CODE.to_numpy(), "DOCTOR_NO": o.DOCTOR_NO.to_numpy(),
                         "APPLY_TIME": o.START.to_numpy(), "ORDER_NO": o.ORDER_NO.to_numpy(),
                         "APPLY_NO": o.APPLY_NO.to_numpy(), "ITEM_CODE": o.ITEM_CODE.to_numpy(),
                         "DIAG_CODE": st.ADMIT_DIAG.to_numpy()[o._stay.to_numpy()]})


def diagnoses(st: pd.DataFrame) -> pd.DataFrame:
    """INP_DIAGNOSIS: admission diagnosis (RY) and, once discharged, the discharge ones (CY)."""
    live = st[st.CANCEL_FLAG == "0"]
    ry = pd.DataFrame({"INP_NO": live.INP_NO, "_pat": live._pat, "DIAG_TYPE": "RY", "DIAG_SEQ": 1,
                       "DIAG_CODE": live.ADMIT_DIAG, "MAIN_FLAG": "1", "DIAG_TIME": live.ADMIT_TIME + HOUR,
                       "DOCTOR_NO": live.RESIDENT_NO, "DEPT_CODE": live.DEPT_CODE, "TIMES": live.TIMES,
                       "ADMIT_CONDITION": live.ADMIT_CONDITION})
    dis = live[live.DISCHARGE_TIME.notna()]
    rows = []
    for stay in dis.to_dict("records"):
        codes = [stay["DIS_MAIN_DIAG"]] + list(stay["OTHER_DIAGS"])
        for seq, code in enumerate(codes, 1):
            rows.append((stay["INP_NO"], stay["_pat"], "CY", seq, code, "1" if seq == 1 else "0",
                         stay["DISCHARGE_TIME"] - 2 * HOUR, stay["ATTENDING_NO"], stay["DEPT_CODE"], stay["TIMES"],
                         stay["ADMIT_CONDITION"] if seq == 1 else "Y"))
    cy = pd.DataFrame(rows, columns=ry.columns)
    d = pd.concat([ry, cy], ignore_index=True)
    d["DIAG_NAME"] = [name_of("his_diag", c) for c in d.DIAG_CODE]
    d["OUTCOME"] = np.where(d.DIAG_TYPE == "CY", "好转", None)
    d["DIAG_ID"] = ("ZD" + d.INP_NO.str[2:] + d.DIAG_TYPE + d.DIAG_SEQ.astype(str).str.zfill(2))
    return d


def bed_census(ctx: Ctx, st: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """WARD_BED_DAILY: a 23:59 snapshot per ward and day (the 床位占用情况 daily report)."""
    live = st[st.CANCEL_FLAG == "0"]
    admit = live.ADMIT_TIME.to_numpy()
    dis = np.where(np.isnan(live.DISCHARGE_TIME), np.inf, live.DISCHARGE_TIME)
    ward = live.WARD_CODE.to_numpy()
    death = live.DISCHARGE_WAY.to_numpy() == "05"
    rows = []
    wards = sorted(set(ward) | {"B" + c for c, i in catalog.DEPARTMENTS.items() if i["beds"]})
    census = {}
    for day in ctx.day_starts():
        snap = day + DAY - MINUTE
        for w in wards:
            m = ward == w
            census[(day, w)] = (m & (admit <= snap) & (dis > snap)).sum()
    peak = {w: max(census[(d, w)] for d in ctx.day_starts()) for w in wards}
    approved = {w: int(np.ceil(max(peak[w] * 1.15, 5) / 5) * 5) for w in wards}
    for day in ctx.day_starts():
        snap = day + DAY - MINUTE
        for w in wards:
            m = ward == w
            occupied = int(census[(day, w)])
            open_beds = approved[w]
            new = int((m & (admit >= day) & (admit <= snap)).sum())
            out = int((m & (dis >= day) & (dis <= snap)).sum())
            rows.append({"WARD_CODE": w, "WARD_NAME": name_of("his_dept", w), "STAT_DATE": day, "STAT_TIME": snap,
                         "APPROVED_BEDS": approved[w], "ACTUAL_BEDS": approved[w], "OPEN_BEDS": open_beds,
                         "USED_BEDS": min(occupied, open_beds), "REMAIN_PATIENTS": occupied, "NEW_ADMIT": new,
                         "TRANSFER_IN": 0, "TRANSFER_OUT": 0, "DISCHARGED": out,
                         "DEATHS": int((m & death & (dis >= day) & (dis <= snap)).sum()),
                         "EMPTY_BEDS": max(open_beds - occupied, 0), "EXTRA_BEDS": max(occupied - open_beds, 0),
                         "ICU_OPEN": approved[w] if w == "B2801" else 0,
                         "ICU_USED": min(occupied, open_beds) if w == "B2801" else 0})
    return pd.DataFrame(rows), approved

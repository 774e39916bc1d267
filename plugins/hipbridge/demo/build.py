"""Build the demo hospital: `his.db`, `lis.db`, `pacs.db` (SQLite) in vendor-like schemas.

Why a demo with real vendor shapes: every hipbridge feature (incremental extraction, code
mapping, quality gate, retention) must be exercised against data that looks like a hospital's —
local codes, naive local timestamps as text, change-time columns, voided rows and a few defects —
without access to a real HIS. The same seed and end date always give the same files.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from hipbridge.io.engines import dispose_all, home, register_connections
from hipbridge.settings import hospital_today, settings

from . import extra_columns, his_fees, his_inp, his_org, his_outp, lis, pacs
from .codes import name_of
from .context import CARRY_IN_DAYS, DAY, HOUR, MINUTE, Ctx, running_ids
from .db import date_text, ts_text, write_table
from .people import NamePool, cover_local_codes, patients

# Volumes per day at scale 1 (a ~1,800-bed 三级甲等 hospital).
OUTPATIENT_VISITS_PER_DAY = 6000
ADMISSIONS_PER_DAY = 300


def reset_demo_frontend() -> list[Path] | None:
    """Forget what an earlier demo uploaded, because a rebuilt demo source is a different hospital.

    Without this, a second `make demo` (say DEMO_DAYS=7 after 3) found the watermark of the first
    run — the time it ran — and read nothing older: the new data never reached the front-end. The
    embedded front-end (`$HIPBRIDGE_HOME/frontend.db` and its attached operations files) is
    deleted; Airflow's run history is kept. A front-end configured with HIPBRIDGE_FRONTEND_URL is
    never deleted: None is returned and the caller runs the tables in `full` mode instead.
    """
    if settings().frontend_url:
        return None
    dispose_all()
    root = home()
    found = [root / "frontend.db", root / "frontend.db-journal", *sorted(root.glob("frontend_*.db")),
             *sorted(root.glob("frontend_*.db-journal"))]
    removed = [f for f in found if f.exists()]
    for f in removed:
        f.unlink()
    return removed


def yesterday_shanghai() -> date:
    return hospital_today() - timedelta(days=1)


def build(out_dir: Path, seed: int = 7, days: int = 3, scale: float = 0.02, end_date: date | None = None,
          register: bool = False) -> dict:
    """Write the three source databases into `out_dir`; return {"his": {table: rows}, …, "timings": …}.

    With `register`, the three databases become the sources `his`, `lis` and `pacs` of this hipbridge
    home (`$HIPBRIDGE_HOME/connections.yaml`); hipbridge never uses them otherwise.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1 (got {days})")
    if not 0 < scale <= 5:
        raise ValueError(f"scale must be in (0, 5] (got {scale})")
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(rng=np.random.default_rng(seed), end_date=end_date or yesterday_shanghai(), days=days,
              scale=scale, seed=seed)
    op_per_day = max(20.0, OUTPATIENT_VISITS_PER_DAY * scale)
    adm_per_day = max(2.0, ADMISSIONS_PER_DAY * scale)
    pool = NamePool(seed)
    n_pool = int(op_per_day * days * 0.85 + adm_per_day * (days + CARRY_IN_DAYS) + 200)
    pats = patients(ctx.rng, pool, n_pool, ctx.end_date)
    pats["PAT_ID"] = running_ids("", n_pool, 3_000_001, 10)
    staff = his_org.staff(ctx, pool)
    pharmacists = staff[staff.DEPT_CODE == "6001"].JOB_NO.to_numpy()

    sched = his_org.schedules(ctx, staff, op_per_day)
    regs = his_outp.registrations(ctx, pats, sched, op_per_day)
    cover_local_codes(ctx.rng, pats, pd.unique(regs._pat.to_numpy()))
    visits = his_outp.visits(ctx, regs, ctx.w1)
    op_diag = his_outp.diagnoses(visits)
    presc, items = his_outp.prescriptions(ctx, visits, pharmacists)
    op_lab, op_exam = his_outp.requests(ctx, visits)

    st = his_inp.stays(ctx, pats, staff, adm_per_day)
    ops = his_inp.operations(ctx, st, staff)
    sdays = his_inp.stay_days(ctx, st)
    orders, ip_lab, ip_exam = his_inp.orders(ctx, st, sdays, ops, staff)
    ip_diag = his_inp.diagnoses(st)
    beds, ward_beds = his_inp.bed_census(ctx, st)

    fees = pd.concat([his_fees.outpatient_fees(ctx, regs, visits, presc, items, op_lab, op_exam),
                      his_fees.inpatient_fees(ctx, st, sdays, orders, ops)], ignore_index=True)
    fees, settles = his_fees.finish(ctx, fees, pats, staff)
    t_events = time.perf_counter()

    lab_req = pd.concat([op_lab.assign(APPLY_NO=None), ip_lab.rename(columns={"ITEM_CODE": "PANEL"})],
                        ignore_index=True)
    lab_rep = lis.reports(ctx, lab_req, pats, staff)
    lab_res = lis.results(ctx, lab_rep)
    bac, anti = lis.cultures(ctx, lab_rep)
    exam_req = pd.concat([op_exam.assign(APPLY_NO=None), ip_exam.rename(columns={"ITEM_CODE": "EXAM"})],
                         ignore_index=True)
    exam_rep = pacs.reports(ctx, exam_req, pats, staff)
    exam_img = pacs.images(ctx, exam_rep)

    pat_rows = _patient_master(ctx, pats, regs, st, pool)
    his = {
        "HOSPITAL_INFO": (his_org.hospital(ctx), ["HOSP_CODE"], "UPDATE_TIME"),
        "DEPT_DICT": (his_org.departments(ctx, ward_beds), ["DEPT_CODE"], "UPDATE_TIME"),
        "STAFF_DICT": (staff, ["STAFF_ID"], "UPDATE_TIME"),
        "DRUG_DICT": (his_org.drugs(ctx), ["DRUG_CODE"], "UPDATE_TIME"),
        "FEE_ITEM_DICT": (his_org.fee_items(ctx), ["ITEM_CODE"], "UPDATE_TIME"),
        "PAT_MASTER_INDEX": (pat_rows, ["PAT_ID"], "UPDATE_TIME"),
        "CLINIC_SCHEDULE": (his_org.fill_schedule_counts(sched, regs, ctx.w1).drop(columns=["REG_TYPE_NAME"]),
                            ["SCHEDULE_ID"], "UPDATE_TIME"),
        "CLINIC_MASTER": (_clinic_master(regs, pats), ["REG_NO"], "UPDATE_TIME"),
        "OUTP_MR": (_outp_mr(visits, pats), ["VISIT_NO"], "UPDATE_TIME"),
        "OUTP_DIAGNOSIS": (_outp_diag(op_diag, pats), ["DIAG_ID"], "UPDATE_TIME"),
        "OUTP_PRESC": (_presc(presc, pats), ["PRESC_NO"], "UPDATE_TIME"),
        "OUTP_PRESC_DETAIL": (_presc_items(items), ["DETAIL_ID"], "UPDATE_TIME"),
        "PAT_VISIT": (_pat_visit(ctx, st, pats), ["INP_NO"], "UPDATE_TIME"),
        "INP_DIAGNOSIS": (_inp_diag(ip_diag, pats), ["DIAG_ID"], "UPDATE_TIME"),
        "INP_ORDERS": (_orders(orders, pats), ["ORDER_NO"], "UPDATE_TIME"),
        "OPER_RECORD": (_oper(ops, st, pats, orders), ["OPER_ID"], "UPDATE_TIME"),
        "FEE_DETAIL": (_fee_detail(fees, pats), ["DETAIL_ID"], "UPDATE_TIME"),
        "FEE_SETTLE": (_settle(settles, pats), ["SETTLE_NO"], "UPDATE_TIME"),
        "WARD_BED_DAILY": (_beds(beds), ["WARD_CODE", "STAT_TIME"], "STAT_TIME"),
    }
    his.update(_discharge_documents(ctx, st, pats, ip_diag, ops, fees, staff))
    lis_tables = {
        "LAB_TEST_MASTER": (_lab_master(lab_rep), ["TEST_NO"], "MODIFY_TIME"),
        "LAB_RESULT": (_times(lab_res, ["MODIFY_TIME"]), ["RESULT_ID"], "MODIFY_TIME"),
        "LAB_MICRO_RESULT": (_times(bac, ["REPORT_TIME", "MODIFY_TIME"]), ["MICRO_ID"], "MODIFY_TIME"),
        "LAB_ANTI_RESULT": (_times(anti, ["REPORT_TIME", "MODIFY_TIME"]), ["ANTI_ID"], "MODIFY_TIME"),
    }
    pacs_tables = {
        "EXAM_REPORT": (_exam_report(exam_rep), ["REPORT_ID"], "MODIFY_TIME"),
        "EXAM_IMAGE": (_times(exam_img, ["REPORT_TIME", "MODIFY_TIME"]), ["IMAGE_ID"], "MODIFY_TIME"),
    }
    extra_columns.extend(seed, his, lis_tables, pacs_tables)
    t_frames = time.perf_counter()
    summary: dict = {}
    for system, tables in (("his", his), ("lis", lis_tables), ("pacs", pacs_tables)):
        summary[system] = _write(out_dir / f"{system}.db", tables)
    if register:
        register_connections({system: f"sqlite:///{(out_dir / f'{system}.db').resolve()}"
                              for system in ("his", "lis", "pacs")})
    t_end = time.perf_counter()
    summary["window"] = {"start": ctx.start_date.isoformat(), "end": ctx.end_date.isoformat(), "days": days,
                         "scale": scale, "seed": seed}
    summary["timings"] = {"events_s": round(t_events - t0, 2), "frames_s": round(t_frames - t_events, 2),
                          "write_s": round(t_end - t_frames, 2), "total_s": round(t_end - t0, 2)}
    return summary


def _write(path: Path, tables: dict) -> dict[str, int]:
    if path.exists():
        path.unlink()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        counts = {name: write_table(conn, name, df, pk, change) for name, (df, pk, change) in tables.items()}
        conn.commit()
    finally:
        conn.close()
    return counts


# ---------------------------------------------------------------- frame shaping (vendor columns)


def _times(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    out = df.copy()
    for c in cols:
        out[c] = ts_text(out[c].to_numpy())
    return out


def _yuan(cents) -> np.ndarray:
    return np.round(np.asarray(cents, dtype=float) / 100.0, 2)


def _card(pats: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    t = pats.card_type.to_numpy()
    pid = pats.PAT_ID.to_numpy().astype(str)
    no = np.select([t == "1", t == "2", t == "3"],
                   [np.char.add("JZK", pid), np.char.add("G451000", np.char.zfill(pid, 12)),
                    pats.id_no.to_numpy().astype(str)],
                   np.char.add("EHC45", np.char.zfill(pid, 20)))
    return t, no


def _patient_master(ctx: Ctx, pats: pd.DataFrame, regs: pd.DataFrame, st: pd.DataFrame,
                    pool: NamePool) -> pd.DataFrame:
    """PAT_MASTER_INDEX: patients with any registration or stay; the HIS touches the row at each
    registration, admission, discharge and daily while in hospital — what the watermark sees."""
    rng = ctx.rng
    events = pd.concat([pd.Series(regs.REG_TIME.to_numpy(), index=regs._pat.to_numpy()),
                        pd.Series(st.ADMIT_TIME.to_numpy(), index=st._pat.to_numpy()),
                        pd.Series(st.DISCHARGE_TIME.to_numpy(), index=st._pat.to_numpy()).dropna(),
                        pd.Series(st.LAST_ACTIVITY.to_numpy(), index=st._pat.to_numpy()).dropna(),
                        pd.Series(st.ARCHIVE_TIME.to_numpy(), index=st._pat.to_numpy()).dropna()])
    first = events.groupby(level=0).min()
    last = events.groupby(level=0).max()
    idx = first.index.to_numpy()
    p = pats.iloc[idx].reset_index(drop=True)
    n = len(p)
    new = rng.random(n) < 0.35
    create = np.where(new, first.to_numpy() - 5 * MINUTE,
                      ctx.w0 - rng.integers(30, 8 * 365, n) * DAY + rng.integers(8 * HOUR, 17 * HOUR, n))
    birth_sec = (p.birth.to_numpy().astype("datetime64[s]").astype(np.int64))
    # Never registered before birth, never after the first visit (newborns are registered at birth).
    create = np.minimum(np.maximum(create, birth_sec + rng.integers(1, 30, n) * DAY + 9 * HOUR),
                        first.to_numpy() - 5 * MINUTE)
    card_type, card_no = _card(p)
    sex = np.where(p.male.to_numpy(), "M", "F").astype(object)
    mobile = p.mobile.to_numpy().copy()
    # Defects for the quality checks to find: no mobile for a few, sex not matching the ID number.
    missing = rng.choice(n, size=max(2, n // 300), replace=False)
    mobile[missing] = None
    adults = np.flatnonzero((p.id_type.to_numpy() == "1") & (p.age.to_numpy() > 20))
    sex[adults[0]] = "U"
    sex[adults[1]] = "F" if sex[adults[1]] == "M" else "M"
    contact_rel = ctx.pick(["PO", "ZN", "FM", "XD", "QT"], n, [0.5, 0.25, 0.15, 0.05, 0.05])
    contact_rel = np.where(p.age.to_numpy() < 18, "FM", contact_rel)
    return pd.DataFrame({
        "PAT_ID": p.PAT_ID, "PAT_NAME": p.name, "SEX": sex, "BIRTHDAY": date_text(p.birth.to_numpy()),
        "ID_TYPE": p.id_type, "ID_NO": p.id_no, "CARD_TYPE": card_type, "CARD_NO": card_no,
        "INSUR_CARD_NO": np.where(np.isin(p.pay, ["ZG", "JM"]), np.char.add("G45", np.char.zfill(
            p.PAT_ID.to_numpy().astype(str), 12)), None),
        "NATION": p.nation, "COUNTRY": p.country, "MARRY": p.marital, "OCCUPATION": p.occupation,
        "EDUCATION": ctx.pick(["初中", "高中", "大专", "本科", "小学"], n), "PAY_METHOD": p.pay,
        "AREA_CODE": p.area_id, "ADDR": p.address, "HUKOU_ADDR": p.address, "MOBILE": mobile,
        "CONTACT_NAME": pool.names(rng, rng.random(n) < 0.5), "CONTACT_RELATION": contact_rel,
        "CONTACT_PHONE": p.mobile.to_numpy()[rng.permutation(n)], "CREATE_TIME": ts_text(create),
        "UPDATE_TIME": ts_text(np.maximum(last.to_numpy(), create)),
        "_pat": idx,
    }).drop(columns=["_pat"])


def _clinic_master(regs: pd.DataFrame, pats: pd.DataFrame) -> pd.DataFrame:
    p = pats.iloc[regs._pat.to_numpy()]
    card_type, card_no = _card(p)
    return pd.DataFrame({
        "REG_NO": regs.REG_NO, "VISIT_NO": regs.VISIT_NO, "PAT_ID": p.PAT_ID.to_numpy(),
        "PAT_NAME": p.name.to_numpy(), "SEX": np.where(p.male.to_numpy(), "M", "F"),
        "BIRTHDAY": date_text(p.birth.to_numpy()), "ID_TYPE": p.id_type.to_numpy(), "ID_NO": p.id_no.to_numpy(),
        "CARD_TYPE": card_type, "CARD_NO": card_no, "VISIT_TYPE": regs.VISIT_TYPE, "REG_TYPE": regs.REG_TYPE,
        "DEPT_CODE": regs.DEPT_CODE, "DEPT_NAME": [name_of("his_dept", d) for d in regs.DEPT_CODE],
        "DOCTOR_NO": regs.DOCTOR_NO, "CLINIC_DATE": date_text(regs.CLINIC_DATE.to_numpy()),
        "TIME_SPAN": regs.TIME_SPAN, "REG_TIME": ts_text(regs.REG_TIME.to_numpy()), "APPT_FLAG": regs.APPT_FLAG,
        "REG_CHANNEL": regs.REG_CHANNEL, "APPT_TIME": ts_text(regs.APPT_TIME.to_numpy()),
        "RETURN_FLAG": regs.RETURN_FLAG, "RETURN_TIME": ts_text(regs.RETURN_TIME.to_numpy()),
        "FIRST_VISIT": regs.FIRST_VISIT, "REG_FEE": regs.REG_FEE, "DIAG_FEE": regs.DIAG_FEE,
        "PAY_METHOD": p.pay.to_numpy(), "UPDATE_TIME": ts_text(regs._change.to_numpy()),
    })


def _outp_mr(v: pd.DataFrame, pats: pd.DataFrame) -> pd.DataFrame:
    p = pats.iloc[v._pat.to_numpy()]
    return pd.DataFrame({
        "VISIT_NO": v.VISIT_NO, "REG_NO": v.REG_NO, "PAT_ID": p.PAT_ID.to_numpy(), "OUTP_NO": p.PAT_ID.to_numpy(),
        "VISIT_TYPE": v.VISIT_TYPE, "PAT_NAME": p.name.to_numpy(), "SEX": np.where(p.male.to_numpy(), "M", "F"),
        "AGE": p.age.to_numpy().astype(float), "DEPT_CODE": v.DEPT_CODE, "DOCTOR_NO": v.DOCTOR_NO,
        "DOCTOR_NAME": v.DOCTOR_NAME, "VISIT_START": ts_text(v.VISIT_START.to_numpy()),
        "VISIT_END": ts_text(v.VISIT_END.to_numpy()), "FIRST_VISIT": v.FIRST_VISIT,
        "CHIEF_COMPLAINT": v.CHIEF_COMPLAINT, "PRESENT_ILLNESS": v.PRESENT_ILLNESS,
        "PAST_HISTORY": v.PAST_HISTORY, "PHYSICAL_EXAM": v.PHYSICAL_EXAM, "TREATMENT": v.TREATMENT,
        "DIAG_CODE": v.MAIN_DIAG, "DIAG_NAME": v.MAIN_DIAG_NAME, "INFECTIOUS_FLAG": v.INFECTIOUS_FLAG,
        "PAY_METHOD": p.pay.to_numpy(), "REFERRAL_FLAG": v.REFERRAL_FLAG,
        "UPDATE_TIME": ts_text(v.VISIT_END.to_numpy() + 2 * MINUTE),
    })


def _outp_diag(d: pd.DataFrame, pats: pd.DataFrame) -> pd.DataFrame:
    p = pats.iloc[d._pat.to_numpy()]
    return pd.DataFrame({
        "DIAG_ID": d.DIAG_ID, "VISIT_NO": d.VISIT_NO, "VISIT_TYPE": d.VISIT_TYPE, "PAT_ID": p.PAT_ID.to_numpy(),
        "DIAG_TYPE": d.DIAG_TYPE, "DIAG_SEQ": d.DIAG_SEQ, "DIAG_CODE": d.DIAG_CODE, "DIAG_NAME": d.DIAG_NAME,
        "MAIN_FLAG": d.MAIN_FLAG, "DIAG_TIME": ts_text(d.DIAG_TIME.to_numpy()), "DOCTOR_NO": d.DOCTOR_NO,
        "DEPT_CODE": d.DEPT_CODE, "UPDATE_TIME": ts_text(d.DIAG_TIME.to_numpy()),
    })


def _presc(h: pd.DataFrame, pats: pd.DataFrame) -> pd.DataFrame:
    p = pats.iloc[h._pat.to_numpy()]
    return pd.DataFrame({
        "PRESC_NO": h.PRESC_NO, "VISIT_NO": h.VISIT_NO, "PAT_ID": p.PAT_ID.to_numpy(), "VISIT_TYPE": h.VISIT_TYPE,
        "PAT_NAME": p.name.to_numpy(), "SEX": np.where(p.male.to_numpy(), "M", "F"),
        "AGE": p.age.to_numpy().astype(float), "PRESC_TYPE": h.PRESC_TYPE, "PRESC_TIME": ts_text(h.PRESC_TIME),
        "DEPT_CODE": h.DEPT_CODE, "DOCTOR_NO": h.DOCTOR_NO, "PHARMACIST_NO": h.PHARMACIST_NO,
        "AUDIT_TIME": ts_text(h.AUDIT_TIME), "DIAG_CODE": h.DIAG_CODE, "DIAG_NAME": h.DIAG_NAME,
        "VALID_DAYS": h.VALID_DAYS, "AMOUNT": _yuan(h.AMOUNT_CENTS), "CANCEL_FLAG": h.CANCEL_FLAG,
        "CANCEL_TIME": ts_text(h.CANCEL_TIME.to_numpy()), "UPDATE_TIME": ts_text(h._change.to_numpy()),
    })


def _presc_items(it: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "DETAIL_ID": it.DETAIL_ID, "PRESC_NO": it.PRESC_NO, "VISIT_NO": it.VISIT_NO, "ITEM_NO": it.ITEM_NO,
        "GROUP_NO": it.GROUP_NO, "DRUG_CODE": it.DRUG_CODE, "GENERIC_NAME": it.GENERIC, "TRADE_NAME": it.TRADE,
        "SPEC": it.SPEC, "FORM": it.FORM, "DOSE": it.DOSE.astype(float), "DOSE_UNIT": it.DOSE_UNIT,
        "FREQ": it.FREQ, "ROUTE": it.ROUTE, "DAYS": it.DAYS,
        "TOTAL_DOSE": (it.DOSE.astype(float) * it.DAYS * [his_fees.FREQ_PER_DAY[f] for f in it.FREQ]).round(2),
        "QUANTITY": it.QUANTITY, "UNIT": it.PACK_UNIT, "PRICE": it.PRICE.astype(float),
        "AMOUNT": _yuan(it.AMOUNT_CENTS), "SKIN_TEST": np.where(it.DRUG_CODE == "Y0001", "1", "0"),
        "ANTI_FLAG": np.where(it.ANTI.isin(["非限制", "限制", "特殊使用"]), "1", "0"),
        "ANTI_LEVEL": it.ANTI.replace("", None), "INSUR_CODE": it.INSUR,
        "UPDATE_TIME": ts_text(it._change.to_numpy()),
    })


def _pat_visit(ctx: Ctx, st: pd.DataFrame, pats: pd.DataFrame) -> pd.DataFrame:
    p = pats.iloc[st._pat.to_numpy()]
    card_type, card_no = _card(p)
    dis = st.DISCHARGE_TIME.to_numpy()
    change = np.fmax(np.fmax(np.fmax(st.REG_TIME.to_numpy(), dis), st.CANCEL_TIME.to_numpy()),
                     np.fmax(st.LAST_ACTIVITY.to_numpy(), st.ARCHIVE_TIME.to_numpy()))
    discharged = ~np.isnan(dis)
    return pd.DataFrame({
        "INP_NO": st.INP_NO, "PAT_ID": p.PAT_ID.to_numpy(), "INP_CODE": np.char.add("7", np.char.zfill(
            p.PAT_ID.to_numpy().astype(str), 9)), "TIMES": st.TIMES.astype(float),
        "PAT_NAME": p.name.to_numpy(), "SEX": np.where(p.male.to_numpy(), "M", "F"),
        "BIRTHDAY": date_text(p.birth.to_numpy()), "AGE": p.age.to_numpy().astype(float),
        "ID_TYPE": p.id_type.to_numpy(), "ID_NO": p.id_no.to_numpy(), "CARD_TYPE": card_type, "CARD_NO": card_no,
        "PAY_METHOD": p.pay.to_numpy(), "ADMIT_ROUTE": st.ADMIT_ROUTE, "ADMIT_DEPT": st.DEPT_CODE,
        "ADMIT_WARD": st.WARD_CODE, "ROOM_NO": st.ROOM_NO, "BED_NO": st.BED_NO,
        "ADMIT_TIME": ts_text(st.ADMIT_TIME.to_numpy()), "ADMIT_DIAG_CODE": st.ADMIT_DIAG,
        "ADMIT_DIAG_NAME": [name_of("his_diag", c) for c in st.ADMIT_DIAG],
        "ADMIT_CONDITION": st.ADMIT_CONDITION, "HOME_ADDR": p.address.to_numpy(),
        "CONTACT_PHONE": p.mobile.to_numpy(), "OPERATOR_NO": st.NURSE_NO, "REG_TIME": ts_text(st.REG_TIME.to_numpy()),
        "DISCHARGE_DEPT": np.where(discharged, st.DEPT_CODE, None),
        "DISCHARGE_WARD": np.where(discharged, st.WARD_CODE, None), "DISCHARGE_TIME": ts_text(dis),
        "DISCHARGE_WAY": np.where(discharged, st.DISCHARGE_WAY, None),
        "DISCHARGE_DIAG_CODE": np.where(discharged, st.DIS_MAIN_DIAG, None),
        "DISCHARGE_DIAG_NAME": np.where(discharged, [name_of("his_diag", c) for c in st.DIS_MAIN_DIAG], None),
        "RESIDENT_NO": st.RESIDENT_NO, "ATTENDING_NO": st.ATTENDING_NO, "CHIEF_NO": st.CHIEF_NO,
        "IN_STATUS": np.where(st.CANCEL_FLAG == "1", "作废", np.where(discharged, "出院", "在院")),
        "CANCEL_FLAG": st.CANCEL_FLAG, "CANCEL_TIME": ts_text(st.CANCEL_TIME.to_numpy()),
        "UPDATE_TIME": ts_text(np.minimum(change, ctx.w1 - 1)),
    })


def _inp_diag(d: pd.DataFrame, pats: pd.DataFrame) -> pd.DataFrame:
    p = pats.iloc[d._pat.to_numpy()]
    return pd.DataFrame({
        "DIAG_ID": d.DIAG_ID, "INP_NO": d.INP_NO, "PAT_ID": p.PAT_ID.to_numpy(), "TIMES": d.TIMES.astype(float),
        "DIAG_TYPE": d.DIAG_TYPE, "DIAG_SEQ": d.DIAG_SEQ, "DIAG_CODE": d.DIAG_CODE, "DIAG_NAME": d.DIAG_NAME,
        "MAIN_FLAG": d.MAIN_FLAG, "ADMIT_CONDITION": d.ADMIT_CONDITION, "OUTCOME": d.OUTCOME,
        "DIAG_TIME": ts_text(d.DIAG_TIME.to_numpy()), "DOCTOR_NO": d.DOCTOR_NO, "DEPT_CODE": d.DEPT_CODE,
        "UPDATE_TIME": ts_text(d.DIAG_TIME.to_numpy()),
    })


def _orders(o: pd.DataFrame, pats: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "ORDER_NO": o.ORDER_NO, "ORDER_GROUP": o.ORDER_GROUP, "INP_NO": o.INP_NO,
        "PAT_ID": pats.PAT_ID.to_numpy()[o._pat.to_numpy()],
        "TIMES": o.TIMES.astype(float), "DEPT_CODE": o.DEPT_CODE, "WARD_CODE": o.WARD_CODE, "BED_NO": o.BED_NO,
        "ORDER_TERM": o.TERM, "ORDER_CLASS": o.CLASS, "ITEM_CODE": o.ITEM_CODE, "ITEM_NAME": o.ITEM_NAME,
        "ORDER_TEXT": o.ITEM_NAME, "INSUR_CODE": o.INSUR, "DOSE": pd.to_numeric(o.DOSE), "DOSE_UNIT": o.DOSE_UNIT,
        "FREQ": o.FREQ, "ROUTE": o.ROUTE, "WRITE_TIME": ts_text(o.WRITE_TIME.to_numpy()), "DOCTOR_NO": o.DOCTOR_NO,
        "NURSE_NO": o.NURSE_NO, "AUDIT_TIME": ts_text(o.AUDIT_TIME.to_numpy()),
        "START_TIME": ts_text(o.START.to_numpy()), "STOP_TIME": ts_text(o.STOP.to_numpy()),
        "STOP_DOCTOR_NO": np.where(o.STOP.notna(), o.DOCTOR_NO, None), "EXEC_DEPT": o.EXEC_DEPT,
        "ORDER_STATUS": o.STATUS, "APPLY_NO": o.APPLY_NO, "CANCEL_FLAG": o.CANCEL_FLAG,
        "UPDATE_TIME": ts_text(o._change.to_numpy()),
    })


def _oper(ops: pd.DataFrame, st: pd.DataFrame, pats: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    if ops.empty:
        return pd.DataFrame({"OPER_ID": pd.Series(dtype=object)})
    stay = st.set_index("INP_NO").loc[ops.INP_NO]
    p = pats.iloc[ops._pat.to_numpy()]
    surgery = orders[orders.CLASS == "F"]
    apply_by_inp = dict(zip(surgery.INP_NO, surgery.APPLY_NO))
    return pd.DataFrame({
        "OPER_ID": ops.OPER_ID, "INP_NO": ops.INP_NO, "VISIT_TYPE": "I", "OPER_GROUP": ops.OPER_GROUP,
        "OPER_SEQ": ops.OPER_SEQ.astype(float), "PAT_ID": p.PAT_ID.to_numpy(), "PAT_NAME": p.name.to_numpy(),
        "SEX": np.where(p.male.to_numpy(), "M", "F"), "AGE": p.age.to_numpy().astype(float),
        "ID_TYPE": p.id_type.to_numpy(), "ID_NO": p.id_no.to_numpy(),
        "INP_CODE": np.char.add("7", np.char.zfill(p.PAT_ID.to_numpy().astype(str), 9)),
        "TIMES": stay.TIMES.to_numpy().astype(float), "DEPT_CODE": ops.DEPT_CODE, "WARD_CODE": stay.WARD_CODE.to_numpy(),
        "BED_NO": stay.BED_NO.to_numpy(), "ABO": stay.ABO.to_numpy(), "RH": stay.RH.to_numpy(),
        "APPLY_NO": [apply_by_inp.get(i) for i in ops.INP_NO], "ROOM": ops.ROOM,
        "START_TIME": ts_text(ops.START_TIME.to_numpy()), "END_TIME": ts_text(ops.END_TIME.to_numpy()),
        "OPER_CODE": ops.OPER_CODE, "OPER_NAME": ops.OPER_NAME, "OPER_LEVEL": ops.OPER_LEVEL,
        "OPER_TYPE": ops.EMERGENCY, "PRE_DIAG": ops.PRE_DIAG, "POST_DIAG": ops.POST_DIAG,
        "INCISION": ops.INCISION, "HEALING": ops.HEALING, "ANES_METHOD": ops.ANES_METHOD, "ASA": ops.ASA,
        "ANES_START": ts_text(ops.ANES_START.to_numpy()), "ANES_END": ts_text(ops.ANES_END.to_numpy()),
        "ANESTHETIST_NO": ops.ANESTHETIST_NO, "SURGEON_NO": ops.SURGEON_NO, "ASSIST1_NO": ops.ASSIST1_NO,
        "NURSE_NO": ops.NURSE_NO, "EXEC_DEPT": "2601", "BLOOD_LOSS": ops.BLOOD_LOSS,
        "UPDATE_TIME": ts_text(ops.UPDATE_TIME.to_numpy()),
    })


def _fee_detail(f: pd.DataFrame, pats: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "DETAIL_ID": f.DETAIL_ID, "VISIT_TYPE": f.VISIT_TYPE, "VISIT_NO": f.VISIT_NO,
        "PAT_ID": pats.PAT_ID.to_numpy()[f._pat.to_numpy().astype(np.int64)],
        "SETTLE_NO": f.SETTLE_NO, "PRESC_NO": f.PRESC_NO, "ORDER_NO": f.ORDER_NO, "ITEM_CODE": f.ITEM_CODE,
        "ITEM_NAME": f.ITEM_NAME, "FEE_CLASS": f.FEE_CLASS, "PRICE": f.PRICE.astype(float), "QUANTITY": f.QTY,
        "AMOUNT": _yuan(f.AMOUNT_CENTS), "DEPT_CODE": f.DEPT_CODE, "DOCTOR_NO": f.DOCTOR_NO,
        "EXEC_DEPT": f.EXEC_DEPT, "FEE_TIME": ts_text(f.FEE_TIME.to_numpy()),
        "BILL_TIME": ts_text(f.BILL_TIME.to_numpy()), "REFUND_FLAG": f.REFUND_FLAG,
        "ORIG_DETAIL_ID": f.ORIG_DETAIL_ID,
        "UPDATE_TIME": ts_text(f._change.to_numpy()),
    })


def _settle(s: pd.DataFrame, pats: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "SETTLE_NO": s.SETTLE_NO, "VISIT_TYPE": s.VISIT_TYPE, "VISIT_NO": s.VISIT_NO,
        "PAT_ID": pats.PAT_ID.to_numpy()[s._pat.to_numpy()], "SETTLE_TYPE": s.SETTLE_TYPE,
        "SETTLE_TIME": ts_text(s.SETTLE_TIME.to_numpy()), "CASHIER_NO": s.CASHIER_NO, "PAY_METHOD": s.PAY_METHOD,
        "INSUR_SETTLE_NO": s.INSUR_SETTLE_NO, "INVOICE_NO": s.INVOICE_NO, "TOTAL": _yuan(s.TOTAL_CENTS),
        "FUND_PAY": _yuan(s.FUND_CENTS), "ACCOUNT_PAY": _yuan(s.ACCOUNT_CENTS), "CASH_PAY": _yuan(s.CASH_CENTS),
        "OTHER_PAY": _yuan(s.OTHER_CENTS), "SELF_PAY": _yuan(s.SELF_CENTS), "REFUND_FLAG": s.REFUND_FLAG,
        "ORIG_SETTLE_NO": s.ORIG_SETTLE_NO, "UPDATE_TIME": ts_text(s._change.to_numpy()),
    })


def _beds(b: pd.DataFrame) -> pd.DataFrame:
    out = b.copy()
    out["STAT_DATE"] = date_text(b.STAT_DATE.to_numpy())
    out["STAT_TIME"] = ts_text(b.STAT_TIME.to_numpy())
    return out


def _lab_master(r: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "TEST_NO": r.TEST_NO, "APPLY_NO": r.APPLY_NO, "ORDER_NO": r.ORDER_NO, "PAT_ID": r.PAT_ID,
        "PATIENT_TYPE": r.VISIT_TYPE, "VISIT_NO": r.VISIT_NO, "PAT_NAME": r.PAT_NAME, "SEX": r.SEX, "AGE": r.AGE,
        "ID_TYPE": r.ID_TYPE, "ID_NO": r.ID_NO, "APPLY_DEPT": r.DEPT_CODE, "APPLY_DOCTOR": r.DOCTOR_NO,
        "APPLY_TIME": ts_text(r.APPLY_TIME.to_numpy()), "CLINICAL_DIAG": r.DIAG_CODE, "BARCODE": r.BARCODE,
        "SPECIMEN": r.SPECIMEN, "COLLECT_TIME": ts_text(r.COLLECT_TIME.to_numpy()),
        "RECEIVE_TIME": ts_text(r.RECEIVE_TIME.to_numpy()), "TEST_TYPE": r.TEST_TYPE, "PANEL_CODE": r.PANEL,
        "PANEL_NAME": r.PANEL_NAME, "FEE_CODE": [his_fees.catalog.LAB_PANELS[c][3] for c in r.PANEL],
        "RECOGNIZE_FLAG": r.RECOGNIZE_FLAG, "LAB_DEPT": "3001", "TESTER_NO": r.TESTER_NO,
        "AUDITOR_NO": r.AUDITOR_NO, "AUDIT_TIME": ts_text(r.AUDIT_TIME.to_numpy()),
        "REPORT_TIME": ts_text(r.REPORT_TIME.to_numpy()), "CRITICAL_FLAG": r.CRITICAL_FLAG, "STATUS": r.STATUS,
        "MODIFY_TIME": ts_text(r.MODIFY_TIME.to_numpy()),
    })


def _exam_report(r: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "REPORT_ID": r.REPORT_ID, "ACCESSION_NO": r.ACCESSION_NO, "APPLY_NO": r.APPLY_NO, "ORDER_NO": r.ORDER_NO,
        "PAT_ID": r.PAT_ID, "PATIENT_TYPE": r.VISIT_TYPE, "VISIT_NO": r.VISIT_NO, "PAT_NAME": r.PAT_NAME,
        "SEX": r.SEX, "AGE": r.AGE, "ID_TYPE": r.ID_TYPE, "ID_NO": r.ID_NO, "APPLY_DEPT": r.DEPT_CODE,
        "APPLY_DOCTOR": r.DOCTOR_NO, "APPLY_TIME": ts_text(r.APPLY_TIME.to_numpy()), "CLINICAL_DIAG": r.DIAG_CODE,
        "MODALITY": r.MODALITY, "EXAM_CODE": r.EXAM, "EXAM_NAME": r.EXAM_NAME, "FEE_CODE": r.FEE_CODE,
        "BODY_PART": r.BODY_PART, "EXEC_DEPT": r.EXEC_DEPT, "EXAM_TIME": ts_text(r.EXAM_TIME.to_numpy()),
        "TECH_NO": r.TECH_NO, "STUDY_UID": r.STUDY_UID, "FINDINGS": r.FINDINGS, "CONCLUSION": r.CONCLUSION,
        "ABNORMAL": r.ABNORMAL, "CRITICAL_FLAG": r.CRITICAL_FLAG, "RECOGNIZE_FLAG": r.RECOGNIZE_FLAG,
        "REPORT_DOCTOR": r.REPORT_DOCTOR, "AUDIT_DOCTOR": r.AUDIT_DOCTOR,
        "REPORT_TIME": ts_text(r.REPORT_TIME.to_numpy()), "AUDIT_TIME": ts_text(r.AUDIT_TIME.to_numpy()),
        "STATUS": r.STATUS, "MODIFY_TIME": ts_text(r.MODIFY_TIME.to_numpy()),
    })


def _discharge_documents(ctx: Ctx, st: pd.DataFrame, pats: pd.DataFrame, diag: pd.DataFrame, ops: pd.DataFrame,
                         fees: pd.DataFrame, staff: pd.DataFrame) -> dict:
    """DISCHARGE_SUMMARY and the 病案首页 (MR_HOMEPAGE + _DIAG + _OPER) of discharged stays.

    The homepage diagnoses are the stay's discharge diagnoses and its operations are the stay's
    OPER_RECORD rows, so the two never disagree; its fee total is the stay's charges.
    """
    rng = ctx.rng
    dis = st[(st.CANCEL_FLAG == "0") & st.DISCHARGE_TIME.notna()].reset_index(drop=True)
    n = len(dis)
    p = pats.iloc[dis._pat.to_numpy()]
    sign = dis.DISCHARGE_TIME.to_numpy() - rng.integers(10, 120, n) * MINUTE
    archive = dis.ARCHIVE_TIME.to_numpy()
    los = np.maximum(1, (dis.DISCHARGE_TIME.to_numpy() // DAY - dis.ADMIT_TIME.to_numpy() // DAY)).astype(float)
    dname = [name_of("his_diag", c) for c in dis.DIS_MAIN_DIAG]
    summary = pd.DataFrame({
        "SUMMARY_ID": "CYXJ" + dis.INP_NO.str[2:], "INP_NO": dis.INP_NO, "PAT_ID": p.PAT_ID.to_numpy(),
        "TIMES": dis.TIMES.astype(float), "MR_NO": np.char.add("7", np.char.zfill(p.PAT_ID.to_numpy().astype(str), 9)),
        "PAT_NAME": p.name.to_numpy(), "SEX": np.where(p.male.to_numpy(), "M", "F"), "AGE": p.age.to_numpy().astype(float),
        "DEPT_CODE": dis.DEPT_CODE, "WARD_NAME": [name_of("his_dept", w) for w in dis.WARD_CODE], "BED_NO": dis.BED_NO,
        "ADMIT_TIME": ts_text(dis.ADMIT_TIME.to_numpy()), "DISCHARGE_TIME": ts_text(dis.DISCHARGE_TIME.to_numpy()),
        "LOS": los, "ADMIT_DIAG_CODE": dis.ADMIT_DIAG, "ADMIT_DIAG_NAME": [name_of("his_diag", c) for c in dis.ADMIT_DIAG],
        "DIS_DIAG_CODE": dis.DIS_MAIN_DIAG, "DIS_DIAG_NAME": dname,
        "ADMIT_STATUS": [f"患者因“{d}”入院，入院时神志清，生命体征平稳。" for d in dname],
        "TREATMENT_COURSE": "入院后完善相关检查，予对症支持治疗，病情逐渐好转。",
        "DISCHARGE_STATUS": np.where(dis.DISCHARGE_WAY == "05", "患者经抢救无效死亡。", "患者一般情况好，无不适主诉。"),
        "DISCHARGE_ORDER": np.where(dis.DISCHARGE_WAY == "05", "无", "注意休息，按时服药，1周后门诊复查。"),
        "DISCHARGE_WAY": dis.DISCHARGE_WAY, "RESIDENT_NO": dis.RESIDENT_NO, "ATTENDING_NO": dis.ATTENDING_NO,
        "SIGN_TIME": ts_text(sign), "UPDATE_TIME": ts_text(sign),
    })
    summary["DOC_TEXT"] = ("出院小结\n入院诊断：" + summary.ADMIT_DIAG_NAME + "\n出院诊断：" + summary.DIS_DIAG_NAME +
                           "\n" + summary.ADMIT_STATUS + summary.TREATMENT_COURSE + summary.DISCHARGE_STATUS +
                           "\n出院医嘱：" + summary.DISCHARGE_ORDER)
    stay_fees = fees[fees.VISIT_NO.isin(dis.INP_NO)]
    by_cls = stay_fees.pivot_table(index="VISIT_NO", columns="FEE_CLASS", values="AMOUNT_CENTS", aggfunc="sum",
                                   fill_value=0)
    by_cls = by_cls.reindex(dis.INP_NO, fill_value=0)

    def bucket(*classes: str) -> np.ndarray:
        cols = [c for c in classes if c in by_cls.columns]
        return _yuan(by_cls[cols].sum(axis=1).to_numpy()) if cols else np.zeros(n)

    total = _yuan(by_cls.sum(axis=1).to_numpy())
    home = pd.DataFrame({
        "INP_NO": dis.INP_NO, "HOMEPAGE_NO": "SY" + dis.INP_NO.str[2:], "BRANCH_CODE": "0",
        "MR_NO": summary.MR_NO, "TIMES": dis.TIMES.astype(float), "PAT_ID": p.PAT_ID.to_numpy(),
        "CARD_NO": _card(p)[1], "PAT_NAME": p.name.to_numpy(), "SEX": np.where(p.male.to_numpy(), "M", "F"),
        "BIRTHDAY": date_text(p.birth.to_numpy()), "AGE": p.age.to_numpy().astype(float),
        "ID_TYPE": p.id_type.to_numpy(), "ID_NO": p.id_no.to_numpy(), "COUNTRY": p.country.to_numpy(),
        "NATION": p.nation.to_numpy(), "OCCUPATION": p.occupation.to_numpy(), "MARRY": p.marital.to_numpy(),
        "AREA_CODE": p.area_id.to_numpy(), "PAY_METHOD": p.pay.to_numpy(), "ADMIT_ROUTE": dis.ADMIT_ROUTE,
        "ADMIT_TIME": ts_text(dis.ADMIT_TIME.to_numpy()), "ADMIT_DEPT": dis.DEPT_CODE,
        "DISCHARGE_TIME": ts_text(dis.DISCHARGE_TIME.to_numpy()), "DISCHARGE_DEPT": dis.DEPT_CODE, "LOS": los,
        "OUTP_DIAG_CODE": dis.ADMIT_DIAG, "MAIN_DIAG_CODE": dis.DIS_MAIN_DIAG, "MAIN_DIAG_NAME": dname,
        "MAIN_DIAG_CONDITION": dis.ADMIT_CONDITION, "ALLERGY_FLAG": np.where(rng.random(n) < 0.05, "2", "1"),
        "AUTOPSY_FLAG": np.where(dis.DISCHARGE_WAY == "05", "2", None), "ABO": dis.ABO, "RH": dis.RH,
        "DISCHARGE_WAY": dis.DISCHARGE_WAY,
        "RECEIVING_ORG": np.where(dis.DISCHARGE_WAY.isin(["02", "03"]), "田阳区人民医院", None),
        "READMIT_PLAN": "1", "DIRECTOR_NO": dis.CHIEF_NO, "CHIEF_NO": dis.CHIEF_NO, "ATTENDING_NO": dis.ATTENDING_NO,
        "RESIDENT_NO": dis.RESIDENT_NO, "NURSE_NO": dis.NURSE_NO, "CODER_NO": staff[staff.STAFF_TYPE == "技师"].JOB_NO.iloc[0],
        "QUALITY": ctx.pick(["甲", "乙", "丙"], n, [0.92, 0.07, 0.01]),
        "QC_DATE": date_text(archive), "TOTAL_FEE": total, "SELF_FEE": np.round(total * 0.3, 2),
        "FEE_GENERAL": bucket("CW", "HL", "ZC", "GH"), "FEE_DIAGNOSIS": bucket("HY", "JC"),
        "FEE_TREATMENT": bucket("ZL", "SS"), "FEE_WESTERN_DRUG": bucket("XY"), "FEE_TCM_DRUG": bucket("ZCY"),
        "FEE_MATERIAL": bucket("CL"), "FEE_OTHER": np.zeros(n), "ARCHIVE_TIME": ts_text(archive),
        "UPDATE_TIME": ts_text(archive),
    })
    arch = pd.Series(archive, index=dis.INP_NO)
    hd = diag[(diag.DIAG_TYPE == "CY") & diag.INP_NO.isin(dis.INP_NO)]
    home_diag = pd.DataFrame({
        "INP_NO": hd.INP_NO, "DIAG_SEQ": hd.DIAG_SEQ.astype(str), "HOMEPAGE_NO": "SY" + hd.INP_NO.str[2:],
        "DIAG_CODE": hd.DIAG_CODE, "DIAG_NAME": hd.DIAG_NAME, "DIAG_CLASS": "1",
        "BASIS": np.where(hd.DIAG_CODE.str.startswith("C"), "1", "5"), "ADMIT_CONDITION": hd.ADMIT_CONDITION,
        "OUTCOME": np.where(hd.DIAG_SEQ == 1, "好转", "稳定"), "BRANCH_CODE": "0", "BRANCH_NAME": "本院",
        "UPDATE_TIME": ts_text(arch.loc[hd.INP_NO].to_numpy()),
    })
    tables = {"DISCHARGE_SUMMARY": (summary, ["SUMMARY_ID"], "UPDATE_TIME"),
              "MR_HOMEPAGE": (home, ["INP_NO"], "UPDATE_TIME"),
              "MR_HOMEPAGE_DIAG": (home_diag, ["INP_NO", "DIAG_SEQ"], "UPDATE_TIME")}
    ho = ops[ops.INP_NO.isin(dis.INP_NO)] if not ops.empty else ops
    if ho.empty:
        ho = pd.DataFrame(columns=["INP_NO", "OPER_SEQ", "START_TIME", "OPER_CODE", "OPER_NAME", "OPER_LEVEL",
                                   "INCISION", "HEALING", "SURGEON_NO", "ASSIST1_NO", "ANES_METHOD",
                                   "ANESTHETIST_NO", "PRE_DIAG", "POST_DIAG", "DEPT_CODE", "EMERGENCY"])
    home_ops = pd.DataFrame({
        "INP_NO": ho.INP_NO, "OPER_SEQ": ho.OPER_SEQ.astype(str), "HOMEPAGE_NO": "SY" + ho.INP_NO.str[2:],
        "OPER_TIME": ts_text(ho.START_TIME.to_numpy()), "OPER_CODE": ho.OPER_CODE, "OPER_NAME": ho.OPER_NAME,
        "OPER_LEVEL": ho.OPER_LEVEL, "INCISION": ho.INCISION, "HEALING": ho.HEALING,
        "SURGEON_NO": ho.SURGEON_NO, "ASSIST1_NO": ho.ASSIST1_NO, "ANES_METHOD": ho.ANES_METHOD,
        "ANESTHETIST_NO": ho.ANESTHETIST_NO, "PRE_DIAG": ho.PRE_DIAG, "POST_DIAG": ho.POST_DIAG,
        "OPER_DEPT": ho.DEPT_CODE, "REOPER_FLAG": "0", "ELECTIVE_FLAG": ho.EMERGENCY, "BRANCH_CODE": "0",
        "BRANCH_NAME": "本院", "UPDATE_TIME": ts_text(arch.reindex(ho.INP_NO).to_numpy()),
    })
    tables["MR_HOMEPAGE_OPER"] = (home_ops, ["INP_NO", "OPER_SEQ"], "UPDATE_TIME")
    return tables

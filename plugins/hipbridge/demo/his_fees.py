"""HIS charges (FEE_DETAIL) and settlements (FEE_SETTLE) that add up exactly.

Why cents: amounts are summed in integer cents, so a settlement's total equals the sum of its
detail rows to the cent, and the split (统筹 / 个人账户 / 现金 …) adds up to the total.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import catalog
from .codes import name_of
from .context import HOUR, MINUTE, Ctx, running_ids, seq_ids

DIAG_FEE_ITEM = {"PT": "110200001", "ZJ": "110200002", "TX": "110200003", "JZ": "110200005"}
FREQ_PER_DAY = {"QD": 1, "BID": 2, "TID": 3, "QID": 4, "Q8H": 3, "Q12H": 2, "QN": 1, "ST": 1, "PRN": 1}
# Minor inpatient charges (oxygen hours, infusion sets, monitoring …) per patient-day: sized so
# that scale 1 gives ~300,000 detail rows a day, as a 1,800-bed hospital's HIS does.
MINOR_CHARGES_PER_DAY = 95


def _fee(**cols) -> pd.DataFrame:
    return pd.DataFrame(cols)


def outpatient_fees(ctx: Ctx, regs: pd.DataFrame, visits: pd.DataFrame, presc: pd.DataFrame,
                    items: pd.DataFrame, lab_req: pd.DataFrame, exam_req: pd.DataFrame) -> pd.DataFrame:
    """Registration charges (settled at the window) and clinic charges (settled after the visit)."""
    parts = []
    r = regs
    for code_col in ("GH001", "DIAG"):
        item = np.full(len(r), "GH001", dtype=object) if code_col == "GH001" else \
            np.array([DIAG_FEE_ITEM[t] for t in r.REG_TYPE], dtype=object)
        parts.append(_fee(VISIT_TYPE=r.VISIT_TYPE, VISIT_NO=r.VISIT_NO, _pat=r._pat, ITEM_CODE=item, QTY=1.0,
                          DEPT_CODE=r.DEPT_CODE, DOCTOR_NO=r.DOCTOR_NO, EXEC_DEPT=r.DEPT_CODE, FEE_TIME=r.REG_TIME,
                          PRESC_NO=None, ORDER_NO=None, _settle_key="G" + r.REG_NO, _settle_time=r.REG_TIME,
                          _settle_type="GH", _refund_time=r.RETURN_TIME))
    live = presc[presc.CANCEL_FLAG == "0"]
    it = items[items.PRESC_NO.isin(live.PRESC_NO)]
    ph = live.set_index("PRESC_NO").loc[it.PRESC_NO]
    parts.append(_fee(VISIT_TYPE=ph.VISIT_TYPE.to_numpy(), VISIT_NO=it.VISIT_NO, _pat=it._pat, ITEM_CODE=it.DRUG_CODE,
                      QTY=it.QUANTITY, DEPT_CODE=ph.DEPT_CODE.to_numpy(), DOCTOR_NO=ph.DOCTOR_NO.to_numpy(),
                      EXEC_DEPT="6001", FEE_TIME=ph.AUDIT_TIME.to_numpy(), PRESC_NO=it.PRESC_NO, ORDER_NO=None,
                      _settle_key="M" + it.VISIT_NO, _settle_time=np.nan, _settle_type="MZ", _refund_time=np.nan))
    for req, col in ((lab_req, "PANEL"), (exam_req, "EXAM")):
        code = [catalog.LAB_PANELS[c][3] if col == "PANEL" else catalog.EXAMS[c][2] for c in req[col]]
        parts.append(_fee(VISIT_TYPE=req.VISIT_TYPE, VISIT_NO=req.VISIT_NO, _pat=req._pat,
                          ITEM_CODE=np.array(code, dtype=object), QTY=1.0, DEPT_CODE=req.DEPT_CODE,
                          DOCTOR_NO=req.DOCTOR_NO, EXEC_DEPT="3001" if col == "PANEL" else
                          [catalog.EXAMS[c][4] for c in req[col]], FEE_TIME=req.APPLY_TIME, PRESC_NO=None,
                          ORDER_NO=None, _settle_key="M" + req.VISIT_NO, _settle_time=np.nan, _settle_type="MZ",
                          _refund_time=np.nan))
    f = pd.concat(parts, ignore_index=True)
    end = visits.set_index("VISIT_NO").VISIT_END
    clinic = f._settle_type == "MZ"
    f.loc[clinic, "_settle_time"] = end.loc[f.VISIT_NO[clinic]].to_numpy() + 8 * MINUTE
    # ~1% of clinic settlements are refunded in full the same day.
    keys = f.loc[clinic, "_settle_key"].unique()
    refunded = set(keys[ctx.rng.random(len(keys)) < 0.01])
    m = clinic & f._settle_key.isin(refunded)
    f.loc[m, "_refund_time"] = f.loc[m, "_settle_time"] + 2 * HOUR
    return f


def inpatient_fees(ctx: Ctx, st: pd.DataFrame, days: pd.DataFrame, orders: pd.DataFrame,
                   ops: pd.DataFrame) -> pd.DataFrame:
    """Daily bed / nursing / visit charges, drug doses from long-term orders, minor charges,
    lab / exam / operation charges; settled together at discharge."""
    rng = ctx.rng
    parts = []
    sd = days
    stay = st.loc[sd._stay]
    icu = stay.DEPT_CODE.to_numpy() == "2801"
    for item in ("BED", "120100002", "110900001"):
        code = np.where(icu, "120100007", "120100001") if item == "BED" else \
            (np.where(icu, "120100003", item) if item == "120100002" else np.full(len(sd), item))
        parts.append(_daily(sd, stay, code.astype(object), 1.0, sd.DAY.to_numpy() + 8 * HOUR, None))
    drugs = orders[(orders.CLASS == "A") & (orders.CANCEL_FLAG == "0")]
    dj = sd.merge(drugs[["_stay", "ORDER_NO", "ITEM_CODE", "FREQ", "START"]], on="_stay")
    dj = dj[dj.DAY + 22 * HOUR > dj.START]
    reps = np.array([FREQ_PER_DAY[f] for f in dj.FREQ], dtype=np.int64)
    dj = dj.loc[dj.index.repeat(reps)]
    dose = dj.groupby(level=0).cumcount().to_numpy()
    dstay = st.loc[dj._stay]
    parts.append(_daily(dj, dstay, dj.ITEM_CODE.to_numpy(), 1.0,
                        dj.DAY.to_numpy() + 8 * HOUR + dose * 4 * HOUR, dj.ORDER_NO.to_numpy()))
    per = rng.poisson(MINOR_CHARGES_PER_DAY, len(sd)) if len(sd) else np.empty(0, dtype=int)
    mi = sd.iloc[np.repeat(np.arange(len(sd)), per)]
    mstay = st.loc[mi._stay]
    code = ctx.pick(catalog.INPATIENT_DAILY_ITEMS, len(mi), catalog.INPATIENT_DAILY_WEIGHTS)
    parts.append(_daily(mi, mstay, code, 1.0, mi.DAY.to_numpy() + rng.integers(0, 86_000, len(mi)), None))
    temp = orders[orders.CLASS.isin(["C", "D", "F"]) & (orders.CANCEL_FLAG == "0")]
    tstay = st.loc[temp._stay]
    code = [catalog.LAB_PANELS[c][3] if k == "C" else (catalog.EXAMS[c][2] if k == "D" else c)
            for c, k in zip(temp.ITEM_CODE, temp.CLASS)]
    # An operation is charged when it starts (its order is written the day before).
    when = temp.START.to_numpy() + np.where(temp.CLASS.to_numpy() == "F", 18 * HOUR, 0)
    tf = _daily(temp.assign(DAY=0), tstay, np.array(code, dtype=object), 1.0, when, temp.ORDER_NO.to_numpy())
    tf["EXEC_DEPT"] = temp.EXEC_DEPT.to_numpy()
    parts.append(tf)
    f = pd.concat(parts, ignore_index=True)
    # Charges are clipped to the stay: not before admission, not after discharge or the window.
    admit = st.ADMIT_TIME.to_numpy()[f._stay]
    end = np.where(np.isnan(st.DISCHARGE_TIME.to_numpy()[f._stay]), ctx.w1 - 1,
                   st.DISCHARGE_TIME.to_numpy()[f._stay] - MINUTE)
    f["FEE_TIME"] = np.clip(f.FEE_TIME.to_numpy(), admit + MINUTE, end).astype(np.int64)
    f = f[f.FEE_TIME >= ctx.w0]
    dis = st.DISCHARGE_TIME.to_numpy()[f._stay]
    f["_settle_key"] = "Z" + f.VISIT_NO
    f["_settle_time"] = dis + 2 * HOUR
    f["_settle_type"] = "CY"
    f["_refund_time"] = np.nan
    return f.drop(columns=["_stay"])


def _daily(sd: pd.DataFrame, stay: pd.DataFrame, code: np.ndarray, qty: float, t: np.ndarray,
           order_no) -> pd.DataFrame:
    return _fee(VISIT_TYPE="I", VISIT_NO=stay.INP_NO.to_numpy(), _pat=stay._pat.to_numpy(), ITEM_CODE=code,
                QTY=qty, DEPT_CODE=stay.DEPT_CODE.to_numpy(), DOCTOR_NO=stay.RESIDENT_NO.to_numpy(),
                EXEC_DEPT=stay.WARD_CODE.to_numpy(), FEE_TIME=t, PRESC_NO=None, ORDER_NO=order_no,
                _stay=sd._stay.to_numpy())


def finish(ctx: Ctx, fees: pd.DataFrame, pats: pd.DataFrame, staff: pd.DataFrame
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Price the charges, number them, and build one settlement per settle key.

    Outpatient charges that were never settled inside the window (the visit ended just before
    midnight) are left out: the HIS keeps them in a pre-settlement table, not in FEE_DETAIL.
    """
    rng = ctx.rng
    price = {k: v[3] for k, v in catalog.FEE_ITEMS.items()}
    name = {k: v[0] for k, v in catalog.FEE_ITEMS.items()}
    cls = {k: v[1] for k, v in catalog.FEE_ITEMS.items()}
    for k, v in catalog.DRUGS.items():
        price[k], name[k], cls[k] = v[9], v[0], "ZCY" if k in catalog.PATENT_MEDICINES else "XY"
    for k, v in catalog.LAB_PANELS.items():
        price[v[3]], name[v[3]], cls[v[3]] = v[4], name_of("lis_panel", k), "HY"
    for k, v in catalog.EXAMS.items():
        price[v[2]], name[v[2]], cls[v[2]] = v[3], name_of("pacs_item", k), "JC"
    for k, v in catalog.OPERATIONS.items():
        code = "SS" + k.replace(".", "")
        price[code], name[code], cls[code] = v[4], name_of("his_oper", k), "SS"
    f = fees.sort_values(["FEE_TIME", "VISIT_NO"], kind="stable").reset_index(drop=True)
    f["FEE_TIME"] = f.FEE_TIME.astype(np.int64)
    codes = f.ITEM_CODE.to_numpy()
    f["ITEM_NAME"] = [name[c] for c in codes]
    f["FEE_CLASS"] = [cls[c] for c in codes]
    f["PRICE"] = [price[c] for c in codes]
    f["AMOUNT_CENTS"] = np.round(f.PRICE.to_numpy() * 100 * f.QTY.to_numpy()).astype(np.int64)
    f["BILL_TIME"] = np.minimum(f.FEE_TIME.to_numpy() + rng.integers(0, 40, len(f)) * MINUTE, ctx.w1 - 1)
    f["REFUND_FLAG"] = "0"
    f["ORIG_DETAIL_ID"] = None
    f["_refund"] = False
    # A refund (退费 / 退号) is a red reversal: negative copies of the settled lines, settled by a
    # negative settlement that names the original one. Nothing is deleted or edited in place.
    settled = f._settle_time.to_numpy() < ctx.w1
    refund_rows = settled & (f._refund_time.to_numpy() < ctx.w1)
    f = f[settled | (f.VISIT_TYPE == "I").to_numpy()].copy()      # inpatient charges await discharge
    red = f[refund_rows[f.index]].copy() if refund_rows.any() else f.iloc[0:0].copy()
    red["QTY"] = -red.QTY
    red["AMOUNT_CENTS"] = -red.AMOUNT_CENTS
    red["FEE_TIME"] = red._refund_time.astype(np.int64)
    red["BILL_TIME"] = red.FEE_TIME
    red["REFUND_FLAG"] = "1"
    red["_refund"] = True
    red["_settle_key"] = "R" + red._settle_key
    red["_settle_time"] = red._refund_time
    f = pd.concat([f, red], ignore_index=False).sort_values(["FEE_TIME", "VISIT_NO"], kind="stable")
    f = f.reset_index().rename(columns={"index": "_orig"})
    f["DETAIL_ID"] = running_ids("", len(f), 100_000_001, 12)
    first_id = f[~f._refund].set_index("_orig").DETAIL_ID
    f.loc[f._refund, "ORIG_DETAIL_ID"] = first_id.reindex(f.loc[f._refund, "_orig"]).to_numpy()
    settled = f._settle_time.to_numpy() < ctx.w1
    f["_change"] = np.where(settled, f._settle_time, f.BILL_TIME)
    # Settlements: one per settle key (originals and reversals numbered together by time).
    s = f[settled].groupby("_settle_key", sort=False).agg(
        VISIT_TYPE=("VISIT_TYPE", "first"), VISIT_NO=("VISIT_NO", "first"), _pat=("_pat", "first"),
        SETTLE_TYPE=("_settle_type", "first"), SETTLE_TIME=("_settle_time", "first"),
        _refund=("_refund", "first"), TOTAL_CENTS=("AMOUNT_CENTS", "sum")).reset_index()
    s = s.sort_values(["SETTLE_TIME", "_settle_key"], kind="stable").reset_index(drop=True)
    s["SETTLE_NO"] = seq_ids("JS", s.SETTLE_TIME.to_numpy().astype(np.int64))
    key_to_no = pd.Series(s.SETTLE_NO.to_numpy(), index=s._settle_key)
    f["SETTLE_NO"] = np.where(settled, key_to_no.reindex(f._settle_key).to_numpy(), None)
    pay = pats.pay.to_numpy()[s._pat.to_numpy()]
    total = s.TOTAL_CENTS.to_numpy()
    share = np.select([pay == "ZG", pay == "JM", pay == "GF"], [0.72, 0.55, 0.9], 0.0)
    share = np.where(s.SETTLE_TYPE == "GH", 0.0, share) * np.where(s.VISIT_TYPE == "I", 1.0, 0.6)
    # Splits are computed on the absolute amount so a reversal mirrors its original exactly.
    sign = np.where(total < 0, -1, 1)
    mag = np.abs(total)
    fund = np.floor(mag * share).astype(np.int64)
    account = np.where(pay == "ZG", np.floor((mag - fund) * 0.4), 0).astype(np.int64)
    selfpay = np.floor(mag * 0.03 * (share > 0)).astype(np.int64)
    cash = mag - fund - account
    s["PAY_METHOD"] = pay
    s["FUND_CENTS"], s["ACCOUNT_CENTS"], s["CASH_CENTS"] = sign * fund, sign * account, sign * cash
    s["OTHER_CENTS"] = 0
    s["SELF_CENTS"] = sign * np.minimum(selfpay, cash)
    s["INSUR_SETTLE_NO"] = np.where(share > 0, np.char.add("45100026", np.char.zfill(
        rng.integers(0, 10**10, len(s)).astype(str), 12)), None)
    s["INVOICE_NO"] = np.char.add("0451", np.char.zfill(np.arange(1, len(s) + 1).astype(str), 8))
    cashiers = staff[staff.DEPT_CODE == "6001"].JOB_NO.to_numpy()
    s["CASHIER_NO"] = cashiers[rng.integers(0, len(cashiers), len(s))]
    s["REFUND_FLAG"] = np.where(s._refund, "1", "0")
    s["ORIG_SETTLE_NO"] = np.where(s._refund, key_to_no.reindex(s._settle_key.str[1:]).to_numpy(), None)
    s["_change"] = s.SETTLE_TIME.to_numpy()
    return f, s

"""LIS: lab reports (LAB_TEST_MASTER), results (LAB_RESULT), cultures (LAB_MICRO_RESULT) and
susceptibility tests (LAB_ANTI_RESULT), fulfilling the HIS requests.

Why the LIS copies patient identity: a real LIS receives name, sex (as text 男/女) and the ID
number with each request and stores them, so its reports can be uploaded without the HIS.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import catalog
from .codes import codes_of, name_of
from .context import HOUR, MINUTE, Ctx, seq_ids

SPECIMEN_OF = {k: v[1] for k, v in catalog.LAB_PANELS.items()}


def reports(ctx: Ctx, req: pd.DataFrame, pats: pd.DataFrame, staff: pd.DataFrame) -> pd.DataFrame:
    """One report per request, once audited inside the window; ~1% later revoked (撤销)."""
    rng = ctx.rng
    n = len(req)
    micro = req.PANEL.isin(["XPY", "NPY"]).to_numpy()
    collect = req.APPLY_TIME.to_numpy() + rng.integers(5, 60, n) * MINUTE
    receive = collect + rng.integers(10, 45, n) * MINUTE
    audit = receive + np.where(micro, rng.integers(16, 44, n) * HOUR, rng.integers(30, 150, n) * MINUTE)
    report = audit + rng.integers(0, 4, n) * MINUTE
    keep = report < ctx.w1
    techs = staff[(staff.DEPT_CODE == "3001")].JOB_NO.to_numpy()
    r = req[keep].copy()
    k = len(r)
    p = pats.iloc[r._pat.to_numpy()]
    r["COLLECT_TIME"], r["RECEIVE_TIME"] = collect[keep], receive[keep]
    r["AUDIT_TIME"], r["REPORT_TIME"] = audit[keep], report[keep]
    r = r.sort_values(["REPORT_TIME", "VISIT_NO", "PANEL"], kind="stable").reset_index(drop=True)
    p = pats.iloc[r._pat.to_numpy()]
    r["TEST_NO"] = seq_ids("L", r.REPORT_TIME.to_numpy().astype(np.int64), 5)
    if "APPLY_NO" not in r or r.APPLY_NO.isna().any():
        r["APPLY_NO"] = r.get("APPLY_NO", pd.Series(None, index=r.index)).fillna(
            pd.Series("SQ" + r.TEST_NO.str[1:], index=r.index))
    r["BARCODE"] = "10" + r.TEST_NO.str[3:]
    r["SPECIMEN"] = [SPECIMEN_OF[c] for c in r.PANEL]
    r["TEST_TYPE"] = [catalog.LAB_PANELS[c][2] for c in r.PANEL]
    r["PANEL_NAME"] = [name_of("lis_panel", c) for c in r.PANEL]
    r["PAT_ID"] = p.PAT_ID.to_numpy()
    r["PAT_NAME"] = p.name.to_numpy()
    r["SEX"] = np.where(p.male.to_numpy(), "男", "女")
    r.loc[r.index[: min(1, k)], "SEX"] = "未知"           # an unidentified emergency patient
    r["AGE"] = p.age.to_numpy().astype(str) + "岁"
    r["ID_TYPE"] = p.id_type.to_numpy()
    r["ID_NO"] = p.id_no.to_numpy()
    r["TESTER_NO"] = techs[rng.integers(0, len(techs), k)]
    r["AUDITOR_NO"] = techs[rng.integers(0, len(techs), k)]
    r["RECOGNIZE_FLAG"] = np.where(r.PANEL.isin(["XPY", "NPY"]), "0", "1")
    r["STATUS"] = "已审核"
    revoked = (rng.random(k) < 0.01) & (r.REPORT_TIME.to_numpy() + 6 * HOUR < ctx.w1)
    r.loc[revoked, "STATUS"] = "撤销"
    r["MODIFY_TIME"] = np.where(revoked, r.REPORT_TIME + rng.integers(1, 6, k) * HOUR, r.REPORT_TIME)
    return r


def results(ctx: Ctx, rep: pd.DataFrame) -> pd.DataFrame:
    """LAB_RESULT: one row per item of the panel; numbers drawn around the item's reference range."""
    rng = ctx.rng
    items = [catalog.LAB_PANELS[c][0] for c in rep.PANEL]
    k = np.array([len(x) for x in items])
    rows = np.repeat(np.arange(len(rep)), k)
    code = np.array([c for x in items for c in x], dtype=object)
    seq = np.arange(len(rows)) - np.repeat(np.cumsum(k) - k, k) + 1
    spec = [catalog.LAB_ITEMS[c] for c in code]
    numeric = np.array([len(s) > 1 for s in spec])
    m = len(code)
    value = np.empty(m, dtype=object)
    flag = np.full(m, "正常", dtype=object)
    low = np.full(m, np.nan)
    high = np.full(m, np.nan)
    unit = np.full(m, None, dtype=object)
    refr = np.full(m, None, dtype=object)
    ni = np.flatnonzero(numeric)
    if len(ni):
        arr = np.array([spec[i] for i in ni], dtype=object)
        lo, hi = arr[:, 1].astype(float), arr[:, 2].astype(float)
        mean, sd, dec = arr[:, 3].astype(float), arr[:, 4].astype(float), arr[:, 5].astype(int)
        x = np.abs(rng.normal(mean, sd))
        x = np.array([round(v, d) for v, d in zip(x, dec)])
        low[ni], high[ni], unit[ni] = lo, hi, arr[:, 0]
        refr[ni] = [f"{a:g}-{b:g}" for a, b in zip(lo, hi)]
        text = np.array([f"{v:.{d}f}" for v, d in zip(x, dec)], dtype=object)
        crp_small = (code[ni] == "CRP") & (x < 0.5)
        text[crp_small] = "<0.50"            # below the analyser's range: not a number
        value[ni] = text
        f = np.where(x > hi, "↑", np.where(x < lo, "↓", "正常"))
        f[crp_small] = "正常"
        flag[ni] = f
    qi = np.flatnonzero(~numeric)
    if len(qi):
        rate = np.array([spec[i][0] for i in qi])
        pos = rng.random(len(qi)) < rate
        value[qi] = np.where(pos, "阳性", "阴性")
        flag[qi] = np.where(pos, "阳性", "正常")
        refr[qi] = np.where(code[qi] == "HBSAB", "阴性/阳性", "阴性")
        flag[qi[code[qi] == "HBSAB"]] = "正常"
    panel = rep.PANEL.to_numpy()[rows]
    res = pd.DataFrame({
        "RESULT_ID": rep.TEST_NO.to_numpy()[rows] + "-" + np.char.zfill(seq.astype(str), 2),
        "TEST_NO": rep.TEST_NO.to_numpy()[rows], "ITEM_SEQ": seq.astype(float), "ITEM_CODE": code,
        "ITEM_NAME": [name_of("lis_item", c) for c in code], "RESULT_TYPE": np.where(numeric, "1", "2"),
        "RESULT_VALUE": value, "UNIT": unit, "REF_RANGE": refr, "REF_LOW": low, "REF_HIGH": high,
        "ABNORMAL_FLAG": flag, "INSTRUMENT_NO": [catalog.LAB_PANELS[c][5][0] for c in panel],
        "INSTRUMENT_NAME": [catalog.LAB_PANELS[c][5][1] for c in panel],
        "METHOD": [catalog.LAB_PANELS[c][6] for c in panel],
        "TESTER_NO": rep.TESTER_NO.to_numpy()[rows], "AUDITOR_NO": rep.AUDITOR_NO.to_numpy()[rows],
        "MODIFY_TIME": rep.MODIFY_TIME.to_numpy()[rows],
    })
    crit = (res.ITEM_CODE == "K") & (pd.to_numeric(res.RESULT_VALUE, errors="coerce") > 6.2)
    rep["CRITICAL_FLAG"] = np.where(rep.TEST_NO.isin(res.TEST_NO[crit]), "1", "0")
    return res


def cultures(ctx: Ctx, rep: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LAB_MICRO_RESULT for positive cultures (~50%: cultures are sent when infection is likely)
    and their LAB_ANTI_RESULT panels."""
    rng = ctx.rng
    micro = rep[rep.PANEL.isin(["XPY", "NPY"])]
    positive = rng.random(len(micro)) < 0.5
    positive[: len(codes_of('lis_bacteria'))] = True      # a small demo still shows every organism once
    pos = micro[positive]
    orgs = ctx.pick(codes_of("lis_bacteria"), len(pos))
    bac = pd.DataFrame({
        "MICRO_ID": pos.TEST_NO.to_numpy() + "-B1", "TEST_NO": pos.TEST_NO.to_numpy(),
        "APPLY_NO": pos.APPLY_NO.to_numpy(), "PAT_ID": pos.PAT_ID.to_numpy(), "DEPT_CODE": pos.DEPT_CODE.to_numpy(),
        "BACT_CODE": orgs, "BACT_NAME": [name_of("lis_bacteria", c) for c in orgs], "RESULT": "检出",
        "RESULT_DESC": [f"培养出{name_of('lis_bacteria', c)}" for c in orgs],
        "COLONY_COUNT": np.where(pos.PANEL.to_numpy() == "NPY", ">10万cfu/ml", None),
        "MEDIUM": np.where(pos.PANEL.to_numpy() == "NPY", "血平板/麦康凯平板", "血培养瓶"),
        "CULTURE_HOURS": np.where(pos.PANEL.to_numpy() == "NPY", "48小时", "5天"), "CONDITION": "35℃ 5%CO2",
        "FOUND_BY": "仪器报警", "PLATE_NO": 1.0, "PLATE_NAME": "鉴定板",
        "INSTRUMENT_NO": "VITEK2", "INSTRUMENT_NAME": "微生物鉴定药敏分析仪", "REPORT_TIME": pos.REPORT_TIME.to_numpy(),
        "MODIFY_TIME": pos.MODIFY_TIME.to_numpy(),
    })
    rows = []
    for b in bac.itertuples():
        panel = catalog.ANTIBIOTICS_GN if b.BACT_CODE in catalog.GRAM_NEGATIVE else catalog.ANTIBIOTICS_GP
        sir = ctx.pick(["敏感", "中介", "耐药"], len(panel), [0.6, 0.1, 0.3])
        for i, (a, s) in enumerate(zip(panel, sir), 1):
            mic = {"敏感": "<=1", "中介": "4", "耐药": ">=16"}[s]
            rows.append({"ANTI_ID": f"{b.MICRO_ID}-{a}", "TEST_NO": b.TEST_NO, "APPLY_NO": b.APPLY_NO,
                         "PAT_ID": b.PAT_ID, "DEPT_CODE": b.DEPT_CODE, "BACT_CODE": b.BACT_CODE,
                         "BACT_NAME": b.BACT_NAME, "ANTI_CODE": a, "ANTI_NAME": name_of("lis_antibiotic", a),
                         "RESULT_VALUE": mic, "SIR": s, "METHOD": "MIC", "BREAKPOINT": "S<=1 R>=16",
                         "PRINT_SEQ": float(i), "REPORT_TIME": b.REPORT_TIME, "MODIFY_TIME": b.MODIFY_TIME})
    anti = pd.DataFrame(rows, columns=["ANTI_ID", "TEST_NO", "APPLY_NO", "PAT_ID", "DEPT_CODE", "BACT_CODE",
                                       "BACT_NAME", "ANTI_CODE", "ANTI_NAME", "RESULT_VALUE", "SIR", "METHOD",
                                       "BREAKPOINT", "PRINT_SEQ", "REPORT_TIME", "MODIFY_TIME"])
    return bac, anti

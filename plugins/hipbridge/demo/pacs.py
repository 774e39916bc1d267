"""PACS/RIS: exam reports (EXAM_REPORT) with their DICOM image index (EXAM_IMAGE).

Why a study UID per report and one index row per series: the platform's image index keys on the
storage address; a series-level address with its DICOM UIDs is what a viewer opens.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import catalog
from .codes import name_of
from .context import HOUR, MINUTE, Ctx, seq_ids

UID_ROOT = "1.2.156.112605.451002"          # the hospital's DICOM UID root (demo)
SERIES_PER_STUDY = {"CT": (2, 5), "MRI": (3, 6), "DR": (1, 3), "BC": (1, 3), "NJ": (1, 3), "XD": (1, 2)}


def reports(ctx: Ctx, req: pd.DataFrame, pats: pd.DataFrame, staff: pd.DataFrame) -> pd.DataFrame:
    rng = ctx.rng
    n = len(req)
    exam_time = req.APPLY_TIME.to_numpy() + np.where(req.VISIT_TYPE.to_numpy() == "I",
                                                     rng.integers(1, 20, n) * HOUR, rng.integers(15, 90, n) * MINUTE)
    report = exam_time + rng.integers(15, 180, n) * MINUTE
    audit = report + rng.integers(5, 60, n) * MINUTE
    keep = audit < ctx.w1
    r = req[keep].copy()
    r["EXAM_TIME"], r["REPORT_TIME"], r["AUDIT_TIME"] = exam_time[keep], report[keep], audit[keep]
    r = r.sort_values(["AUDIT_TIME", "VISIT_NO", "EXAM"], kind="stable").reset_index(drop=True)
    k = len(r)
    p = pats.iloc[r._pat.to_numpy()]
    info = [catalog.EXAMS[c] for c in r.EXAM]
    r["REPORT_ID"] = seq_ids("R", r.AUDIT_TIME.to_numpy().astype(np.int64), 5)
    r["ACCESSION_NO"] = "A" + r.REPORT_ID.str[1:]
    if "APPLY_NO" not in r or r.APPLY_NO.isna().any():
        r["APPLY_NO"] = r.get("APPLY_NO", pd.Series(None, index=r.index)).fillna(
            pd.Series("SQ" + r.REPORT_ID.str[1:], index=r.index))
    r["MODALITY"] = [i[0] for i in info]
    r["BODY_PART"] = [i[1] for i in info]
    r["EXAM_NAME"] = [name_of("pacs_item", c) for c in r.EXAM]
    r["FEE_CODE"] = [i[2] for i in info]
    r["EXEC_DEPT"] = [i[4] for i in info]
    abnormal = rng.random(k) < 0.4
    r["FINDINGS"] = [i[7] if a else i[5] for i, a in zip(info, abnormal)]
    r["CONCLUSION"] = [i[8] if a else i[6] for i, a in zip(info, abnormal)]
    r["ABNORMAL"] = np.where(abnormal, "1", "0")
    r["CRITICAL_FLAG"] = "0"
    r["PAT_ID"] = p.PAT_ID.to_numpy()
    r["PAT_NAME"] = p.name.to_numpy()
    r["SEX"] = np.where(p.male.to_numpy(), "M", "F")
    r["AGE"] = p.age.to_numpy().astype(float)
    r["ID_TYPE"] = p.id_type.to_numpy()
    r["ID_NO"] = p.id_no.to_numpy()
    r["STUDY_UID"] = UID_ROOT + "." + r.REPORT_ID.str[1:9] + "." + r.REPORT_ID.str[9:].str.lstrip("0")
    readers = {d: staff[(staff.DEPT_CODE == d) & (staff.STAFF_TYPE == "医生")].JOB_NO.to_numpy()
               for d in set(r.EXEC_DEPT)}
    techs = {d: staff[(staff.DEPT_CODE == d)].JOB_NO.to_numpy() for d in set(r.EXEC_DEPT)}
    r["TECH_NO"] = [techs[d][rng.integers(0, len(techs[d]))] for d in r.EXEC_DEPT]
    r["REPORT_DOCTOR"] = [readers[d][rng.integers(0, len(readers[d]))] for d in r.EXEC_DEPT]
    r["AUDIT_DOCTOR"] = [readers[d][0] for d in r.EXEC_DEPT]
    r["RECOGNIZE_FLAG"] = np.where(r.MODALITY.isin(["CT", "MRI", "DR", "BC"]), "1", "0")
    revoked = (rng.random(k) < 0.005) & (r.AUDIT_TIME.to_numpy() + 6 * HOUR < ctx.w1)
    if k and not revoked.any() and r.AUDIT_TIME.iloc[0] + 6 * HOUR < ctx.w1:
        revoked[0] = True                 # keep one revoked report in every demo
    r["STATUS"] = np.where(revoked, "已撤回", "已审核")
    r["MODIFY_TIME"] = np.where(revoked, r.AUDIT_TIME + 3 * HOUR, r.AUDIT_TIME)
    return r


def images(ctx: Ctx, rep: pd.DataFrame) -> pd.DataFrame:
    rng = ctx.rng
    lo_hi = np.array([SERIES_PER_STUDY[m] for m in rep.MODALITY]).reshape(-1, 2)
    k = rng.integers(lo_hi[:, 0], lo_hi[:, 1]) if len(rep) else np.empty(0, dtype=int)
    rows = np.repeat(np.arange(len(rep)), k)
    seq = (np.arange(len(rows)) - np.repeat(np.cumsum(k) - k, k) + 1).astype(str)
    study = rep.STUDY_UID.to_numpy()[rows]
    series = study + "." + seq
    day = rep.REPORT_ID.str[1:9].to_numpy()[rows]
    return pd.DataFrame({
        "IMAGE_ID": rep.REPORT_ID.to_numpy()[rows] + "-" + np.char.zfill(seq, 3),
        "REPORT_ID": rep.REPORT_ID.to_numpy()[rows], "STUDY_UID": study, "SERIES_UID": series,
        "SOP_UID": series + ".1",
        "STORAGE_PATH": "http://pacs.bsrmyy.local/wado/" + day + "/" + rep.ACCESSION_NO.to_numpy()[rows] + "/" + seq,
        "REPORT_TIME": rep.REPORT_TIME.to_numpy()[rows], "MODIFY_TIME": rep.MODIFY_TIME.to_numpy()[rows],
    })

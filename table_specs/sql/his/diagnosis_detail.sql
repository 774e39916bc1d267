-- 诊断明细报告 ← HIS outpatient diagnoses (OUTP_DIAGNOSIS) and inpatient diagnoses (INP_DIAGNOSIS:
-- RY 入院, CY 出院) in one feed; visit_type tells the visit table (O/E → 门诊, I → 住院).
SELECT o.DIAG_ID        AS diag_id,
       o.VISIT_NO       AS visit_no,
       o.VISIT_TYPE     AS visit_type,
       o.PAT_ID         AS patient_id,
       CAST(NULL AS INTEGER) AS inp_times,
       o.DIAG_TYPE      AS diag_type,
       o.DIAG_CODE      AS diag_code,
       o.DIAG_NAME      AS diag_name,
       o.MAIN_FLAG      AS main_flag,
       CAST(NULL AS VARCHAR(4)) AS admit_condition,
       o.DIAG_TIME      AS diag_time,
       o.UPDATE_TIME    AS update_time
FROM OUTP_DIAGNOSIS o
UNION ALL
SELECT i.DIAG_ID        AS diag_id,
       i.INP_NO         AS visit_no,
       'I'              AS visit_type,
       i.PAT_ID         AS patient_id,
       i.TIMES          AS inp_times,
       i.DIAG_TYPE      AS diag_type,
       i.DIAG_CODE      AS diag_code,
       i.DIAG_NAME      AS diag_name,
       i.MAIN_FLAG      AS main_flag,
       i.ADMIT_CONDITION AS admit_condition,
       i.DIAG_TIME      AS diag_time,
       i.UPDATE_TIME    AS update_time
FROM INP_DIAGNOSIS i

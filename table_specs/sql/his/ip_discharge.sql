-- 出院登记信息 ← HIS inpatient stays that have been discharged.
SELECT v.INP_NO               AS inp_no,
       v.PAT_ID               AS patient_id,
       v.CARD_TYPE            AS card_type,
       v.CARD_NO              AS card_no,
       v.ID_TYPE              AS id_type,
       v.ID_NO                AS id_no,
       v.PAT_NAME             AS patient_name,
       v.SEX                  AS sex,
       v.BIRTHDAY             AS birth_date,
       v.INP_CODE             AS inp_code,
       v.ADMIT_DEPT           AS admit_dept,
       a.DEPT_NAME            AS admit_dept_name,
       v.ADMIT_WARD           AS admit_ward,
       v.ADMIT_TIME           AS admit_time,
       v.DISCHARGE_DEPT       AS discharge_dept,
       d.DEPT_NAME            AS discharge_dept_name,
       v.DISCHARGE_WARD       AS discharge_ward,
       v.DISCHARGE_TIME       AS discharge_time,
       v.DISCHARGE_DIAG_CODE  AS discharge_diag_code,
       v.DISCHARGE_DIAG_NAME  AS discharge_diag_name,
       v.CANCEL_FLAG          AS cancel_flag,
       v.UPDATE_TIME          AS update_time
FROM PAT_VISIT v
LEFT JOIN DEPT_DICT a ON a.DEPT_CODE = v.ADMIT_DEPT
LEFT JOIN DEPT_DICT d ON d.DEPT_CODE = v.DISCHARGE_DEPT
WHERE v.DISCHARGE_TIME IS NOT NULL

-- 科室信息 ← HIS department dictionary (clinical departments, wards 'B…', medical technology).
SELECT d.DEPT_CODE        AS dept_code,
       d.DEPT_NAME        AS dept_name,
       d.INSUR_DEPT_CODE  AS insur_dept_code,
       d.TCM_FLAG         AS tcm_flag,
       d.REG_FLAG         AS reg_flag,
       d.MEMO             AS memo,
       d.PARENT_CODE      AS parent_code,
       d.DEPT_TYPE        AS dept_type,
       d.WARD_FLAG        AS ward_flag,
       d.OPEN_BEDS        AS open_beds,
       CASE WHEN d.STOP_FLAG = '0' THEN '1' ELSE '0' END AS in_use,
       d.CLINIC_TYPE_CODE AS clinic_type_code,
       d.ORG_CREDIT_CODE AS org_credit_code,
       d.UPDATE_TIME      AS update_time
FROM DEPT_DICT d

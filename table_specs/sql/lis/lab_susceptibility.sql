-- 药敏结果表 ← LIS antimicrobial susceptibility results (MIC), one row per organism × antibiotic.
SELECT a.ANTI_ID        AS anti_id,
       a.TEST_NO        AS test_no,
       a.APPLY_NO       AS apply_no,
       a.PAT_ID         AS patient_id,
       a.DEPT_CODE      AS dept_code,
       a.BACT_CODE      AS bact_code,
       a.BACT_NAME      AS bact_name,
       a.ANTI_CODE      AS anti_code,
       a.ANTI_NAME      AS anti_name,
       a.RESULT_VALUE   AS result_value,
       a.SIR            AS sir,
       a.BREAKPOINT     AS breakpoint,
       a.METHOD         AS method,
       a.PRINT_SEQ      AS print_seq,
       a.REPORT_TIME    AS report_time,
       m.STATUS         AS status,
       a.MODIFY_TIME    AS modify_time
FROM LAB_ANTI_RESULT a
JOIN LAB_TEST_MASTER m ON m.TEST_NO = a.TEST_NO

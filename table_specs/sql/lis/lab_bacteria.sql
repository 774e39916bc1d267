-- 细菌结果表 ← LIS organisms isolated from positive cultures.
SELECT b.MICRO_ID         AS micro_id,
       b.TEST_NO          AS test_no,
       b.APPLY_NO         AS apply_no,
       b.PAT_ID           AS patient_id,
       b.DEPT_CODE        AS dept_code,
       b.BACT_CODE        AS bact_code,
       b.BACT_NAME        AS bact_name,
       b.RESULT           AS result,
       b.RESULT_DESC      AS result_desc,
       b.COLONY_COUNT     AS colony_count,
       b.MEDIUM           AS medium,
       b.CULTURE_HOURS    AS culture_hours,
       b.CONDITION        AS culture_condition,
       b.FOUND_BY         AS found_by,
       b.PLATE_NO         AS plate_no,
       b.PLATE_NAME       AS plate_name,
       b.INSTRUMENT_NO    AS instrument_no,
       b.INSTRUMENT_NAME  AS instrument_name,
       b.REPORT_TIME      AS report_time,
       m.STATUS           AS status,
       b.MODIFY_TIME      AS modify_time
FROM LAB_MICRO_RESULT b
JOIN LAB_TEST_MASTER m ON m.TEST_NO = b.TEST_NO

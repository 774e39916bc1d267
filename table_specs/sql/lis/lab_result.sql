-- 检验明细表 ← LIS result items with their report's panel, order and status (a revoked report
-- revokes its items). Numeric results go to 定量结果, positive/negative ones to 定性结果.
SELECT r.RESULT_ID      AS result_id,
       r.TEST_NO        AS test_no,
       m.ORDER_NO       AS order_no,
       m.PANEL_CODE     AS panel_code,
       m.PANEL_NAME     AS panel_name,
       r.ITEM_CODE      AS item_code,
       r.ITEM_NAME      AS item_name,
       m.FEE_CODE       AS fee_code,
       r.RESULT_TYPE    AS result_type,
       CASE WHEN r.RESULT_TYPE = '1' THEN r.RESULT_VALUE END AS quantitative_result,
       CASE WHEN r.RESULT_TYPE = '1' THEN NULL ELSE r.RESULT_VALUE END AS qualitative_result,
       r.UNIT           AS unit,
       r.REF_RANGE      AS ref_range,
       r.REF_HIGH       AS ref_high,
       r.REF_LOW        AS ref_low,
       r.ABNORMAL_FLAG  AS abnormal_flag,
       r.ITEM_SEQ       AS item_seq,
       r.METHOD         AS method,
       r.INSTRUMENT_NO  AS instrument_no,
       r.INSTRUMENT_NAME AS instrument_name,
       m.REPORT_TIME    AS report_time,
       r.TESTER_NO      AS tester_no,
       r.AUDITOR_NO     AS auditor_no,
       m.STATUS         AS status,
       r.MODIFY_TIME    AS modify_time
FROM LAB_RESULT r
JOIN LAB_TEST_MASTER m ON m.TEST_NO = r.TEST_NO

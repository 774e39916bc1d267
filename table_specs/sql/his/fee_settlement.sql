-- 费用结算 ← HIS settlements (挂号 / 门诊收费 / 出院结算); a refund is a negative settlement
-- (REFUND_FLAG = '1') that names the original one in ORIG_SETTLE_NO.
SELECT s.SETTLE_NO        AS settle_no,
       s.VISIT_TYPE       AS visit_type,
       CASE WHEN s.VISIT_TYPE = 'I' THEN '-' ELSE s.VISIT_NO END AS outp_visit_no,
       CASE WHEN s.VISIT_TYPE = 'I' THEN s.VISIT_NO ELSE '-' END AS inp_visit_no,
       s.PAT_ID           AS patient_id,
       s.SETTLE_TYPE      AS settle_type,
       s.SETTLE_TIME      AS settle_time,
       s.CASHIER_NO       AS cashier_no,
       s.PAY_METHOD       AS pay_method,
       s.INSUR_SETTLE_NO  AS insur_settle_no,
       s.INVOICE_NO       AS invoice_no,
       s.TOTAL            AS total,
       s.FUND_PAY         AS fund_pay,
       s.ACCOUNT_PAY      AS account_pay,
       s.CASH_PAY         AS cash_pay,
       s.OTHER_PAY        AS other_pay,
       s.SELF_PAY         AS self_pay,
       s.REFUND_FLAG      AS refund_flag,
       s.ORIG_SETTLE_NO   AS orig_settle_no,
       s.UPDATE_TIME      AS update_time
FROM FEE_SETTLE s

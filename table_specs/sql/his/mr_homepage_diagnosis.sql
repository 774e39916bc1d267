-- 病案首页其他诊断 ← HIS homepage diagnoses (seq 1 = principal diagnosis).
SELECT g.INP_NO           AS inp_no,
       g.DIAG_SEQ         AS diag_seq,
       g.HOMEPAGE_NO      AS homepage_no,
       g.DIAG_CODE        AS diag_code,
       g.DIAG_NAME        AS diag_name,
       g.DIAG_CLASS       AS diag_class,
       g.BASIS            AS basis,
       g.ADMIT_CONDITION  AS admit_condition,
       g.OUTCOME          AS outcome,
       g.BRANCH_CODE      AS branch_code,
       g.BRANCH_NAME      AS branch_name,
       g.TUMOUR_CODE     AS tumour_code,
       g.TUMOUR_NAME     AS tumour_name,
       g.CANCEL_FLAG     AS cancel_flag,
       g.UPDATE_TIME      AS update_time
FROM MR_HOMEPAGE_DIAG g

-- 病案首页手术信息 ← HIS homepage operations; the homepage carries names, the HIS keeps 工号.
SELECT o.INP_NO          AS inp_no,
       o.OPER_SEQ        AS oper_seq,
       o.HOMEPAGE_NO     AS homepage_no,
       o.OPER_TIME       AS oper_time,
       o.OPER_CODE       AS oper_code,
       o.OPER_NAME       AS oper_name,
       o.OPER_LEVEL      AS oper_level,
       o.INCISION        AS incision,
       o.HEALING         AS healing,
       s.NAME            AS surgeon_name,
       a.NAME            AS assistant_name,
       a2.NAME           AS assistant2_name,
       o.ANES_METHOD     AS anes_method,
       n.NAME            AS anesthetist_name,
       o.PRE_DIAG        AS pre_diag,
       o.POST_DIAG       AS post_diag,
       o.OPER_DEPT       AS oper_dept,
       o.REOPER_FLAG     AS reoper_flag,
       o.ELECTIVE_FLAG   AS elective_flag,
       o.BRANCH_CODE     AS branch_code,
       o.BRANCH_NAME     AS branch_name,
       o.OPER_SITE       AS oper_site,
       o.OPER_SITE_NAME  AS oper_site_name,
       o.CANCEL_FLAG     AS cancel_flag,
       o.UPDATE_TIME     AS update_time
FROM MR_HOMEPAGE_OPER o
LEFT JOIN STAFF_DICT s ON s.JOB_NO = o.SURGEON_NO
LEFT JOIN STAFF_DICT a ON a.JOB_NO = o.ASSIST1_NO
LEFT JOIN STAFF_DICT a2 ON a2.JOB_NO = o.ASSIST2_NO
LEFT JOIN STAFF_DICT n ON n.JOB_NO = o.ANESTHETIST_NO

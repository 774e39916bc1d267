-- 检查报告影像索引表 ← PACS series index (WADO address per series) with the report's status.
SELECT i.STORAGE_PATH  AS storage_path,
       i.REPORT_ID     AS report_id,
       i.SOP_UID       AS sop_uid,
       i.SERIES_UID    AS series_uid,
       i.REPORT_TIME   AS report_time,
       e.STATUS        AS status,
       i.MODIFY_TIME   AS modify_time
FROM EXAM_IMAGE i
JOIN EXAM_REPORT e ON e.REPORT_ID = i.REPORT_ID

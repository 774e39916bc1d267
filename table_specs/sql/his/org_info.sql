-- 医疗服务机构 ← HIS hospital registration record (one row).
SELECT h.CREDIT_CODE  AS credit_code,
       h.LICENSE_NO   AS license_no,
       h.HOSP_TYPE    AS org_type,
       h.HOSP_LEVEL   AS org_level,
       h.HOSP_CLASS   AS org_class,
       h.NONPROFIT    AS nonprofit,
       h.OWNER_TYPE   AS owner_type,
       h.AREA_CODE    AS division_code,
       h.ADDRESS      AS address,
       h.POST_CODE    AS post_code,
       h.PHONE        AS phone,
       h.BED_COUNT    AS bed_count,
       h.VALID_FROM   AS valid_from,
       h.VALID_TO     AS valid_to,
       h.ISSUER       AS issuer,
       h.POOL_AREA    AS pool_area,
       h.UPDATE_TIME  AS update_time
FROM HOSPITAL_INFO h

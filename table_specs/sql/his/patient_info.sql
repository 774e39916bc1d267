-- 患者基本信息表 ← HIS patient master (demo vendor schema). The integrator owns this SQL;
-- hipbridge adds the watermark window around it (update_time >= :window_start AND < :window_end).
SELECT p.PAT_ID       AS patient_id,
       p.PAT_NAME     AS patient_name,
       p.SEX          AS sex,
       p.BIRTHDAY     AS birth_date,
       p.ID_TYPE      AS id_type,
       p.ID_NO        AS id_no,
       p.MOBILE       AS mobile,
       p.NATION       AS nation,
       p.MARRY        AS marital,
       p.ADDR         AS address,
       p.CREATE_TIME  AS create_time,
       p.UPDATE_TIME  AS update_time
FROM PAT_MASTER_INDEX p

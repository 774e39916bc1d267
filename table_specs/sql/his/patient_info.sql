-- 患者基本信息表 ← HIS patient master (demo vendor schema). The integrator owns this SQL;
-- hipbridge wraps it in the watermark window on update_time (start inclusive, end exclusive).
SELECT p.PAT_ID           AS patient_id,
       p.PAT_NAME         AS patient_name,
       p.SEX              AS sex,
       p.BIRTHDAY         AS birth_date,
       p.ID_TYPE          AS id_type,
       p.ID_NO            AS id_no,
       p.CARD_TYPE        AS card_type,
       p.CARD_NO          AS card_no,
       p.INSUR_CARD_NO    AS insur_card_no,
       p.MOBILE           AS mobile,
       p.NATION           AS nation,
       p.COUNTRY          AS country,
       p.MARRY            AS marital,
       p.OCCUPATION       AS occupation,
       p.ADDR             AS address,
       p.HUKOU_ADDR       AS hukou_address,
       p.CONTACT_NAME     AS contact_name,
       p.CONTACT_RELATION AS contact_relation,
       p.CONTACT_PHONE    AS contact_phone,
       p.CREATE_TIME      AS create_time,
       p.UPDATE_TIME      AS update_time
FROM PAT_MASTER_INDEX p

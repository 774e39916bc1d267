-- 医生排班和预约信息 ← HIS clinic sessions (号源) with their registered / booked counts.
SELECT c.SCHEDULE_ID   AS schedule_id,
       c.DEPT_CODE     AS dept_code,
       c.DEPT_NAME     AS dept_name,
       c.DOCTOR_NO     AS doctor_no,
       c.DOCTOR_NAME   AS doctor_name,
       c.CLINIC_ROOM   AS clinic_room,
       c.TIME_SPAN     AS time_span,
       c.REG_TYPE      AS reg_type,
       c.CLINIC_DATE   AS clinic_date,
       c.LIMIT_NUM     AS limit_num,
       c.APPT_LIMIT    AS appt_limit,
       c.REG_NUM       AS reg_num,
       c.APPT_NUM      AS appt_num,
       c.REG_FEE       AS reg_fee,
       c.STOP_FLAG     AS stop_flag,
       c.MEMO            AS memo,
       c.UPDATE_TIME   AS update_time
FROM CLINIC_SCHEDULE c

-- 外院数据展示: is the visit open, who treats it, who is the patient (config/display.yaml visit_source).
-- Runs on the front-end database; one row per treating doctor. Parameters: org_code, visit_id.
-- 门诊: the 接诊医生 of the visit.
SELECT v.MZJZLSH AS visit_id, 'outpatient' AS visit_kind, v.HZWYBSH AS patient_id,
       COALESCE(p.XM, v.HZXM) AS patient_name, p.ZJLXDM AS id_type, p.ZJHM AS id_no, p.SJHM AS phone,
       v.JZYSGH AS doctor_id, COALESCE(s.XM, v.JZYSXM) AS doctor_name, v.JZKSDM AS dept_id, v.JZKSMC AS dept_name,
       v.JZKSSJ AS visit_start, v.JZJSSJ AS visit_end
FROM MZJZJL v
LEFT JOIN HZJBXXB p ON p.YLJGDM = v.YLJGDM AND p.HZWYBSH = v.HZWYBSH
LEFT JOIN YHRYXXB s ON s.YLJGDM = v.YLJGDM AND s.ZGGH = v.JZYSGH
WHERE v.YLJGDM = :org_code AND v.MZJZLSH = :visit_id AND v.XGBZ <> '3'
UNION ALL
-- 住院: every doctor who wrote an order in the stay is on its care team; open until 出院.
SELECT a.ZYJZLSH, 'inpatient', a.HZWYBSH, a.XM, a.ZJLXDM, a.ZJHM, p.SJHM,
       o.KLYSGH, s.XM, a.RYKSDM, a.RYKSMC, a.RYSJ, d.CYSJ
FROM RYDJXX a
JOIN (SELECT DISTINCT YLJGDM, ZYJZLSH, KLYSGH FROM ZYYZMX
      WHERE YLJGDM = :org_code AND ZYJZLSH = :visit_id AND XGBZ <> '3') o
  ON o.YLJGDM = a.YLJGDM AND o.ZYJZLSH = a.ZYJZLSH
LEFT JOIN CYDJXX d ON d.YLJGDM = a.YLJGDM AND d.ZYJZLSH = a.ZYJZLSH AND d.XGBZ <> '3'
LEFT JOIN HZJBXXB p ON p.YLJGDM = a.YLJGDM AND p.HZWYBSH = a.HZWYBSH
LEFT JOIN YHRYXXB s ON s.YLJGDM = a.YLJGDM AND s.ZGGH = o.KLYSGH
WHERE a.YLJGDM = :org_code AND a.ZYJZLSH = :visit_id AND a.XGBZ <> '3' AND a.ZFBZ <> '1'

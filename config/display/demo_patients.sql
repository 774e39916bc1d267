-- `make demo` (hipbridge display demo): demo patients whose other-hospital data the simulated platform
-- pushes — open inpatient stays (no 出院 yet) with a doctor who wrote orders in them (at most `limit` rows).
SELECT a.ZYJZLSH AS visit_id, a.HZWYBSH AS patient_id, a.XM AS patient_name, a.ZJLXDM AS id_type,
       a.ZJHM AS id_no, MIN(o.KLYSGH) AS doctor_id
FROM RYDJXX a
JOIN ZYYZMX o ON o.YLJGDM = a.YLJGDM AND o.ZYJZLSH = a.ZYJZLSH AND o.XGBZ <> '3'
LEFT JOIN CYDJXX d ON d.YLJGDM = a.YLJGDM AND d.ZYJZLSH = a.ZYJZLSH AND d.XGBZ <> '3'
WHERE a.YLJGDM = :org_code AND d.ZYJZLSH IS NULL AND a.ZFBZ <> '1' AND a.XGBZ <> '3' AND a.ZJLXDM = '01'
GROUP BY a.ZYJZLSH, a.HZWYBSH, a.XM, a.ZJLXDM, a.ZJHM
ORDER BY a.ZYJZLSH
LIMIT :limit

"""A two-table hospital small enough to reason about row by row, for pipeline behaviour tests.

The source is a real SQLite file shaped like a vendor HIS; the specs are real YAML files in a
temporary spec folder (with the project's `_defaults.yaml`).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VISIT_SPEC = """\
table: visit
label: 门诊就诊记录
source:
  system: his
  connection: mini
  query: sql/visit.sql
  watermark: {column: upd, lookback: 10m}
  void: {column: status, values: ["C"]}
target: {name: MZJZJL, primary_key: [YLJGDM, JZLSH]}
columns:
  - {name: JZLSH, label: 门诊就诊流水号, type: varchar(32), required: true, from: id}
  - {name: HZWYBSH, label: 患者唯一标识号, type: varchar(32), required: true, from: pid}
  - {name: JZKSSJ, label: 就诊开始时间, type: timestamp, required: true, from: start_time}
  - {name: JE, label: 挂号费, type: 'decimal(6,2)', from: fee}
  - {name: XM, label: 患者姓名, type: varchar(4), from: name, sensitive: true}
  - {name: ZYJZLSH, label: 住院就诊流水号, type: varchar(32), value: "-"}
"""

VISIT_SQL = """\
SELECT v.VISIT_NO AS id, v.PAT_ID AS pid, v.START_TIME AS start_time, v.FEE AS fee, v.PAT_NAME AS name,
       v.STATUS AS status, v.UPDATE_TIME AS upd
FROM CLINIC_VISIT v
"""

DIAG_SPEC = """\
table: diag
label: 诊断明细报告
source:
  system: his
  connection: mini
  query: "SELECT d.DIAG_ID AS id, d.VISIT_NO AS visit_id, d.ICD AS icd, d.UPDATE_TIME AS upd FROM CLINIC_DIAG d"
  watermark: {column: upd}
target: {name: ZDMXBG, primary_key: [ZDLSH, YLJGDM]}
columns:
  - {name: ZDLSH, label: 诊断流水号, type: varchar(32), required: true, from: id}
  - {name: JZLSH, label: 就诊流水号, type: varchar(32), required: true, from: visit_id, references: visit.JZLSH}
  - {name: XYZDDM, label: 西医诊断代码, type: varchar(20), required: true, from: icd}
"""

ROWS = [
    # VISIT_NO, PAT_ID, START_TIME, FEE, PAT_NAME, STATUS, UPDATE_TIME
    ("V1", "P1", "2026-11-20 08:00:00", 12.5, "张三", "N", "2026-11-20 09:00:00"),
    ("V2", "P2", "2026-11-20 08:10:00", 20, "李四", "N", "2026-11-20 09:05:00"),
    ("V3", "P3", "2026-11-20 08:20:00", 7, "王五", "C", "2026-11-20 09:10:00"),
    ("V4", "P4", "2026-11-21 10:00:00", 7, "赵六", "N", "2026-11-21 10:30:00"),
]
BAD_ROWS = [
    ("V5", "P5", "2026-02-30 08:10:00", 1, "钱七", "N", "2026-11-21 11:00:00"),      # impossible date
    ("V6", "P6", "2026-11-21 08:10:00", 99999, "孙八", "N", "2026-11-21 11:00:00"),  # overflows decimal(6,2)
    ("V7", "P7", "2026-11-21 08:10:00", 1, "欧阳娜娜娜", "N", "2026-11-21 11:00:00"),  # 5 chars > varchar(4)
    (None, "P8", "2026-11-21 08:10:00", 1, "周九", "N", "2026-11-21 11:00:00"),       # no key
    ("V9", "P9", "2026-11-21 08:10:00", 1, "张三".encode("gbk"), "N", "2026-11-21 11:00:00"),  # GBK bytes
]


class MiniHospital:
    def __init__(self, root: Path):
        self.root = root
        self.specs = root / "specs"
        (self.specs / "sql").mkdir(parents=True)
        shutil.copy(ROOT / "table_specs" / "_defaults.yaml", self.specs)
        (self.specs / "visit.yaml").write_text(VISIT_SPEC, encoding="utf-8")
        (self.specs / "sql" / "visit.sql").write_text(VISIT_SQL, encoding="utf-8")
        (self.specs / "diag.yaml").write_text(DIAG_SPEC, encoding="utf-8")
        self.source = root / "his.db"
        with self.connect() as c:
            c.execute("CREATE TABLE CLINIC_VISIT (VISIT_NO TEXT, PAT_ID TEXT, START_TIME TEXT, FEE NUMERIC, "
                      "PAT_NAME TEXT, STATUS TEXT, UPDATE_TIME TEXT)")
            c.execute("CREATE TABLE CLINIC_DIAG (DIAG_ID TEXT, VISIT_NO TEXT, ICD TEXT, UPDATE_TIME TEXT)")
            c.executemany("INSERT INTO CLINIC_VISIT VALUES (?,?,?,?,?,?,?)", ROWS)
            c.executemany("INSERT INTO CLINIC_DIAG VALUES (?,?,?,?)", [
                ("D1", "V1", "J06.900", "2026-11-20 09:00:00"), ("D2", "V2", "I10.x00", "2026-11-20 09:05:00")])

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.source)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.source}"

    def execute(self, sql: str, params=()) -> None:
        with self.connect() as c:
            c.execute(sql, params)

    def add_bad_rows(self) -> None:
        with self.connect() as c:
            c.executemany("INSERT INTO CLINIC_VISIT VALUES (?,?,?,?,?,?,?)", BAD_ROWS)

"""Sample specs of the shared tables (small stand-ins with the ids `config/sharing.yaml` names).

Kept out of the product package (issue 14). Only the deletion and crypto benchmarks (bench/deletion.py,
bench/crypto.py) still use these reduced tables; the retention and lifecycle tests, the demo and
everything else use the real `table_specs/`. The shared store is built from whatever specs carry these ids.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SPECS = {
    "op_visit": """
table: op_visit
label: 门诊就诊记录
source: {system: his, connection: his, query: "select 1"}
target: {name: MZJZJLB, primary_key: [YLJGDM, MZJZLSH]}
columns:
  - {name: MZJZLSH, label: 门诊就诊流水号, type: varchar(32), required: true, from: a}
  - {name: HZWYBSH, label: 患者唯一标识号, type: varchar(32), required: true, from: b}
  - {name: XM, label: 姓名, type: varchar(50), from: c, sensitive: true}
  - {name: ZJLXDM, label: 证件类型代码, type: varchar(2), from: d, codes: {domain: CV02.01.101}}
  - {name: ZJHM, label: 证件号码, type: varchar(32), from: e, sensitive: true, checks: [gb11643]}
  - {name: JZKSSJ, label: 就诊开始时间, type: timestamp, from: f}
  - {name: JZJSSJ, label: 就诊结束时间, type: timestamp, from: g}
retention: {anchor: visit_end, days: 15, visit_link: MZJZLSH}
""",
    "diagnosis_detail": """
table: diagnosis_detail
label: 诊断明细报告
source: {system: his, connection: his, query: "select 1"}
target: {name: ZDMXBG, primary_key: [YLJGDM, ZDLSH]}
columns:
  - {name: ZDLSH, label: 诊断流水号, type: varchar(32), required: true, from: a}
  - {name: JZLSH, label: 就诊流水号, type: varchar(32), required: true, from: b, references: op_visit.MZJZLSH}
  - {name: ZDDM, label: 诊断代码, type: varchar(20), from: c}
  - {name: ZDMC, label: 诊断名称, type: varchar(100), from: d}
  - {name: ZDSJ, label: 诊断时间, type: timestamp, from: e}
retention: {anchor: visit_end, days: 15, visit_link: JZLSH}
""",
    "lab_report": """
table: lab_report
label: 检验记录表
source: {system: lis, connection: lis, query: "select 1"}
target: {name: JYJLB, primary_key: [YLJGDM, JYBGLSH]}
columns:
  - {name: JYBGLSH, label: 检验报告流水号, type: varchar(32), required: true, from: a}
  - {name: JZLSH, label: 就诊流水号, type: varchar(32), from: b, references: op_visit.MZJZLSH}
  - {name: BGSJ, label: 报告时间, type: timestamp, required: true, from: c}
  - {name: JYXMMC, label: 检验项目名称, type: varchar(100), from: d}
retention: {anchor: visit_end, days: 15, visit_link: JZLSH}
""",
    "lab_result": """
table: lab_result
label: 检验明细表
source: {system: lis, connection: lis, query: "select 1"}
target: {name: JYMXB, primary_key: [YLJGDM, JYMXLSH]}
columns:
  - {name: JYMXLSH, label: 检验明细流水号, type: varchar(32), required: true, from: a}
  - {name: JYBGLSH, label: 检验报告流水号, type: varchar(32), required: true, from: b, references: lab_report.JYBGLSH}
  - {name: JCZBMC, label: 检验指标名称, type: varchar(100), from: c}
  - {name: JCJG, label: 检验定量结果, type: 'decimal(10,2)', from: d}
retention: {anchor: visit_end, days: 15, header: lab_report}
""",
    "exam_report": """
table: exam_report
label: 检查记录表
source: {system: pacs, connection: pacs, query: "select 1"}
target: {name: JCJLB, primary_key: [YLJGDM, JCBGLSH]}
columns:
  - {name: JCBGLSH, label: 检查报告流水号, type: varchar(32), required: true, from: a}
  - {name: JZLSH, label: 就诊流水号, type: varchar(32), from: b, references: op_visit.MZJZLSH}
  - {name: JCSJ, label: 检查所见, type: varchar(500), from: c, sensitive: true}
  - {name: BGSJ, label: 报告时间, type: timestamp, from: d}
retention: {anchor: visit_end, days: 15, visit_link: JZLSH}
""",
    "op_prescription": """
table: op_prescription
label: 门诊处方
source: {system: his, connection: his, query: "select 1"}
target: {name: MZCF, primary_key: [YLJGDM, CFLSH]}
columns:
  - {name: CFLSH, label: 处方流水号, type: varchar(32), required: true, from: a}
  - {name: JZLSH, label: 门诊就诊流水号, type: varchar(32), from: b, references: op_visit.MZJZLSH}
  - {name: KFSJ, label: 开方时间, type: timestamp, from: c}
retention: {anchor: visit_end, days: 15, visit_link: JZLSH}
""",
    "op_prescription_item": """
table: op_prescription_item
label: 门诊处方明细
source: {system: his, connection: his, query: "select 1"}
target: {name: MZCFMX, primary_key: [YLJGDM, CFMXLSH]}
columns:
  - {name: CFMXLSH, label: 处方明细流水号, type: varchar(32), required: true, from: a}
  - {name: CFLSH, label: 处方流水号, type: varchar(32), required: true, from: b, references: op_prescription.CFLSH}
  - {name: YPMC, label: 药品名称, type: varchar(100), from: c}
  - {name: SL, label: 数量, type: 'decimal(10,2)', from: d}
retention: {anchor: visit_end, days: 15, header: op_prescription}
""",
}


def write_sample_specs(directory: Path, defaults: Path | None = None) -> Path:
    """Write `_defaults.yaml` (copied from table_specs/) and the sample shared-table specs."""
    directory.mkdir(parents=True, exist_ok=True)
    src = defaults or Path(__file__).resolve().parents[1] / "table_specs" / "_defaults.yaml"
    shutil.copy(src, directory / "_defaults.yaml")
    for name, body in SPECS.items():
        (directory / f"{name}.yaml").write_text(body.lstrip(), encoding="utf-8")
    return directory

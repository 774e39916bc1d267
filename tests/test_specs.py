"""The 27 table specs: they load, name known code sets and domains, and their SQL runs against the
demo hospital returning every column the spec reads, with unique keys.

Real SQLite demo files in tmp_path (scale 0.005, one day); the SQL is wrapped exactly as the
pipeline wraps it (`hipbridge.io.extract.windowed_sql`).
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest
import yaml
from hipbridge.demo import build
from hipbridge.demo.codes import LOCAL_CODE_SETS
from hipbridge.io.extract import windowed_sql
from hipbridge.spec import load_specs

ROOT = Path(__file__).resolve().parents[1]
END = date(2026, 11, 24)
CATALOG_TABLES = [
    "org_info", "dept_info", "staff_info", "patient_info", "doctor_schedule", "op_registration", "op_visit",
    "diagnosis_detail", "op_prescription", "op_prescription_item", "ip_admission", "ip_order", "ip_discharge",
    "discharge_summary", "mr_homepage", "mr_homepage_diagnosis", "mr_homepage_operation", "lab_report",
    "lab_result", "lab_bacteria", "lab_susceptibility", "exam_report", "exam_image_index", "surgery_record",
    "fee_detail", "fee_settlement", "bed_occupancy",
]
SPECS = load_specs(ROOT / "table_specs")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo_small")
    build(out, seed=11, days=1, scale=0.005, end_date=END)
    return out


def _rows(demo: Path, table: str, window: bool = False) -> tuple[list[str], list[tuple]]:
    spec = SPECS.get(table)
    sql = SPECS.query_text(spec)
    wm = spec.source.watermark.column if spec.source.watermark else None
    params: dict = {}
    if window:
        sql = windowed_sql(sql, wm, lambda c: f'"{c}"')
        params = {"window_start": "2026-11-24 00:00:00", "window_end": "2026-11-25 00:00:00"}
    with sqlite3.connect(demo / f"{spec.source.connection}.db") as conn:
        cur = conn.execute(sql, params)
        return [d[0].lower() for d in cur.description], cur.fetchall()


def test_all_27_specs_load():
    assert not SPECS.errors, "\n".join(map(str, SPECS.errors))
    assert sorted(SPECS.specs) == sorted(CATALOG_TABLES)
    for spec in SPECS.specs.values():
        assert "phase1" in spec.tags and spec.source.system in spec.tags
        assert spec.target.name.isupper() and "YLJGDM" in spec.target.primary_key
        assert not spec.source.query.strip().rstrip().endswith(";")
        sql = SPECS.query_text(spec).upper()
        assert "ORDER BY" not in sql and not sql.strip().endswith(";"), spec.table


def test_codes_name_known_sets_and_domains():
    domains = yaml.safe_load((ROOT / "mappings/standard/_domains.yaml").read_text(encoding="utf-8"))["domains"]
    known = set(domains) | {a for d in domains.values() for a in d.get("aliases", [])}
    for spec in SPECS.specs.values():
        for col in spec.columns:
            if col.codes is None:
                continue
            assert col.codes.domain in known, f"{spec.table}.{col.name}: unknown domain {col.codes.domain}"
            if col.codes.local:
                assert col.codes.local in LOCAL_CODE_SETS, f"{spec.table}.{col.name}: {col.codes.local}"
                assert LOCAL_CODE_SETS[col.codes.local]["domain"] in (col.codes.domain, *domains.get(
                    col.codes.domain, {}).get("aliases", [])), f"{spec.table}.{col.name}: set/domain differ"


@pytest.mark.parametrize("table", CATALOG_TABLES)
def test_source_sql_returns_every_column_with_unique_keys(demo, table):
    spec = SPECS.get(table)
    cols, rows = _rows(demo, table)
    need = {c.source.lower() for c in spec.columns if c.source}
    need.add(spec.source.watermark.column.lower())
    if spec.source.void:
        need.add(spec.source.void.column.lower())
    assert need <= set(cols), f"{table}: SQL lacks {sorted(need - set(cols))}"
    assert rows, f"{table}: the demo has no rows"
    key_cols = [cols.index(spec.column(k).source.lower()) for k in spec.target.primary_key if k != "YLJGDM"]
    keys = [tuple(r[i] for i in key_cols) for r in rows]
    assert all(all(v is not None and v != "" for v in k) for k in keys), f"{table}: empty key"
    assert len(set(keys)) == len(keys), f"{table}: duplicate keys"
    # coded columns hold only codes of their local set (the dictionaries are complete)
    for col in spec.columns:
        if col.codes and col.codes.local and col.source:
            i = cols.index(col.source.lower())
            stray = {r[i] for r in rows if r[i] is not None} - set(LOCAL_CODE_SETS[col.codes.local]["codes"])
            assert not stray, f"{table}.{col.name}: {sorted(stray)[:5]} not in {col.codes.local}"


@pytest.mark.parametrize("table", ["patient_info", "op_visit", "diagnosis_detail", "lab_report", "lab_result",
                                   "fee_detail", "bed_occupancy"])
def test_windowed_sql_selects_the_day(demo, table):
    spec = SPECS.get(table)
    cols, rows = _rows(demo, table, window=True)
    assert rows
    wm = cols.index(spec.source.watermark.column.lower())
    assert all("2026-11-24 00:00:00" <= r[wm] < "2026-11-25 00:00:00" for r in rows)


def test_pair_visit_columns_use_the_dash_rule(demo):
    cols, rows = _rows(demo, "lab_report")
    t, o, i = cols.index("visit_type"), cols.index("outp_visit_no"), cols.index("inp_visit_no")
    assert rows and all((r[o] == "-") == (r[t] == "I") and (r[i] == "-") == (r[t] != "I") for r in rows)

"""Every spec against the standard's column lists (table_specs/_standard/columns.csv).

A difference that `deviations.yaml` does not list, with its reason, fails; so does a listed
deviation that no longer occurs. The synthetic cases prove the comparison notices each kind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hipbridge.spec import load_specs
from hipbridge.spec.standard import StandardError, differences, load_deviations, load_standard, unexplained
from hipbridge.spec.types import parse_type

ROOT = Path(__file__).resolve().parents[1]
SPECS = load_specs(ROOT / "table_specs")


def test_the_standard_covers_the_27_tables_and_parses():
    std = load_standard(ROOT / "table_specs")
    assert sorted(std) == sorted(SPECS.specs)
    for table, cols in std.items():
        assert any(c.required == "PK" for c in cols) or table == "org_info", table
        for c in cols:
            parse_type(c.type)
    # every element names its physical column, so the comparison checks the name of each one
    assert [(t, c.label) for t, cols in std.items() for c in cols if not c.name] == []


def test_every_spec_matches_the_standard_or_says_why():
    assert not SPECS.errors, "\n".join(map(str, SPECS.errors))
    missing_reason, stale = unexplained(SPECS)
    assert not missing_reason, "differences from columns.csv not listed in deviations.yaml:\n" + "\n".join(
        map(str, missing_reason))
    assert not stale, f"deviations.yaml lists differences that no longer occur (delete them): {stale}"


def test_deviation_reasons_are_real_sentences():
    for key, reason in load_deviations(ROOT / "table_specs").items():
        assert len(reason) >= 20, (key, reason)


@pytest.fixture
def spec_copy(tmp_path):
    shutil.copytree(ROOT / "table_specs", tmp_path / "table_specs")
    return tmp_path / "table_specs"


def _edit(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    fn(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_each_kind_of_difference_is_found(spec_copy):
    before = {(d.table, d.label, d.kind) for d in differences(load_specs(spec_copy))}

    def change(data):
        cols = data["columns"]
        by = {c["label"]: c for c in cols}
        cols.remove(by["既往史"])                               # missing
        by["挂号流水号"]["type"] = "varchar(40)"                # type
        by["门(急)诊号"]["required"] = True                     # required
        by["主诉"]["required_when"] = {"column": "JZSJLXDM", "in": ["2"]}   # required_when
        by["患者姓名"]["name"] = "XM"                           # name
        cols.append({"name": "BEIZHU", "label": "备注", "type": "varchar(10)", "from": "visit_no"})  # extra
        cols.append({"name": "JZSJLXMC", "label": "就诊事件类型名称", "type": "varchar(10)", "from": "visit_no"})

    _edit(spec_copy / "op_visit.yaml", change)
    specs = load_specs(spec_copy)
    assert not specs.errors, specs.errors
    after = {(d.table, d.label, d.kind) for d in differences(specs)} - before
    assert after == {
        ("op_visit", "既往史", "missing"),
        ("op_visit", "挂号流水号", "type"),
        ("op_visit", "门(急)诊号", "required"),
        ("op_visit", "主诉", "required_when"),
        ("op_visit", "患者姓名", "name"),
        ("op_visit", "备注", "extra"),
        # 就诊事件类型名称 is the coded pair of 就诊事件类型代码 (tables.md §4): not a difference
    }
    fixed, _ = unexplained(specs)
    assert {(d.table, d.label, d.kind) for d in fixed} == after


def test_a_stale_deviation_is_reported(spec_copy):
    path = spec_copy / "_standard" / "deviations.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["deviations"].append({"table": "op_visit", "label": "主诉", "kind": "type",
                               "reason": "a deviation that does not happen any more"})
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    _, stale = unexplained(load_specs(spec_copy))
    assert ("op_visit", "主诉", "type") in stale


def test_a_deviation_without_reason_or_a_bad_row_is_an_error_naming_the_file(spec_copy):
    path = spec_copy / "_standard" / "deviations.yaml"
    path.write_text("deviations:\n  - {table: op_visit, label: 主诉, kind: type, reason: ''}\n", encoding="utf-8")
    with pytest.raises(StandardError, match=r"deviations.yaml: deviations\[0\]: every deviation needs its reason"):
        load_deviations(spec_copy)
    csv_path = spec_copy / "_standard" / "columns.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("varchar(", "varchr(", 1)
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(StandardError, match=r"columns.csv:4: type:"):
        load_standard(spec_copy)


def test_the_recognition_catalog_attributes_cover_exactly_the_domain():
    import csv

    with (ROOT / "mappings/standard/gx_recognition_items.csv").open(encoding="utf-8") as fh:
        domain = [r["code"] for r in csv.DictReader(fh)]
    with (ROOT / "mappings/recognition/items.csv").open(encoding="utf-8") as fh:
        items = list(csv.DictReader(fh))
    assert [r["code"] for r in items] == domain
    assert {r["kind"] for r in items} == {"检验", "检查"}
    for r in items:
        assert r["validity_days"] == "" or (int(r["validity_days"]) > 0 and r["validity_basis"]), r
        assert r["kind"] != "检查" or r["validity_days"] == ""    # imaging windows unknown: fail closed

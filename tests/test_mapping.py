"""Mapping: value domains, local mapping files (and their bad-input errors), apply and its unmapped policies."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hipbridge.mapping import MappingConfigError, MappingResult, load_catalog
from hipbridge.mapping.files import read_csv
from hipbridge.mapping.local import LOCAL_COLUMNS
from hipbridge.spec import TableSpec

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "mappings"
HEADER = ",".join(LOCAL_COLUMNS)


@pytest.fixture
def mdir(tmp_path) -> Path:
    """A private copy of the repository's mappings (tests edit it freely)."""
    dst = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, dst, ignore=shutil.ignore_patterns("*_full.csv"))
    return dst


def make_spec(*columns: dict, table: str = "t_map") -> TableSpec:
    cols = [{"name": "ID", "label": "流水号", "type": "varchar(32)", "from": "id"}]
    for c in columns:
        cols.append({"type": "varchar(64)", "from": c["name"].lower(), **c})
        nc = (c.get("codes") or {}).get("name_column")
        if nc:
            cols.append({"name": nc, "label": nc, "type": "varchar(200)"})
    return TableSpec.model_validate({
        "table": table, "label": "测试表", "source": {"system": "his", "connection": "his", "query": "select 1"},
        "target": {"name": "T", "primary_key": ["ID"]}, "columns": cols})


def coded(name: str, label: str, **codes) -> dict:
    return {"name": name, "label": label, "codes": codes}


def write_set(folder: Path, set_id: str, domain: str, rows: list[list[str]] | str, header: str = HEADER,
              encoding: str = "utf-8") -> Path:
    sets = folder / "_sets.yaml"
    data = yaml.safe_load(sets.read_text(encoding="utf-8")) if sets.exists() else {"sets": {}}
    data["sets"][set_id] = {"domain": domain, "label": set_id}
    sets.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    path = folder / f"{set_id}.csv"
    body = rows if isinstance(rows, str) else "\n".join(",".join(r) for r in rows)
    path.write_bytes((header + "\n" + body + "\n").encode(encoding))
    return path


def row(code, name, std, status="approved", eq="EQUAL", reviewer="张三", at="2026-11-20", comment=""):
    return [code, name, std, status, eq, reviewer, at, comment]


# ---------------------------------------------------------------- the shipped files


def test_shipped_mappings_are_valid():
    catalog = load_catalog(MAPPINGS, "demo")
    assert catalog.errors == []
    assert len(catalog.domains) >= 40
    assert all(s.rows for s in catalog.sets.values())


def test_catalog_is_not_loaded_at_import_and_is_cached(monkeypatch):
    import importlib

    from hipbridge.mapping import domains

    calls = []
    orig = domains.read_csv
    monkeypatch.setattr(domains, "read_csv", lambda *a, **k: calls.append(a[0]) or orig(*a, **k))
    importlib.reload(importlib.import_module("hipbridge.mapping"))
    assert calls == []
    domains._CSV_CACHE.clear()
    load_catalog(MAPPINGS, "demo")
    first = len(calls)
    load_catalog(MAPPINGS, "demo")
    assert first > 0 and len(calls) == first  # standard CSVs parsed once, then served from the cache


def _domain_ids() -> list[str]:
    data = yaml.safe_load((MAPPINGS / "standard" / "_domains.yaml").read_text(encoding="utf-8"))
    return list(data["domains"])


@pytest.mark.parametrize("domain_id", _domain_ids())
def test_each_domain_validates_standard_codes(domain_id):
    """A column bound to a domain only: its standard codes pass with their names; anything else is unmapped."""
    catalog = load_catalog(MAPPINGS, "demo")
    dom = catalog.domain(domain_id)
    rows, _, errors = read_csv(dom.file, ["code", "name", "standard", "version"])
    assert not errors and len(rows) == len(dom.codes) > 0
    assert all(r["standard"] and r["version"] for r in rows)
    if dom.other is not None:
        assert dom.other in dom.codes
    codes = list(dom.codes)
    spec = make_spec(coded("DM", "代码", domain=domain_id, name_column="MC", unmapped="quarantine"))
    frame = pd.DataFrame({"ID": range(len(codes) + 1), "DM": codes + ["不存在的代码"]})
    res = catalog.apply(frame, spec)
    assert res.frame["DM"].tolist()[:-1] == codes
    assert res.frame["MC"].tolist()[:-1] == [dom.codes[c] for c in codes]
    assert res.counts["DM"]["mapped"] == len(codes)
    assert res.counts["DM"]["unmapped_quarantined"] == 1
    assert res.row_errors.iloc[-1] == f"代码(DM) 值 '不存在的代码' 不是 {domain_id}（{dom.label}）的代码"


def test_reference_lists_are_complete():
    catalog = load_catalog(MAPPINGS, "demo")
    assert catalog.domain("GB/T 2261.1").codes == {"0": "未知的性别", "1": "男性", "2": "女性", "9": "未说明的性别"}
    assert len(catalog.domain("GB/T 3304").codes) == 58 and catalog.domain("GB/T 3304").codes["08"] == "壮族"
    assert catalog.domain("CV07.10.005").codes["99"] == "其他"
    assert catalog.domain("CV06.00.102").codes["404"] == "静脉注射或静脉滴注"
    assert catalog.domain("change_flag").codes == {"1": "正常", "2": "修改", "3": "撤销"}
    assert catalog.domain("GB/T 2260").codes["451082"] == "平果市"
    # an alias (a provisional id used before the list was published) resolves to the same domain
    assert catalog.domain("GX.KLX") is catalog.domain("card_type")


def test_icd_subsets_hold_every_demo_code():
    from hipbridge.demo.codes import LOCAL_CODE_SETS

    catalog = load_catalog(MAPPINGS, "demo")
    for set_id, meta in LOCAL_CODE_SETS.items():
        if meta["domain"] in ("ICD-10", "ICD-9-CM-3"):
            assert set(meta["codes"]) <= set(catalog.domain(meta["domain"]).codes), set_id


@pytest.mark.parametrize("set_id", sorted(load_catalog(MAPPINGS, "demo").sets))
def test_each_demo_set_applies_its_approved_rows(set_id):
    catalog = load_catalog(MAPPINGS, "demo")
    ls = catalog.sets[set_id]
    approved = [r for r in ls.rows if r.status == "approved"]
    spec = make_spec(coded("DM", "代码", local=set_id, name_column="MC", unmapped="keep"))
    frame = pd.DataFrame({"ID": range(len(approved)), "DM": [r.local_code for r in approved]})
    res = catalog.apply(frame, spec)
    dom = catalog.domains[ls.domain]
    assert res.frame["DM"].tolist() == [r.standard_code for r in approved]
    assert res.frame["MC"].tolist() == [dom.codes[r.standard_code] for r in approved]
    assert res.counts["DM"]["mapped"] == len(approved)


# ---------------------------------------------------------------- apply and policies


def sex_frame() -> pd.DataFrame:
    return pd.DataFrame({"ID": list("abcdef"), "XB": ["M", "F", "X", None, " M ", ""]},
                        index=[10, 11, 12, 13, 14, 15])


@pytest.mark.parametrize("policy, code_x, name_x, key", [
    ("quarantine", "X", None, "unmapped_quarantined"),
    ("keep", "X", None, "unmapped_kept"),
    ("other", "9", "未说明的性别", "unmapped_other"),
])
def test_unmapped_policies(policy, code_x, name_x, key):
    catalog = load_catalog(MAPPINGS, "demo")
    spec = make_spec(coded("XB", "性别代码", domain="GB/T 2261.1", local="his_sex", name_column="XBMC",
                           unmapped=policy))
    frame = sex_frame()
    res = catalog.apply(frame, spec)
    assert isinstance(res, MappingResult)
    assert res.frame["XB"].tolist() == ["1", "2", code_x, None, "1", None]
    assert res.frame["XBMC"].tolist() == ["男性", "女性", name_x, None, "男性", None]
    expected = {"mapped": 3, "empty": 2, "unmapped_kept": 0, "unmapped_other": 0, "unmapped_quarantined": 0}
    expected[key] = 1
    assert res.counts == {"XB": expected}
    assert list(res.row_errors.index) == list(frame.index)
    reason = "性别代码(XB) 本地码 'X' 未对照到 GB/T 2261.1" if policy == "quarantine" else None
    assert res.row_errors.tolist() == [None, None, reason, None, None, None]
    assert frame["XB"].tolist()[0] == "M"  # the caller's frame is untouched


def test_other_code_override_and_missing_other():
    catalog = load_catalog(MAPPINGS, "demo")
    spec = make_spec(coded("XB", "性别代码", local="his_sex", name_column="XBMC", unmapped="other", other_code="0"))
    res = catalog.apply(sex_frame(), spec)
    assert res.frame["XB"].tolist()[2] == "0" and res.frame["XBMC"].tolist()[2] == "未知的性别"
    no_other = make_spec(coded("SS", "手术级别", domain="CV05.10.024", unmapped="other"))
    with pytest.raises(MappingConfigError, match="没有 other 代码"):
        catalog.apply(pd.DataFrame({"ID": ["1"], "SS": ["5"]}), no_other)


def test_quarantine_reasons_join_across_columns_and_values_normalise():
    catalog = load_catalog(MAPPINGS, "demo")
    spec = make_spec(coded("XB", "性别代码", local="his_sex", unmapped="quarantine"),
                     coded("MZ", "民族代码", local="his_nation", name_column="MZMC", unmapped="quarantine"))
    frame = pd.DataFrame({"ID": ["1", "2", "3"], "XB": ["X", "M", "X"], "MZ": [77, 8.0, "1"]})
    res = catalog.apply(frame, spec)
    assert res.frame["MZ"].tolist() == ["77", "08", "01"]
    assert res.row_errors.tolist() == [
        "性别代码(XB) 本地码 'X' 未对照到 GB/T 2261.1；民族代码(MZ) 本地码 '77' 未对照到 GB/T 3304",
        None, "性别代码(XB) 本地码 'X' 未对照到 GB/T 2261.1"]
    assert res.unmapped == {"XB": {"X": 2}, "MZ": {"77": 1}}


def test_only_approved_rows_apply_unless_configured(mdir):
    folder = mdir / "local" / "demo"
    write_set(folder, "t_sex", "GB/T 2261.1", [row("M", "男", "1"), row("F", "女", "2", status="flagged"),
                                               row("U", "不详", "0", status="unchecked"),
                                               row("Z", "作废", "", status="ignored")])
    spec = make_spec(coded("XB", "性别代码", local="t_sex", unmapped="keep"))
    frame = pd.DataFrame({"ID": list("abcd"), "XB": ["M", "F", "U", "Z"]})
    res = load_catalog(mdir, "demo").apply(frame, spec)
    assert res.frame["XB"].tolist() == ["1", "F", "U", "Z"]
    assert res.counts["XB"]["unmapped_kept"] == 3
    cfg = folder / "_sets.yaml"
    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    data["apply_statuses"] = ["approved", "flagged"]
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    res = load_catalog(mdir, "demo").apply(frame, spec)
    assert res.frame["XB"].tolist() == ["1", "2", "U", "Z"]


def test_hospital_folder_from_environment(mdir, monkeypatch):
    other = mdir / "local" / "h2"
    other.mkdir()
    write_set(other, "his_sex", "GB/T 2261.1", [row("1", "男", "1"), row("2", "女", "2")])
    monkeypatch.setenv("HIPBRIDGE_HOSPITAL", "h2")
    monkeypatch.setenv("HIPBRIDGE_MAPPINGS", str(mdir))
    catalog = load_catalog()
    assert catalog.hospital.hospital == "h2" and list(catalog.sets) == ["his_sex"]
    spec = make_spec(coded("XB", "性别代码", local="his_sex", unmapped="keep"))
    assert catalog.apply(pd.DataFrame({"ID": ["a"], "XB": ["2"]}), spec).frame["XB"].tolist() == ["2"]



def test_no_default_hospital_outside_the_demo(mdir, monkeypatch, hb_home):
    """Production (a profile without `mapping_hospital`, no HIPBRIDGE_HOSPITAL) never uses the demo's mappings."""
    from hipbridge.mapping import MappingConfigError, default_hospital

    monkeypatch.delenv("HIPBRIDGE_HOSPITAL", raising=False)
    monkeypatch.setenv("HIPBRIDGE_MAPPINGS", str(mdir))
    monkeypatch.setenv("HIPBRIDGE_PROFILE", "test")
    assert default_hospital() == "demo"                 # config/profiles/test.yaml: mapping_hospital: demo
    monkeypatch.setenv("HIPBRIDGE_PROFILE", "production")
    with pytest.raises(MappingConfigError) as err:
        load_catalog()
    assert "HIPBRIDGE_HOSPITAL" in str(err.value) and "mapping_hospital" in str(err.value)
    assert "production.yaml" in str(err.value)
    monkeypatch.setenv("HIPBRIDGE_HOSPITAL", "demo")    # explicit: fine
    assert load_catalog().hospital.hospital == "demo"

def test_binding_errors_are_clear():
    catalog = load_catalog(MAPPINGS, "demo")
    frame = pd.DataFrame({"ID": ["a"], "XB": ["M"]})
    with pytest.raises(MappingConfigError, match="本地码表 'nope' 未在"):
        catalog.apply(frame, make_spec(coded("XB", "性别", local="nope")))
    with pytest.raises(MappingConfigError, match="目标值域是 GB/T 2261.1"):
        catalog.apply(frame, make_spec(coded("XB", "性别", domain="GB/T 3304", local="his_sex")))
    with pytest.raises(MappingConfigError, match="未知值域"):
        catalog.apply(frame, make_spec(coded("XB", "性别", domain="GB/T 9999")))


def test_frame_without_coded_column_and_empty_frame():
    catalog = load_catalog(MAPPINGS, "demo")
    spec = make_spec(coded("XB", "性别", local="his_sex", name_column="XBMC", unmapped="quarantine"))
    res = catalog.apply(pd.DataFrame({"ID": ["a"]}), spec)
    assert res.counts == {} and res.row_errors.tolist() == [None]
    res = catalog.apply(pd.DataFrame({"ID": pd.Series([], dtype=object), "XB": pd.Series([], dtype=object)}), spec)
    assert len(res.frame) == 0 and res.counts["XB"]["mapped"] == 0


# ---------------------------------------------------------------- bad input


def errors_of(mdir: Path) -> list:
    return load_catalog(mdir, "demo").errors


def assert_refused(mdir: Path, set_id: str, values: list[str]) -> None:
    """Nothing is applied from a file that failed validation: apply refuses the column."""
    spec = make_spec(coded("XB", "性别代码", local=set_id, unmapped="keep"))
    with pytest.raises(MappingConfigError):
        load_catalog(mdir, "demo").apply(pd.DataFrame({"ID": range(len(values)), "XB": values}), spec)


def test_bad_duplicate_local_codes_with_conflicting_targets(mdir):
    path = write_set(mdir / "local" / "demo", "t_sex", "GB/T 2261.1",
                     [row("M", "男", "1"), row("F", "女", "2"), row("M", "男", "2")])
    errs = errors_of(mdir)
    assert len(errs) == 1
    e = errs[0]
    assert (e.file, e.row, e.column, e.value) == (str(path), 4, "local_code", "M")
    assert "冲突" in e.message and "第2行" in str(e)
    assert_refused(mdir, "t_sex", ["F"])


def test_identical_duplicate_rows_are_accepted(mdir):
    write_set(mdir / "local" / "demo", "t_sex", "GB/T 2261.1", [row("M", "男", "1"), row("M", "男", "1")])
    assert errors_of(mdir) == []


def test_bad_standard_code_not_in_domain(mdir):
    path = write_set(mdir / "local" / "demo", "t_sex", "GB/T 2261.1", [row("M", "男", "1"), row("F", "女", "3")])
    (e,) = errors_of(mdir)
    assert (e.file, e.row, e.column, e.value) == (str(path), 3, "standard_code", "3")
    assert "GB/T 2261.1" in e.message
    assert_refused(mdir, "t_sex", ["M"])


def test_bad_gbk_file(mdir):
    path = write_set(mdir / "local" / "demo", "t_sex", "GB/T 2261.1", [row("M", "男", "1"), row("F", "女", "2")],
                     encoding="gbk")
    (e,) = errors_of(mdir)
    assert (e.file, e.row, e.column) == (str(path), 2, "local_name") and "UTF-8" in e.message and "GBK" in e.message
    assert_refused(mdir, "t_sex", ["M"])


def test_bad_missing_columns(mdir):
    header = "local_code,local_name,standard_code,equivalence,reviewer,reviewed_at,comment"
    path = write_set(mdir / "local" / "demo", "t_sex", "GB/T 2261.1", "M,男,1,EQUAL,张三,2026-11-20,",
                     header=header)
    (e,) = errors_of(mdir)
    assert (e.file, e.row, e.column) == (str(path), 1, "status") and "缺少" in e.message
    assert_refused(mdir, "t_sex", ["M"])


@pytest.mark.parametrize("bad, column, needle", [
    (row("M", "男", "1", status="done"), "status", "状态必须是"),
    (row("M", "男", "", status="approved"), "standard_code", "必须填写标准代码"),
    (row("M", "男", "1", eq="SAME"), "equivalence", "等价关系"),
    (row("M", "男", "1", at="20/11/2026"), "reviewed_at", "YYYY-MM-DD"),
    (row("", "男", "1"), "local_code", "本地代码为空"),
])
def test_bad_row_values(mdir, bad, column, needle):
    write_set(mdir / "local" / "demo", "t_sex", "GB/T 2261.1", [row("F", "女", "2"), bad])
    (e,) = errors_of(mdir)
    assert (e.row, e.column) == (3, column) and needle in e.message


def test_bad_ragged_row_and_unknown_column_and_undeclared_file(mdir):
    folder = mdir / "local" / "demo"
    write_set(folder, "t_sex", "GB/T 2261.1", "M,男,1,approved,EQUAL,张三,2026-11-20,,extra")
    (e,) = errors_of(mdir)
    assert e.row == 2 and "列数" in e.message
    write_set(folder, "t_sex", "GB/T 2261.1", "M,男,1,approved,EQUAL,张三,2026-11-20,,x", header=HEADER + ",remark")
    (e,) = errors_of(mdir)
    assert (e.row, e.column) == (1, "remark") and "未知列" in e.message
    write_set(folder, "t_sex", "GB/T 2261.1", [row("M", "男", "1")])
    (folder / "stray.csv").write_text(HEADER + "\n", encoding="utf-8")
    (e,) = errors_of(mdir)
    assert e.file.endswith("stray.csv") and "_sets.yaml" in e.message


def test_bad_standard_domain_file(mdir):
    path = mdir / "standard" / "gbt_2261_1_sex.csv"
    path.write_text(path.read_text(encoding="utf-8") + "1,男,GB/T 2261.1-2003,2003\n", encoding="utf-8")
    errs = errors_of(mdir)
    assert any(e.file == str(path) and e.row == 6 and e.column == "code" and "重复" in e.message for e in errs)
    spec = make_spec(coded("XB", "性别", domain="GB/T 2261.1"))
    with pytest.raises(MappingConfigError):
        load_catalog(mdir, "demo").apply(pd.DataFrame({"ID": ["a"], "XB": ["1"]}), spec)


def test_bad_set_domain(mdir):
    write_set(mdir / "local" / "demo", "t_sex", "GB/T 0000", [row("M", "男", "1")])
    (e,) = errors_of(mdir)
    assert e.column == "t_sex" and "GB/T 0000" in e.message


# ---------------------------------------------------------------- full code lists (ICD)


def test_load_standard_full_icd_file_in_gbk(mdir):
    from hipbridge.mapping.domains import import_standard_file

    src = mdir.parent / "icd10_full.csv"
    subset = load_catalog(mdir, "demo").domain("ICD-10").codes
    lines = ["疾病编码,疾病名称"] + [f"{c},{n}" for c, n in subset.items() if c != "Z51.100"]
    lines.append("J18.901,社区获得性肺炎")
    src.write_bytes("\n".join(lines).encode("gbk"))
    target, n, missing = import_standard_file("ICD-10", src, mdir)
    assert target.name == "icd10_gcv2_full.csv" and n == len(subset) and missing == ["Z51.100"]
    dom = load_catalog(mdir, "demo").domain("ICD-10")
    assert dom.file == target and dom.codes["J18.901"] == "社区获得性肺炎"
    bad = mdir.parent / "bad.csv"
    bad.write_text("code;名\nA;B\n", encoding="utf-8")
    with pytest.raises(ValueError, match="第1行"):
        import_standard_file("ICD-10", bad, mdir)
    with pytest.raises(ValueError, match="没有 full_file"):
        import_standard_file("GB/T 2261.1", src, mdir)


# ---------------------------------------------------------------- property tests

from hypothesis import given, settings
from hypothesis import strategies as st

_text = st.text(alphabet=st.sampled_from(list("AZaz09 ,\"'\n男女壮族，、（）-_.")), min_size=0, max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_text, _text), min_size=0, max_size=20))
def test_csv_reader_round_trip(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("csv") / "x.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["code", "name"])
        w.writerows(records)
    rows, numbers, errors = read_csv(path, ["code", "name"])
    assert errors == []
    expected = [(a.strip(), b.strip()) for a, b in records if a.strip() or b.strip()]
    assert [(r["code"], r["name"]) for r in rows] == expected
    assert numbers == sorted(numbers)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["M", "F", "U", " M", "F ", "X", "", None, "Y"]), min_size=0, max_size=60),
       st.sampled_from(["quarantine", "keep", "other"]))
def test_apply_matches_the_lookup(values, policy):
    catalog = load_catalog(MAPPINGS, "demo")
    spec = make_spec(coded("XB", "性别代码", local="his_sex", name_column="XBMC", unmapped=policy))
    lookup = catalog.sets["his_sex"].lookup(("approved",))
    frame = pd.DataFrame({"ID": range(len(values)), "XB": pd.Series(values, dtype=object)})
    res = catalog.apply(frame, spec)
    for raw, code, err in zip(values, res.frame["XB"], res.row_errors):
        v = raw.strip() if raw else None
        if not v:
            assert code is None and err is None
        elif v in lookup:
            assert code == lookup[v] and err is None
        elif policy == "other":
            assert code == "9" and err is None
        else:
            assert code == v and (err is not None) == (policy == "quarantine")
    c = res.counts["XB"]
    assert sum(c.values()) == len(values)
    assert c["unmapped_quarantined"] == int(res.row_errors.notna().sum())
    assert np.all(res.frame.index == frame.index)


def test_domain_lookups_for_readers():
    catalog = load_catalog(MAPPINGS, "demo")
    spec = make_spec(coded("XB", "性别", local="his_sex"), coded("KL", "卡类型", domain="GX.KLX"))
    assert [catalog.domain_for(c).id for c in spec.columns if c.codes] == ["GB/T 2261.1", "card_type"]
    assert catalog.find_domain("nope") is None and catalog.find_domain(None) is None


_codes = st.text(alphabet=st.sampled_from(list("ABZ019.-_ 男女，,\"")), min_size=1, max_size=8).map(str.strip).filter(bool)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(_codes, st.tuples(st.sampled_from(["0", "1", "2", "9", ""]),
                                         st.sampled_from(["approved", "unchecked", "flagged", "ignored"]),
                                         _text), max_size=15))
def test_mapping_file_write_read_round_trip(tmp_path_factory, entries):
    """What `mapping import` writes, the loader reads back unchanged (quotes, commas, Chinese, blanks)."""
    from hipbridge.mapping.domains import load_domains
    from hipbridge.mapping.local import MappingRow, load_local_set
    from hipbridge.mapping.review import _write_set

    domains, _ = load_domains(MAPPINGS / "standard")
    rows = [MappingRow(code, name.strip(), std if status != "approved" or std else "1", status,
                       "EQUAL", "审核人", "2026-11-20 08:00", name.strip())
            for code, (std, status, name) in entries.items()]
    path = tmp_path_factory.mktemp("set") / "t_sex.csv"
    _write_set(path, rows)
    loaded = load_local_set("t_sex", path, "GB/T 2261.1", domains)
    assert loaded.errors == []
    strip = [(r.local_code, r.local_name, r.standard_code, r.status, r.comment) for r in rows]
    assert [(r.local_code, r.local_name, r.standard_code, r.status, r.comment) for r in loaded.rows] == strip

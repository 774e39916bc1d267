"""How stored rows become timeline items and details (no database: role-named rows as the store reader
returns them): abnormal / critical flags, the HR mark and 有效期至 (fail closed without a window), QC notes
from push-back verification, trends only for analytes measured more than once, masking."""

from __future__ import annotations

from datetime import datetime

from hipbridge.display.config import Catalogs, Institution, display_config
from hipbridge.display.launch import mask
from hipbridge.display.records import Shaper, item_id, parse_item_id

NAMES = {"visit": "MZJZJL", "diagnosis": "ZDMXBG", "lab": "JYJLB", "lab_result": "JYMXB", "exam": "JCJLB",
         "rx": "MZCF", "rx_item": "MZCFMX"}


class _Reader:
    """The store reader's table names (the shaper asks which table a QC note belongs to)."""

    def table_name(self, kind):
        return NAMES.get(kind)


ORG = "450100000011"


def _shaper(qc=None):
    cat = Catalogs({ORG: Institution(ORG, "广西医科大学第一附属医院", "三级甲等")}, {("lab", "718-7"): 7, ("exam", "CT-CHEST"): 90})
    return Shaper(display_config(), cat, _Reader(), qc or {})


def _lab(no, when, hr="1", critical="0"):
    return {"org_code": ORG, "org_name": None, "_batch": "B1", "id": no, "time": when, "title": "血常规",
            "item_code": "BLD-CBC", "hr": hr, "critical": critical}


def _result(no, code, name, value, flag, when):
    return {"org_code": ORG, "org_name": None, "_batch": "B1", "report": no, "code": code, "name": name,
            "value": value, "abnormal": flag, "time": when, "unit": "g/L", "low": 130, "high": 175}


T1, T2 = datetime(2026, 1, 10, 8), datetime(2026, 2, 10, 8)


def test_flags_hr_validity_and_qc():
    data = {"lab": [_lab("L1", T1), _lab("L2", T2, critical="0"), _lab("L3", T2, hr="0")],
            "lab_result": [_result("L1", "718-7", "血红蛋白", "140", "N", T1),
                           _result("L2", "718-7", "血红蛋白", "60", "LL", T2),
                           _result("L3", "XX", "某项", "阳性", "A", T2)],
            "exam": [{"org_code": ORG, "_batch": "B2", "id": "E1", "time": T1, "title": "胸部CT平扫", "item_code": "MR-X",
                      "hr": "1", "conclusion": "未见异常", "critical": "1"}]}
    sh = _shaper({("B1", "JYJLB"): [], ("B1", "JYMXB"): ["Q06 单位缺失 (1 行)"], ("B2", "JCJLB"): ["回推核验未通过"]})
    items = {i["id"]: i for i in sh.items(data)}
    l1, l2, l3 = (items[item_id(ORG, n)] for n in ("L1", "L2", "L3"))
    assert (l1["abnormal"], l1["critical"]) == (False, False)
    assert (l2["abnormal"], l2["critical"]) == (True, True)            # LL is a critical value
    assert l1["hrMark"] == "桂HR" and l1["validUntil"] == "2026-01-17"   # 7-day window of 血红蛋白
    assert l3["hr"] is False and l3["validity"] == "非互认项目" and l3["abnormal"] is True
    assert l1["qc"] == ["Q06 单位缺失 (1 行)"] and l1["orgLevel"] == "三级甲等"
    e1 = items[item_id(ORG, "E1")]
    assert e1["critical"] and e1["validUntil"] is None and "未定" in e1["validity"]   # no window: fail closed
    assert e1["qc"] == ["回推核验未通过"]
    unverified = _shaper().items({"lab": [_lab("L9", T1)], "lab_result": []})
    assert unverified[0]["qc"] == ["尚未核验"]
    assert [i["time"] for i in sh.items(data)][:2] == ["2026-02-10 08:00", "2026-02-10 08:00"]


def test_trend_only_for_analytes_measured_more_than_once():
    data = {"lab": [_lab("L1", T1), _lab("L2", T2)],
            "lab_result": [_result("L1", "718-7", "血红蛋白", "140", "N", T1), _result("L2", "718-7", "血红蛋白", "<60", "LL", T2),
                           _result("L2", "777-3", "血小板计数", "200", "N", T2)]}
    d = _shaper().detail(data, "lab", ORG, "L2")
    assert [s["code"] for s in d["trends"]] == ["718-7"]
    assert [p["value"] for p in d["trends"][0]["points"]] == [140.0, 60.0]      # oldest first; "<60" read as 60
    assert d["trends"][0]["points"][1]["critical"] is True
    assert {r["name"]: r["critical"] for r in d["results"]} == {"血红蛋白": True, "血小板计数": False}


def test_masking_and_ids():
    assert mask("450102199001011234", 4) == "*" * 14 + "1234"
    assert mask("13907761234", 4) == "*******1234"
    assert mask("123", 4) == "***" and mask(None, 4) is None
    assert parse_item_id(item_id(ORG, "L.1/2")) == (ORG, "L.1/2") and parse_item_id("%%%") is None


def test_exam_image_link_only_when_the_source_has_images():
    sh = _shaper()
    exam = {"org_code": ORG, "org_name": None, "_batch": "B1", "id": "E1", "time": T1, "title": "胸部CT",
            "item_code": "CT-CHEST", "hr": "1", "conclusion": "未见异常", "image": "1.2.840.113619.2.55"}
    plain = exam | {"id": "E2", "image": None}
    data = {"exam": [exam, plain]}
    items = {i["id"]: i for i in sh.items(data)}
    assert items[item_id(ORG, "E1")]["image"] is True and items[item_id(ORG, "E2")]["image"] is False
    with_image = sh.detail(data, "exam", ORG, "E1")
    assert with_image["imageUrl"] == display_config().image_link.format(org_code=ORG, uid="1.2.840.113619.2.55")
    assert sh.detail(data, "exam", ORG, "E2")["imageUrl"] is None

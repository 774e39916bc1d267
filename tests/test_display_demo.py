"""`make demo`'s external data on the embedded default (SQLite front-end, ops and shared store files):
`hipbridge display demo` pushes other hospitals' data for open demo stays through the simulator, and
`hipbridge display open` (a subprocess, acting as HIS) gives a URL whose page has that data."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import httpx

from tests.display_world import ID_A, ID_C, DisplayWorld


def test_demo_fills_the_store_and_open_launches(hb_home):
    from hipbridge.demo.external import demo_file, fill_shared_demo
    from hipbridge.io.engines import default_frontend_url

    w = DisplayWorld(hb_home, default_frontend_url())
    try:
        assert w.life.frontend.dialect.name == "sqlite"
        now = w.clock()
        w.add_staff("D01", "李医生")
        w.add_patient("P-A", "张三", ID_A)
        w.add_patient("P-C", "王五", ID_C)
        w.add_inpatient("ZY001", "P-A", "张三", ID_A, ["D01"], admitted=now - timedelta(days=1))
        w.add_inpatient("ZY003", "P-C", "王五", ID_C, ["D01"], admitted=now - timedelta(days=2),
                        discharged=now - timedelta(hours=2))          # already discharged: not a demo patient
        out = fill_shared_demo(patients=3)
        assert [v["visitId"] for v in out["visits"]] == ["ZY001"] and out["granted"] == 1
        assert oct(demo_file().stat().st_mode & 0o777) == "0o600"
        env = {**os.environ, "HIPBRIDGE_HOME": str(hb_home)}
        done = subprocess.run([sys.executable, "-m", "hipbridge.cli", "display", "open", "--url", w.url],
                              capture_output=True, text=True, env=env, check=True)
        url = done.stdout.strip()
        assert url.startswith(w.url + "/shared/ui?t=") and "P-A" not in url and ID_A not in url
        with httpx.Client(trust_env=False, follow_redirects=True, timeout=30) as browser:
            assert browser.get(url).status_code == 200
            t = browser.get(w.url + "/shared/timeline").json()
            assert {g["orgName"] for g in t["groups"]} == {"广西医科大学第一附属医院", "右江民族医学院附属医院"}
            assert t["patient"]["name"] == "张三"
            # after verification and ingest the rows come from the encrypted store (another SQLite file)
            w.life.verify(w.clock(), run_quality=False)
            assert sum(w.life.ingest(w.clock()).moved.values()) > 0
            again = browser.get(w.url + "/shared/timeline").json()
        assert again["items"] == t["items"] and again["tampered"] == []
        assert w.svc.app.state.reader.retyped == 0
        # the demo patient has a recognisable external result: `hipbridge recognition demo` shows its reminder
        rd = subprocess.run([sys.executable, "-m", "hipbridge.cli", "recognition", "demo", "--url", w.url],
                            capture_output=True, text=True, env=env, check=False)
        assert rd.returncode == 0, rd.stdout + rd.stderr
        assert "开单 GGN, DJZ, XCG → 1 张互认提醒卡片" in rd.stdout and "[info] 肝功能: " in rd.stdout
        link = next(x for x in rd.stdout.split() if "/shared/remind?t=" in x)
        curl = next(line.strip() for line in rd.stdout.splitlines() if line.strip().startswith("curl "))
        assert "P-A" not in link and ID_A not in link and "/cds-services/hipbridge-hr-order-select" in curl
        with httpx.Client(trust_env=False, follow_redirects=True, timeout=30) as browser:
            assert browser.get(link).status_code == 200
            items = browser.get(w.url + "/shared/remind/items").json()["items"]
        assert [i["title"] for i in items] == ["肝功能"] and items[0]["orderCode"] == "GGN"
    finally:
        w.close()

"""The Airflow 3 UI plugin, tested through a real `airflow api-server` (SimpleAuthManager, a real user):
the plugin is registered (REST API), its page answers only to an authenticated user, shows the quality
report, the mapping gaps and per-table status, serves the report files, and renders inside Airflow's
own UI at /plugin/hipbridge in headless Chromium (logged in with the UI's session cookie), fitting 1,400 px.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from hipbridge.io.ops import ensure_ops
from hipbridge.quality.check import check_database
from hipbridge.reporting.quality import write_report
from hipbridge.settings import ops_schema_name

from tests.test_quality_rules import DOMAINS, NOW, ROOT, build_fixture

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _record(engine, specs) -> None:
    """A report run (stored), the last batch of two tables (one failed), a mapping-gap snapshot."""
    import hipbridge.mapping.ops  # noqa: F401 - registers mapping_gap

    ops = ensure_ops(engine, ops_schema_name(specs.defaults, engine))
    t0 = NOW - timedelta(hours=2)
    with engine.begin() as c:
        c.execute(ops.table("batch_log").insert(), [
            {"batch_id": "b1", "table_id": "patient", "mode": "incremental", "status": "published", "started_at": t0,
             "finished_at": t0 + timedelta(seconds=20), "extracted": 6, "published": 6, "quarantined": 0},
            {"batch_id": "b2", "table_id": "visit", "mode": "window", "status": "failed", "started_at": t0,
             "finished_at": t0 + timedelta(seconds=5), "extracted": 0, "published": 0, "quarantined": 0,
             "message": "source unreachable"}])
        c.execute(ops.table("watermark").insert(), [{"table_id": "patient", "watermark": t0, "batch_id": "b1",
                                                     "updated_at": t0}])
        c.execute(ops.table("mapping_gap").insert(), [
            {"snapshot_at": t0, "hospital": "demo", "table_id": "patient", "column_name": "XBDM", "local_set": "his_sex",
             "domain": "GB/T 2261.1", "local_code": "M", "local_name": "男", "frequency": 41, "status": "unchecked",
             "coverage": 0.8},
            {"snapshot_at": t0, "hospital": "demo", "table_id": "visit", "column_name": "KSDM", "local_set": None,
             "domain": "CT08.00.002", "local_code": None, "local_name": None, "frequency": 0, "status": None,
             "coverage": 1.0}])


@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    """One api-server for the module (starting Airflow is the slow part)."""
    tmp_path = tmp_path_factory.mktemp("airflow_ui")
    hb_home = tmp_path / "hbhome"
    hb_home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HIPBRIDGE_HOME", str(hb_home))
        mp.delenv("HIPBRIDGE_FRONTEND_URL", raising=False)
        yield from _serve(tmp_path, hb_home)


def _serve(tmp_path: Path, hb_home: Path):
    url = f"sqlite:///{tmp_path / 'fe.db'}"
    engine, specs, cfg = build_fixture(url, tmp_path)
    out = check_database(engine, specs, cfg=cfg, domains=DOMAINS.get, now=NOW, kind="report")
    reports = tmp_path / "reports"
    write_report(engine, specs, out, cfg, reports)
    _record(engine, specs)
    engine.dispose()
    password = secrets.token_urlsafe(12)
    (tmp_path / "passwords.json").write_text(json.dumps({"ops": password}), encoding="utf-8")
    (tmp_path / "dags").mkdir()
    port = _free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
           "AIRFLOW__CORE__AUTH_MANAGER":
               "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:viewer",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
           "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32), "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(16),
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
           "HIPBRIDGE_FRONTEND_URL": url, "HIPBRIDGE_SPECS": str(tmp_path / "specs"),
           "HIPBRIDGE_REPORT_DIR": str(reports), "HIPBRIDGE_HOME": str(hb_home)}
    migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600,
                             check=False)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    log = open(tmp_path / "api-server.log", "w")   # noqa: SIM115 - closed below
    proc = subprocess.Popen([AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "api-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "api-server did not come up"
            time.sleep(1)
        token = httpx.post(f"{base}/auth/token", json={"username": "ops", "password": password}, timeout=30)
        assert token.status_code in (200, 201), token.text
        yield {"base": base, "token": token.json()["access_token"], "specs": specs, "tmp": tmp_path}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_plugin_page_through_a_real_api_server(api_server):
    base, token = api_server["base"], api_server["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    plugins = httpx.get(f"{base}/api/v2/plugins", headers=bearer, timeout=30).json()["plugins"]
    ours = next(p for p in plugins if p["name"] == "hipbridge")
    assert ours["fastapi_apps"][0]["url_prefix"] == "/hipbridge"
    assert ours["external_views"][0]["url_route"] == "hipbridge" and ours["external_views"][0]["destination"] == "nav"

    assert httpx.get(f"{base}/hipbridge/", timeout=30).status_code == 401                   # nobody
    assert httpx.get(f"{base}/hipbridge/", headers={"Authorization": "Bearer forged"}, timeout=30).status_code == 403
    page = httpx.get(f"{base}/hipbridge/", headers=bearer, timeout=60)
    assert page.status_code == 200, page.text[-2000:]
    html = page.text
    for heading in ("一、数据质量", "二、对码缺口", "三、各表状态", "问题清单"):
        assert heading in html, heading
    assert "K04.visit.total" in html                         # the stored report run's problem list
    assert "his_sex" in html and ">41<" in html             # the gap snapshot, by frequency
    assert "source unreachable" not in html and "hipbridge_patient" in html
    # the stored codes by their Chinese names: a failed window run, a published incremental one, an unreviewed gap
    assert "<td>窗口重跑</td><td>失败</td>" in html and "<td>增量</td><td>已发布</td>" in html
    assert "<td>未审核</td>" in html
    assert "Asia/Shanghai (UTC+08:00)" in html
    latest = httpx.get(f"{base}/hipbridge/reports/latest/quality.html", headers=bearer, timeout=30,
                       follow_redirects=True)
    assert latest.status_code == 200 and "数据质量评估报告" in latest.text
    assert httpx.get(f"{base}/hipbridge/reports/..%2f..%2fpasswords.json", headers=bearer,
                     timeout=30).status_code == 404
    assert httpx.get(f"{base}/hipbridge/reports/latest/quality.html", timeout=30).status_code == 401


def test_plugin_inside_airflow_ui_in_chromium(api_server):
    """Logged in as the UI is (its `_token` session cookie), /plugin/hipbridge shows Airflow's navigation
    with our page framed in it; the framed page fits its frame and the plugin page fits 1,400 px."""
    from playwright.sync_api import sync_playwright

    from tests.browser import WIDTH, assert_fits, assert_screenshot, chromium_path, draws_cjk, look

    base, token, tmp = api_server["base"], api_server["token"], api_server["tmp"]
    cookie = [{"name": "_token", "value": token, "url": base}]
    seen = look(f"{base}/hipbridge/", tmp / "airflow_plugin_page.png", cookies=cookie)
    assert_fits(seen)
    assert_screenshot(seen)
    assert [h for h in sorted(seen.headings, key=seen.headings.get) if h[1:2] == "、"][:3] == \
        ["一、数据质量", "二、对码缺口", "三、各表状态"]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        try:
            ctx = browser.new_context(viewport={"width": WIDTH, "height": 1000}, locale="zh-CN")
            ctx.add_cookies(cookie)
            page = ctx.new_page()
            page.goto(f"{base}/plugin/hipbridge", wait_until="networkidle", timeout=120_000)
            inner = _framed(page)
            outer = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
                                  " document.body.innerText]")
            shot = tmp / "airflow_plugin_in_ui.png"
            page.screenshot(path=str(shot))
            cjk = draws_cjk(page)
        finally:
            browser.close()
    keep = os.environ.get("HIPBRIDGE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / shot.name).write_bytes(shot.read_bytes())
    assert inner[0] <= inner[1] and outer[0] <= outer[1] <= WIDTH, (inner[:2], outer[:2])
    assert inner[3] == "/hipbridge/" and "一、数据质量" in inner[2] and "K04.visit.total" in inner[2]
    assert "数据质控" in outer[2]                        # our top-level entry in Airflow's own navigation
    assert shot.stat().st_size > 20_000 and cjk    # not blank; Chinese drawn with glyphs, not boxes


_FRAMED = """() => {
  const f = document.querySelector('iframe');
  if (!f || !f.contentDocument || !f.contentDocument.body) return null;
  const de = f.contentDocument.documentElement;
  return [de.scrollWidth, de.clientWidth, f.contentDocument.body.innerText, f.contentWindow.location.pathname];
}"""


def _framed(page, seconds: float = 120) -> list:
    """Width, frame width, text and path of the page in Airflow's iframe, once our page is in it (the UI
    fetches the plugin list, builds the iframe, then mirrors the frame's path into its own URL)."""
    deadline = time.monotonic() + seconds
    got = None
    while time.monotonic() < deadline:
        got = page.evaluate(_FRAMED)
        if got and "三、各表状态" in got[2]:
            return got
        time.sleep(0.5)
    raise AssertionError(f"our page never appeared in Airflow's iframe: {got and got[3]} {got and got[2][:200]}")

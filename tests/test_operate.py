"""Go-live operations: profiles and the production switch, `hipbridge doctor`, monitoring alerts.

Against real components: the CLI as a subprocess, MariaDB front-ends created with the server's
own defaults, the simulated platform over HTTP, a real `airflow api-server`, a local SMTP server
(aiosmtpd) and a local webhook receiver.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import MARIADB_ADMIN
from tests.minihospital import MiniHospital

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hipbridge.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, check=False)


# ---------------------------------------------------------------- profiles


def test_production_switch_refuses_until_every_check_passes(hb_home, tmp_path):
    sdf = tmp_path / "libsdf.so"
    first = cli("profile", "use", "production", env={"HIPBRIDGE_FRONTEND_URL": ""})
    assert first.returncode == 1, first.stdout + first.stderr
    assert "✗" in first.stdout and "HIPBRIDGE_SDF_LIBRARY" in first.stdout and "待人工确认" in first.stdout
    assert not (hb_home / "profile.json").exists()
    assert "test (联调测试环境)" in cli("profile", "show").stdout

    sdf.write_bytes(b"\x7fELF")
    env = {"HIPBRIDGE_FRONTEND_URL": "mysql+pymysql://hipbridge:pw@frontend-db/frontend",
           "HIPBRIDGE_SDF_LIBRARY": str(sdf)}
    unconfirmed = cli("profile", "use", "production", env=env)
    assert unconfirmed.returncode == 1 and "--confirmed-by" in unconfirmed.stderr
    done = cli("profile", "use", "production", "--confirmed-by", "信息科 李工", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((hb_home / "profile.json").read_text(encoding="utf-8"))
    assert record["profile"] == "production" and record["confirmed_by"] == "信息科 李工"
    assert record["switched_at"].endswith("+08:00")
    shown = cli("profile", "show").stdout
    assert "production (正式生产环境)" in shown and "sdf" in shown

    # The active profile now decides the platform address and the institution.
    from hipbridge.platform.config import platform_config
    from hipbridge.settings import org_code
    from hipbridge.spec import load_specs

    os.environ.pop("HIPBRIDGE_PLATFORM_URL", None)
    assert platform_config().url == "https://gateway.gxqmjk.invalid:8443"
    assert org_code(load_specs().defaults) == "451002000001"


def test_a_profile_with_a_literal_secret_is_an_error_naming_file_and_key(hb_home, tmp_path, monkeypatch):
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    bad = config / "profiles" / "production.yaml"
    bad.write_text(bad.read_text(encoding="utf-8").replace("env:HIPBRIDGE_FRONTEND_URL", "mysql://u:secret@h/db"),
                   encoding="utf-8")
    out = cli("profile", "use", "production", env={"HIPBRIDGE_CONFIG": str(config)})
    assert out.returncode == 2
    assert "production.yaml" in out.stderr and "credentials.frontend_db" in out.stderr
    assert "secret" not in out.stderr.replace("a secret never", "")


# ---------------------------------------------------------------- doctor


@pytest.fixture
def mini(tmp_path, monkeypatch, hb_home):
    h = MiniHospital(tmp_path)
    monkeypatch.setenv("HIPBRIDGE_SPECS", str(h.specs))
    monkeypatch.setenv("HIPBRIDGE_CONN_MINI", h.url)
    return h


def _by_name(checks, area_prefix: str, name: str):
    return next(c for c in checks if c.area.startswith(area_prefix) and c.name == name)


def test_doctor_probes_every_spec_query_and_names_what_is_missing(mini, mariadb_url):
    ok = cli("doctor", "--only", "specs,sources,frontend", "--json", "--db", mariadb_url)
    report = json.loads(ok.stdout)
    assert ok.returncode == 0 and report["ok"], ok.stdout
    assert {c["name"] for c in report["checks"]} >= {"visit 查询", "diag 查询", "字符集", "权限 " + os.environ[
        "HIPBRIDGE_OPS_SCHEMA"]}

    sql = mini.specs / "sql" / "visit.sql"
    sql.write_text(sql.read_text(encoding="utf-8").replace("v.FEE AS fee,", ""), encoding="utf-8")
    broken = cli("doctor", "--only", "sources", "--db", mariadb_url)
    assert broken.returncode == 1
    line = next(li for li in broken.stdout.splitlines() if "visit 查询" in li)
    assert "失败" in line and "fee" in line
    sql.write_text("SELECT nonsense FROM NO_SUCH_TABLE", encoding="utf-8")
    line = next(li for li in cli("doctor", "--only", "sources").stdout.splitlines() if "visit 查询" in li)
    assert "sql/visit.sql" in line and "NO_SUCH_TABLE" in line

    gone = cli("doctor", "--only", "sources", env={"HIPBRIDGE_CONN_MINI": ""})
    assert gone.returncode == 1 and "HIPBRIDGE_CONN_MINI" in gone.stdout


@pytest.fixture
def mariadb_server_defaults():
    """A front-end database created with the server's defaults, a utf8mb3 one, and a user with SELECT only."""
    tag = uuid.uuid4().hex[:8]
    names = {"plain": f"hbdoc_{tag}", "mb3": f"hbdoc3_{tag}"}
    user, pw = f"hbro_{tag}", "ro-Pass-1"
    admin = create_engine(MARIADB_ADMIN)
    with admin.begin() as c:
        c.execute(text(f"CREATE DATABASE `{names['plain']}`"))
        c.execute(text(f"CREATE DATABASE `{names['mb3']}` CHARACTER SET utf8mb3"))
        c.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{pw}'"))
        c.execute(text(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{pw}'"))
        c.execute(text(f"GRANT SELECT ON `{names['plain']}`.* TO '{user}'@'%'"))
        c.execute(text(f"GRANT SELECT ON `{names['plain']}`.* TO '{user}'@'localhost'"))
    yield names, user, pw
    with admin.begin() as c:
        for n in names.values():
            c.execute(text(f"DROP DATABASE IF EXISTS `{n}`"))
            c.execute(text(f"DROP DATABASE IF EXISTS `{n}_ops`"))
        c.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        c.execute(text(f"DROP USER IF EXISTS '{user}'@'localhost'"))
    admin.dispose()


def test_doctor_checks_frontend_charset_privileges_and_clock(mini, mariadb_server_defaults, monkeypatch):
    from hipbridge.monitor.config import DoctorConfig
    from hipbridge.monitor.doctor import FAIL, OK, WARN, _clock_checks, frontend_checks
    from hipbridge.spec import load_specs

    names, user, pw = mariadb_server_defaults
    specs = load_specs()
    cfg = DoctorConfig()
    base = MARIADB_ADMIN.rstrip("/")
    monkeypatch.setenv("HIPBRIDGE_OPS_SCHEMA", f"{names['plain']}_ops")
    root_checks = frontend_checks(cfg, specs, f"{base}/{names['plain']}")
    assert _by_name(root_checks, "前置机", "字符集").status == OK        # the server's default is utf8mb4 here
    assert _by_name(root_checks, "前置机", "时钟").status == OK

    mb3 = frontend_checks(cfg, specs, f"{base}/{names['mb3']}")
    assert _by_name(mb3, "前置机", "字符集").status == WARN and "utf8mb3" in _by_name(mb3, "前置机", "字符集").detail

    ro_url = f"mysql+pymysql://{user}:{pw}@127.0.0.1:3306/{names['plain']}"
    ro = frontend_checks(cfg, specs, ro_url)
    priv = _by_name(ro, "前置机", f"权限 {names['plain']}")
    assert priv.status == FAIL and "INSERT" in priv.detail and "SELECT" not in priv.detail
    assert _by_name(ro, "前置机", f"权限 {names['plain']}_ops").status == FAIL
    assert _by_name(ro, "前置机", "连接").detail.count(pw) == 0

    # A source whose clock runs ten minutes slow (the session clock of a real MariaDB connection).
    from hipbridge.io.engines import engine_for

    slow = engine_for(f"{base}/{names['plain']}?init_command=SET%20timestamp%3DUNIX_TIMESTAMP()-600")
    clock, zone = _clock_checks(cfg, slow, "数据源 his", "Asia/Shanghai")
    assert clock.status == FAIL and "慢 6" in clock.detail
    slightly = engine_for(f"{base}/{names['plain']}?init_command=SET%20timestamp%3DUNIX_TIMESTAMP()%2B45")
    assert _clock_checks(cfg, slightly, "数据源 his", "Asia/Shanghai")[0].status == WARN
    # A server whose local time is not the hospital's: database-written times would be 8 hours off.
    utc = engine_for(f"{base}/{names['plain']}?init_command=SET%20time_zone%3D%27%2B00%3A00%27")
    zone = _clock_checks(cfg, utc, "数据源 his", "Asia/Shanghai")[1]
    assert zone.status == WARN and "UTC+0" in zone.detail and "8 小时" in zone.detail
    shanghai = engine_for(f"{base}/{names['plain']}?init_command=SET%20time_zone%3D%27%2B08%3A00%27")
    assert _clock_checks(cfg, shanghai, "数据源 his", "Asia/Shanghai")[1].status == OK


def test_doctor_platform_round_trip_is_signed_and_fails_when_unreachable(hb_home, mini, mariadb_url, monkeypatch):
    from hipbridge.crypto.keys import KeyStore, provision_pair
    from hipbridge.demo.simulator import ServerThread, create_app, free_port
    from hipbridge.monitor.doctor import FAIL, OK, run_doctor
    from hipbridge.sharing.service import Lifecycle
    from hipbridge.spec import load_specs

    hospital, platform = KeyStore(hb_home / "keys"), KeyStore(hb_home / "platform_keys")
    provision_pair(hospital, platform)
    life = Lifecycle.open(mariadb_url, load_specs().require_valid(), hospital)
    with ServerThread(create_app(platform, life.store, seed=3)) as sim:
        monkeypatch.setenv("HIPBRIDGE_PLATFORM_URL", f"http://127.0.0.1:{sim.port}")
        checks = run_doctor(mariadb_url, only={"platform"})
    trip = _by_name(checks, "省平台", "签名往返")
    assert trip.status == OK and "已验签" in trip.detail
    assert _by_name(checks, "省平台", "时钟").status == OK

    monkeypatch.setenv("HIPBRIDGE_PLATFORM_URL", f"http://127.0.0.1:{free_port()}")
    down = _by_name(run_doctor(mariadb_url, only={"platform"}), "省平台", "签名往返")
    assert down.status == FAIL and "不可达" in down.detail


def test_doctor_reads_a_real_airflow_api_server(tmp_path, monkeypatch):
    from hipbridge.demo.simulator import free_port
    from hipbridge.monitor.config import DoctorConfig
    from hipbridge.monitor.doctor import FAIL, OK, airflow_checks

    port = free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "no_dags"),
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/"}
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, check=True, timeout=300)
    server = subprocess.Popen([airflow, "api-server", "--port", str(port), "--host", "127.0.0.1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        cfg = DoctorConfig(airflow_url=f"http://127.0.0.1:{port}", connect_timeout_s=2)
        deadline = time.monotonic() + 120
        checks = airflow_checks(cfg)
        while checks[0].status == FAIL and "不可达" in checks[0].detail and time.monotonic() < deadline:
            time.sleep(1)
            checks = airflow_checks(cfg)
        assert _by_name(checks, "Airflow", "元数据库").status == OK
        beat = _by_name(checks, "Airflow", "调度器心跳")       # no scheduler runs: that is the finding
        assert beat.status == FAIL and "unhealthy" in beat.detail
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


# ---------------------------------------------------------------- alerts


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []
    fail = False

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if type(self).fail:
            self.send_response(503)
        else:
            type(self).received.append(body)
            self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"errcode":0}')

    def log_message(self, *args):
        pass


@pytest.fixture
def receivers():
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message
    from hipbridge.demo.simulator import free_port

    mails: list = []

    class Collect(Message):
        def handle_message(self, message):
            mails.append(message)

    smtp = Controller(Collect(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    handler = type("Hook", (_Webhook,), {"received": [], "fail": False})
    web = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    yield {"smtp_port": smtp.port, "mails": mails, "hook": handler,
           "webhook_url": f"http://127.0.0.1:{web.server_address[1]}/robot/send?key=k"}
    web.shutdown()
    smtp.stop()


def _config(receivers, **rules):
    from hipbridge.monitor.config import MonitoringConfig

    return MonitoringConfig(doctor={"connect_timeout_s": 2}, alerts={"repeat_after": "6h",
                   "channels": {"webhook": {"enabled": True, "url": "env:HB_TEST_HOOK", "format": "wecom"},
                                "email": {"enabled": True, "smtp_port": receivers["smtp_port"],
                                          "sender": "hb@test.local", "recipients": ["xxk@test.local"]}},
                   "rules": {"failed_run": {}, "watermark_lag": {"threshold": "36h"},
                             "outbox_backlog": {"max_pending": 1, "max_age": "2h"}, "quality_drop": {"points": 5},
                             "purge_failure": {}, "platform_unreachable": {"enabled": False}, **rules}})


def _seed_ops(engine, ops, now):
    with engine.begin() as c:
        c.execute(ops.table("batch_log").insert(), [
            {"batch_id": "b-fail", "table_id": "visit", "mode": "incremental", "status": "failed",
             "started_at": now - timedelta(hours=1), "message": "OperationalError: (2003) 无法连接 HIS"},
            {"batch_id": "b-old", "table_id": "visit", "mode": "incremental", "status": "failed",
             "started_at": now - timedelta(days=9), "message": "long ago"},
            {"batch_id": "b-ok", "table_id": "diag", "mode": "incremental", "status": "published",
             "started_at": now - timedelta(hours=1), "message": None}])
        c.execute(ops.table("watermark").insert(), [
            {"table_id": "visit", "watermark": now - timedelta(hours=50), "updated_at": now},
            {"table_id": "diag", "watermark": now - timedelta(hours=2), "updated_at": now}])
        c.execute(ops.table("outbox").insert(), [
            {"kind": "grant", "org_code": "451002000001", "appointment_id": f"A{i}", "patient_key": "k",
             "payload": "v1:x", "status": "NEW", "attempts": 3, "next_retry_at": now,
             "created_at": now - timedelta(hours=3), "updated_at": now} for i in range(3)])
        c.execute(ops.table("quality_run").insert(), [
            {"run_id": "q1", "kind": "report", "started_at": now - timedelta(days=1), "overall": 92.0},
            {"run_id": "q2", "kind": "report", "started_at": now - timedelta(hours=2), "overall": 84.5}])
        c.execute(ops.table("deletion_run").insert(), [
            {"run_id": "d1", "scope": "shared", "dry_run": False, "status": "ABORTED",
             "started_at": now - timedelta(hours=5), "candidates": 900, "deleted_rows": 0,
             "message": "safety cap: 900 > 500"}])


def test_alerts_are_sent_once_repeated_while_true_and_cleared(mini, mariadb_url, receivers, monkeypatch):
    from hipbridge.io.engines import engine_for
    from hipbridge.io.ops import ensure_ops
    from hipbridge.monitor.alerts import run_monitor

    monkeypatch.setenv("HB_TEST_HOOK", receivers["webhook_url"])
    now = datetime(2026, 12, 4, 9, 0, 0)
    engine = engine_for(mariadb_url, os.environ["HIPBRIDGE_OPS_SCHEMA"])
    import hipbridge.monitor.alerts  # noqa: F401 - registers alert_state

    ops = ensure_ops(engine, os.environ["HIPBRIDGE_OPS_SCHEMA"])
    _seed_ops(engine, ops, now)
    cfg = _config(receivers)

    first = run_monitor(mariadb_url, now=now, cfg=cfg)
    assert first.errors == []
    assert sorted(first.sent) == ["failed_run:b-fail", "outbox_backlog", "purge_failure:d1", "quality_drop:q2",
                                  "watermark_lag:visit"]
    hook = receivers["hook"].received
    assert len(hook) == 5 and len(receivers["mails"]) == 5
    texts = [m["text"]["content"] for m in hook]
    assert any("visit" in t and "上传失败" in t and "无法连接 HIS" in t for t in texts)
    assert all("(Asia/Shanghai)" in t for t in texts)
    subjects = sorted(str(make_header(decode_header(m["Subject"]))) for m in receivers["mails"])
    assert any("质控得分下降" in s for s in subjects) and any("上传滞后" in s for s in subjects)

    again = run_monitor(mariadb_url, now=now + timedelta(minutes=15), cfg=cfg)
    assert again.sent == [] and len(hook) == 5                           # nothing twice

    later = run_monitor(mariadb_url, now=now + timedelta(hours=7), cfg=cfg)
    assert sorted(later.sent) == ["outbox_backlog", "watermark_lag:visit"]     # conditions repeat, events do not

    with engine.begin() as c:
        c.execute(ops.table("outbox").update().values(status="ACKED"))
    cleared = run_monitor(mariadb_url, now=now + timedelta(hours=7, minutes=15), cfg=cfg)
    assert cleared.resolved == ["outbox_backlog"]
    assert hook[-1]["text"]["content"].startswith("【已恢复】")


def test_an_unreachable_channel_leaves_the_alert_unsent_for_the_next_round(mini, mariadb_url, receivers,
                                                                          monkeypatch):
    from hipbridge.io.engines import engine_for
    from hipbridge.io.ops import ensure_ops
    from hipbridge.monitor.alerts import run_monitor

    monkeypatch.setenv("HB_TEST_HOOK", receivers["webhook_url"])
    now = datetime(2026, 12, 4, 9, 0, 0)
    engine = engine_for(mariadb_url, os.environ["HIPBRIDGE_OPS_SCHEMA"])
    ops = ensure_ops(engine, os.environ["HIPBRIDGE_OPS_SCHEMA"])
    _seed_ops(engine, ops, now)
    cfg = _config(receivers, outbox_backlog={"enabled": False}, quality_drop={"enabled": False},
                  purge_failure={"enabled": False}, watermark_lag={"enabled": False})
    receivers["hook"].fail = True
    down = run_monitor(mariadb_url, now=now, cfg=cfg)
    assert down.sent == [] and "webhook: HTTPStatusError" in down.errors[0]
    receivers["hook"].fail = False
    up = run_monitor(mariadb_url, now=now + timedelta(minutes=15), cfg=cfg)
    assert up.sent == ["failed_run:b-fail"] and up.errors == []


def test_platform_unreachable_is_an_alert(mini, mariadb_url, receivers, monkeypatch):
    from hipbridge.demo.simulator import free_port
    from hipbridge.monitor.alerts import run_monitor

    monkeypatch.setenv("HB_TEST_HOOK", receivers["webhook_url"])
    monkeypatch.setenv("HIPBRIDGE_PLATFORM_URL", f"http://127.0.0.1:{free_port()}")
    cfg = _config(receivers, platform_unreachable={"enabled": True}, failed_run={"enabled": False},
                  watermark_lag={"enabled": False})
    report = run_monitor(mariadb_url, now=datetime(2026, 12, 4, 9), cfg=cfg)
    assert report.sent == ["platform_unreachable"]
    assert "省平台不可达" in receivers["hook"].received[0]["text"]["content"]


def test_monitoring_config_rejects_unknown_rules(tmp_path):
    from hipbridge.monitor.config import monitoring_config

    path = tmp_path / "monitoring.yaml"
    path.write_text("alerts:\n  rules:\n    failed_runs: {}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"monitoring.yaml: alerts.rules: .*failed_runs"):
        monitoring_config(path)


def test_monitor_cli_and_the_15_minute_dag_send_through_the_configured_channels(mini, mariadb_url, receivers,
                                                                                 monkeypatch, tmp_path):
    """`hipbridge monitor check` and the task of dags/hipbridge_monitor.py read config/monitoring.yaml (here a
    copy with both channels on), send to the local receivers, and fail when a channel cannot be reached."""
    import importlib.util
    from zoneinfo import ZoneInfo

    from hipbridge.io.engines import engine_for
    from hipbridge.io.ops import ensure_ops

    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "monitoring.yaml").write_text(
        "alerts:\n  channels:\n"
        "    webhook: {enabled: true, url: env:HB_TEST_HOOK, format: wecom}\n"
        f"    email: {{enabled: true, smtp_port: {receivers['smtp_port']}, sender: hb@test.local, "
        "recipients: [xxk@test.local]}\n"
        "  rules:\n    failed_run: {enabled: true, severity: 严重}\n"
        + "".join(f"    {r}: {{enabled: false}}\n" for r in ("watermark_lag", "platform_unreachable",
                                                             "outbox_backlog", "quality_drop", "purge_failure")),
        encoding="utf-8")
    env = {"HIPBRIDGE_CONFIG": str(config), "HB_TEST_HOOK": receivers["webhook_url"],
           "HIPBRIDGE_FRONTEND_URL": mariadb_url}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    now = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None, microsecond=0)
    engine = engine_for(mariadb_url, os.environ["HIPBRIDGE_OPS_SCHEMA"])
    import hipbridge.monitor.alerts  # noqa: F401 - registers alert_state

    ops = ensure_ops(engine, os.environ["HIPBRIDGE_OPS_SCHEMA"])
    _seed_ops(engine, ops, now)

    done = cli("monitor", "check", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["sent"] == ["failed_run:b-fail"]
    assert len(receivers["hook"].received) == 1 and len(receivers["mails"]) == 1

    spec = importlib.util.spec_from_file_location("hb_monitor_dag", ROOT / "dags" / "hipbridge_monitor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.monitor_dag
    assert dag.timetable._expression == "*/15 * * * *" and str(dag.timetable._timezone.name) == "Asia/Shanghai"
    round_ = dag.get_task("monitor_round").python_callable
    with engine.begin() as c:
        c.execute(ops.table("batch_log").insert(), [
            {"batch_id": "b-fail-2", "table_id": "diag", "mode": "incremental", "status": "blocked",
             "started_at": now - timedelta(minutes=5), "message": "致命规则未通过"}])
    receivers["hook"].fail = True
    with pytest.raises(RuntimeError, match="告警发送失败"):   # the task fails: Airflow shows alerts are not getting out
        round_()
    receivers["hook"].fail = False
    assert round_()["sent"] == ["failed_run:b-fail-2"]       # sent on the next round, once
    assert "diag 质控拦截未发布" in receivers["hook"].received[-1]["text"]["content"]
    engine.dispose()

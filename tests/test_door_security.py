"""The booking door and the caller guard every web app of ours uses (issue 12 item 5), over real
HTTP (uvicorn) against MariaDB: authentication before the body is read, body limit, validation
errors that do not echo the input, API description for admins only, roles, revocation through the
CLI, A2005 for another patient under the same appointmentId, concurrent identical bookings.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends
from hipbridge.sharing.callers import Caller, require_role
from pydantic import BaseModel
from sqlalchemy import func, select

import tests.test_sharing_lifecycle as lifecycle

ID_A, ID_B = lifecycle.ID_A, lifecycle.ID_B
spec_dir, share_schema, world = lifecycle.spec_dir, lifecycle.share_schema, lifecycle.world   # fixtures

ROOT = Path(__file__).resolve().parents[1]


class Query(BaseModel):
    patient: str


def _book_body(appointment_id: str, id_no: str, name: str = "张三") -> dict:
    return {"appointmentId": appointment_id, "channel": "03",
            "patient": {"name": name, "idType": "01", "idNo": id_no, "phone": "13800000000"},
            "visitDate": "2026-03-05T09:00:00", "deptCode": "0101", "deptName": "心内科",
            "consent": {"given": True, "method": "CHECKBOX", "terminalId": "WX-01"}}


def _raw(port: int, head: bytes, body: bytes = b"", timeout: float = 15) -> bytes:
    """Send a request by hand and return what the server answers before we send anything more."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + body)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks):
                break
    return b"".join(chunks)


def _port(w) -> int:
    return int(w.door.url.rsplit(":", 1)[1])


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIPBRIDGE_HOME": str(home), "PYTHONPATH": str(ROOT / "plugins")}
    return subprocess.run([sys.executable, "-m", "hipbridge.cli", *args], check=False, capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60)


def test_unauthenticated_request_with_a_huge_body_gets_401_before_the_body_is_read(world):
    # Content-Length says 1 GB; we send 1 KB and wait. A server that reads the body first never answers.
    head = (b"POST /booking/book HTTP/1.1\r\nHost: door\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n")
    answer = _raw(_port(world), head, b"{" * 1024)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    answer = _raw(_port(world), head.replace(b"Host: door", b"Host: door\r\nAuthorization: Bearer not-a-token"),
                  b"{" * 1024)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_body_size_limit_413_by_length_and_while_streaming(world):
    w = world
    token = w.http.headers["Authorization"]
    head = (b"POST /booking/book HTTP/1.1\r\nHost: door\r\nContent-Type: application/json\r\n"
            b"Authorization: " + token.encode() + b"\r\nContent-Length: 1000000000\r\n\r\n")
    answer = _raw(_port(w), head, b"{" * 1024)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

    def chunks():   # no Content-Length: chunked transfer, counted while it streams
        for _ in range(64):
            yield b" " * 4096

    r = w.http.post("/booking/book", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert w.outbox() == []
    assert w.book("S1", ID_A, datetime(2026, 3, 5, 9))["accepted"] is True   # a normal body still passes


def test_validation_errors_name_the_field_but_never_echo_the_input(world):
    w = world
    body = _book_body("V1", ID_A + "9" * 20, name="欧阳娜娜")     # ID number too long
    body["visitType"] = "walk-in-欧阳娜娜"
    body["patient"]["phone"] = "1" * 30
    r = w.http.post("/booking/book", json=body)
    assert r.status_code == 422
    assert ID_A not in r.text and "欧阳娜娜" not in r.text and "1" * 30 not in r.text
    locs = {tuple(e["loc"]) for e in r.json()["detail"]}
    assert ("patient", "idNo") in locs and ("visitType",) in locs and ("patient", "phone") in locs
    bad_json = w.http.post("/booking/book", content='{"appointmentId": "欧阳娜娜", ',
                           headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 422 and "欧阳娜娜" not in bad_json.text


def test_api_description_for_admins_only_and_off_in_production(world, monkeypatch):
    w = world
    from hipbridge.sharing.door import add_caller

    assert httpx.get(w.door.url + "/openapi.json", trust_env=False).status_code == 401
    assert w.http.get("/openapi.json").status_code == 403                         # booking role
    admin = add_caller(w.life.keys, "it-admin", roles=("admin",))
    r = httpx.get(w.door.url + "/openapi.json", headers={"Authorization": f"Bearer {admin}"}, trust_env=False)
    assert r.status_code == 200 and "/booking/book" in r.json()["paths"]
    for page in ("/docs", "/redoc"):
        assert httpx.get(w.door.url + page, headers={"Authorization": f"Bearer {admin}"},
                         trust_env=False).status_code == 404

    from hipbridge.demo.simulator import ServerThread

    monkeypatch.setenv("HIPBRIDGE_PROFILE", "production")
    with ServerThread(w.life.door_app(clock=w.clock)) as prod:
        assert httpx.get(prod.url + "/openapi.json", headers={"Authorization": f"Bearer {admin}"},
                         trust_env=False).status_code == 404


def test_roles_and_revocation_through_the_cli(world, hb_home):
    w = world
    out = _cli("door-token", "create", "emr-ws", "--role", "workstation", home=hb_home)
    assert out.returncode == 0, out.stderr
    ws_token = out.stdout.strip().splitlines()[-1]
    ws = httpx.Client(base_url=w.door.url, headers={"Authorization": f"Bearer {ws_token}"}, trust_env=False)
    r = ws.post("/booking/book", json=_book_body("R1", ID_A))
    assert r.status_code == 403 and "booking" in r.json()["detail"]
    assert w.outbox() == []

    listed = json.loads(_cli("door-token", "list", "--json", home=hb_home).stdout)["callers"]
    by_name = {c["name"]: c for c in listed}
    assert by_name["emr-ws"]["roles"] == ["workstation"] and by_name["his-booking"]["roles"] == ["booking"]
    assert ws_token not in json.dumps(listed) and ws_token not in (hb_home / "keys" / "door_callers.json").read_text()
    assert oct((hb_home / "keys" / "door_callers.json").stat().st_mode & 0o777) == "0o600"

    shown = _cli("door-token", "list", home=hb_home).stdout
    assert "emr-ws" in shown and "workstation" in shown and "(Asia/Shanghai)" in shown
    assert w.http.get("/no/such/path").status_code == 403          # paths no rule names need role admin

    assert w.book("R2", ID_A, datetime(2026, 3, 5, 9))["accepted"] is True
    out = _cli("door-token", "revoke", "his-booking", home=hb_home)
    assert out.returncode == 0, out.stderr
    r = w.http.post("/booking/book", json=_book_body("R3", ID_A))     # the running door sees it at once
    assert r.status_code == 401
    assert _cli("door-token", "revoke", "nobody", home=hb_home).returncode == 1
    bad = _cli("door-token", "create", "x", "--role", "root", home=hb_home)
    assert bad.returncode != 0 and "root" in bad.stderr


def test_same_appointment_for_another_patient_is_409_with_the_platform_code(world):
    w = world
    first = w.book("C1", ID_A, datetime(2026, 3, 5, 9))
    r = w.http.post("/booking/book", json=_book_body("C1", ID_B, name="李四"))
    assert r.status_code == 409 and r.json()["code"] == "A2005"
    assert "李四" not in r.text and ID_B not in r.text
    again = w.book("C1", ID_A, datetime(2026, 3, 5, 9))                   # the same patient: idempotent
    assert again["duplicate"] is True and again["outboxId"] == first["outboxId"]
    assert len(w.outbox()) == 1
    ev = w.life.ops.table("audit_event")
    with w.life.frontend.connect() as c:
        assert c.execute(select(func.count()).where(ev.c.action == "BOOK_CONFLICT")).scalar_one() == 1


@pytest.mark.parametrize("n", [12])
def test_concurrent_identical_bookings_make_one_record_and_202_for_all(world, n):
    w = world
    token = w.http.headers["Authorization"]
    barrier = threading.Barrier(n)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(base_url=w.door.url, headers={"Authorization": token}, trust_env=False, timeout=60) as c:
            barrier.wait()
            r = c.post("/booking/book", json=_book_body("P1", ID_A))
            with lock:
                answers.append((r.status_code, r.text))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(code for code, _ in answers) == [202] * n, answers
    assert sum(1 for _, body in answers if json.loads(body)["duplicate"] is False) == 1
    assert len({json.loads(body)["outboxId"] for _, body in answers}) == 1
    ar = w.life.ops.table("auth_record")
    with w.life.frontend.connect() as c:
        assert c.execute(select(func.count()).select_from(ar)).scalar_one() == 1
    assert len(w.outbox()) == 1


def test_another_app_requires_a_role_with_the_guard(hb_home):
    """The way docs/sharing.md tells another app (the display) to protect itself."""
    from fastapi import FastAPI
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.demo.simulator import ServerThread
    from hipbridge.sharing.callers import CallerStore, secure_app

    store = CallerStore.for_keys(KeyStore(hb_home / "keys"))
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    secure_app(app, store, rules={"/display": ["workstation"]}, max_body=1024)

    @app.post("/display/records")
    def records(q: Query, who: Annotated[Caller, Depends(require_role("workstation"))]) -> dict:
        return {"caller": who.name, "n": len(q.patient)}

    ws, booking = store.create("ws-1", ["workstation"]), store.create("his", ["booking"])
    with ServerThread(app) as srv:
        def post(token, body, **kw):
            return httpx.post(srv.url + "/display/records", json=body, trust_env=False,
                              headers={"Authorization": f"Bearer {token}"} if token else {}, **kw)

        assert post(ws, {"patient": "x"}).json() == {"caller": "ws-1", "n": 1}
        assert post(booking, {"patient": "x"}).status_code == 403
        assert post(None, {"patient": "x"}).status_code == 401
        assert post(ws, {"patient": "x" * 2000}).status_code == 413
        assert post(ws, {"patient": 123}).status_code == 422
        assert httpx.get(srv.url + "/healthz", trust_env=False).status_code == 404   # public, but not defined here

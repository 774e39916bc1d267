"""The signed envelope (interfaces.md §C5) and the simulated platform over real HTTP:
round trip; tampered body / envelope / signature, replayed nonce and stale timestamp rejected with
the right E-code; the platform's response signature is checked by the client.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import datetime, timedelta

import httpx
import pytest
from hipbridge.crypto.keys import KeyStore, provision_pair
from hipbridge.crypto.sm import sm2_sign
from hipbridge.demo.simulator import ServerThread, create_app
from hipbridge.platform.client import PlatformClient, PlatformUnavailable
from hipbridge.platform.config import platform_config
from hipbridge.platform.envelope import (
    EnvelopeError,
    NonceStore,
    canonical_json,
    open_envelope,
    seal,
    signing_string,
)

CFG = platform_config()
F = CFG.envelope.fields
NOW = datetime(2026, 3, 2, 9, 0, 0)
ID_A = "451002198001011232"   # GB 11643 check character valid


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("keys")
    hospital, platform = KeyStore(base / "hospital"), KeyStore(base / "platform")
    provision_pair(hospital, platform)
    return hospital, platform


def _seal(hospital: KeyStore, body: dict, service="AUTH_QUERY", when=NOW):
    s = hospital.sm2("sign")
    return seal(CFG, service, body, app_id=CFG.app_id, org_code="451002000001", sign_private=s.private_key,
                sign_public=s.public_key, peer_enc_public=hospital.peer("platform_enc"), clock=lambda: when)


def _open(platform: KeyStore, env: dict, nonces=None, when=NOW):
    return open_envelope(CFG, env, peer_sign_public=platform.peer("hospital_sign"),
                         own_enc_private=platform.sm2("enc").private_key, clock=lambda: when, nonces=nonces)


def _resign(hospital: KeyStore, env: dict) -> dict:
    env = dict(env)
    env.pop(F["sign"])
    env[F["sign"]] = base64.b64encode(sm2_sign(hospital.sm2("sign").private_key,
                                               signing_string(env, F["sign"]))).decode()
    return env


def test_canonical_json_and_signing_string():
    assert canonical_json({"b": 1, "a": {"d": None, "c": "中"}}) == '{"a":{"c":"中"},"b":1}'.encode()
    assert signing_string({"b": "2", "a": "1", "sign": "x", "e": ""}, "sign") == b"a=1&b=2"


def test_timestamps_are_epoch_whatever_the_server_zone(keys):
    """Naive times are hospital time (config timezone), not the server's zone: an aware UTC clock agrees."""
    from datetime import UTC

    hospital, platform = keys
    env = _seal(hospital, {"a": 1}, when=CFG.local_now()).envelope
    opened = open_envelope(CFG, env, peer_sign_public=platform.peer("hospital_sign"),
                           own_enc_private=platform.sm2("enc").private_key, clock=lambda: datetime.now(UTC))
    assert opened.body == {"a": 1}


def test_round_trip_and_rejections(keys):
    hospital, platform = keys
    body = {"orgCode": "451002000001", "appointmentId": "A1", "patient": {"name": "张三", "idNo": "X"}}
    sealed = _seal(hospital, body)
    env = sealed.envelope
    assert "张三" not in json.dumps(env, ensure_ascii=False)
    assert _open(platform, env).body == body

    def code(e: dict, **kw) -> str:
        with pytest.raises(EnvelopeError) as exc:
            _open(platform, e, **kw)
        return CFG.codes.envelope[exc.value.role]

    missing = dict(env)
    missing.pop(F["nonce"])
    assert code(missing) == "E1001"
    assert code(env, when=NOW + timedelta(seconds=CFG.envelope.timestamp_window_s + 1)) == "E1002"
    tampered = dict(env, **{F["biz_content"]: base64.b64encode(b"x" * 32).decode()})
    assert code(tampered) == "E1003"                                  # body changed: signature fails
    assert code(dict(env, **{F["digest"]: "0" * 64})) == "E1003"      # digest is signed too
    forged = copy.deepcopy(env)
    forged[F["sign"]] = base64.b64encode(sm2_sign(platform.sm2("sign").private_key,
                                                  signing_string(env, F["sign"]))).decode()
    assert code(forged) == "E1003"                                    # signed with the wrong key
    nonces = NonceStore(600)
    _open(platform, env, nonces=nonces)
    assert code(env, nonces=nonces) == "E1004"                        # replay
    # validly signed by the hospital, but the digital envelope / digest are wrong
    bad_key = _resign(hospital, dict(env, **{F["enc_key"]: base64.b64encode(b"\x01" * 120).decode()}))
    assert code(bad_key) == "E1005"
    other = _seal(hospital, {"other": 1})
    mixed = _resign(hospital, dict(env, **{F["digest"]: other.envelope[F["digest"]]}))
    assert code(mixed) == "E1006"
    assert code(dict(env, **{F["enc_type"]: "AES"})) == "E1007"


@pytest.fixture(scope="module")
def platform_server(keys):
    _, platform = keys
    app = create_app(platform, None, clock=lambda: NOW)
    with ServerThread(app) as srv:
        yield srv, app


def test_simulator_rejects_tampered_and_replayed_requests(keys, platform_server):
    hospital, _ = keys
    srv, _app = platform_server
    path = CFG.service("grant").path
    body = {"orgCode": "451002000001", "appointmentId": "R1", "channel": "03",
            "patient": {"name": "张三", "idType": "01", "idNo": ID_A},
            "authStartTime": "2026-03-02 09:00:00", "authEndTime": "2026-03-04 00:00:00"}
    env = _seal(hospital, body, service="AUTH_APPOINTMENT_GRANT").envelope
    with httpx.Client(base_url=srv.url, trust_env=False) as http:
        tampered = dict(env, **{F["sign"]: env[F["sign"]][:-6] + "AAAAA="})
        assert http.post(path, json=tampered).json()[F["code"]] == "E1003"
        first = http.post(path, json=env).json()
        assert first[F["code"]] == "00000"
        assert http.post(path, json=env).json()[F["code"]] == "E1004"      # the same request again: replay
        stale = _seal(hospital, body, service="AUTH_APPOINTMENT_GRANT", when=NOW - timedelta(minutes=10)).envelope
        assert http.post(path, json=stale).json()[F["code"]] == "E1002"
        wrong_service = _seal(hospital, body, service="AUTH_QUERY").envelope
        assert http.post(path, json=wrong_service).json()[F["code"]] == "E1007"


def test_client_grant_is_idempotent_and_checks_response_signature(keys, platform_server):
    hospital, platform = keys
    srv, _ = platform_server
    values = {"org_code": "451002000001", "appointment_id": "R2", "patient_name": "张三", "patient_id_type": "01",
              "patient_id_no": ID_A, "auth_start": "2026-03-02 09:00:00", "auth_end": "2026-03-04 00:00:00"}
    client = PlatformClient("451002000001", hospital, clock=lambda: NOW, base_url=srv.url)
    a = client.grant(values)
    b = client.grant(values)                            # retried after a lost answer: same authorization
    assert a.code == b.code == "00000" and a.data["auth_id"] == b.data["auth_id"] and a.data["auth_status"] == "1"
    assert client.grant(dict(values, appointment_id="R3", patient_id_no="451002198001011230")).code == "A2002"
    assert client.grant(dict(values, patient_id_no="110101199003074514")).code == "A2005"   # same id, other patient
    assert client.revoke({"org_code": "451002000001", "appointment_id": "NOPE"}).code == "A2006"
    q = client.query({"org_code": "451002000001", "appointment_id": "R2"})
    assert q.data["auth_id"] == a.data["auth_id"]
    client.close()
    # a client holding the wrong platform certificate never trusts the (genuine) answer
    import shutil

    wrong = KeyStore(shutil.copytree(hospital.directory, hospital.directory.parent / "wrong"))
    wrong.set_peer("platform_sign", KeyStore(hospital.directory.parent / "impostor").export_public("sign"))
    bad = PlatformClient("451002000001", wrong, clock=lambda: NOW, base_url=srv.url)
    with pytest.raises(PlatformUnavailable, match="验签"):
        bad.query({"org_code": "451002000001", "appointment_id": "R2"})
    bad.close()
    # an unknown hospital key: the platform answers E1003 without business content
    stranger = KeyStore(hospital.directory.parent / "stranger")
    stranger.set_peer("platform_enc", platform.export_public("enc"))
    stranger.set_peer("platform_sign", platform.export_public("sign"))
    res = PlatformClient("451002000001", stranger, clock=lambda: NOW, base_url=srv.url).query(
        {"org_code": "451002000001", "appointment_id": "R2"})
    assert res.code == "E1003" and res.data == {}

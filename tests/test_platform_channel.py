"""The platform channel (issue 12 item 4): every answer must be signed — error answers too — and bound
to its request (requestId and nonce echoed). The simulated platform misbehaves on purpose over real
HTTP (`demo.simulator` MISBEHAVIOURS); the hospital refuses each answer, retries, records an
alert, and never grants nor fails an authorization because of it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

import tests.test_sharing_lifecycle as lifecycle

ID_A, ID_B = lifecycle.ID_A, lifecycle.ID_B
spec_dir, share_schema, world = lifecycle.spec_dir, lifecycle.share_schema, lifecycle.world   # fixtures
VISIT = datetime(2026, 3, 5, 9)


def _refusals(w) -> int:
    ev = w.life.ops.table("audit_event")
    with w.life.frontend.connect() as c:
        return c.execute(select(func.count()).where(ev.c.action == "PLATFORM_ANSWER_REFUSED")).scalar_one()


def _fresh_client(w):
    """A new client (new process, empty caches): refusal must come from the binding, not a nonce cache."""
    w.client.close()
    w.client = w.life.client(clock=w.clock, base_url=w.sim.url)


@pytest.mark.parametrize("mode", ["replay", "unbound", "unsigned_error"])
def test_a_misbehaving_answer_is_refused_retried_and_never_decides(world, mode):
    w = world
    w.book("M1", ID_A, VISIT)
    assert w.drain().acked == 1
    first = w.auth("M1")["auth_id"]
    assert first

    w.sim_app.state.sim.misbehave = mode
    _fresh_client(w)
    w.book("M2", ID_B, VISIT, name="李四")
    rep = w.drain()
    assert rep.acked == 0 and rep.failed == 0 and rep.retry == 1 and rep.codes == {"REFUSED": 1}
    rec = w.auth("M2")
    assert rec["status"] == "PENDING" and rec["auth_id"] is None          # neither granted nor failed
    ob = next(o for o in w.outbox() if o["appointment_id"] == "M2")
    assert ob["status"] == "SENT" and ob["last_code"] == "REFUSED" and ob["next_retry_at"] == w.clock() + \
        timedelta(minutes=1)
    assert _refusals(w) == 1

    w.sim_app.state.sim.misbehave = None                                  # the real platform answers again
    w.clock.advance(minutes=1)
    assert w.drain().acked == 1
    rec = w.auth("M2")
    assert rec["status"] == "ACTIVE" and rec["auth_id"] and rec["auth_id"] != first


def test_refused_until_retries_are_used_up_leaves_the_authorization_pending(world):
    w = world
    w.sim_app.state.sim.misbehave = "unsigned_error"
    w.book("G1", ID_A, VISIT)
    assert w.drain().retry == 1
    w.clock.advance(hours=25)
    rep = w.drain()
    assert rep.failed == 1                                                # the outbox gives up: manual queue
    assert w.outbox()[0]["status"] == "FAILED" and w.outbox()[0]["last_code"] == "REFUSED"
    assert w.auth("G1")["status"] == "PENDING"                            # but A2002 was never believed


def test_an_impostor_on_the_platform_port_is_refused(hb_home, spec_dir, share_schema, mariadb_url):
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.demo.simulator import ServerThread, create_app, free_port

    port = free_port()
    w = lifecycle._world(hb_home, spec_dir, mariadb_url, sim_port=port, start_sim=False)
    impostor_keys = KeyStore(hb_home / "impostor_keys")     # public keys are public; private ones it lacks
    impostor_keys.set_peer("hospital_enc", w.life.keys.export_public("enc"))
    impostor_keys.set_peer("hospital_sign", w.life.keys.export_public("sign"))
    impostor = ServerThread(create_app(impostor_keys, misbehave="impostor"), port=port).start()
    try:
        w.book("I1", ID_A, VISIT)
        assert w.drain().codes == {"REFUSED": 1}           # an unsigned A2002
        w.clock.advance(minutes=1)
        assert w.drain().codes == {"REFUSED": 1}           # a success signed with the impostor's own key
        assert w.auth("I1")["status"] == "PENDING" and w.auth("I1")["auth_id"] is None
        assert _refusals(w) == 2
        impostor.stop()
        w.sim.start()                                      # the real platform on the same port
        w.clock.advance(minutes=5)
        assert w.drain().acked == 1
        assert w.auth("I1")["status"] == "ACTIVE" and not w.auth("I1")["auth_id"].startswith("IMPOSTOR")
    finally:
        w.client.close()
        w.door.stop()
        w.sim.stop()


def test_signed_error_answers_are_believed(world):
    """The genuine platform's signed A2002 still fails at once (window identity check): refusals do not
    make real errors retry forever."""
    w = world
    w.book("E1", "451002198001011230", VISIT)              # wrong GB 11643 check character
    rep = w.drain()
    assert rep.failed == 1 and w.auth("E1")["status"] == "FAILED" and w.outbox()[0]["last_code"] == "A2002"
    assert _refusals(w) == 0


def test_an_answer_without_the_request_nonce_is_refused():
    """An old-style answer that echoes the requestId but not the nonce cannot be told from a replay."""
    import tempfile
    from pathlib import Path

    from hipbridge.crypto.keys import KeyStore, provision_pair
    from hipbridge.platform.config import platform_config
    from hipbridge.platform.envelope import EnvelopeError, open_answer, seal

    cfg = platform_config()
    now = datetime(2026, 3, 2, 9)
    with tempfile.TemporaryDirectory() as d:
        hospital, platform = KeyStore(Path(d) / "h"), KeyStore(Path(d) / "p")
        provision_pair(hospital, platform)
        hs, ps = hospital.sm2("sign"), platform.sm2("sign")
        request = seal(cfg, "AUTH_QUERY", {"a": 1}, app_id="A", org_code="O", sign_private=hs.private_key,
                       sign_public=hs.public_key, peer_enc_public=hospital.peer("platform_enc"), clock=lambda: now)

        def answer(**extra):
            return seal(cfg, "RESPONSE", {"data": {}}, app_id="A", org_code="PLATFORM", sign_private=ps.private_key,
                        sign_public=ps.public_key, peer_enc_public=platform.peer("hospital_enc"), clock=lambda: now,
                        request_id=request.request_id, extra={"code": "00000", "msg": "ok", **extra}).envelope

        kw = {"peer_sign_public": hospital.peer("platform_sign"), "own_enc_private": hospital.sm2("enc").private_key,
              "clock": lambda: now}
        assert open_answer(cfg, answer(request_nonce=request.nonce), request, **kw).code == "00000"
        with pytest.raises(EnvelopeError, match="不属于本次请求"):
            open_answer(cfg, answer(request_nonce="0" * 32), request, **kw)
        with pytest.raises(EnvelopeError, match="缺少字段"):
            open_answer(cfg, answer(), request, **kw)

"""SM2 / SM3 / SM4: standard vectors, gmssl defect workarounds, OpenSSL 3 interoperability."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hipbridge.crypto import sm
from hipbridge.crypto.fields import decrypt_field, encrypt_field
from hipbridge.crypto.keys import KeyStore
from hypothesis import given, settings
from hypothesis import strategies as st


def test_sm3_and_sm4_standard_vectors():
    assert sm.sm3_hex(b"abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"   # GB/T 32905
    k = bytes.fromhex("0123456789abcdeffedcba9876543210")
    assert sm.sm4_ecb_encrypt_block(k, k).hex() == "681edf34d206965e86b3e94f536e4246"                  # GB/T 32907


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200))
def test_sm4_cbc_round_trip_and_matches_gmssl(data):
    from gmssl.sm4 import SM4_ENCRYPT, CryptSM4

    key, iv = bytes(range(16)), bytes(range(16, 32))
    ct = sm.sm4_cbc_encrypt(key, iv, data)
    assert sm.sm4_cbc_decrypt(key, iv, ct) == data
    g = CryptSM4()
    g.set_key(key, SM4_ENCRYPT)
    assert g.crypt_cbc(iv, data) == ct      # the two libraries are byte-identical


def test_sm4_bad_padding_is_rejected():
    key, iv = bytes(16), bytes(16)
    ct = bytearray(sm.sm4_cbc_encrypt(key, iv, b"hello"))
    ct[-1] ^= 1
    with pytest.raises(sm.CryptoError):
        sm.sm4_cbc_decrypt(key, iv, bytes(ct))


def test_sm2_sign_verify_and_tamper():
    kp = sm.sm2_generate_keypair()
    sig = sm.sm2_sign(kp.private_key, b"message")
    assert sm.sm2_verify(kp.public_key, b"message", sig)
    assert sm.sm2_verify("04" + kp.public_key, b"message", sig)
    assert not sm.sm2_verify(kp.public_key, b"messagf", sig)
    assert not sm.sm2_verify(kp.public_key, b"message", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not sm.sm2_verify(kp.public_key, b"message", b"\x30\x00")            # malformed DER: False, no crash
    _r, s = sm.parse_der_signature(sig)
    assert not sm.sm2_verify(kp.public_key, b"message", sm.der_signature(0, s))  # r out of range
    other_id = sm.sm2_sign(kp.private_key, b"message", user_id=b"ALICE123@YAHOO.COM")
    assert not sm.sm2_verify(kp.public_key, b"message", other_id)
    assert sm.sm2_verify(kp.public_key, b"message", other_id, user_id=b"ALICE123@YAHOO.COM")


def test_sm2_matches_gmssl_default_id():
    """Our Z/e computation equals gmssl's own sign_with_sm3 / verify_with_sm3 for the default ID."""
    from gmssl import sm2 as g

    kp = sm.sm2_generate_keypair()
    eng = g.CryptSM2(private_key=kp.private_key, public_key="", asn1=True)
    eng.public_key = kp.public_key
    ours = sm.sm2_sign(kp.private_key, b"abc")
    assert eng.verify_with_sm3(ours.hex(), b"abc")
    theirs = bytes.fromhex(eng.sign_with_sm3(b"abc", "1" * 64))
    assert sm.sm2_verify(kp.public_key, b"abc", theirs)


def test_sm2_encrypt_decrypt_checks_c3_where_gmssl_does_not():
    from gmssl import sm2 as g

    kp = sm.sm2_generate_keypair()
    ct = sm.sm2_encrypt(kp.public_key, b"0123456789abcdef")
    assert sm.sm2_decrypt(kp.private_key, ct) == b"0123456789abcdef"
    bad = bytearray(ct)
    bad[-1] ^= 0xFF                                   # flip a C2 byte
    eng = g.CryptSM2(private_key=kp.private_key, public_key="", mode=1)
    eng.public_key = kp.public_key
    assert eng.decrypt(bytes(bad)) != b"0123456789abcdef"   # gmssl returns garbage silently
    with pytest.raises(sm.CryptoError, match="C3"):
        sm.sm2_decrypt(kp.private_key, bytes(bad))


def test_c1c3c2_der_round_trip():
    kp = sm.sm2_generate_keypair()
    ct = sm.sm2_encrypt(kp.public_key, b"key-material-16b")
    der = sm.c1c3c2_to_der(ct)
    assert der[0] == 0x30 and sm.der_to_c1c3c2(der) == ct


def test_gmssl_lstrip_04_regression():
    """gmssl's constructor lstrip("04") corrupts keys starting with 0/4; ours never passes keys through it."""
    from gmssl import sm2 as g

    found = None
    for _ in range(400):
        kp = sm.sm2_generate_keypair()
        if kp.public_key[0] in "04":
            found = kp
            break
    assert found is not None
    corrupted = g.CryptSM2(private_key=found.private_key, public_key="04" + found.public_key).public_key
    assert corrupted != found.public_key                      # the defect, demonstrated
    sig = sm.sm2_sign(found.private_key, b"x", public_key="04" + found.public_key)
    assert sm.sm2_verify("04" + found.public_key, b"x", sig)  # our path is unaffected
    ct = sm.sm2_encrypt("04" + found.public_key, b"abc")
    assert sm.sm2_decrypt(found.private_key, ct) == b"abc"


def test_keystore_patient_key_and_field_encryption(tmp_path):
    ks = KeyStore(tmp_path / "keys")
    a = ks.patient_key("01", "45100219800101123x")
    assert a == ks.patient_key("01", "45100219800101123X") and len(a) == 64
    assert a != KeyStore(tmp_path / "other").patient_key("01", "45100219800101123X")   # keyed, not a plain hash
    tok = encrypt_field(ks, "张三|13800000000")
    assert "张三" not in tok and decrypt_field(ks, tok) == "张三|13800000000"
    assert (tmp_path / "keys" / "key_idx.hex").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------- OpenSSL 3 interoperability

_OID_SM2 = bytes.fromhex("06082a811ccf5501822d")
_OID_EC = bytes.fromhex("06072a8648ce3d0201")


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + sm._der_len(len(body)) + body


def _pem(label: str, der: bytes) -> str:
    import base64
    import textwrap

    return f"-----BEGIN {label}-----\n" + "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64)) + \
        f"\n-----END {label}-----\n"


def _private_pem(kp: sm.SM2KeyPair) -> str:
    body = (_tlv(0x02, b"\x01") + _tlv(0x04, bytes.fromhex(kp.private_key)) + _tlv(0xA0, _OID_SM2)
            + _tlv(0xA1, _tlv(0x03, b"\x00\x04" + bytes.fromhex(kp.public_key))))
    return _pem("EC PRIVATE KEY", _tlv(0x30, body))


def _public_pem(kp: sm.SM2KeyPair) -> str:
    alg = _tlv(0x30, _OID_EC + _OID_SM2)
    return _pem("PUBLIC KEY", _tlv(0x30, alg + _tlv(0x03, b"\x00\x04" + bytes.fromhex(kp.public_key))))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_interoperability(tmp_path: Path):
    kp = sm.sm2_generate_keypair()
    (tmp_path / "key.pem").write_text(_private_pem(kp))
    (tmp_path / "pub.pem").write_text(_public_pem(kp))
    msg = b"appId=APP-BSRMYY&nonce=abc&timestamp=1"
    (tmp_path / "msg").write_bytes(msg)
    opts = ["-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678"]
    # OpenSSL verifies ours
    (tmp_path / "ours.sig").write_bytes(sm.sm2_sign(kp.private_key, msg))
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", *opts, "-in", "msg",
                        "-sigfile", "ours.sig"], check=False, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr
    # we verify OpenSSL's
    r = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", "key.pem", *opts, "-in", "msg", "-out", "ossl.sig"],
                       check=False, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sm.sm2_verify(kp.public_key, msg, (tmp_path / "ossl.sig").read_bytes())
    # OpenSSL decrypts our SM2 ciphertext (DER form)
    (tmp_path / "ct.der").write_bytes(sm.c1c3c2_to_der(sm.sm2_encrypt(kp.public_key, b"sm4-key-16-bytes")))
    r = subprocess.run(["openssl", "pkeyutl", "-decrypt", "-inkey", "key.pem", "-in", "ct.der"], check=False,
                       cwd=tmp_path, capture_output=True)
    assert r.returncode == 0 and r.stdout == b"sm4-key-16-bytes", r.stderr
    # and we decrypt OpenSSL's
    (tmp_path / "plain").write_bytes(b"from openssl")
    r = subprocess.run(["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", "-in", "plain",
                        "-out", "ossl.ct"], check=False, cwd=tmp_path, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert sm.sm2_decrypt(kp.private_key, sm.der_to_c1c3c2((tmp_path / "ossl.ct").read_bytes())) == b"from openssl"

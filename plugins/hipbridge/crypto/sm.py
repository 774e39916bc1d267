"""SM2 / SM3 / SM4 primitives, with the library split measured in architecture.md.

- SM3, HMAC-SM3 and SM4 come from `cryptography` (OpenSSL: fast, padding validated).
- SM2 comes from `gmssl` 3.2.2, used only for its curve arithmetic (`CryptSM2._kg`, `sign`,
  `verify`). Its known defects (interfaces.md §C3) are worked around here, not patched globally:
  1. `func.random_hex` uses `random.choice`: every nonce k is drawn from `secrets` instead, and
     `CryptSM2.encrypt` (which calls random_hex internally) is never used.
  2. `CryptSM2(public_key=…)` runs `lstrip("04")`, which eats every leading 0/4 of the key: the
     object is built with an empty key and `public_key` is assigned afterwards, as bare x‖y.
  3. SM2 decrypt does not check C3: our decrypt recomputes C3 and compares in constant time.
  4. `pkcs7_unpadding` does not validate padding: SM4 is never done with gmssl.
  6. The SM3withSM2 user ID is hard-coded in `_sm3_z`: Z is computed here with a configurable ID.
  Also: `verify` neither range-checks r, s nor survives malformed DER; both are handled here.
"""

from __future__ import annotations

import hmac as _hmac
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl import sm2 as _gm_sm2

DEFAULT_SM2_USER_ID = b"1234567812345678"  # GM/T 0009-2012 default; the province must confirm it
_CURVE = _gm_sm2.default_ecc_table
_N = int(_CURVE["n"], 16)
_P = int(_CURVE["p"], 16)
_A = int(_CURVE["a"], 16)
_B = int(_CURVE["b"], 16)


class CryptoError(ValueError):
    """Decryption, padding, C3 or key-format failure (mapped to E1005 by the envelope)."""


# ---------------------------------------------------------------- SM3 / HMAC-SM3


def sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def sm3_hex(data: bytes) -> str:
    return sm3(data).hex()


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    h = c_hmac.HMAC(key, hashes.SM3())
    h.update(data)
    return h.finalize()


# ---------------------------------------------------------------- SM4


def sm4_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def sm4_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    try:
        dec = Cipher(algorithms.SM4(key), modes.CBC(iv)).decryptor()
        data = dec.update(ciphertext) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(data) + unpadder.finalize()
    except ValueError as exc:  # wrong length or bad padding
        raise CryptoError(f"SM4 解密失败: {exc}") from None


def sm4_ecb_encrypt_block(key: bytes, block: bytes) -> bytes:
    """Single-block SM4-ECB (test vectors, key wrapping); never for records."""
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


# ---------------------------------------------------------------- SM2 (gmssl arithmetic)


@dataclass(frozen=True)
class SM2KeyPair:
    private_key: str  # 64 hex
    public_key: str   # 128 hex, bare x‖y (no 04 prefix)


def _normalise_public(pub: str) -> str:
    """Accept x‖y or 04‖x‖y (hex); return bare x‖y. Strips exactly one prefix byte, never lstrip."""
    pub = pub.strip().lower()
    if len(pub) == 130 and pub.startswith("04"):
        pub = pub[2:]
    if len(pub) != 128 or any(c not in "0123456789abcdef" for c in pub):
        raise CryptoError("SM2 公钥格式错误: expected 128 hex characters (x‖y) or 130 with the 04 prefix")
    return pub


def _on_curve(pub: str) -> bool:
    x, y = int(pub[:64], 16), int(pub[64:], 16)
    return 0 <= x < _P and 0 <= y < _P and (y * y - (x * x * x + _A * x + _B)) % _P == 0


def _engine(private_key: str = "", public_key: str = "") -> _gm_sm2.CryptSM2:
    # Defect 2: never pass the public key to the constructor (lstrip("04")); assign it afterwards.
    eng = _gm_sm2.CryptSM2(private_key=private_key, public_key="")
    eng.public_key = public_key
    return eng


def _random_scalar() -> int:
    return secrets.randbelow(_N - 2) + 1  # defect 1: CSPRNG, never random.choice


def sm2_generate_keypair() -> SM2KeyPair:
    d = _random_scalar()
    eng = _engine()
    pub = eng._kg(d, _CURVE["g"])
    return SM2KeyPair(f"{d:064x}", pub)


def sm2_public_from_private(private_key: str) -> str:
    return _engine()._kg(int(private_key, 16), _CURVE["g"])


def _z(public_key: str, user_id: bytes) -> bytes:
    entl = (len(user_id) * 8).to_bytes(2, "big")
    data = (entl + user_id + bytes.fromhex(_CURVE["a"] + _CURVE["b"] + _CURVE["g"]) + bytes.fromhex(public_key))
    return sm3(data)


def _e(public_key: str, message: bytes, user_id: bytes) -> bytes:
    return sm3(_z(public_key, user_id) + message)


def _der_int(v: int) -> bytes:
    b = v.to_bytes((v.bit_length() + 8) // 8 or 1, "big")
    return b"\x02" + _der_len(len(b)) + b


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _der_read(buf: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    if pos >= len(buf) or buf[pos] != tag:
        raise CryptoError("DER: unexpected tag")
    pos += 1
    if pos >= len(buf):
        raise CryptoError("DER: truncated")
    n = buf[pos]
    pos += 1
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > len(buf):
            raise CryptoError("DER: bad length")
        n = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    if pos + n > len(buf):
        raise CryptoError("DER: truncated")
    return buf[pos:pos + n], pos + n


def der_signature(r: int, s: int) -> bytes:
    body = _der_int(r) + _der_int(s)
    return b"\x30" + _der_len(len(body)) + body


def parse_der_signature(sig: bytes) -> tuple[int, int]:
    seq, end = _der_read(sig, 0, 0x30)
    if end != len(sig):
        raise CryptoError("DER: trailing bytes")
    r, pos = _der_read(seq, 0, 0x02)
    s, pos = _der_read(seq, pos, 0x02)
    if pos != len(seq):
        raise CryptoError("DER: trailing bytes in sequence")
    return int.from_bytes(r, "big"), int.from_bytes(s, "big")


def sm2_sign(private_key: str, message: bytes, user_id: bytes = DEFAULT_SM2_USER_ID,
             public_key: str | None = None) -> bytes:
    """SM3withSM2 signature over `message`, DER SEQUENCE{r, s} (GM/T 0009)."""
    pub = _normalise_public(public_key) if public_key else sm2_public_from_private(private_key)
    e = _e(pub, message, user_id)
    eng = _engine(private_key, pub)
    while True:
        sig = eng.sign(e, f"{_random_scalar():064x}")  # raw r‖s hex; None on a degenerate k
        if sig:
            return der_signature(int(sig[:64], 16), int(sig[64:], 16))


def sm2_verify(public_key: str, message: bytes, signature: bytes,
               user_id: bytes = DEFAULT_SM2_USER_ID) -> bool:
    try:
        pub = _normalise_public(public_key)
        r, s = parse_der_signature(signature)
    except CryptoError:
        return False
    if not (1 <= r < _N and 1 <= s < _N) or not _on_curve(pub):
        return False
    try:
        return bool(_engine("", pub).verify(f"{r:064x}{s:064x}", _e(pub, message, user_id)))
    except Exception:  # noqa: BLE001 - gmssl raises assorted errors on degenerate points
        return False


def _kdf(z: bytes, klen: int) -> bytes:
    out = b""
    ct = 1
    while len(out) < klen:
        out += sm3(z + ct.to_bytes(4, "big"))
        ct += 1
    return out[:klen]


def sm2_encrypt(public_key: str, plaintext: bytes) -> bytes:
    """SM2 encryption, raw C1C3C2 (C1 = x1‖y1, 64 bytes, no 04 prefix), nonce from `secrets`."""
    pub = _normalise_public(public_key)
    eng = _engine("", pub)
    while True:
        k = _random_scalar()
        c1 = eng._kg(k, _CURVE["g"])
        xy = bytes.fromhex(eng._kg(k, pub))
        t = _kdf(xy, len(plaintext))
        if any(t):
            break
    c2 = bytes(a ^ b for a, b in zip(plaintext, t, strict=True))
    c3 = sm3(xy[:32] + plaintext + xy[32:])
    return bytes.fromhex(c1) + c3 + c2


def sm2_decrypt(private_key: str, ciphertext: bytes) -> bytes:
    """Decrypt raw C1C3C2 and verify C3 (defect 3: gmssl never checks it)."""
    if len(ciphertext) < 64 + 32 + 1:
        raise CryptoError("SM2 密文过短")
    c1, c3, c2 = ciphertext[:64].hex(), ciphertext[64:96], ciphertext[96:]
    if not _on_curve(c1):
        raise CryptoError("SM2 密文 C1 不在曲线上")
    xy = bytes.fromhex(_engine(private_key, "")._kg(int(private_key, 16), c1))
    t = _kdf(xy, len(c2))
    if not any(t):
        raise CryptoError("SM2 KDF 输出全零")
    m = bytes(a ^ b for a, b in zip(c2, t, strict=True))
    if not _hmac.compare_digest(sm3(xy[:32] + m + xy[32:]), c3):
        raise CryptoError("SM2 密文 C3 校验失败")
    return m


def c1c3c2_to_der(ct: bytes) -> bytes:
    """Raw C1C3C2 → GM/T 0009 DER SM2Cipher{x, y, hash, cipherText}."""
    x, y = int.from_bytes(ct[:32], "big"), int.from_bytes(ct[32:64], "big")
    body = (_der_int(x) + _der_int(y) + b"\x04" + _der_len(32) + ct[64:96]
            + b"\x04" + _der_len(len(ct) - 96) + ct[96:])
    return b"\x30" + _der_len(len(body)) + body


def der_to_c1c3c2(der: bytes) -> bytes:
    seq, end = _der_read(der, 0, 0x30)
    if end != len(der):
        raise CryptoError("DER: trailing bytes")
    x, pos = _der_read(seq, 0, 0x02)
    y, pos = _der_read(seq, pos, 0x02)
    h, pos = _der_read(seq, pos, 0x04)
    c, pos = _der_read(seq, pos, 0x04)
    xi, yi = int.from_bytes(x, "big"), int.from_bytes(y, "big")
    return xi.to_bytes(32, "big") + yi.to_bytes(32, "big") + h + c

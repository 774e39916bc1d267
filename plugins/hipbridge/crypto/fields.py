"""Field encryption at rest, blind indexes and row MACs (interfaces.md §A14).

- Ciphertext: SM4-CBC with a random IV per value, `v1:<key_id>:<iv b64>:<ct b64>`; the key id
  names the DEK in the key registry (or, for tokens written before the registry, a key file of
  the key folder, e.g. `data`, as the outbox uses).
- Blind index: `HMAC-SM3(K_idx, kind | normalised value)`, hex. The patient's index is the same
  value as the authorization's `patient_key` (id type | id number), so the 15-day purge, the
  display and the reminder find a patient's shared rows without decrypting anything.
- Row MAC: `<key_id>:HMAC-SM3(K_row, canonical row)`, canonical = the table name and every stored
  column as `name=value` (ciphertext as stored), so a changed, swapped or moved value is detected.

SM4 and HMAC-SM3 run in OpenSSL through `cryptography` (C speed; `bench/crypto.py` compares gmssl).
"""

from __future__ import annotations

import base64
import binascii
import hmac as _hmac
import os
import secrets
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .keys import KeyStore
from .sm import CryptoError, hmac_sm3, sm4_cbc_decrypt, sm4_cbc_encrypt

PREFIX = "v1:"
_PADS = [bytes((p,)) * p for p in range(17)]   # PKCS#7 padding by pad length


def encrypt_field(keys: KeyStore, plaintext: str, key_id: str = "data") -> str:
    """Encrypt under a key file of the key folder (the outbox's payloads)."""
    iv = secrets.token_bytes(16)
    ct = sm4_cbc_encrypt(keys.secret(key_id, 16), iv, plaintext.encode("utf-8"))
    return f"v1:{key_id}:{base64.b64encode(iv).decode()}:{base64.b64encode(ct).decode()}"


def _split(token: str) -> tuple[str, bytes, bytes]:
    try:
        version, key_id, iv, ct = token.split(":")
        if version != "v1":
            raise CryptoError(f"不支持的密文版本 {version}")
        return key_id, base64.b64decode(iv, validate=True), base64.b64decode(ct, validate=True)
    except (ValueError, binascii.Error) as exc:
        if isinstance(exc, CryptoError):
            raise
        raise CryptoError("密文格式错误: expected v1:<key_id>:<iv>:<ct>") from None


def decrypt_field(keys: KeyStore, token: str) -> str:
    key_id, iv, ct = _split(token)
    return sm4_cbc_decrypt(keys.secret(key_id, 16), iv, ct).decode("utf-8")


def key_id_of(token: str) -> str | None:
    """The key id a stored value is encrypted under; None for a value that is not a v1 token."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        return None
    parts = token.split(":", 3)
    return parts[1] if len(parts) == 4 else None


class FieldCipher:
    """SM4-CBC field encryption with the key ring's active `data` key; any registered key decrypts."""

    def __init__(self, ring):
        self.ring = ring

    def encrypt(self, value: Any) -> str | None:
        if value is None:
            return None
        key_id, key = self.ring.active("data")
        return _encrypt(key_id, key, str(value))

    def encrypt_many(self, values: Iterable[Any]) -> list[str | None]:
        """The bulk path, the same ciphertext format as `encrypt` (a random IV per value).

        CBC is sequential within a value but not across values, so the values are encrypted
        together: round k XORs the k-th block of every value that has one with that value's
        previous ciphertext block (numpy) and sends all of them through one SM4-ECB call
        (OpenSSL). A few dozen cipher calls per batch instead of one context per value or one
        call per block, which cost more than the cipher itself.
        """
        key_id, key = self.ring.active("data")
        vals = [None if v is None else (v if isinstance(v, str) else str(v)) for v in values]
        present = [i for i, v in enumerate(vals) if v is not None]
        out: list[str | None] = [None] * len(vals)
        if not present:
            return out
        import pyarrow as pa

        # PKCS#7 padding of every value at once: Arrow holds the UTF-8 bytes back to back; each
        # value's bytes move to its slot in a buffer prefilled with its pad byte
        arr = pa.array([vals[i] for i in present], type=pa.string())
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1].astype(np.int64)
        lens = np.diff(offsets)
        nblocks = lens // 16 + 1
        plen = nblocks * 16
        dst = np.zeros(len(lens), dtype=np.int64)
        np.cumsum(plen[:-1], out=dst[1:])
        buf = np.repeat((plen - lens).astype(np.uint8), plen)
        if offsets[-1] > offsets[0]:
            data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
            pos = np.arange(offsets[0], offsets[-1])
            buf[pos + np.repeat(dst - offsets[:-1], lens)] = data[offsets[0]:offsets[-1]]
        blocks = buf.reshape(-1, 16)
        start = dst >> 4
        ivs = os.urandom(16 * len(lens))
        prev = np.frombuffer(ivs, dtype=np.uint8).reshape(-1, 16).copy()
        ct = np.empty_like(blocks)
        update = Cipher(algorithms.SM4(key), modes.ECB()).encryptor().update
        # values sorted by length: the ones still in round k are a prefix of the order
        order = np.argsort(-nblocks, kind="stable")
        counts = nblocks[order]
        for k in range(int(counts[0])):
            live = order[: int(np.searchsorted(-counts, -k, side="left"))] if k else order
            pos_k = start[live] + k
            block = np.frombuffer(update((blocks[pos_k] ^ prev[live]).tobytes()), dtype=np.uint8).reshape(-1, 16)
            ct[pos_k] = block
            prev[live] = block
        # tokens as one ASCII blob: b2a_base64 ends each ciphertext with the newline that separates them
        raw, b2a, pre = ct.tobytes(), binascii.b2a_base64, f"v1:{key_id}:".encode()
        parts: list[bytes] = []
        add = parts.extend
        for j, (s0, s1) in enumerate(zip(dst.tolist(), (dst + plen).tolist())):
            add((pre, b2a(ivs[16 * j:16 * j + 16], newline=False), b":", b2a(raw[s0:s1])))
        tokens = b"".join(parts).decode("ascii").split("\n")
        for j, i in enumerate(present):
            out[i] = tokens[j]
        return out

    def decrypt(self, token: str | None) -> str | None:
        if token is None:
            return None
        key_id, iv, ct = _split(token)
        return sm4_cbc_decrypt(self.ring.key(key_id), iv, ct).decode("utf-8")


def _encrypt(key_id: str, key: bytes, text: str, algo=None) -> str:
    iv = secrets.token_bytes(16)
    padder = padding.PKCS7(128).padder()
    data = padder.update(text.encode("utf-8")) + padder.finalize()
    enc = Cipher(algo or algorithms.SM4(key), modes.CBC(iv)).encryptor()
    ct = enc.update(data) + enc.finalize()
    return f"v1:{key_id}:{base64.b64encode(iv).decode()}:{base64.b64encode(ct).decode()}"


# ---------------------------------------------------------------- blind index


def normalise(kind: str, value: Any) -> str | None:
    """The form two spellings of one value share: trimmed, upper case; phones keep their digits only."""
    if value is None:
        return None
    s = str(value).strip()
    if not s:
        return None
    if kind == "phone":
        s = "".join(ch for ch in s if ch.isdigit())
        if len(s) == 13 and s.startswith("86"):
            s = s[2:]
    return s.upper()


def blind_index(keys: KeyStore, kind: str, value: Any) -> str | None:
    """HMAC-SM3(K_idx, kind | normalised value), hex; None for an empty value."""
    norm = normalise(kind, value)
    if norm is None:
        return None
    return hmac_sm3(_idx_key(keys), f"{kind}|{norm}".encode()).hex()


_IDX: dict[str, bytes] = {}


def _idx_key(keys: KeyStore) -> bytes:
    """K_idx of a key folder, read once per process (it never rotates: the indexes would change)."""
    where = str(keys.directory)
    if where not in _IDX:
        _IDX[where] = keys.secret("idx")
    return _IDX[where]


def patient_index(keys: KeyStore, id_type: Any, id_no: Any) -> str | None:
    """The patient's blind index: equal to `KeyStore.patient_key` (the authorization's patient_key)."""
    if id_no is None or not str(id_no).strip():
        return None
    return keys.patient_key(str(id_type or ""), str(id_no))


# ---------------------------------------------------------------- row MAC


def _canon(v: Any) -> str:
    if v is None:
        return "\x00"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (Decimal, float, int)) and not isinstance(v, bool):
        return format(Decimal(str(v)).normalize(), "f")
    return str(v)


def canonical_row(table_name: str, row: dict[str, Any], columns: list[str]) -> bytes:
    return (table_name + "\x1e" + "\x1f".join(f"{c}={_canon(row.get(c))}" for c in columns)).encode("utf-8")


def row_mac(ring, table_name: str, row: dict[str, Any], columns: list[str]) -> str:
    key_id, key = ring.active("row")
    h = c_hmac.HMAC(key, hashes.SM3())
    h.update(canonical_row(table_name, row, columns))
    return f"{key_id}:{h.finalize().hex()}"


def verify_row_mac(ring, table_name: str, row: dict[str, Any], columns: list[str], mac: str | None) -> bool:
    if not mac or ":" not in mac:
        return False
    key_id, hexmac = mac.split(":", 1)
    try:
        key = ring.key(key_id)
    except CryptoError:
        return False
    expected = hmac_sm3(key, canonical_row(table_name, row, columns)).hex()
    return _hmac.compare_digest(expected, hexmac)

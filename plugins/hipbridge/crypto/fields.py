"""Field encryption at rest (A14): SM4-CBC with a random IV, format `v1:<key_id>:<iv b64>:<ct b64>`."""

from __future__ import annotations

import base64
import secrets

from .keys import KeyStore
from .sm import CryptoError, sm4_cbc_decrypt, sm4_cbc_encrypt


def encrypt_field(keys: KeyStore, plaintext: str, key_id: str = "data") -> str:
    iv = secrets.token_bytes(16)
    ct = sm4_cbc_encrypt(keys.secret(key_id, 16), iv, plaintext.encode("utf-8"))
    return f"v1:{key_id}:{base64.b64encode(iv).decode()}:{base64.b64encode(ct).decode()}"


def decrypt_field(keys: KeyStore, token: str) -> str:
    try:
        version, key_id, iv, ct = token.split(":")
    except ValueError:
        raise CryptoError("密文格式错误: expected v1:<key_id>:<iv>:<ct>") from None
    if version != "v1":
        raise CryptoError(f"不支持的密文版本 {version}")
    return sm4_cbc_decrypt(keys.secret(key_id, 16), base64.b64decode(iv), base64.b64decode(ct)).decode("utf-8")

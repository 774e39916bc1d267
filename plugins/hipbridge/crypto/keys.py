"""Key folder: SM2 key pairs, HMAC-SM3 keys and peer public keys, one file each.

This folder stands in for the hospital's 服务器密码机 (HSM, GM/T 0018 SDF) in development and in
the demo. In production the private keys and KEKs live in the HSM and this class is replaced by
an SDF-backed one with the same methods. Default location: `<HIPBRIDGE_HOME>/keys` (never
committed: `.hipbridge/` is outside version control). Files are created 0600 on first use.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from hipbridge.settings import settings

from .sm import SM2KeyPair, hmac_sm3, sm2_generate_keypair


def default_key_dir() -> Path:
    from hipbridge.io.engines import home

    return settings().keys or home() / "keys"


def _write_private(path: Path, text: str) -> None:
    """Create `path` (0600) with `text` atomically: a concurrent reader never sees it empty or half
    written; FileExistsError when another process created it first (read the winner's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.link(tmp, path)   # fails if it exists: the first writer wins, whole
    finally:
        os.unlink(tmp)


class KeyStore:
    """`sm2("sign")` → own key pair; `peer("platform_sign")` → a peer's public key; `secret("idx")`."""

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory else default_key_dir()

    def sm2(self, name: str) -> SM2KeyPair:
        path = self.directory / f"sm2_{name}.json"
        if not path.exists():
            kp = sm2_generate_keypair()
            try:
                _write_private(path, json.dumps({"private_key": kp.private_key, "public_key": kp.public_key}))
            except FileExistsError:  # created concurrently: read the winner's key
                pass
        data = json.loads(path.read_text(encoding="utf-8"))
        return SM2KeyPair(data["private_key"], data["public_key"])

    def export_public(self, name: str) -> str:
        return self.sm2(name).public_key

    def set_peer(self, name: str, public_key: str) -> None:
        path = self.directory / f"peer_{name}.pub"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(public_key + "\n", encoding="utf-8")

    def peer(self, name: str) -> str:
        path = self.directory / f"peer_{name}.pub"
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: 缺少对方公钥 {name}; install the platform's SM2 certificate public key "
                f"(`hipbridge platform keys import`) or run `hipbridge platform keys demo`")
        return path.read_text(encoding="utf-8").strip()

    def secret(self, name: str, nbytes: int = 32) -> bytes:
        path = self.directory / f"key_{name}.hex"
        if not path.exists():
            try:
                _write_private(path, secrets.token_hex(nbytes))
            except FileExistsError:
                pass
        return bytes.fromhex(path.read_text(encoding="utf-8").strip())

    # ------------------------------------------------------------ derived helpers

    def patient_key(self, id_type: str, id_no: str) -> str:
        """Blind index of a patient: HMAC-SM3(K_idx, idType ‖ idNo), hex (A0; no plaintext ID stored)."""
        norm = f"{(id_type or '').strip()}|{(id_no or '').strip().upper()}"
        return hmac_sm3(self.secret("idx"), norm.encode("utf-8")).hex()

    def hashed_key(self, value: str) -> str:
        """Keyed hash of any row key for logs (deletion log): no personal data, not guessable."""
        return hmac_sm3(self.secret("log"), value.encode("utf-8")).hex()


def provision_pair(hospital: KeyStore, platform: KeyStore) -> None:
    """Demo/test: create both sides' SM2 key pairs and exchange the public keys (as certificates would)."""
    hospital.set_peer("platform_sign", platform.export_public("sign"))
    hospital.set_peer("platform_enc", platform.export_public("enc"))
    platform.set_peer("hospital_sign", hospital.export_public("sign"))
    platform.set_peer("hospital_enc", hospital.export_public("enc"))

"""Key providers: where key-encryption keys (KEKs) live and who may use them.

A data-encryption key (DEK) is generated, then stored only *wrapped* (encrypted under the KEK of
its purpose) in the key registry (`registry.py`). A provider does three things: generate random
keys, wrap and unwrap DEKs. Two providers:

- `SoftwareKeyProvider` — development, tests and the demo: one KEK file per purpose
  (`kek_<purpose>.hex`, created 0600) in the key folder; wrapping is SM4-GCM with the purpose and
  key id as associated data, so a wrapped key moved to another purpose or id does not unwrap.
  KEK rotation (`new_kek`, driven by `registry.rewrap_all`) adds `kek_<purpose>_v<N>.hex`; a DEK
  wrapped under version N ≥ 1 carries `KEKv` + N in front, so both versions unwrap while the
  registry is re-wrapped, and the old file is then deleted.
  It is a *development* provider: the production profile refuses it (`check_profile`).
- `SdfKeyProvider` — the boundary to the hospital's certified 服务器密码机 through the GM/T 0018 SDF
  API. The KEKs never leave the device; the methods map onto SDF functions as documented on each.
  The vendor's library binding is not part of hipbridge: until it is configured every call raises
  `DeviceNotConfigured` with what to set, and nothing pretends to have encrypted.
"""

from __future__ import annotations

import os
import secrets
from abc import ABC, abstractmethod
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .keys import _write_private, default_key_dir
from .sm import CryptoError, sm4_ecb_encrypt_block

PURPOSES = ("data", "row", "idx", "log", "spool")


class DeviceNotConfigured(RuntimeError):
    """The 服务器密码机 (SDF) is selected but its library / device is not configured."""


class DevelopmentKeysRefused(RuntimeError):
    """The production profile was started with development (software) keys."""


def kcv(key: bytes) -> str:
    """Key check value: the first 6 hex digits of SM4-ECB(key, 0¹²⁸) (identifies a key without revealing it)."""
    return sm4_ecb_encrypt_block(key[:16], bytes(16)).hex()[:6]


class KeyProvider(ABC):
    name: str = "abstract"
    development: bool = True

    @abstractmethod
    def random(self, nbytes: int) -> bytes:
        """Random bytes for new keys and IVs."""

    @abstractmethod
    def wrap(self, purpose: str, key_id: str, key: bytes) -> bytes:
        """Encrypt a DEK under the KEK of `purpose`."""

    @abstractmethod
    def unwrap(self, purpose: str, key_id: str, wrapped: bytes) -> bytes:
        """Decrypt a wrapped DEK; raises CryptoError if it was not wrapped here for this purpose and id."""

    def new_kek(self, purpose: str) -> tuple[object, object]:
        """Start a KEK rotation: a new KEK for `purpose` that `wrap` uses from now on; returns
        (old version, new version). The old one still unwraps until `drop_kek`."""
        raise CryptoError(f"{self.name}: KEK rotation is not available here")

    def drop_kek(self, purpose: str, keep) -> None:
        """End a KEK rotation: every KEK of `purpose` older than `keep` is gone (nothing is wrapped
        under them any more)."""
        raise CryptoError(f"{self.name}: KEK rotation is not available here")


class SoftwareKeyProvider(KeyProvider):
    """KEKs in files of the key folder (0600). Development only."""

    name = "software"
    development = True

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory else default_key_dir()

    def _path(self, purpose: str, version: int) -> Path:
        return self.directory / (f"kek_{purpose}.hex" if version == 0 else f"kek_{purpose}_v{version}.hex")

    def _versions(self, purpose: str) -> list[int]:
        found = [0] if self._path(purpose, 0).exists() else []
        for p in self.directory.glob(f"kek_{purpose}_v*.hex"):
            tail = p.name[len(f"kek_{purpose}_v"):-len(".hex")]
            if tail.isdigit():
                found.append(int(tail))
        return sorted(found)

    def _current(self, purpose: str) -> int:
        versions = self._versions(purpose)
        return versions[-1] if versions else 0

    def _kek(self, purpose: str, version: int | None = None) -> bytes:
        if purpose not in PURPOSES:
            raise CryptoError(f"未知的密钥用途 {purpose!r}; expected one of {', '.join(PURPOSES)}")
        version = self._current(purpose) if version is None else version
        path = self._path(purpose, version)
        if not path.exists():
            if version != 0 or self._versions(purpose):
                raise CryptoError(f"KEK {path.name} 不存在 (已轮换并删除?)")
            try:
                _write_private(path, secrets.token_hex(16))
            except FileExistsError:  # created concurrently: use the winner's
                pass
        return bytes.fromhex(path.read_text(encoding="utf-8").strip())

    def random(self, nbytes: int) -> bytes:
        return secrets.token_bytes(nbytes)

    def wrap(self, purpose: str, key_id: str, key: bytes) -> bytes:
        version = self._current(purpose)
        nonce = secrets.token_bytes(12)
        enc = Cipher(algorithms.SM4(self._kek(purpose, version)), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(f"{purpose}|{key_id}".encode())
        ct = enc.update(key) + enc.finalize()
        head = _KEK_MAGIC + version.to_bytes(2, "big") if version else b""
        return head + nonce + ct + enc.tag

    def unwrap(self, purpose: str, key_id: str, wrapped: bytes) -> bytes:
        version = 0
        if wrapped.startswith(_KEK_MAGIC) and len(wrapped) - 6 in _WRAPPED_LENGTHS:
            version, wrapped = int.from_bytes(wrapped[4:6], "big"), wrapped[6:]
        nonce, ct, tag = wrapped[:12], wrapped[12:-16], wrapped[-16:]
        try:
            dec = Cipher(algorithms.SM4(self._kek(purpose, version)), modes.GCM(nonce, tag)).decryptor()
            dec.authenticate_additional_data(f"{purpose}|{key_id}".encode())
            return dec.update(ct) + dec.finalize()
        except (InvalidTag, ValueError):
            raise CryptoError(f"密钥 {key_id} 解封失败: KEK ({purpose}) 不符或封装数据被篡改") from None

    def new_kek(self, purpose: str) -> tuple[int, int]:
        self._kek(purpose)   # the current one exists (a first rotation starts from version 0)
        old = self._current(purpose)
        try:
            _write_private(self._path(purpose, old + 1), secrets.token_hex(16))
        except FileExistsError:
            raise CryptoError(f"KEK ({purpose}) 正在被另一进程轮换") from None
        return old, old + 1

    def drop_kek(self, purpose: str, keep: int) -> None:
        if keep != self._current(purpose):
            raise CryptoError(f"KEK ({purpose}) v{keep} 不是当前 KEK")
        for version in self._versions(purpose):
            if version < keep:   # (an interrupted earlier rotation may have left one more)
                self._path(purpose, version).unlink(missing_ok=True)


_KEK_MAGIC = b"KEKv"
_WRAPPED_LENGTHS = {12 + n + 16 for n in (16, 32)}   # nonce + DEK (data 16, row 32 bytes) + GCM tag


class SdfKeyProvider(KeyProvider):
    """Boundary to the certified 服务器密码机 (GM/T 0018-2012/2023 SDF interface).

    How each method maps onto the device (the binding to the vendor's library goes here):

    | method          | SDF functions                                                                 |
    |-----------------|-------------------------------------------------------------------------------|
    | (session)       | `SDF_OpenDevice` → `SDF_OpenSession` … `SDF_CloseSession` → `SDF_CloseDevice`   |
    | `random`        | `SDF_GenerateRandom` (the device's certified RNG)                              |
    | `wrap`          | `SDF_GenerateKeyWithKEK(alg SGD_SM4_ECB, KEK index)` → key handle + wrapped key; or `SDF_Encrypt` under the internal KEK |
    | `unwrap`        | `SDF_ImportKeyWithKEK(SGD_SM4_ECB, KEK index, wrapped)` → key handle             |
    | field encryption| `SDF_Encrypt` / `SDF_Decrypt` (SGD_SM4_CBC, key handle, IV)                     |
    | blind index, row MAC | `SDF_HMACInit` / `SDF_HMACUpdate` / `SDF_HMACFinal` (2023, SGD_SM3) or `SDF_CalculateMAC` |
    | discard a handle| `SDF_DestroyKey`                                                               |
    | SM2 sign (§C)   | `SDF_InternalSign_ECC` (signing key index) / `SDF_InternalDecrypt_ECC`          |

    KEK indexes per purpose come from `config/crypto.yaml` `sdf.kek_index`. With a certified
    device the DEKs can stay handles inside it (no plaintext DEK in our memory); the registry then
    keeps only the wrapped form and the KCV.
    """

    name = "sdf"
    development = False

    def __init__(self, library: str | None, kek_index: dict[str, int] | None = None):
        self.library = library
        self.kek_index = dict(kek_index or {})

    def _unavailable(self, function: str):
        where = (f"SDF 库 {self.library} 已配置, 但本系统尚未接入该厂商的 SDF 绑定" if self.library and
                 os.path.exists(self.library) else
                 f"SDF 库 {self.library} 不存在" if self.library else
                 "未配置 SDF 库 (config/crypto.yaml sdf.library 或环境变量 HIPBRIDGE_SDF_LIBRARY)")
        raise DeviceNotConfigured(f"服务器密码机不可用, 无法调用 {function}: {where}; "
                                  "开发与测试请使用 provider: software")

    def random(self, nbytes: int) -> bytes:
        self._unavailable("SDF_GenerateRandom")

    def wrap(self, purpose: str, key_id: str, key: bytes) -> bytes:
        self._unavailable("SDF_Encrypt (KEK)")

    def unwrap(self, purpose: str, key_id: str, wrapped: bytes) -> bytes:
        self._unavailable("SDF_ImportKeyWithKEK")


def check_profile(provider: KeyProvider, profile) -> None:
    """The production profile refuses development keys (GB/T 39786: keys in a certified module)."""
    if (profile.name == "production" or profile.key_provider == "sdf") and provider.development:
        raise DevelopmentKeysRefused(
            f"生产环境 (profile: {profile.name}) 拒绝使用开发密钥 (provider: {provider.name}); "
            "config/profiles/production.yaml key_provider: sdf, and configure the 服务器密码机")


def check_registry(entries: list[dict], profile) -> None:
    """In production, no key still in use may come from the development keystore."""
    if profile.name != "production" and profile.key_provider != "sdf":
        return
    dev = [e["key_id"] for e in entries if e["provider"] != "sdf" and e["status"] in ("active", "readable")]
    if dev:
        raise DevelopmentKeysRefused(
            f"生产环境 (profile: {profile.name}) 拒绝使用开发密钥: {', '.join(dev)} 由开发密钥库生成; "
            "在密码机上生成新密钥并轮换 (hipbridge keys rotate) 后再启动")


def provider_from_config(cfg=None, directory: Path | str | None = None, profile=None) -> KeyProvider:
    """The active profile's provider, after the profile check."""
    from hipbridge import profiles

    from .config import crypto_config

    cfg = cfg or crypto_config()
    profile = profile or profiles.active()
    if profile.key_provider == "sdf":
        provider: KeyProvider = SdfKeyProvider(cfg.sdf.library, cfg.sdf.kek_index)
    else:
        provider = SoftwareKeyProvider(directory)
    check_profile(provider, profile)
    return provider

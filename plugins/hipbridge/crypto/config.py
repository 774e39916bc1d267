"""Typed view of `config/crypto.yaml`: the SDF device, what is encrypted in the shared store, blind indexes.

Which key provider runs is the deployment profile's `key_provider` (`config/profiles/`, `profiles.py`).
Unknown keys are errors naming the file (as for the other config files). Environment override:
`HIPBRIDGE_SDF_LIBRARY`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from hipbridge.settings import config_dir, settings
from hipbridge.yamlconfig import StrictModel as _Strict
from hipbridge.yamlconfig import load_model


class Sdf(_Strict):
    library_: str | None = Field(None, alias="library")
    kek_index: dict[str, int] = Field(default_factory=dict)

    @property
    def library(self) -> str | None:
        return settings().sdf_library or self.library_


class Identity(_Strict):
    id_type: str
    id_no: str


class SharedStoreCrypto(_Strict):
    secure_suffix: str = Field("_secure", pattern=r"^[A-Za-z0-9_]+$")
    landing_max_minutes: int = Field(10, ge=0)
    encrypt_also: list[str] = Field(default_factory=list)
    blind_index: dict[str, Literal["id_no", "phone", "patient_id", "name", "card_no"]] = Field(default_factory=dict)
    identity: Identity


class FrontendCrypto(_Strict):
    """The province's front-end business tables: plaintext unless a table is listed here (docs §3.4).

    `tables`: spec table id (or the province's table name) → the columns stored as SM4 ciphertext,
    a list of column names or `sensitive` (every `sensitive: true` column of the spec). Checked
    against the specs by `crypto.frontend.encrypted_columns` (unknown names are ConfigErrors).
    """
    tables: dict[str, list[str] | Literal["sensitive"]] = Field(default_factory=dict)


class Rotation(_Strict):
    batch_rows: int = Field(2000, ge=1)


class CryptoConfig(_Strict):
    sdf: Sdf = Field(default_factory=Sdf)
    shared_store: SharedStoreCrypto
    frontend: FrontendCrypto = Field(default_factory=FrontendCrypto)
    rotation: Rotation = Field(default_factory=Rotation)


@lru_cache(maxsize=8)
def _cached(directory: str) -> CryptoConfig:
    return load_model(CryptoConfig, Path(directory) / "crypto.yaml")


def crypto_config(directory: Path | None = None) -> CryptoConfig:
    return _cached(str(directory or config_dir()))

"""The per-column switch for the province's front-end business tables (docs/密码应用方案.md §3.4).

The province extracts its business tables as it finds them, so by default nothing there is
encrypted. A province that wants some columns encrypted lists them in `config/crypto.yaml`
`frontend.tables`; then:

- transfer encrypts those columns in conform *after* the row digest (the digest, hence the
  ledger's "unchanged, skip" decision, stays over the plaintext: with a random IV a digest over
  the ciphertext would make every rerun a change). The digest is salted with the list of
  encrypted columns, so switching a column on or off republishes every row once in its new form
  instead of leaving the old rows as they were;
- `frontend init` and the staging tables declare those columns wide enough for the ciphertext
  (`io.frontend.encrypted_type`);
- quality rules that read an encrypted column's values are reported not applicable with the
  reason (`quality.engine`), never run on ciphertext;
- `reveal_value` / `reveal_row` (and `hipbridge frontend reveal`) read a value back for staff.

Only text columns outside the primary key can be encrypted: a key must stay comparable (publish
matches rows by key) and a date or number column cannot hold ciphertext.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sqlalchemy.engine import Engine

from hipbridge.settings import config_dir
from hipbridge.spec import SpecSet, TableSpec
from hipbridge.yamlconfig import ConfigError

from .atrest import keyring_for
from .config import crypto_config
from .fields import PREFIX, FieldCipher

SECTION = ("frontend", "tables")


def _line_of(path: Path, keys: tuple[str, ...]) -> int | None:
    """The line (1-based) of a nested key in a YAML file, for error messages."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return line
        for k, v in node.value:
            if k.value == key:
                line, node = k.start_mark.line + 1, v
                break
        else:
            return line
    return line


def _error(directory: Path, keys: tuple[str, ...], message: str) -> ConfigError:
    path = Path(directory) / "crypto.yaml"
    line = _line_of(path, keys)
    where = f"{path}:{line}" if line else str(path)
    return ConfigError(f"{where}: {'.'.join(keys)}: {message}")


def frontend_columns(specs: SpecSet, directory: Path | None = None) -> dict[str, frozenset[str]]:
    """Spec table id → the columns encrypted in its front-end table (only tables with some).

    Every entry is checked against the specs: an unknown table or column, a key column or a
    column that is not text is a ConfigError naming crypto.yaml, the line and the key.
    """
    directory = Path(directory or config_dir())
    wanted = crypto_config(directory).frontend.tables
    by_target = {s.target.name: t for t, s in specs.specs.items()}
    out: dict[str, frozenset[str]] = {}
    for name, columns in wanted.items():
        keys = (*SECTION, name)
        table = name if name in specs.specs else by_target.get(name)
        if table is None:
            known = ", ".join(sorted(specs.specs))
            raise _error(directory, keys, f"no table spec {name!r} (a spec table id or the province's table "
                                          f"name, e.g. patient_info or HZJBXXB; known: {known})")
        spec = specs.specs[table]
        by_name = {c.name: c for c in spec.columns}
        if columns == "sensitive":
            chosen = [c.name for c in spec.columns if c.sensitive]
        else:
            chosen = list(columns)
        for col in chosen:
            c = by_name.get(col)
            if c is None:
                raise _error(directory, keys, f"table {table} ({spec.target.name}) has no column {col!r} "
                                              f"(columns: {', '.join(by_name)})")
            if col in spec.target.primary_key:
                raise _error(directory, keys, f"{table}.{col} is a primary key column: publish matches rows by "
                                              f"key, so a key cannot be encrypted")
            if not c.ctype.is_text:
                raise _error(directory, keys, f"{table}.{col} is {c.ctype}: only text columns (varchar, text) "
                                              f"can hold ciphertext")
        if table in out:
            raise _error(directory, keys, f"table {table} is listed twice (by id and by its province name)")
        if chosen:
            out[table] = frozenset(chosen)
    return out


def encrypted_columns(specs: SpecSet, spec: TableSpec, directory: Path | None = None) -> frozenset[str]:
    return frontend_columns(specs, directory).get(spec.table, frozenset())


class FrontendEncryptor:
    """Encrypts a conformed chunk's configured columns in place (conform calls it after the digest)."""

    def __init__(self, engine: Engine, ops_schema: str, columns: frozenset[str]):
        self.columns = tuple(sorted(columns))
        self.cipher = FieldCipher(keyring_for(engine, ops_schema))
        self.cipher.ring.active("data")   # now, outside the chunk transactions

    @property
    def salt(self) -> str:
        """Mixed into the row digest: another set of encrypted columns is another form of the row."""
        return "enc:" + ",".join(self.columns)

    def __call__(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        # one batch over every configured column of the chunk: one SM4 context, vectorised rounds
        values: list = []
        for c in self.columns:
            col = frame[c].to_numpy(dtype=object)
            values.extend(None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v
                          for v in col)
        out = self.cipher.encrypt_many(values)
        n = len(frame)
        for i, c in enumerate(self.columns):
            frame[c] = pd.Series(out[i * n:(i + 1) * n], index=frame.index, dtype=object)


def reveal_value(engine: Engine, ops_schema: str, value):
    """A front-end value as plaintext: a `v1:` ciphertext decrypted, anything else as it is."""
    if isinstance(value, str) and value.startswith(PREFIX):
        return FieldCipher(keyring_for(engine, ops_schema)).decrypt(value)
    return value


def reveal_row(engine: Engine, ops_schema: str, row: Mapping, columns: frozenset[str] | set[str]) -> dict:
    """A front-end row with its encrypted `columns` decrypted (for hospital staff; needs the key ring).

    Only the configured columns: a plaintext value elsewhere that happens to start with `v1:`
    is left alone. A value of those columns written before the switch was on (plaintext) too."""
    cipher = None
    out = dict(row)
    for k in columns:
        v = out.get(k)
        if isinstance(v, str) and v.startswith(PREFIX):
            cipher = cipher or FieldCipher(keyring_for(engine, ops_schema))
            out[k] = cipher.decrypt(v)
    return out

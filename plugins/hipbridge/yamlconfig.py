"""One YAML file of `config/` as a pydantic model: the shared loader and error of the config modules.

Lives at the top of the package so that `crypto`, `platform` and `display` each read their own file
without importing one another (crypto used to import platform.config for this, a cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    pass


class StrictModel(BaseModel):
    """A configuration section: unknown keys are errors, values are frozen."""
    model_config = ConfigDict(extra="forbid", frozen=True)


def load_model(model: type[M], path: Path) -> M:
    """One YAML file of `config/` as `model`; every problem names the file and the key."""
    try:
        with path.open(encoding="utf-8") as fh:  # from a stream, so PyYAML names the file
            data = yaml.load(fh, Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing configuration file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML syntax error: {exc}") from None
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None

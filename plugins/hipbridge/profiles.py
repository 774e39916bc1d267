"""Deployment profiles (`config/profiles/<name>.yaml`): which platform, institution and key provider.

A profile is what differs between joint testing and production; everything else is shared. The
active profile is `HIPBRIDGE_PROFILE`, else the one recorded by `hipbridge profile use` in
`$HIPBRIDGE_HOME/profile.json`, else `test`. Profiles name credentials by reference (`env:NAME`,
`file:/path`), never by value, so a profile file can be reviewed and versioned.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hipbridge.io.engines import home
from hipbridge.settings import config_dir, hospital_tz, settings

DEFAULT = "test"
STATE_FILE = "profile.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlatformProfile(_Strict):
    base_url: str | None = None     # None: config/platform.yaml's base_url
    app_id: str | None = None


class InstitutionProfile(_Strict):
    code: str = Field(pattern=r"^\d{6,22}$")
    name: str


class WebProfile(_Strict):
    openapi_docs: bool = True


class Profile(_Strict):
    name: str
    label: str
    platform: PlatformProfile
    institution: InstitutionProfile | None = None
    key_provider: Literal["software", "sdf"]
    mapping_hospital: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_\-]+$",
        description="folder of mappings/local/ with this hospital's reviewed code mappings (env HIPBRIDGE_HOSPITAL "
                    "overrides); no default: a profile without it and no env is an error naming both")
    web: WebProfile = WebProfile()
    credentials: dict[str, str] = Field(default_factory=dict)
    checklist: list[str] = Field(default_factory=list)

    @field_validator("credentials")
    @classmethod
    def _references_only(cls, v: dict[str, str]) -> dict[str, str]:
        for role, ref in v.items():
            if not ref.startswith(("env:", "file:")):
                raise ValueError(f"credentials.{role}: expected a reference env:NAME or file:/path, "
                                 f"not a value (a secret never goes in a profile)")
        return v


class ProfileError(ValueError):
    pass


def profiles_dir() -> Path:
    return config_dir() / "profiles"


def available() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def load(name: str) -> Profile:
    path = profiles_dir() / f"{name}.yaml"
    if not path.exists() and name == DEFAULT:
        # A config folder without profiles (an older install, a test's copy): joint testing with
        # no overrides, which is what hipbridge did before profiles existed.
        return Profile(name=DEFAULT, label="联调测试环境", platform=PlatformProfile(), key_provider="software")
    if not path.exists():
        raise ProfileError(f"{path}: no such profile (have {', '.join(available()) or 'none'})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: {exc}") from None
    try:
        return Profile(name=name, **data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ProfileError(f"{path}: {problems}") from None
    except TypeError as exc:
        raise ProfileError(f"{path}: {exc}") from None


def active_name() -> str:
    env = settings().profile
    if env:
        return env
    state = home() / STATE_FILE
    if state.exists():
        return json.loads(state.read_text(encoding="utf-8"))["profile"]
    return DEFAULT


def active() -> Profile:
    return load(active_name())


# ---------------------------------------------------------------- credentials


def resolve_reference(ref: str) -> str | None:
    """The secret a reference names, or None when it is not there."""
    kind, _, where = ref.partition(":")
    if kind == "env":
        return os.environ.get(where) or None
    path = Path(where)
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def reference_problem(ref: str) -> str | None:
    """Why a credential reference is not usable, in Chinese, or None."""
    kind, _, where = ref.partition(":")
    if kind == "env":
        return None if os.environ.get(where) else f"环境变量 {where} 未设置"
    path = Path(where)
    if not path.is_file():
        return f"文件 {where} 不存在"
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return f"文件 {where} 权限为 {mode:04o}，应为 0600"
    return None


# ---------------------------------------------------------------- switching


@dataclass(frozen=True)
class Step:
    label: str
    ok: bool
    detail: str = ""
    manual: bool = False


def switch_checks(profile: Profile) -> list[Step]:
    """What must hold before `profile` becomes active (automatic checks; manual items follow)."""
    steps = []
    for role, ref in profile.credentials.items():
        problem = reference_problem(ref)
        steps.append(Step(f"凭据 {role} ({ref})", problem is None, problem or "可用"))
    if profile.key_provider == "sdf":
        lib = settings().sdf_library
        ok = bool(lib) and Path(lib).is_file()
        steps.append(Step("密钥由服务器密码机 (GM/T 0018 SDF) 提供", ok,
                          f"设备库 {lib}" if ok else "未配置 HIPBRIDGE_SDF_LIBRARY 或文件不存在；开发密钥不可用于此环境"))
    if profile.institution is not None:
        steps.append(Step("机构代码", True, f"{profile.institution.code} {profile.institution.name}"))
    url = profile.platform.base_url or "(config/platform.yaml)"
    steps.append(Step("平台地址", url.startswith("https://") or profile.key_provider == "software", url))
    return steps


def use(name: str, confirmed_by: str | None = None) -> tuple[Profile, list[Step], bool]:
    """Switch to profile `name` when every automatic check passes and the checklist is confirmed.

    Returns (profile, steps, switched). The switch is recorded with who confirmed it and when.
    """
    profile = load(name)
    steps = switch_checks(profile)
    manual = [Step(item, bool(confirmed_by), f"确认人 {confirmed_by}" if confirmed_by else "待人工确认", manual=True)
              for item in profile.checklist]
    steps += manual
    ok = all(s.ok for s in steps)
    if ok:
        record = {"profile": name, "switched_at": datetime.now(hospital_tz()).isoformat(timespec="seconds"),
                  "confirmed_by": confirmed_by, "checklist": profile.checklist}
        path = home() / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(path)
    return profile, steps, ok

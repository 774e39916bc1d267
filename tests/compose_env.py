"""What docker-compose.yml gives a service, read from the files themselves, and its local equivalent.

A container's environment is the image's `ENV` (Dockerfile), then the service's `env_file`, then
its `environment` (Compose's order of precedence). The local stack of tests/test_distributed.py
runs the same commands with that environment, changing only what differs between a container and
a process on this machine: host names become 127.0.0.1 with this machine's ports and fresh,
uniquely named databases, fixed ports become free ones, and the image's paths become the
worktree's. `localize` refuses to change a variable the compose file does not set, so the test
cannot quietly run a configuration of its own.
"""

from __future__ import annotations

import re
import shlex
import socket
from pathlib import Path

import yaml
from hipbridge.deploy import read_env_file
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_APP = "/opt/hipbridge"    # the repository inside the image
IMAGE_AIRFLOW = "/opt/airflow"  # AIRFLOW_HOME inside the image


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def dockerfile_env() -> dict[str, str]:
    """`ENV k=v …` lines of the Dockerfile (with backslash continuations)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                k, v = item.split("=", 1)
                env[k] = v
    return env


def service_env(service: str, env_file: Path) -> dict[str, str]:
    """The environment of one compose service, with `env_file` replaced by the file given."""
    svc = compose()["services"][service]
    env = dockerfile_env() if svc.get("build") else {}
    if svc.get("env_file"):
        env.update(read_env_file(env_file))
    env.update({k: str(v) for k, v in (svc.get("environment") or {}).items()})
    return env


def service_command(service: str) -> list[str]:
    cmd = compose()["services"][service]["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def healthcheck(service: str) -> list[str]:
    """The healthcheck as an argv (CMD) or a shell line (CMD-SHELL), `$$` unescaped as Compose does."""
    test = compose()["services"][service]["healthcheck"]["test"]
    kind, rest = test[0], [t.replace("$$", "$") for t in test[1:]]
    return ["sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def localize(env: dict[str, str], changes: dict[str, str], root: Path, airflow_home: Path) -> dict[str, str]:
    """Apply `changes` (each must be a variable compose sets) and map the image's paths to local ones."""
    unknown = sorted(set(changes) - set(env))
    if unknown:
        raise KeyError(f"not set by docker-compose.yml/Dockerfile/env file, refusing to add: {unknown}")
    out = {**env, **changes}
    for k, v in out.items():
        out[k] = v.replace(IMAGE_APP, str(root)).replace(IMAGE_AIRFLOW, str(airflow_home))
    return out


def relocate_url(url: str, *, host: str, port: int | None, database: str | None = None,
                 username: str | None = None, password: str | None = None) -> str:
    """The same URL (driver, query) pointed at another server / database."""
    prefix = ""
    if url.startswith("db+"):  # Celery's result backend: db+<SQLAlchemy URL>
        prefix, url = "db+", url[3:]
    u = make_url(url)
    u = u.set(host=host, port=port, **{k: v for k, v in (("database", database), ("username", username),
                                                         ("password", password)) if v is not None})
    return prefix + u.render_as_string(hide_password=False)

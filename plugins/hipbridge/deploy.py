"""The one env file every service of docker-compose.yml reads: Airflow's keys, passwords, site settings.

Without configured keys Airflow generates a Fernet key, a JWT secret and a session secret per
AIRFLOW_HOME, which in containers means one set per container: tasks fail with "Invalid auth
token" (the scheduler signs with one secret, the api-server checks with another) and Connections
cannot be decrypted once a container is recreated. `hipbridge deploy env` writes them once, with
the database passwords and the URLs built from them, into `deploy/hipbridge.env`; every service
of the compose file reads that file, so all containers agree and the values survive a recreate.

Docker Compose reads an env file literally (no `${VAR}` inside it), so a password appears both
as the database container's variable and inside the URL that hipbridge and Airflow use; this
module writes both from one generated value. `deploy/hipbridge.env.example` is this module's
output with placeholders (`hipbridge deploy env --example`); a test keeps the two identical.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hipbridge.io.engines import PROJECT_ROOT
from hipbridge.platform.config import sharing_config
from hipbridge.settings import settings
from hipbridge.spec import load_specs

ENV_FILE = PROJECT_ROOT / "deploy" / "hipbridge.env"
EXAMPLE_FILE = PROJECT_ROOT / "deploy" / "hipbridge.env.example"
PLACEHOLDER = "change-me"

# Service names of docker-compose.yml that the URLs point at.
AIRFLOW_DB_HOST = "airflow-db"
FRONTEND_DB_HOST = "frontend-db"


@dataclass(frozen=True)
class Secrets:
    fernet_key: str
    jwt_secret: str
    api_secret_key: str
    airflow_db_password: str
    frontend_password: str
    frontend_root_password: str
    admin_password: str

    @classmethod
    def generate(cls) -> Secrets:
        token = lambda: secrets.token_urlsafe(24)
        return cls(fernet_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
                   jwt_secret=secrets.token_urlsafe(48), api_secret_key=secrets.token_urlsafe(48),
                   airflow_db_password=token(), frontend_password=token(), frontend_root_password=token(),
                   admin_password=token())

    @classmethod
    def placeholders(cls) -> Secrets:
        return cls(**{name: PLACEHOLDER for name in cls.__dataclass_fields__})


def source_connections(specs_dir: str | Path | None = None) -> list[str]:
    """Connection ids the table specs name (`source.connection`), each an env variable in the file."""
    specs = load_specs(specs_dir)
    return sorted({s.source.connection for s in specs.specs.values()})


def share_schema() -> str:
    return sharing_config().store.schema_name


def render_env(s: Secrets, *, connections: list[str], share: str, frontend_db: str = "frontend",
               frontend_user: str = "hipbridge", airflow_db: str = "airflow", airflow_user: str = "airflow",
               admin_user: str = "admin") -> str:
    meta_url = f"{airflow_user}:{s.airflow_db_password}@{AIRFLOW_DB_HOST}:5432/{airflow_db}"
    frontend_url = (f"mysql+pymysql://{frontend_user}:{s.frontend_password}@{FRONTEND_DB_HOST}:3306/"
                    f"{frontend_db}?charset=utf8mb4&local_infile=1")
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        (("Airflow's keys: the same in every container, or tasks fail with \"Invalid auth token\" and\n"
          "# Connections cannot be decrypted. Never change the Fernet key of a running site (it encrypts\n"
          "# the Connections stored in airflow-db); back this file up with the database."), [
            ("AIRFLOW__CORE__FERNET_KEY", s.fernet_key),
            ("AIRFLOW__API_AUTH__JWT_SECRET", s.jwt_secret),
            ("AIRFLOW__API__SECRET_KEY", s.api_secret_key),
        ]),
        ("Airflow UI / REST API login (simple auth manager; the password file is written by airflow-init)", [
            ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", f"{admin_user}:admin"),
            ("HIPBRIDGE_AIRFLOW_ADMIN_PASSWORD", s.admin_password),
        ]),
        (f"Airflow's metadata database (service {AIRFLOW_DB_HOST})", [
            ("POSTGRES_USER", airflow_user),
            ("POSTGRES_PASSWORD", s.airflow_db_password),
            ("POSTGRES_DB", airflow_db),
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"postgresql+psycopg2://{meta_url}"),
            ("AIRFLOW__CELERY__RESULT_BACKEND", f"db+postgresql+psycopg2://{meta_url}"),
        ]),
        ((f"The front-end database (service {FRONTEND_DB_HOST}): the province's tables, the operations\n"
          "# schema (named after the front-end database: <database>_hipbridge_ops) and the shared store;\n"
          "# deploy/mariadb/ grants the user exactly these databases."), [
            ("MARIADB_ROOT_PASSWORD", s.frontend_root_password),
            ("MARIADB_DATABASE", frontend_db),
            ("MARIADB_USER", frontend_user),
            ("MARIADB_PASSWORD", s.frontend_password),
            ("HIPBRIDGE_FRONTEND_URL", frontend_url),
            ("HIPBRIDGE_SHARE_SCHEMA", share),
        ]),
        (("The hospital: institution code (empty: the profile's, `hipbridge profile use`) and one SQLAlchemy URL per\n"
          "# source connection the specs name, e.g. oracle+oracledb://user:pw@10.0.0.5:1521/?service_name=HIS\n"
          "# (empty: the Airflow Connection hipbridge_<id>, Admin → Connections)"), [
            ("HIPBRIDGE_ORG_CODE", ""),
            *[(f"HIPBRIDGE_CONN_{c.upper()}", "") for c in connections],
        ]),
    ]
    out = ["# hipbridge on a front-end machine: secrets and site settings that every service of",
           "# docker-compose.yml reads (env_file). Written by `hipbridge deploy env`; keep it private (mode 0600).",
           ""]
    for comment, entries in sections:
        out.append(f"# {comment}")
        out += [f"{k}={v}" for k, v in entries]
        out.append("")
    return "\n".join(out)


def write_env(path: Path = ENV_FILE, *, force: bool = False, example: bool = False,
              secrets_factory: Callable[[], Secrets] | None = None) -> Path:
    """Write the env file (fresh secrets, mode 0600); refuses to replace an existing one unless forced."""
    path = Path(path)
    if path.exists() and not force and not example:
        raise FileExistsError(f"{path} exists: its keys are in use (the Fernet key decrypts the stored "
                              f"Connections); pass --force only for a new site")
    made = Secrets.placeholders() if example else (secrets_factory or Secrets.generate)()
    text = render_env(made, connections=source_connections(), share=share_schema())
    path.parent.mkdir(parents=True, exist_ok=True)
    if example:
        path.write_text(text, encoding="utf-8")
        return path
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
    return path


def read_env_file(path: str | Path) -> dict[str, str]:
    """Parse an env file the way Docker Compose does: KEY=VALUE lines, `#` comments, values literal."""
    values: dict[str, str] = {}
    for lineno, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"{path}:{lineno}: expected KEY=VALUE (got {raw!r})")
        key, value = line.split("=", 1)
        values[key.strip()] = value
    return values


def write_airflow_passwords(env: dict[str, str] | None = None) -> Path:
    """airflow-init: the simple auth manager's password file from HIPBRIDGE_AIRFLOW_ADMIN_PASSWORD.

    Airflow would otherwise generate a password at the api-server's first start and print it to
    the log, a new one for every recreated container.
    """
    if env is None:   # the process environment, through the settings (the password stays a SecretStr there)
        secret = settings().airflow_admin_password
        password, env = (secret.get_secret_value() if secret else ""), dict(os.environ)
    else:
        password = env.get("HIPBRIDGE_AIRFLOW_ADMIN_PASSWORD") or ""
    if not password or password == PLACEHOLDER:
        raise ValueError("HIPBRIDGE_AIRFLOW_ADMIN_PASSWORD is not set: run `hipbridge deploy env` "
                         "and start the stack with that file")
    target = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    if not target:
        raise ValueError("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE is not set")
    users = [u.split(":")[0] for u in env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin").split(",")
             if u.strip()]
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({u.strip(): password for u in users}, fh)
    return path

"""Shared fixtures: real MariaDB and PostgreSQL databases on this machine, created per test and dropped after.

Nothing here mocks our own database. `.ci/run` starts the servers when they are not running.
"""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "table_specs"
MARIADB_ADMIN = os.environ.get("HIPBRIDGE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")
POSTGRES_ADMIN = os.environ.get("HIPBRIDGE_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
_counter = itertools.count()


def _unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"


@pytest.fixture
def hb_home(tmp_path, monkeypatch) -> Path:
    """An isolated hipbridge home: demo sources, SQLite front-end and ops files live here."""
    home = tmp_path / "hbhome"
    home.mkdir()
    monkeypatch.setenv("HIPBRIDGE_HOME", str(home))
    monkeypatch.delenv("HIPBRIDGE_FRONTEND_URL", raising=False)
    from hipbridge.io.engines import dispose_all

    dispose_all()
    yield home
    dispose_all()


def _mariadb_database(name: str):
    admin = create_engine(MARIADB_ADMIN)
    with admin.begin() as c:
        c.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    return admin


@pytest.fixture
def mariadb_url():
    """A fresh MariaDB database (and a matching fresh ops schema name) for one test."""
    name = _unique("hbt")
    admin = _mariadb_database(name)
    ops = f"{name}_ops"
    os.environ["HIPBRIDGE_OPS_SCHEMA"] = ops
    yield f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4&local_infile=1"
    os.environ.pop("HIPBRIDGE_OPS_SCHEMA", None)
    from hipbridge.io.engines import dispose_all

    dispose_all()
    with admin.begin() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        c.execute(text(f"DROP DATABASE IF EXISTS `{ops}`"))
    admin.dispose()


@pytest.fixture
def postgres_url():
    name = _unique("hbt")
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    from hipbridge.io.engines import dispose_all

    dispose_all()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()

"""Start-up of the command line (issue 14): a command loads only what it uses.

Every `hipbridge.cli` module is imported to build the parser, so heavy stacks (FastAPI, pandas,
GX, Airflow, sqlglot, openpyxl) must wait for the command that needs them. Checked in fresh
processes, by the modules loaded, never by wall-clock time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEVER_TO_PARSE = ("fastapi", "starlette", "pandas", "numpy", "pyarrow", "sqlglot", "airflow", "great_expectations",
                  "openpyxl", "jinja2", "cryptography", "gmssl")
NEVER_BEFORE_FIRST_SQL = ("fastapi", "starlette", "sqlglot", "airflow", "great_expectations", "openpyxl",
                          "jinja2", "matplotlib", "uvicorn")

FIRST_SQL_PROBE = """
import json, os, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

def first_sql(*_args, **_kw):
    print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})), flush=True)
    os._exit(0)

event.listen(Engine, "before_cursor_execute", first_sql)
from hipbridge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _python(code: str, *args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "HIPBRIDGE_HOME": str(home)}
    env.pop("HIPBRIDGE_FRONTEND_URL", None)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          check=False, cwd=ROOT)


def test_building_the_parser_loads_no_heavy_stack(tmp_path):
    out = _python("import json, sys\nfrom hipbridge.cli import build_parser\nparser = build_parser()\n"
                  "parser.parse_args(['door-token', 'list'])\n"
                  "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))", home=tmp_path)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "hipbridge" in loaded
    assert not loaded & set(NEVER_TO_PARSE), sorted(loaded & set(NEVER_TO_PARSE))


def test_door_token_roles_are_the_guards_roles(tmp_path):
    """The parser's choices come from the light module; the guard uses the very same mapping."""
    from hipbridge.sharing.callers import ROLES as guard_roles
    from hipbridge.sharing.roles import ROLES

    assert guard_roles is ROLES
    out = _python("from hipbridge.cli import main\nraise SystemExit(main(['door-token', 'create', 'x', "
                  "'--role', 'nobody']))", home=tmp_path)
    assert out.returncode == 2 and "invalid choice: 'nobody'" in out.stderr
    for role in ROLES:
        assert role in out.stderr


def test_a_table_run_reaches_its_first_sql_without_web_report_or_airflow_stacks(tmp_path):
    out = _python(FIRST_SQL_PROBE, "run", "op_visit", "--specs", str(ROOT / "table_specs"), "--db",
                  f"sqlite:///{tmp_path / 'frontend.db'}", home=tmp_path)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert {"hipbridge", "sqlalchemy"} <= loaded       # the probe did stop at a statement of the run
    assert not loaded & set(NEVER_BEFORE_FIRST_SQL), sorted(loaded & set(NEVER_BEFORE_FIRST_SQL))

"""The sharing DAG file parses cheaply: three DAGs, no hipbridge / pandas import at parse time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sharing_dags_parse_without_heavy_imports(tmp_path):
    code = (
        "import sys, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('d', {str(ROOT / 'dags' / 'hipbridge_sharing.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(sorted(d.dag_id for d in (m.verify_dag, m.purge_dag, m.outbox_dag)))\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('hipbridge', 'pandas', 'fastapi', 'gmssl')))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    dags, heavy = out.stdout.strip().splitlines()[-2:]
    assert dags == "['hipbridge_platform_outbox', 'hipbridge_push_verify', 'hipbridge_share_purge']"
    assert heavy == "[]"
    text = (ROOT / "dags" / "hipbridge_sharing.py").read_text(encoding="utf-8").lower()
    assert "airflow" in text and "dag" in text

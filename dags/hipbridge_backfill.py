"""Airflow DAG `hipbridge_backfill`: a table's history in date windows, one mapped task per window.

Only YAML and pydantic work happens here at parse time (see hipbridge.airflow.factory).
"""

from hipbridge.airflow.factory import BACKFILL_DAG_ID, build_backfill_dag

_dag = build_backfill_dag()
if _dag is not None:
    globals()[BACKFILL_DAG_ID] = _dag

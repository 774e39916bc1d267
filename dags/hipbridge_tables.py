"""Airflow DAGs for every valid table spec in table_specs/ (one DAG per table).

Only YAML and pydantic work happens here at parse time. Invalid specs are skipped in this file
and reported as import errors by hipbridge_spec_errors.py, so one broken spec never hides the
DAGs of the others.
"""

from hipbridge.airflow.factory import build_all

globals().update(build_all())

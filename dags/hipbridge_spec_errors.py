"""Airflow import errors for broken table specs (file, line, key, value, expectation).

This loader builds no DAG: it raises when any spec in table_specs/ is invalid, so the Airflow
UI's import errors list every problem while hipbridge_tables.py keeps the valid DAGs alive.
"""

from hipbridge.airflow.factory import raise_spec_errors

raise_spec_errors()

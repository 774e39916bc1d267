"""Airflow DAG for the province's control tables (数据量记录汇总, 数据对账表), daily after the uploads."""

from hipbridge.airflow.factory import build_reconciliation_dag

dag = build_reconciliation_dag()

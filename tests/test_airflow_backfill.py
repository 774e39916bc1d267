"""Airflow's own Backfill on a table DAG: each run's data interval (hospital days) becomes a window run.

The end-to-end proof, with a real scheduler, Celery workers and `POST /api/v2/backfills`, is in
tests/test_distributed.py; these pin the rules the plan task applies and what the DAG says about them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hipbridge.airflow.factory import (
    BackfillRefused,
    backfill_window,
    build_all,
    is_backfill,
    scheduled_high_watermark,
)
from hipbridge.spec import load_specs

from tests.minihospital import MiniHospital

TZ = "Asia/Shanghai"


def test_a_backfill_runs_data_interval_is_its_window_in_hospital_time():
    # the run of logical date 2026-12-01 of a daily DAG: 2026-11-30 16:00 UTC … 2026-12-01 16:00 UTC
    start, end = datetime(2026, 11, 30, 16, tzinfo=UTC), datetime(2026, 12, 1, 16, tzinfo=UTC)
    assert backfill_window({"run": {"mode": "incremental"}}, start, end, TZ) == (datetime(2026, 12, 1),
                                                                                  datetime(2026, 12, 2))
    assert backfill_window({}, start, end, TZ) == (datetime(2026, 12, 1), datetime(2026, 12, 2))
    assert backfill_window({"run": {"mode": "window"}}, start, end, TZ) == (datetime(2026, 12, 1),
                                                                             datetime(2026, 12, 2))


@pytest.mark.parametrize("params", [{"run": {"mode": "full"}},
                                    {"run": {"mode": "window", "first_day": "2026-11-01", "days": 3}},
                                    {"run": {"mode": "window", "days": 3}}])
def test_a_backfill_asking_for_something_else_is_refused_with_the_reason(params):
    start, end = datetime(2026, 11, 30, 16, tzinfo=UTC), datetime(2026, 12, 1, 16, tzinfo=UTC)
    with pytest.raises(BackfillRefused, match="Airflow 回填") as err:
        backfill_window(params, start, end, TZ)
    assert "hipbridge_backfill" in str(err.value) and "mode=" in str(err.value)


def test_a_backfill_without_a_data_interval_is_refused():
    at = datetime(2026, 12, 1, 16, tzinfo=UTC)
    for start, end in ((None, None), (at, at)):
        with pytest.raises(BackfillRefused, match="没有数据区间"):
            backfill_window({}, start, end, TZ)


def test_run_types():
    from airflow.utils.types import DagRunType

    assert is_backfill(DagRunType.BACKFILL_JOB) and is_backfill("backfill")
    assert not any(is_backfill(t) for t in (DagRunType.MANUAL, DagRunType.SCHEDULED, DagRunType.ASSET_TRIGGERED, None))


def test_a_daily_dag_runs_data_interval_is_one_hospital_day(tmp_path):
    from airflow.timetables.base import TimeRestriction

    mini = MiniHospital(tmp_path / "mini")
    dag = build_all(load_specs(mini.specs))["hipbridge_visit"]
    # what Airflow's Backfill from 2026-12-01 to 2026-12-02 (Shanghai) makes: the runs of those two days
    first = datetime(2026, 11, 30, 16, tzinfo=UTC)
    restriction = TimeRestriction(first, first + timedelta(days=1), catchup=True)
    runs, last = [], None
    while (info := dag.timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)):
        runs.append(info)
        last = info.data_interval
    assert [backfill_window({}, r.data_interval.start, r.data_interval.end, TZ) for r in runs] == [
        (datetime(2026, 12, 1), datetime(2026, 12, 2)), (datetime(2026, 12, 2), datetime(2026, 12, 3))]
    # a scheduled run fires at the end of its day and reads up to that local midnight
    assert runs[0].run_after == runs[0].data_interval.end
    assert scheduled_high_watermark("scheduled", runs[0].data_interval.end, TZ) == datetime(2026, 12, 2)


def test_irregular_crons_cover_the_gap_since_their_previous_fire():
    from airflow.timetables.interval import CronDataIntervalTimetable

    weekdays = CronDataIntervalTimetable("0 2 * * 1-5", timezone=TZ)
    monday = datetime(2026, 12, 6, 18, tzinfo=UTC)  # Monday 2026-12-07 02:00 in Shanghai
    friday = weekdays.infer_manual_data_interval(run_after=monday)  # the run that fires then: Friday's
    assert (friday.start, friday.end) == (monday - timedelta(days=3), monday)  # the weekend included


def test_table_dags_start_paused_and_their_docs_say_how_to_unpause_and_backfill(tmp_path):
    mini = MiniHospital(tmp_path / "mini")
    dag = build_all(load_specs(mini.specs))["hipbridge_visit"]
    assert dag.is_paused_upon_creation is True
    assert "暂停" in dag.doc_md and "airflow dags unpause hipbridge_visit" in dag.doc_md
    assert "Airflow 回填（Backfill）" in dag.doc_md and "不移动水位" in dag.doc_md

"""The pipeline steps' typed results (`pipeline/results.py`) and their XCom form: JSON, with the keys the
Airflow tasks returned as plain dicts before, read back the same way (a DAG run started by an earlier
version continues)."""

from __future__ import annotations

import json

from hipbridge.pipeline.publish import PublishCounts
from hipbridge.pipeline.results import (
    BackfillSummary,
    GateResult,
    PublishResult,
    TransferResult,
    WindowResult,
)


def _through_xcom(value: dict) -> dict:
    return json.loads(json.dumps(value))   # what Airflow's XCom backend does to a task's return value


def test_transfer_result_leaves_the_mapping_counts_out_of_xcom():
    moved = TransferResult(extracted=5, staged=4, quarantined=1, duplicates=0, skipped=2,
                           mapping={"sex": {"mapped": 4}})
    x = _through_xcom(moved.to_xcom())
    assert x == {"extracted": 5, "staged": 4, "quarantined": 1, "duplicates": 0, "skipped": 2}
    assert TransferResult.from_xcom(x) == TransferResult(5, 4, 1, 0, 2)


def test_gate_result_round_trips_and_ignores_keys_a_later_version_adds():
    blocked = GateResult(blocked=True, message="隔离行占比 60.00% 超过阈值 50%（3/5）", results=7)
    x = _through_xcom(blocked.to_xcom())
    assert x == {"blocked": True, "message": "隔离行占比 60.00% 超过阈值 50%（3/5）", "results": 7}
    assert GateResult.from_xcom({**x, "added_later": 1}) == blocked


def test_publish_result_carries_publish_counts_unchanged_rows():
    counts = PublishCounts(staged=10, latest=8, inserted=3, updated=2, voided=1, older=1, unsent=0)
    x = _through_xcom(PublishResult.of(counts).to_xcom())
    assert x == {"inserted": 3, "updated": 2, "voided": 1, "unchanged": 1, "staged": 10}
    assert PublishResult.from_xcom(x).unchanged == counts.unchanged


def test_backfill_summary_adds_the_windows_read_back_from_xcom():
    windows = [WindowResult("2026-11-01…2026-11-02", extracted=5, published=4, quarantined=1),
               WindowResult("2026-11-03…2026-11-03", extracted=2, published=2, quarantined=0)]
    back = [WindowResult.from_xcom(_through_xcom(w.to_xcom())) for w in windows]
    assert back == windows
    assert BackfillSummary.of(back).to_xcom() == {"windows": 2, "extracted": 7, "published": 6, "quarantined": 1}

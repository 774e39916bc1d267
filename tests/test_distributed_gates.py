"""Quality gates of two batches saving their results at the same moment (two Celery workers) on MariaDB.

tests/test_distributed.py found it: the gates of two tables finishing together deadlocked (MariaDB
1213) in `save_run`, whose "replace this run's results" DELETE matched nothing but took an InnoDB
gap lock; each gate's INSERT then waited for the other's gap, and the gate task (never retried: a
fatal result must not be retried into a pass) failed its DAG run.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from hipbridge.quality.engine import RuleResult
from hipbridge.quality.store import load_results, save_run
from sqlalchemy import create_engine, text


def _result(table: str, n: int = 0) -> RuleResult:
    return RuleResult(rule_id=f"C01.{table}.X{n}", template="C01", table=table, target="T", columns=["X"],
                      dimension="完整性", severity="error", status="Passed", violated=0, denominator=10, pct=0.0,
                      threshold=0.0, message="必填", advice="")


def test_a_gate_saving_while_another_is_mid_save_does_not_deadlock(mariadb_url):
    engine = create_engine(mariadb_url)
    schema = engine.url.database + "_ops"
    now = datetime(2026, 12, 1, 8)
    for run_id in ("a-000", "z-999"):  # neighbours: the runs below fall into the gap between them
        save_run(engine, schema, run_id, "gate", now, now, [_result("t0")], {"overall": 100.0}, ["t0"])
    errors: list[BaseException] = []
    # another gate, mid-save in the old way: "replace m-100's results" matched nothing and holds the gap
    other = engine.connect()
    tx = other.begin()
    other.execute(text("SET SESSION innodb_lock_wait_timeout = 20"))
    other.execute(text(f"DELETE FROM `{schema}`.quality_run WHERE run_id = 'm-100'"))

    def gate() -> None:
        try:
            save_run(engine, schema, "m-200", "gate", now, now, [_result("t1", n) for n in range(3)],
                     {"overall": 100.0}, ["t1"])
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    worker = threading.Thread(target=gate)
    worker.start()
    time.sleep(1.5)  # the gate is now waiting for the gap (or, with the old DELETE, holding it as well)
    try:
        other.execute(text(f"INSERT INTO `{schema}`.quality_run (run_id, kind, started_at) "
                           f"VALUES ('m-100', 'gate', '2026-12-01 08:00:00')"))
        tx.commit()
    except Exception as exc:  # noqa: BLE001 - the deadlock victim may be this side
        errors.append(exc)
        tx.rollback()
    finally:
        other.close()
    worker.join(60)
    assert not errors, errors[0]
    assert len(load_results(engine, schema, "m-200")) == 3
    # a rerun of the same batch still replaces its results
    save_run(engine, schema, "m-200", "gate", now, now, [_result("t1")], {"overall": 50.0}, ["t1"])
    assert len(load_results(engine, schema, "m-200")) == 1
    engine.dispose()

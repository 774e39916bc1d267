"""The peer a data engineer would pick instead of hipbridge: dlt's `sql_database` source, run in its own venv.

    <dlt-venv>/bin/python bench/peers/dlt_run.py SOURCE_URL DEST_URL PIPELINES_DIR DATASET

Reads `bench_visit` with dlt's fastest backend (connectorx → Arrow), incrementally on its change time
(`update_time`), and merges on the primary key (`visit_no`) into MariaDB through dlt's `sqlalchemy`
destination. Run it again and dlt's own state makes it an incremental run. Prints one JSON line:
rows extracted and seconds, and the peak RSS of this process. Never imported by hipbridge.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import dlt
from dlt.sources.sql_database import sql_table


def _cpu() -> float:
    """User + system CPU of this process and of any worker processes it waited for."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def main(source_url: str, dest_url: str, pipelines_dir: str, dataset: str) -> int:
    started = time.perf_counter()
    cpu = _cpu()
    table = sql_table(credentials=source_url, table="bench_visit", backend="connectorx", chunk_size=50_000,
                      incremental=dlt.sources.incremental("update_time"), write_disposition="merge",
                      primary_key="visit_no", reflection_level="full_with_precision")
    pipeline = dlt.pipeline(pipeline_name="hb_bench_dlt", destination=dlt.destinations.sqlalchemy(dest_url),
                            dataset_name=dataset, pipelines_dir=pipelines_dir)
    info = pipeline.run(table)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    rows = sum(m.get("bench_visit", 0) for m in (pipeline.last_trace.last_normalize_info.row_counts,))
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rows": rows, "loads": len(info.loads_ids),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))

"""The orders the 互认 reminder logged as NO_MAPPING, as gaps of the mapping gap report.

The reminder sits above code mapping (its catalog maps local orders through mapping/), so it adds its
gaps to mapping's report rather than mapping reading the reminder's tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hipbridge.mapping.gaps import RECOGNITION, GapEntry, GapReport, _dictionary_names
from hipbridge.mapping.similarity import NameMatcher

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from hipbridge.mapping.catalog import Catalog


def recognition_gaps(catalog: Catalog, frontend: Engine, ops_schema: str,
                     with_candidates: bool = True) -> list[GapEntry]:
    """Order codes the 互认 reminder logged as NO_MAPPING (ops.recognition_gap) as gaps of the local sets
    config/recognition.yaml `local_sets` names (lis_panel, pacs_item): frequency = times ordered, listed,
    exported and imported like any other code set. A code mapped since (an applying row) or decided
    `ignored` is no gap; a table that does not exist yet (no reminder ever ran) gives none."""
    from sqlalchemy import and_, inspect, select

    from hipbridge.io.ops import ops_for
    from hipbridge.recognition import state as _recognition_state  # noqa: F401 - registers recognition_gap
    from hipbridge.recognition.catalog import KINDS, load_recognition_settings

    if not inspect(frontend).has_table("recognition_gap", schema=ops_schema):
        return []
    g = ops_for(ops_schema).table("recognition_gap")
    with frontend.connect() as conn:
        rows = conn.execute(select(g.c.kind, g.c.local_code, g.c.times).where(
            and_(g.c.reason == "NO_MAPPING", g.c.kind.in_(KINDS)))).all()
    local_sets = load_recognition_settings().local_sets
    label = {"lab": "互认提醒 检验医嘱", "exam": "互认提醒 检查医嘱"}
    freq: dict[tuple[str, str], int] = {}
    for kind, code, times in rows:
        freq[(kind, code)] = freq.get((kind, code), 0) + int(times or 0)
    entries: list[GapEntry] = []
    names_cache: dict = {}
    for (kind, code), n in sorted(freq.items()):
        set_id = local_sets.get(kind)
        ls = catalog.sets.get(set_id or "")
        if ls is None:
            continue
        if code in ls.lookup(catalog.apply_statuses):
            continue
        status = next((r.status for r in ls.rows if r.local_code == code), "missing")
        if status == "ignored":
            continue
        name = _dictionary_names(catalog, set_id, names_cache).get(code, "")
        domain = catalog.domains.get(ls.domain)
        cands = NameMatcher.for_domain(domain).candidates(name, code) if (with_candidates and domain) else []
        entries.append(GapEntry(RECOGNITION, kind, label[kind], set_id, ls.domain, code, name, n, status,
                                "no_reminder", cands))
    entries.sort(key=lambda e: (-e.frequency, e.local_code))
    return entries


def add_recognition_gaps(report: GapReport, catalog: Catalog, frontend: Engine | None, ops_schema: str | None,
                         table: str | None = None, with_candidates: bool = True) -> GapReport:
    """Extend `report` (all tables, or `table` == "recognition") with the reminder's unmapped orders read
    from the front-end's operations schema; a failure to read them is a problem of the report, not an error."""
    if frontend is None or not ops_schema or table not in (None, RECOGNITION):
        return report
    try:
        report.entries.extend(recognition_gaps(catalog, frontend, ops_schema, with_candidates))
    except Exception as exc:  # noqa: BLE001 - the code-set gaps stand without the reminder's
        report.problems.append(f"{RECOGNITION}: 互认提醒未映射医嘱读取失败: {str(exc).splitlines()[0]}")
    return report

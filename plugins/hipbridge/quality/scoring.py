"""Scores per rule, table, dimension and overall, with the weights and grades of `_scoring.yaml`.

Rule rate = 100 × (1 − violated / denominator). Not Applicable and Error results do not count
(absent data never inflate a score); fatal rules are 上传失败, weighted 0 by default.
`method: record` weights by records checked (Σ合格 / Σ检查), `method: rule` averages rule rates.
"""

from __future__ import annotations

from typing import Any

from .engine import FAILED, PASSED, RuleResult


def grade_of(score: float | None, scoring: dict[str, Any]) -> str | None:
    if score is None:
        return None
    for g in sorted(scoring.get("grades", []), key=lambda g: -float(g["min"])):
        if score >= float(g["min"]):
            return str(g["grade"])
    return None


def _rate(items: list[tuple[float, int, int]], method: str) -> tuple[float | None, int, int]:
    """items: (weight, denominator, violated) → (rate %, checked, violated)."""
    items = [(w, d, v) for w, d, v in items if d > 0]
    checked = sum(d for _, d, _ in items)
    violated = sum(v for _, _, v in items)
    weighted = [(w, d, v) for w, d, v in items if w > 0]
    if not weighted:
        return None, checked, violated
    if method == "rule":
        rate = sum(w * 100.0 * (1 - v / d) for w, d, v in weighted) / sum(w for w, _, _ in weighted)
    else:
        rate = 100.0 * sum(w * (d - v) for w, d, v in weighted) / sum(w * d for w, d, _ in weighted)
    return round(rate, 4), checked, violated


def _combine(dim_rates: dict[str, float | None], scoring: dict[str, Any]) -> float | None:
    dims = scoring.get("dimensions", {})
    parts = [(float(dims[d]["weight"]), r) for d, r in dim_rates.items() if r is not None and d in dims]
    total = sum(w for w, _ in parts)
    if not total:
        return None
    return round(sum(w * r for w, r in parts) / total, 2)


def score(results: list[RuleResult], scoring: dict[str, Any]) -> dict[str, Any]:
    method = scoring.get("method", "record")
    sev_w = {k: float(v) for k, v in (scoring.get("severity_weight") or {}).items()}
    dims_cfg = scoring.get("dimensions", {})
    scored = [r for r in results if r.status in (PASSED, FAILED)]

    def items(rs: list[RuleResult]) -> list[tuple[float, int, int]]:
        return [(sev_w.get(r.severity, 1.0), int(r.denominator or 0), int(r.violated or 0)) for r in rs]

    rules = {r.rule_id: round(100.0 * (1 - (r.violated or 0) / r.denominator), 4) for r in scored if r.denominator}
    dimensions: dict[str, Any] = {}
    for dim, meta in dims_cfg.items():
        rate, checked, violated = _rate(items([r for r in scored if r.dimension == dim]), method)
        target = float(meta.get("target", 0))
        dimensions[dim] = {
            "rate": rate, "checked": checked, "violated": violated, "weight": float(meta["weight"]),
            "target": target, "met": None if rate is None else rate >= target,
            "score": None if rate is None else round(float(meta["weight"]) * rate / 100.0, 2),
            "rules": sum(1 for r in results if r.dimension == dim),
            "failed": sum(1 for r in results if r.dimension == dim and r.status == FAILED),
        }
    overall = _combine({d: v["rate"] for d, v in dimensions.items()}, scoring)
    tables: dict[str, Any] = {}
    for table in sorted({r.table for r in results}):
        trs = [r for r in scored if r.table == table]
        dim_rates = {dim: _rate(items([r for r in trs if r.dimension == dim]), method)[0] for dim in dims_cfg}
        s = _combine(dim_rates, scoring)
        all_t = [r for r in results if r.table == table]
        tables[table] = {"score": s, "grade": grade_of(s, scoring), "dimensions": dim_rates,
                         "target": next((r.target for r in all_t), table),
                         "rules": len(all_t), "failed": sum(1 for r in all_t if r.status == FAILED),
                         "not_applicable": sum(1 for r in all_t if r.status == "Not Applicable"),
                         "errors": sum(1 for r in all_t if r.status == "Error")}
    return {"method": method, "overall": overall, "grade": grade_of(overall, scoring), "dimensions": dimensions,
            "tables": tables, "rules": rules}

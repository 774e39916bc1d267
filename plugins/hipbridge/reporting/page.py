"""Render a report page from Jinja2 templates that extend `base.html.j2` (layout, table of contents).

A report's template sets `sections` (id, title) in its context; the base draws the table of
contents from it, in the report's order, so the contents and the page cannot disagree.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from .labels import zh
from .xlsx import rounded

_BASE = Path(__file__).parent / "templates"


def pct(v: float | None, digits: int = 2, up: bool = False) -> str:
    """A pass rate is rounded DOWN to 0.01 % (99.9999 % must not show as 100.00 % beside a 100 % 达标线);
    a problem rate (`up=True`) is rounded UP (0.001 % of bad rows must not show as 0.00 %)."""
    if v is None:
        return "—"
    scale = 10 ** digits
    cut = math.ceil(v * scale - 1e-9) if up else math.floor(v * scale + 1e-9)
    return f"{cut / scale:.{digits}f}%"


def num(v: Any, digits: int = 2) -> str:
    """Integers with thousands separators, floats rounded; None is an em dash."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        r = rounded(v, digits)
        return "—" if r is None else (f"{r:,.0f}" if float(r).is_integer() else f"{r:,.{digits}f}")
    return str(v)


def environment(*template_dirs: Path) -> Environment:
    env = Environment(loader=ChoiceLoader([FileSystemLoader([*map(str, template_dirs), str(_BASE)])]),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = pct
    env.globals["pct"] = pct
    env.filters["num"] = num
    env.filters["zh"] = zh
    return env


def render(template: str, ctx: dict[str, Any], *template_dirs: Path) -> str:
    return environment(*template_dirs).get_template(template).render(**ctx)

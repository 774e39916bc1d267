"""The demo hospital (百色市人民医院, demo data): vendor-style HIS, LIS and PACS SQLite files.

`build(out_dir, seed, days, scale, end_date)` writes `his.db`, `lis.db` and `pacs.db`;
`codes.LOCAL_CODE_SETS` holds the hospital's local code dictionaries.
"""

from __future__ import annotations

from .build import build

__all__ = ["build"]

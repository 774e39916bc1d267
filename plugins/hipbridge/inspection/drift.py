"""Configuration drift: a SHA-256 per watched file (specs, SQL, expectations, config, local mappings),
compared with the hashes stored with last week's report. Changed files are listed by path; contents
never leave the machine (mappings may hold local codes, never patient data).
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def config_hashes(root: Path, watched: tuple[str, ...] | list[str]) -> dict[str, str]:
    """{relative path: sha256} of every file under the watched folders (hidden files skipped)."""
    out: dict[str, str] = {}
    for folder in watched:
        base = root / folder
        if not base.exists():
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            rel = path.relative_to(root)
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def combined_hash(hashes: dict[str, str]) -> str:
    h = hashlib.sha256()
    for path, digest in sorted(hashes.items()):
        h.update(f"{path}\0{digest}\n".encode())
    return h.hexdigest()


def compare(current: dict[str, str], previous: dict[str, str] | None) -> dict[str, list[str]] | None:
    """added / removed / changed paths against last week; None when there is no earlier report."""
    if previous is None:
        return None
    return {"added": sorted(set(current) - set(previous)), "removed": sorted(set(previous) - set(current)),
            "changed": sorted(p for p in set(current) & set(previous) if current[p] != previous[p])}

"""Deterministic partition of an asset list into farm shards, and merging their results.

An asset's shard depends only on its path relative to the scanned root, so every farm
task computes the same partition independently and re-runs are stable.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from scanner.errors import ConfigError, ScannerError
from scanner.jobs.integrity import ASSET_ID, RecordSigner, read_seal
from scanner.media.files import Candidate, display_path
from scanner.reports.jsonl import read_results

SHARD_DIR = re.compile(r"^shard-(\d+)-of-(\d+)$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``K/N`` with 1 <= K <= N (farm task numbering is usually 1-based)."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
            raise ConfigError(f"--shard must look like K/N with 1 <= K <= N, got {text!r}")
        return cls(int(m.group(1)) - 1, int(m.group(2)))

    @property
    def folder(self) -> str:
        return f"shard-{self.index + 1:04d}-of-{self.count:04d}"


def shard_key(path: str, roots: Sequence[str]) -> str:
    """Path relative to the root it was found under (stable across machines with different mounts)."""
    p = display_path(path)
    for root in roots:
        r = display_path(os.path.abspath(root))
        ap = display_path(os.path.abspath(p))
        if ap == r or ap.startswith(r.rstrip(os.sep) + os.sep):
            return os.path.relpath(ap, os.path.dirname(r) if ap == r else r)
    return p


def in_shard(key: str, shard: Shard) -> bool:
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % shard.count == shard.index


def select(candidates: Iterable[Candidate], roots: Sequence[str], shard: Shard | None) -> list[Candidate]:
    """The candidates belonging to ``shard`` (all of them when ``shard`` is None)."""
    items = list(candidates)
    if shard is None:
        return items
    return [c for c in items if in_shard(shard_key(c.path, roots), shard)]


def shard_folders(root: Path, marker: str = "results.jsonl") -> list[Path]:
    """Shard folders under ``root`` (``shard-K-of-N``), checked for a complete, consistent set;
    each must contain ``marker`` somewhere inside (results, or an index manifest)."""
    if not Path(root).is_dir():
        raise ConfigError(f"folder not found: {root}")
    found = sorted(p for p in Path(root).iterdir() if p.is_dir() and SHARD_DIR.match(p.name))
    if not found:
        raise ConfigError(f"no shard-K-of-N folders with results under {root}")
    counts = {int(SHARD_DIR.match(p.name).group(2)) for p in found}
    if len(counts) != 1:
        raise ConfigError(f"shard folders under {root} come from different shard counts: {sorted(counts)}")
    n = counts.pop()
    have = {int(SHARD_DIR.match(p.name).group(1)) for p in found
            if (p / marker).is_file() or any(p.glob(f"*/{marker}"))}
    missing = sorted(set(range(1, n + 1)) - have)
    if missing:
        raise ConfigError(f"shards {missing} of {n} have no {marker} under {root}: run them before merging")
    return found


def merge_records(folders: Sequence[Path], signer: RecordSigner) -> list[dict]:
    """All shard records, one per asset (a later record of the same asset wins), sorted by path.

    Records are keyed by ``asset_id`` (path bytes), never by the display path, which two
    different names can share. Refuses the merge (``ScannerError``) when any record's signature
    does not verify, or a shard's ``results.seal`` is missing or does not match its records: an
    edited, cut or unfinished shard file must not turn into a clean merged report.
    """
    merged: dict[str, dict] = {}
    bad: list[str] = []
    for folder in folders:
        results = folder / "results.jsonl"
        records = list(read_results(results))
        sealed = signer.seal_problem(read_seal(folder), records)
        if sealed is not None:
            bad.append(f"{folder.name}: {sealed}")
        for line, rec in enumerate(records, 1):
            problem = signer.problem(rec) if isinstance(rec, dict) else "it is not a JSON object"
            if problem is None and not isinstance(rec.get(ASSET_ID), str):
                problem = "it has no asset_id"
            if problem is not None:
                name = rec.get("path") if isinstance(rec, dict) else None
                bad.append(f"{results}:{line} ({name!r}): {problem}")
                continue
            merged[rec[ASSET_ID]] = rec
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ScannerError(f"refusing to merge: {len(bad)} shard files or records do not verify against this "
                           f"catalog's results key: {shown}. Re-run those shards with --no-resume (results from an "
                           "older scanner are unsigned and need a re-run too).")
    return sorted(merged.values(), key=lambda r: (r["path"], r[ASSET_ID]))


def copy_thumbs(folders: Sequence[Path], out: Path) -> None:
    """Gather shard thumbnails next to the merged report."""
    dest = out / "thumbs"
    dest.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        src = folder / "thumbs"
        if src.is_dir():
            for f in src.iterdir():
                if not (dest / f.name).exists():
                    shutil.copy2(f, dest / f.name)

"""Where a benchmark's data lives and how it is listed: the shared data folder, media files by
suffix, and ``MANIFEST.csv`` (``path,kind,label,source,license``; one row per file, ``label`` groups
files of one work or one speaker).

Benchmarks run from the repository root (``python -m benchmarks.<name>``); data sits beside the
repository in ``../shared/data`` unless a flag names another folder.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
AUDIO_SUFFIXES = frozenset({".ogg", ".wav", ".flac", ".mp3", ".m4a", ".opus"})


@dataclass(frozen=True)
class ManifestRow:
    """One file of the shared data: absolute ``path``, ``kind`` (``image-work``, ``voice``, ...),
    ``label`` (the work or speaker it belongs to), where it came from and its licence."""

    path: Path
    kind: str
    label: str
    source: str
    license: str


def media_files(folder: Path, suffixes: Iterable[str], recursive: bool = False) -> list[Path]:
    """Files in ``folder`` whose suffix (case-insensitive) is one of ``suffixes``, sorted by path."""
    wanted = {s.lower() for s in suffixes}
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in wanted)


def require_dir(folder: Path, flag: str, *subdirs: str) -> Path:
    """``folder`` if it (and each of ``subdirs`` in it) is a directory; else exit with a message naming
    the ``flag`` that chooses it (a benchmark run without the shared data is a user mistake, not a crash)."""
    missing = [str(folder / s) for s in ("", *subdirs) if not (folder / s).is_dir()]
    if missing:
        need = f" with {', '.join(s + '/' for s in subdirs)}" if subdirs else ""
        raise SystemExit(f"data folder not found: {missing[0]} (pass {flag} DIR{need})")
    return folder


def read_manifest(data: Path = SHARED_DATA, kinds: Iterable[str] | None = None) -> list[ManifestRow]:
    """Rows of ``data/MANIFEST.csv`` (paths made absolute under ``data``), optionally only ``kinds``;
    in file order. A missing manifest exits with a message."""
    manifest = data / "MANIFEST.csv"
    if not manifest.is_file():
        raise SystemExit(f"no MANIFEST.csv in {data} (pass --data DIR)")
    keep = set(kinds) if kinds is not None else None
    with manifest.open(newline="") as fh:
        return [ManifestRow(data / r["path"], r["kind"], r["label"], r.get("source", ""), r.get("license", ""))
                for r in csv.DictReader(fh) if keep is None or r["kind"] in keep]


def label_groups(rows: Iterable[ManifestRow]) -> list[int]:
    """A group number per row: rows with the same ``label`` share one (numbered by first appearance)."""
    ids: dict[str, int] = {}
    return [ids.setdefault(r.label, len(ids)) for r in rows]

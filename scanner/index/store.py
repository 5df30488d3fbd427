"""Indexes on disk: one folder per detector, a data file named by its checksum and index
family (``index-<checksum>.<family>.scn``, a ``scanner.index.container``) and a
``manifest.json`` that points to it. Writing the manifest is the single atomic commit:
a crash at any point leaves the previous index in place and readable.

Format 2 (the one container for every family) replaced format 1 (three byte formats, all
named ``index-*.faiss``); a format-1 manifest is refused with a rebuild hint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from scanner.errors import IndexCorruptError, IndexMismatchError
from scanner.fsutil import atomic_write_bytes, atomic_write_json
from scanner.index import container
from scanner.index.base import VectorIndex
from scanner.types import Metric

MANIFEST = "manifest.json"
FORMAT_VERSION = 2
_DATA_GLOBS = ("index-*.faiss", f"index-*.{container.SUFFIX}")  # format 1 files, then ours


@dataclass(frozen=True)
class Manifest:
    """What an index holds and what made it; written next to every index."""

    detector: str
    model: str
    weights_sha256: str
    dim: int
    metric: str
    count: int
    checksum: str
    created: str
    index_type: str
    file: str
    skipped: dict[str, str] = field(default_factory=dict)  # reference id -> why it has no signal
    params: dict[str, Any] = field(default_factory=dict)  # detector settings that shape the signals
    format_version: int = FORMAT_VERSION
    family: str = ""  # container family of the data file ("faiss", "landmark", "local", ...)


class IndexStore:
    """Saves and loads the per-detector indexes under one folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, detector: str) -> Path:
        return self.root / detector

    def manifest(self, detector: str) -> Manifest | None:
        """The manifest on disk, or None when the detector has no index yet."""
        path = self.folder(detector) / MANIFEST
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            return Manifest(**data)
        except (ValueError, TypeError) as exc:
            raise IndexCorruptError(
                f"index manifest {path} is unreadable ({exc}); rebuild with `scanner index build --rebuild`"
            ) from None

    def save(
        self, detector: str, index: VectorIndex, model: str, weights_sha256: str,
        skipped: dict[str, str] | None = None, params: dict[str, Any] | None = None,
    ) -> Manifest:
        """Write ``index`` atomically and return its new manifest."""
        data = index.to_bytes()
        checksum = hashlib.sha256(data).hexdigest()
        folder = self.folder(detector)
        family = getattr(index, "family", "") or "index"
        file = f"index-{checksum[:16]}.{family}.{container.SUFFIX}"
        atomic_write_bytes(folder / file, data)
        manifest = Manifest(
            detector=detector,
            model=model,
            weights_sha256=weights_sha256,
            dim=index.dim,
            metric=index.metric.value,
            count=len(index),
            checksum=checksum,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            index_type=index.kind,
            file=file,
            skipped=dict(skipped or {}),
            params=normalise(params or {}),
            family=family,
        )
        atomic_write_json(folder / MANIFEST, asdict(manifest))
        for pattern in _DATA_GLOBS:
            for old in folder.glob(pattern):
                if old.name != file:
                    old.unlink(missing_ok=True)
        return manifest

    def load(
        self, detector: str, model: str, weights_sha256: str, dim: int, metric: Metric,
        reader: Callable[[bytes], VectorIndex], params: dict[str, Any] | None = None,
    ) -> tuple[VectorIndex, Manifest] | None:
        """Load the index for ``detector`` with ``reader``; refuse one built for another
        model, weights, dimension or signal parameters."""
        manifest = self.manifest(detector)
        if manifest is None:
            return None
        check_compatible(manifest, detector, model, weights_sha256, dim, metric, params or {})
        path = self.folder(detector) / manifest.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise IndexCorruptError(f"index file {path} is missing or unreadable: {exc.strerror or exc}") from None
        if hashlib.sha256(data).hexdigest() != manifest.checksum:
            raise IndexCorruptError(
                f"index file {path} does not match its manifest checksum; "
                "rebuild with `scanner index build --rebuild`"
            )
        return reader(data), manifest


def check_compatible(
    manifest: Manifest, detector: str, model: str, weights_sha256: str, dim: int, metric: Metric,
    params: dict[str, Any] | None = None,
) -> None:
    """Raise ``IndexMismatchError`` unless the manifest matches the running detector."""
    problems = []
    if manifest.detector != detector:
        problems.append(f"detector {manifest.detector!r} (running {detector!r})")
    if manifest.model != model:
        problems.append(f"model {manifest.model!r} (running {model!r})")
    elif manifest.weights_sha256 != weights_sha256:
        problems.append(f"other weights of {model!r} (sha256 {manifest.weights_sha256[:12]}…)")
    if manifest.dim != dim:
        problems.append(f"dimension {manifest.dim} (running {dim})")
    if manifest.metric != metric.value:
        problems.append(f"metric {manifest.metric} (running {metric.value})")
    if params is not None and normalise(manifest.params) != normalise(params):
        problems.append(f"parameters {manifest.params} (running {params})")
    if manifest.format_version != FORMAT_VERSION:
        older = " (an older index format)" if manifest.format_version < FORMAT_VERSION else ""
        problems.append(f"format version {manifest.format_version}{older} (running {FORMAT_VERSION})")
    if problems:
        raise IndexMismatchError(
            f"the {detector} index was built with " + ", ".join(problems)
            + "; rebuild it with `scanner index build --rebuild` or run with the model it was built for"
        )


def normalise(params: dict[str, Any]) -> dict[str, Any]:
    """Params as they read back from JSON (tuples become lists, keys strings), for comparison."""
    return json.loads(json.dumps(params, sort_keys=True))

"""Index maintenance: keep every detector's index in line with the catalog, build shards, merge them.

A mixin of ``scanner.api.Scanner``: it reads ``self.settings``, ``self.catalog``, ``self.store`` and
``self.detectors``, and keeps the loaded indexes in ``self._indexes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from scanner.detectors import Detector
from scanner.detectors.base import detector_class
from scanner.errors import ConfigError, MediaError, ScannerError
from scanner.index import IndexStore, VectorIndex
from scanner.index.store import Manifest
from scanner.media.decode import decode
from scanner.media.files import load
from scanner.types import ReferenceKind

Progress = Callable[[int], None]  # called with the number of items just finished
IDLE = "(not loaded: nothing registered for it)"  # IndexReport.model of a detector with no references


@dataclass
class IndexReport:
    """What ``build_index`` did for one detector."""

    detector: str
    model: str
    added: int = 0
    removed: int = 0
    count: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    rebuilt: bool = False


class Indexing:
    """Index sync, shard builds and merges (see ``scanner.api.Scanner``)."""

    def build_index(self, rebuild: bool = False, progress: Progress | None = None) -> list[IndexReport]:
        """Bring every detector's index in line with the catalog (incremental unless ``rebuild``)."""
        read: dict[tuple, dict[int, str]] = {}  # the image detectors index the same works: read them once
        return [self._sync_one(name, rebuild, progress, read) for name in self.settings.detectors]

    def _sources(self, det: Detector | type[Detector], read: dict[tuple, dict[int, str]] | None = None
                 ) -> dict[int, str]:
        """Index id -> reference file for what ``det`` (a detector or its class) indexes (kept in ``read``,
        by what was asked, when given)."""
        key = (det.references, det.modality, getattr(det, "sample_kind", None))
        if read is not None and key in read:
            return read[key]
        if det.references == ReferenceKind.WORK:
            out = {r.id: r.path for r in self.catalog.works(det.modality)}
        elif det.references == ReferenceKind.TALENT:
            out = {s.id: s.path for s in self.catalog.samples(det.sample_kind)}
        else:
            raise ConfigError(f"{det.name} indexes {det.references} references, which this catalog does not hold")
        if read is not None:
            read[key] = out
        return out

    def _index_budget(self) -> int | None:
        """Bytes one index may take in memory (``Settings.index_memory_mb``; 0 or less: no limit): the
        budget ``choose_index`` plans within, so a large catalog gets a compressed index type."""
        mb = int(self.settings.index_memory_mb or 0)
        return mb * 1024 * 1024 if mb > 0 else None

    def _load_index(self, name: str, det: Detector) -> tuple[VectorIndex, Manifest] | None:
        return self.store.load(name, det.model_id, det.weights_sha256, det.dim, det.metric, det.load_index, det.params)

    def _sync_one(self, name: str, rebuild: bool, progress: Progress | None,
                  read: dict[tuple, dict[int, str]] | None = None) -> IndexReport:
        sources = self._sources(detector_class(name), read)
        if not sources and not rebuild and name not in self._loaded:
            on_disk = self.store.manifest(name)
            if on_disk is None or on_disk.count == 0:
                # Nothing registered for it (e.g. no talent yet): its model is not even loaded, and a
                # scan has no query work for it.
                self._indexes.pop(name, None)
                return IndexReport(name, IDLE)
        det = self.detector(name)
        report = IndexReport(name, det.model_id, rebuilt=rebuild)
        loaded = None
        cached = self._indexes.get(name)
        on_disk = self.store.manifest(name) if cached and not rebuild else None
        if cached and on_disk and on_disk.checksum == cached[1].checksum:
            loaded = cached  # already in memory and still current on disk
        elif not rebuild:
            loaded = self._load_index(name, det)
        index, skipped = ((loaded[0], dict(loaded[1].skipped)) if loaded
                          else (det.new_index(len(sources), self._index_budget()), {}))
        have = set(index.ids().tolist())
        skipped = {k: v for k, v in skipped.items() if int(k) in sources}
        gone = np.array(sorted(have - set(sources)), dtype=np.int64)
        todo = [i for i in sorted(set(sources) - have) if str(i) not in skipped]
        if loaded is cached and cached is not None and (gone.size or todo):
            index = det.load_index(index.to_bytes())  # never mutate an index a running scan may hold
        if gone.size:
            index.remove(gone)
            report.removed = int(gone.size)
        self._embed_into(index, det, todo, sources, skipped, report, progress)
        if loaded is None or report.added or report.removed or skipped != loaded[1].skipped:
            manifest = self.store.save(name, index, det.model_id, det.weights_sha256, skipped, det.params)
        else:
            manifest = loaded[1]
        self._indexes[name] = (index, manifest)
        report.count, report.skipped = len(index), skipped
        return report

    def _embed_into(self, index: VectorIndex, det: Detector, ref_ids: Sequence[int], sources: dict[int, str],
                    skipped: dict[str, str], report: IndexReport, progress: Progress | None) -> None:
        """Decode and embed references in batches into ``index``; unusable ones go to ``skipped``.

        An empty index gets all rows in one ``add`` (IVF indexes train on their first add)."""
        pending: list[tuple[np.ndarray, np.ndarray, dict]] = []
        for chunk in _chunks(list(ref_ids), self.settings.batch_size):
            media, ok = [], []
            for ref_id in chunk:
                try:
                    media.append(decode(load(sources[ref_id], self.settings.max_file_bytes), self.settings))
                    ok.append(ref_id)
                except MediaError as exc:
                    skipped[str(ref_id)] = f"reference file unusable ({sources[ref_id]}): {exc}"
            for ref_id, emb in zip(ok, det.embed_references(media)):
                if emb.empty:
                    skipped[str(ref_id)] = emb.note
                else:
                    pending.append((np.full(emb.vectors.shape[0], ref_id, dtype=np.int64), emb.vectors, emb.extra))
                    report.added += 1
            if len(index):  # already trained: add as we go, memory stays bounded
                _add_rows(index, pending)
                pending = []
            if progress:
                progress(len(chunk))
        _add_rows(index, pending)

    def build_index_part(self, root: Path, keep: Callable[[int], bool], progress: Progress | None = None
                         ) -> list[IndexReport]:
        """Farm-task index build: embed only the references ``keep`` selects into a separate store at
        ``root`` (one ``IndexStore``); ``merge_index_parts`` combines such parts into the live index."""
        store, reports = IndexStore(root), []
        for name, det in self.detectors.items():
            sources = {i: p for i, p in self._sources(det).items() if keep(i)}
            report, skipped = IndexReport(name, det.model_id, rebuilt=True), {}
            index = det.new_index(len(sources), self._index_budget())
            self._embed_into(index, det, sorted(sources), sources, skipped, report, progress)
            store.save(name, index, det.model_id, det.weights_sha256, skipped, det.params)
            report.count, report.skipped = len(index), skipped
            reports.append(report)
        return reports

    def merge_index_parts(self, roots: Sequence[Path]) -> list[IndexReport]:
        """Merge part stores built by ``build_index_part`` into the live indexes (atomically, per detector).
        Refuses parts built with other models/params, and a set of parts that misses catalog references."""
        reports = []
        for name, det in self.detectors.items():
            merged, skipped = det.new_index(len(self._sources(det)), self._index_budget()), {}
            for root in roots:
                part = IndexStore(root).load(name, det.model_id, det.weights_sha256, det.dim, det.metric,
                                             det.load_index, det.params)
                if part is None:
                    raise ScannerError(f"index part {root} has no {name} index")
                merged.merge(part[0])
                skipped.update(part[1].skipped)
            missing = set(self._sources(det)) - set(merged.ids().tolist()) - {int(k) for k in skipped}
            if missing:
                raise ScannerError(f"the {len(roots)} index parts miss {len(missing)} catalog references for {name} "
                                   f"(e.g. #{min(missing)}): build every part against the same catalog")
            manifest = self.store.save(name, merged, det.model_id, det.weights_sha256, skipped, det.params)
            self._indexes[name] = (merged, manifest)
            reports.append(IndexReport(name, det.model_id, added=len(merged), count=len(merged), skipped=skipped,
                                       rebuilt=True))
        return reports

    def pending_references(self) -> int:
        """How many references are not yet in (or skipped by) some detector's index."""
        worst = 0
        for name in self.settings.detectors:
            sources = set(self._sources(detector_class(name)))
            m = self.store.manifest(name)
            worst = max(worst, len(sources) if m is None else abs(len(sources) - m.count - len(m.skipped)))
        return worst

    def _ready(self) -> dict[str, tuple[VectorIndex, Manifest]]:
        """Indexes loaded and in line with the catalog (refreshed incrementally if needed); detectors
        with nothing registered have none.

        The full comparison (every reference against every index) runs only when the catalog's works or
        samples (``Catalog.index_state``) or an index on disk changed since the last one: at 1,000
        references it was ~40 ms of every check, and it grows with the catalog."""
        state = (self.catalog.index_state(), tuple(self.settings.detectors))
        if state == self._synced and self._indexes_as_on_disk():
            return self._indexes
        self.build_index()
        self._synced = state  # read before the sync: a reference added during it is caught next time
        return self._indexes

    def _indexes_as_on_disk(self) -> bool:
        """Whether every index in memory is the one on disk, and no idle detector has one there now."""
        for name in self.settings.detectors:
            on_disk, held = self.store.manifest(name), self._indexes.get(name)
            if held is None:
                if on_disk is not None and on_disk.count:
                    return False
            elif on_disk is None or on_disk.checksum != held[1].checksum:
                return False
        return True

    def loaded_indexes(self) -> dict[str, Manifest]:
        """Manifests of the indexes currently in memory, by detector."""
        return {name: manifest for name, (_, manifest) in self._indexes.items()}


def _add_rows(index: VectorIndex, rows: list[tuple[np.ndarray, np.ndarray, dict]]) -> None:
    """One ``add`` for many references' rows (``extra`` arrays concatenated key by key)."""
    if not rows:
        return
    keys = set(rows[0][2])
    extra = {k: np.concatenate([np.asarray(r[2][k]) for r in rows]) for k in keys if all(k in r[2] for r in rows)}
    index.add(np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]), extra)


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), max(1, size)):
        yield items[i:i + size]

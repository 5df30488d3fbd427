"""The one place that wires media → detectors → indexes → catalog → policy.

    from scanner.api import Scanner
    scanner = Scanner()                      # settings from CLI/env/scanner.toml defaults
    scanner.add_reference(["poster.jpg"], title="Poster", rights_holder="Studio X")
    scanner.build_index()
    result = scanner.check("generated.png")  # AssetResult with verdict and findings
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from scanner.catalog import Catalog, NewSample, NewWork
from scanner.config import Settings, load_settings
from scanner.detectors import Detector, create
from scanner.detectors.base import likeness_detector
from scanner.errors import ConfigError, IndexMismatchError, MediaError, ScannerError
from scanner.index import IndexStore, VectorIndex
from scanner.index.store import Manifest
from scanner.media.audio import decode_audio
from scanner.media.decode import decode
from scanner.media.files import Candidate, display_path, is_candidate_media, load, walk
from scanner.media.image import thumbnail_jpeg
from scanner.media.sniff import AUDIO, IMAGE, VIDEO
from scanner.media.video import SamplingReport, iter_frames, probe_video
from scanner.media.waveform import waveform_jpeg
from scanner.policy import Calibration, Match, consent_status, decide, load_calibration
from scanner.types import AssetResult, Clearance, ConsentRecord, Reference, Talent, TalentSample, Verdict

Progress = Callable[[int], None]  # called with the number of items just finished


@dataclass
class AddOutcome:
    """Result of registering one file."""

    path: str
    reference: Reference | None = None
    created: bool = False
    error: str | None = None


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


@dataclass
class _Decoded:
    candidate: Candidate
    sha256: str | None = None
    media_type: str | None = None
    media: Any = None  # PIL image or audio clip, per media_type
    error: str | None = None
    reused: AssetResult | None = None
    incomplete: str | None = None  # part of the asset could not be checked


@dataclass
class Segment:
    """One part of an asset that detectors of one modality read: the whole image or audio, a sampled
    video frame (``where`` holds its time, timecode and number) or a video's audio track."""

    asset: "_Decoded"
    modality: str
    media: Any
    where: dict[str, Any] = field(default_factory=dict)
    frame: Any = None  # the video frame, kept for the report when it matches
    label: str = ""  # prefix of the notes it gives ("frame: ", "audio track: ")


class Scanner:
    """Register references, keep indexes current and check assets against them."""

    def __init__(self, settings: Settings | None = None, caller: str = "api"):
        """``caller`` is who asks (``cli:<user>``, ``key:<id>``); every answer is written to the audit trail."""
        self.settings = settings or load_settings()
        self.caller = caller
        self.catalog = Catalog(self.settings.catalog)
        self.store = IndexStore(self.settings.index_dir)
        self._detectors: dict[str, Detector] | None = None
        self._loaded: dict[str, Detector] = {}
        self._indexes: dict[str, tuple[VectorIndex, Manifest]] = {}
        self._calibration: Calibration | None = None

    # ----- references -------------------------------------------------------------
    def add_reference(
        self, paths: Sequence[str | os.PathLike], title: str | None = None, rights_holder: str = "unknown",
        clearance: Clearance | str = Clearance.UNCLEARED,
    ) -> list[AddOutcome]:
        """Register image or audio files as works. Same file twice (by sha256) is registered once."""
        clearance = _clearance(clearance)
        out = []
        for p in paths:
            path = os.fspath(p)
            try:
                loaded = load(path, self.settings.max_file_bytes)
                if loaded.media_type not in (IMAGE, AUDIO):
                    raise MediaError(f"{loaded.media_type} references are not supported (images and audio only)")
                media = decode(loaded, self.settings)
            except MediaError as exc:
                out.append(AddOutcome(display_path(path), error=str(exc)))
                continue
            size = media.size if isinstance(media, Image.Image) else (0, 0)
            work = NewWork(
                sha256=loaded.sha256, title=title or Path(display_path(path)).stem, rights_holder=rights_holder,
                clearance=clearance, media_type=loaded.media_type, path=os.path.abspath(display_path(path)),
                width=size[0], height=size[1], thumbnail=_thumbnail(media),
                duration=getattr(media, "duration", 0.0),
            )
            ref, created = self.catalog.add_work(work)
            out.append(AddOutcome(display_path(path), ref, created))
        return out

    def import_manifest(self, csv_path: Path, progress: Progress | None = None) -> list[AddOutcome]:
        """Bulk register from a CSV with columns ``path`` and optional ``title``/``label``,
        ``rights_holder``/``owner``, ``clearance``. Relative paths are relative to the CSV."""
        rows = read_manifest(Path(csv_path))
        out = []
        for row in rows:
            path = row["path"]
            if not os.path.isabs(path):
                path = str(Path(csv_path).parent / path)
            try:
                clearance = _clearance(row.get("clearance") or Clearance.UNCLEARED)
            except ConfigError as exc:
                out.append(AddOutcome(path, error=str(exc)))
            else:
                out.extend(self.add_reference(
                    [path], title=row.get("title") or row.get("label") or None,
                    rights_holder=row.get("rights_holder") or row.get("owner") or "unknown", clearance=clearance,
                ))
            if progress:
                progress(1)
        return out

    def remove_references(self, keys: Iterable[str]) -> list[Reference]:
        """Remove works by id or sha256 (prefix); indexes drop them at the next build."""
        refs = [self.catalog.find(k) for k in keys]
        self.catalog.remove(r.id for r in refs)
        return refs

    # ----- talent -----------------------------------------------------------------
    def add_talent(self, name: str, photos: Sequence[str | os.PathLike] = (), voices: Sequence[str | os.PathLike] = (),
                   union_covered: bool = False, notes: str = "") -> Talent:
        """Register a real person with reference photos (exactly one face each) and voice samples."""
        if not photos and not voices:
            raise ScannerError(f"talent {name!r} needs at least one --photo or --voice sample")
        samples = self._talent_samples(photos, "face") + self._talent_samples(voices, "voice")
        return self.catalog.add_talent(name, union_covered, notes, samples)

    def add_talent_samples(self, key: str, photos: Sequence[str | os.PathLike] = (),
                           voices: Sequence[str | os.PathLike] = ()) -> list[TalentSample]:
        """Attach more photos/voice samples to an existing talent."""
        talent = self.catalog.find_talent(key)
        samples = self._talent_samples(photos, "face") + self._talent_samples(voices, "voice")
        return self.catalog.add_samples(talent.id, samples)

    def import_talent(self, csv_path: Path, progress: Progress | None = None) -> list[tuple[str, str | None]]:
        """Bulk register from a CSV with ``name`` and ``photo`` and/or ``voice`` columns (one sample per row;
        rows with the same name are grouped) and optional ``union_covered``. Returns (name, error) per talent."""
        groups: dict[str, dict[str, Any]] = {}
        for row in read_manifest(Path(csv_path), required="name"):
            g = groups.setdefault(row["name"], {"photos": [], "voices": [], "union": False})
            for col, key in (("photo", "photos"), ("voice", "voices")):
                if row.get(col):
                    p = row[col] if os.path.isabs(row[col]) else str(Path(csv_path).parent / row[col])
                    g[key].append(p)
            g["union"] |= row.get("union_covered", "").lower() in {"1", "true", "yes", "y"}
        out = []
        for name, g in groups.items():
            try:
                existing = self.catalog.talent_by_name(name)
                if existing:
                    self.add_talent_samples(name, g["photos"], g["voices"])
                else:
                    self.add_talent(name, g["photos"], g["voices"], g["union"])
                out.append((name, None))
            except ScannerError as exc:
                out.append((name, str(exc)))
            if progress:
                progress(1)
        return out

    def _talent_samples(self, paths: Sequence[str | os.PathLike], kind: str) -> list[NewSample]:
        """Validated samples: a photo must show exactly one face, a voice sample must contain speech."""
        if not paths:
            return []
        det = self.detector(likeness_detector(kind).name)
        samples, problems = [], []
        for p in paths:
            path = display_path(p)
            try:
                f = load(os.fspath(p), self.settings.max_file_bytes)
                if f.media_type != det.modality:
                    raise MediaError(f"a {kind} sample must be {det.modality}, this file is {f.media_type}")
                media = decode(f, self.settings)
            except MediaError as exc:
                problems.append(f"{path}: {exc}")
                continue
            emb = det.embed_references([media])[0]
            if emb.empty:
                problems.append(f"{path}: {emb.note}")
                continue
            samples.append(NewSample(kind, f.sha256, os.path.abspath(path), _thumbnail(media)))
        if problems:
            raise ScannerError("rejected " + "; ".join(problems))
        return samples

    # ----- models and indexes -----------------------------------------------------
    @property
    def detectors(self) -> dict[str, Detector]:
        """Enabled detectors, models loaded on first use."""
        if self._detectors is None:
            self._detectors = {name: self.detector(name) for name in self.settings.detectors}
        return self._detectors

    def detector(self, name: str) -> Detector:
        """Any registered detector (enabled or not), loaded once."""
        if name not in self._loaded:
            self._loaded[name] = create(name, self.settings)
        return self._loaded[name]

    @property
    def calibration(self) -> Calibration:
        if self._calibration is None:
            self._calibration = load_calibration(self.settings.calibration)
        return self._calibration

    def build_index(self, rebuild: bool = False, progress: Progress | None = None) -> list[IndexReport]:
        """Bring every detector's index in line with the catalog (incremental unless ``rebuild``)."""
        return [self._sync_one(name, det, rebuild, progress) for name, det in self.detectors.items()]

    def _sources(self, det: Detector) -> dict[int, str]:
        """Index id -> reference file for what ``det`` indexes."""
        if det.references == "work":
            return {r.id: r.path for r in self.catalog.works(det.modality)}
        if det.references == "talent":
            return {s.id: s.path for s in self.catalog.samples(det.sample_kind)}
        raise ConfigError(f"{det.name} indexes {det.references} references, which this catalog does not hold")

    def _load_index(self, name: str, det: Detector) -> tuple[VectorIndex, Manifest] | None:
        return self.store.load(name, det.model_id, det.weights_sha256, det.dim, det.metric, det.load_index, det.params)

    def _sync_one(self, name: str, det: Detector, rebuild: bool, progress: Progress | None) -> IndexReport:
        report = IndexReport(name, det.model_id, rebuilt=rebuild)
        sources = self._sources(det)
        loaded = None
        cached = self._indexes.get(name)
        on_disk = self.store.manifest(name) if cached and not rebuild else None
        if cached and on_disk and on_disk.checksum == cached[1].checksum:
            loaded = cached  # already in memory and still current on disk
        elif not rebuild:
            loaded = self._load_index(name, det)
        index, skipped = (loaded[0], dict(loaded[1].skipped)) if loaded else (det.new_index(len(sources)), {})
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
            report, index, skipped = IndexReport(name, det.model_id, rebuilt=True), det.new_index(len(sources)), {}
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
            merged, skipped = det.new_index(len(self._sources(det))), {}
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
        for name, det in self.detectors.items():
            sources = set(self._sources(det))
            m = self.store.manifest(name)
            worst = max(worst, len(sources) if m is None else abs(len(sources) - m.count - len(m.skipped)))
        return worst

    def _ready(self) -> dict[str, tuple[VectorIndex, Manifest]]:
        """Indexes loaded and in line with the catalog (refreshed incrementally if needed)."""
        self.build_index()
        return self._indexes

    # ----- checking ---------------------------------------------------------------
    def check(self, path: str | os.PathLike) -> AssetResult:
        """Check one file."""
        return next(iter(self.scan([path])))

    def list_assets(self, paths: Iterable[str | os.PathLike]) -> list[Candidate]:
        """Files a scan of ``paths`` will check (media by name or content; others skipped)."""
        return [c for c in walk(paths) if c.problem or is_candidate_media(c.path)]

    def config_fingerprint(self) -> str:
        """Hash of everything that shapes a result: detectors, models, weights, indexes, calibration,
        stage, project. Results made under the same fingerprint for the same bytes can be reused."""
        return self._context().config

    def scan(
        self, paths: Iterable[str | os.PathLike] | Sequence[Candidate], progress: Progress | None = None,
        thumb_dir: Path | None = None, reuse: dict[str, dict] | None = None,
    ) -> Iterator[AssetResult]:
        """Check every asset under ``paths``; yields one result per asset, in walk order.

        With ``thumb_dir``, a JPEG thumbnail of every flagged image is written there as
        ``<sha256>.jpg`` for the HTML report. ``reuse`` maps asset paths to earlier records
        (see ``jobs.resume``): an asset whose bytes still hash the same is not checked again.
        """
        items = list(paths)
        candidates = items if items and isinstance(items[0], Candidate) else self.list_assets(items)
        ctx = self._context()
        reuse = {p: r for p, r in (reuse or {}).items() if r.get("config") == ctx.config}
        workers = max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            for chunk in _chunks(candidates, self.settings.batch_size):
                decoded = list(pool.map(lambda c: self._decode(c, reuse), chunk))
                found = self._search([d for d in decoded if d.error is None and d.reused is None], ctx)
                for d in decoded:
                    if d.reused is not None:
                        yield d.reused
                        continue
                    result = self._result(d, *found.get(id(d), ([], [])), ctx)
                    self.catalog.append_audit(self.caller, {**result.to_dict(), "weights": ctx.weights,
                                                            "project": self.settings.project})
                    if thumb_dir is not None and d.media is not None and result.verdict is not Verdict.PASS:
                        _write_thumbs(Path(thumb_dir), d, result)
                    yield result
                if progress:
                    progress(len(chunk))

    def _decode(self, cand: Candidate, reuse: dict[str, dict]) -> _Decoded:
        if cand.problem:
            return _Decoded(cand, error=cand.problem)
        try:
            f = load(cand.path, self.settings.max_file_bytes)
        except MediaError as exc:
            return _Decoded(cand, error=str(exc))
        earlier = reuse.get(cand.display)
        if earlier is not None and earlier.get("sha256") == f.sha256:
            return _Decoded(cand, f.sha256, f.media_type, reused=AssetResult.from_dict(earlier))
        try:
            if f.media_type == VIDEO:
                info = probe_video(f.data)
                if not info.has_video and not info.has_audio:
                    raise MediaError("container has neither a video nor an audio stream")
                if not info.has_video:  # an audio-only MP4/M4A/MKV
                    f = replace(f, media_type=AUDIO)
                else:
                    return self._modalities_or_error(cand, f, VideoAsset(f.data, info), (IMAGE, AUDIO))
            return self._modalities_or_error(cand, f, None, (f.media_type,))
        except MediaError as exc:
            return _Decoded(cand, f.sha256, f.media_type, error=str(exc))

    def _modalities_or_error(self, cand: Candidate, f: Any, media: Any, needs: tuple[str, ...]) -> _Decoded:
        """Decoded media, or an error when no enabled detector can read any part of it."""
        if not any(d.modality in needs for d in self.detectors.values()):
            enabled = ", ".join(self.detectors)
            return _Decoded(cand, f.sha256, f.media_type,
                            error=f"no enabled detector reads {f.media_type} assets (enabled: {enabled})")
        return _Decoded(cand, f.sha256, f.media_type, media=media if media is not None else decode(f, self.settings))

    def loaded_indexes(self) -> dict[str, Manifest]:
        """Manifests of the indexes currently in memory, by detector."""
        return {name: manifest for name, (_, manifest) in self._indexes.items()}

    def _context(self) -> "_ScanContext":
        """Everything a scan looks up per hit, loaded once: indexes, references, consent, thresholds."""
        indexes = dict(self._ready())  # a snapshot: a hot swap during this scan does not change it
        live = {n: d for n, d in self.detectors.items() if len(indexes[n][0])}
        stage = self.settings.stage
        consents = self.catalog.consents()
        config = {
            "detectors": {n: [d.model_id, d.weights_sha256, d.params] for n, d in self.detectors.items()},
            "indexes": {n: m.checksum for n, (_, m) in indexes.items()},
            "calibration": self.calibration.version, "stage": stage.value, "project": self.settings.project,
            "union_review": self.settings.union_review,
            # consent can change or expire without any index change
            "consent": [r.id for r in consents][-1:], "day": date.today().isoformat(),
        }
        return _ScanContext(
            config=hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16],
            indexes=indexes,
            thresholds={n: self.calibration.thresholds(n, d.model_id, stage) for n, d in live.items()},
            fusion=self.calibration.fusion(IMAGE, stage),
            works={r.id: r for r in self.catalog.works()},
            samples={s.id: s for s in self.catalog.samples()},
            talents={t.id: t for t in self.catalog.talents()},
            consents=consents,
            models={n: d.model_label for n, d in self.detectors.items()},
            weights={n: d.weights_sha256 for n, d in self.detectors.items()},
            index_ids={n: m.checksum[:16] for n, (_, m) in indexes.items()},
            calibration=self.calibration.version,
            today=date.today(),
        )

    def _search(self, decoded: list[_Decoded], ctx: "_ScanContext") -> dict[int, tuple[list[Match], list[str]]]:
        """Matches and notes per decoded asset (keyed by ``id()``), all detectors, batched per detector."""
        found: dict[int, tuple[list[Match], list[str]]] = {id(d): ([], []) for d in decoded}
        for d in decoded:
            if isinstance(d.media, VideoAsset):
                try:
                    self._search_video(d, ctx, found)
                except MediaError as exc:  # a stream that breaks mid-way fails this asset only
                    d.error = str(exc)
        self._match([Segment(d, d.media_type, d.media) for d in decoded if not isinstance(d.media, VideoAsset)],
                    ctx, found)
        return found

    def _match(self, segments: list["Segment"], ctx: "_ScanContext",
               found: dict[int, tuple[list[Match], list[str]]]) -> None:
        """The one embed -> search -> match path: every live detector over the segments of its modality.

        A segment is a whole image or audio file, one sampled video frame, or a video's audio track;
        its ``where`` (time, timecode, frame number) goes into each match's evidence.
        """
        for name, det in self.detectors.items():
            index = ctx.indexes[name][0]
            batch = [g for g in segments if g.modality == det.modality and g.asset.error is None]
            if not batch or not len(index):
                continue  # nothing registered for this detector: no query work
            for g, answer in zip(batch, _embed_search(det, index, [g.media for g in batch])):
                if isinstance(answer, Exception):  # the model failed on this asset: it is not checked
                    g.asset.error = f"{det.name} could not check this asset: {answer}"
                    continue
                emb, hits = answer
                matches, notes = found[id(g.asset)]
                if emb.empty and f"{g.label}{emb.note}" not in notes:  # once per asset, not once per frame
                    notes.append(f"{g.label}{emb.note}")
                for hit in hits:
                    m = ctx.match(det, hit, self.settings.project, _size_of(g.media), getattr(g.media, "duration", None))
                    if m is None:
                        continue
                    m.extra.update(g.where)
                    matches.append(m)
                    if g.frame is not None:
                        g.asset.media.keep(g.frame)

    def _search_video(self, d: _Decoded, ctx: "_ScanContext", found: dict[int, tuple[list[Match], list[str]]]) -> None:
        """A video as segments: sampled frames in bounded batches, then the audio track.

        Frame matches carry the frame's time, timecode and number; the frame that gave each
        reference's best score is kept (as a thumbnail) for the report.
        """
        video: VideoAsset = d.media
        notes = found[id(d)][1]
        live = {det.modality for n, det in self.detectors.items() if len(ctx.indexes[n][0])}
        if IMAGE in live:
            report = SamplingReport()
            frames = iter_frames(video.data, max_seconds=self.settings.max_audio_seconds,
                                 max_pixels=self.settings.max_pixels, report=report)
            for chunk in _chunks_iter(frames, self.settings.batch_size):
                self._match([Segment(d, IMAGE, f.image, {"time": round(f.time, 3), "timecode": f.timecode,
                                                         "frame": f.index}, f, "frame: ") for f in chunk], ctx, found)
            notes.extend(f"video: {n}" for n in report.notes)
            if report.truncated:
                d.incomplete = (f"video is truncated or damaged after {report.last_time:.1f} s: "
                                "the rest could not be checked")
            notes.append(f"video: {report.sampled} frames sampled of {report.decoded} decoded "
                         f"({report.cuts} cuts), at most {report.max_gap:.1f} s apart")
        if AUDIO in live and video.info.has_audio:
            clip = decode_audio(video.data, max_seconds=self.settings.max_audio_seconds)
            self._match([Segment(d, AUDIO, clip, label="audio track: ")], ctx, found)
        elif AUDIO in live:
            notes.append("video has no audio track: audio detectors had nothing to check")

    def _result(self, d: _Decoded, matches: list[Match], notes: list[str], ctx: "_ScanContext") -> AssetResult:
        common = dict(path=d.candidate.display, sha256=d.sha256, media_type=d.media_type,
                      stage=self.settings.stage.value, calibration=ctx.calibration)
        if d.error is not None:
            return AssetResult(verdict=Verdict.ERROR, error=d.error, **common)
        verdict, findings = decide(matches, self.settings.union_review, ctx.fusion)
        if d.incomplete and verdict is not Verdict.BLOCK:  # what was not seen cannot pass
            common["error"] = d.incomplete
            verdict = Verdict.ERROR
        elif d.incomplete:
            notes = [*notes, d.incomplete]
        modalities = (IMAGE, AUDIO) if d.media_type == VIDEO else (d.media_type,)
        used = [n for n, det in self.detectors.items() if det.modality in modalities]
        return AssetResult(verdict=verdict, findings=tuple(findings), models={n: ctx.models[n] for n in used},
                           indexes={n: ctx.index_ids[n] for n in used}, notes=tuple(notes), config=ctx.config,
                           **common)

    def reference_thumbnail(self, finding: dict) -> bytes | None:
        """Thumbnail of what a finding matched: the work, or the talent sample that matched."""
        if finding.get("reference_kind") == "talent":
            sample_id = (finding.get("extra") or {}).get("sample_id")
            return self.catalog.sample_thumbnail(int(sample_id)) if sample_id is not None else None
        return self.catalog.thumbnail(int(finding["reference_id"]))


@dataclass
class _ScanContext:
    config: str
    indexes: dict[str, tuple[VectorIndex, Manifest]]
    thresholds: dict[str, Any]
    works: dict[int, Reference]
    samples: dict[int, TalentSample]
    talents: dict[int, Talent]
    consents: list[ConsentRecord]
    models: dict[str, str]
    weights: dict[str, str]
    index_ids: dict[str, str]
    calibration: str
    today: date
    fusion: Any = None  # the calibrated fused score for image detectors (policy.calibration.StageFusion)

    def match(self, det: Detector, hit: Any, project: str, size: list[int] | None,
              duration: float | None = None) -> Match | None:
        """A policy ``Match`` for a detector hit, with its reference (and consent) resolved."""
        extra = dict(hit.extra)
        if size:
            extra.setdefault("asset_size", size)
        if duration:
            extra.setdefault("asset_duration", round(duration, 3))
        if det.references == "talent":
            sample = self.samples.get(hit.ref_id)
            talent = self.talents.get(sample.talent_id) if sample else None
            if talent is None:
                return None
            extra["sample_id"] = sample.id
            records = [r for r in self.consents if r.talent_id == talent.id]
            consent = consent_status(records, det.consent_scopes, project, self.today)
            return Match(det.name, det.model_id, talent, hit.score, self.thresholds[det.name], extra, consent)
        ref = self.works.get(hit.ref_id)
        if ref is None:
            return None
        if ref.duration:
            extra.setdefault("ref_duration", round(ref.duration, 3))
        return Match(det.name, det.model_id, ref, hit.score, self.thresholds[det.name], extra)


def _embed_search(det: Detector, index: VectorIndex, media: list[Any]) -> list[tuple[Any, list] | Exception]:
    """(embedding, hits) per item; when the batch fails, items are retried one by one so a model that
    fails on one asset fails that asset only (its exception takes its place), never the scan."""
    try:
        queries = det.embed_queries(media)
        return list(zip(queries, det.search(index, queries)))
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception:  # noqa: BLE001 - model runtimes raise their own error types
        pass
    out: list[tuple[Any, list] | Exception] = []
    for item in media:
        try:
            (q,) = det.embed_queries([item])
            out.append((q, det.search(index, [q])[0]))
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001
            out.append(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return out


def _size_of(media: Any) -> list[int] | None:
    return list(media.size) if isinstance(media, Image.Image) else None


def _write_thumbs(folder: Path, d: _Decoded, result: AssetResult) -> None:
    """Report thumbnails: the asset (first matched frame for video) and each matched video frame."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(d.media, VideoAsset):
        for f in result.findings:
            frame = d.media.kept.get(f.extra.get("frame"))
            if frame is not None:
                (folder / f"{d.sha256}-f{frame.index}.jpg").write_bytes(thumbnail_jpeg(frame.image))
        return
    (folder / f"{d.sha256}.jpg").write_bytes(_thumbnail(d.media))


def _chunks_iter(items: Iterable, size: int) -> Iterator[list]:
    """Lists of up to ``size`` items from any iterator (streams long videos in bounded batches)."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class VideoAsset:
    """A video being checked: its bytes, header facts, and the frames that matched something."""

    data: bytes
    info: Any
    kept: dict[int, Any] = field(default_factory=dict)
    max_kept: int = 64

    def keep(self, frame: Any) -> None:
        if frame.index not in self.kept and len(self.kept) < self.max_kept:
            self.kept[frame.index] = frame


def _thumbnail(media: Any) -> bytes:
    """Report thumbnail: the picture, or a waveform strip for audio."""
    return thumbnail_jpeg(media) if isinstance(media, Image.Image) else waveform_jpeg(media)


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


def _clearance(value: Clearance | str) -> Clearance:
    try:
        return Clearance(str(getattr(value, "value", value)).strip().lower())
    except ValueError:
        raise ConfigError(
            f"unknown clearance {value!r}; use one of: {', '.join(c.value for c in Clearance)}"
        ) from None


def read_manifest(path: Path, required: str = "path") -> list[dict[str, str]]:
    """Rows of a CSV manifest with lower-cased, stripped keys; ``required`` column must exist."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or required not in [f.strip().lower() for f in reader.fieldnames]:
                raise ScannerError(f"{path}: the CSV needs a '{required}' column (found: {reader.fieldnames})")
            return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    except FileNotFoundError:
        raise ScannerError(f"manifest not found: {path}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ScannerError(f"{path} is not a readable CSV file: {exc}") from None

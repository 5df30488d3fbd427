"""Checking assets: decode, split into segments, the one embed -> search -> match path, policy, results.

A mixin of ``scanner.api.Scanner``: it reads ``self.settings``, ``self.catalog``, ``self.detectors``,
``self.calibration`` and the indexes that ``Indexing`` keeps ready.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from PIL import Image

from scanner.catalog import Catalog
from scanner.detectors import Detector
from scanner.detectors.base import detector_class
from scanner.errors import MediaError
from scanner.index import VectorIndex
from scanner.index.store import Manifest
from scanner.indexing import _chunks
from scanner.media.audio import decode_audio
from scanner.media.decode import decode
from scanner.media.files import Candidate, is_candidate_media, load, walk
from scanner.media.frames import FrameSequenceInfo, describe, incomplete, iter_image_frames, sequence_info
from scanner.media.image import thumbnail_jpeg
from scanner.media.prefetch import prefetch
from scanner.media.sniff import AUDIO, IMAGE, VIDEO
from scanner.media.thumbs import thumbnail as _thumbnail
from scanner.media.video import SamplingReport, iter_frames, probe_video
from scanner.policy import Match, consent_status, decide
from scanner.types import AssetResult, ConsentRecord, Reference, ReferenceKind, Talent, TalentSample, Verdict

Progress = Callable[[int], None]  # called with the number of items just finished
SIDE_BY_SIDE = True  # one-thread detectors (``Detector.one_thread``) run beside the others (False: one by one)


@dataclass
class AuditLabel:
    """How a scanned file is named in the audit trail when the caller knows it better than the scan:
    the service checks a private temp file but records the key that asked and the file as the client
    named it. ``scan`` fills in ``audit_id`` once the record is written."""

    caller: str
    path: str
    source: str = ""
    request_id: str = ""
    audit_id: int | None = None

    def apply(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` as it is written under this label."""
        return {**record, "path": self.path, "source": self.source, "request_id": self.request_id}


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


class Scanning:
    """Asset checks and scans (see ``scanner.api.Scanner``)."""

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
        labels: dict[str, AuditLabel] | None = None,
    ) -> Iterator[AssetResult]:
        """Check every asset under ``paths``; yields one result per asset, in walk order.

        With ``thumb_dir``, a JPEG thumbnail of every flagged image is written there as
        ``<sha256>.jpg`` for the HTML report. ``reuse`` maps asset paths to earlier records
        (see ``jobs.resume``): an asset whose bytes still hash the same is not checked again.
        ``labels`` maps a result's path to the caller and name its audit record carries instead.
        """
        items = list(paths)
        candidates = items if items and isinstance(items[0], Candidate) else self.list_assets(items)
        ctx = self._context()
        reuse = {p: r for p, r in (reuse or {}).items() if r.get("config") == ctx.config}
        workers = max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:  # the next chunk decodes while this one is searched
            for chunk, decoded in prefetch(_chunks(candidates, self.settings.batch_size),
                                           lambda c: self._decode(c, reuse), pool):
                found = self._search([d for d in decoded if d.error is None and d.reused is None], ctx)
                for d in decoded:
                    if d.reused is not None:
                        yield d.reused
                        continue
                    result = self._result(d, *found.get(id(d), ([], [])), ctx)
                    record = {**result.to_dict(), "weights": ctx.weights, "project": self.settings.project}
                    label = (labels or {}).get(result.path)
                    if label is None:
                        self.catalog.append_audit(self.caller, record)
                    else:
                        label.audit_id = self.catalog.append_audit(label.caller, label.apply(record))
                    if thumb_dir is not None and d.media is not None and (result.verdict is not Verdict.PASS or result.findings):
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
            if f.media_type == IMAGE and (seq := sequence_info(f.data)) is not None:  # animation, multi-page TIFF
                return self._modalities_or_error(cand, f, VideoAsset(f.data, seq), (IMAGE,))
            return self._modalities_or_error(cand, f, None, (f.media_type,))
        except MediaError as exc:
            return _Decoded(cand, f.sha256, f.media_type, error=str(exc))

    def _modalities_or_error(self, cand: Candidate, f: Any, media: Any, needs: tuple[str, ...]) -> _Decoded:
        """Decoded media, or an error when no enabled detector can read any part of it."""
        if not any(detector_class(n).modality in needs for n in self.settings.detectors):
            enabled = ", ".join(self.settings.detectors)
            return _Decoded(cand, f.sha256, f.media_type,
                            error=f"no enabled detector reads {f.media_type} assets (enabled: {enabled})")
        return _Decoded(cand, f.sha256, f.media_type, media=media if media is not None else decode(f, self.settings))

    def running_detectors(self) -> dict[str, Detector]:
        """The enabled detectors a check runs now: those with something registered in their index.

        Reads the indexes already brought up to date (``build_index`` or an earlier check) rather than
        syncing them again; syncs only when none is loaded yet."""
        indexes = self._indexes or self._ready()
        return {n: self.detector(n) for n, (index, _) in indexes.items() if len(index)}

    def _context(self) -> "_ScanContext":
        """Everything a scan looks up per hit, loaded once: indexes, references, consent, thresholds."""
        indexes = dict(self._ready())  # a snapshot: a hot swap during this scan does not change it
        # Only detectors with something registered run (and load their models): a check of an image
        # with no talent registered never loads the face model.
        live = {n: self.detector(n) for n in self.settings.detectors if n in indexes and len(indexes[n][0])}
        stage = self.settings.stage
        consents = self.catalog.consents()
        config = {
            "detectors": {n: [d.calibration_id, d.weights_sha256, d.params] for n, d in live.items()},
            "idle": sorted(set(self.settings.detectors) - set(live)),
            "indexes": {n: m.checksum for n, (_, m) in indexes.items()},
            "calibration": self.calibration.version, "stage": stage.value, "project": self.settings.project,
            "union_review": self.settings.union_review,
            # consent can change or expire without any index change
            "consent": [r.id for r in consents][-1:], "day": date.today().isoformat(),
        }
        return _ScanContext(
            config=hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16],
            indexes=indexes,
            thresholds={n: self.calibration.thresholds(n, d.calibration_id, stage) for n, d in live.items()},
            fusion=self.calibration.fusion(IMAGE, stage, {n: d.calibration_id for n, d in live.items()
                                                          if d.modality == IMAGE}),
            works=_Works(self.catalog),
            samples={s.id: s for s in self.catalog.samples()},
            talents={t.id: t for t in self.catalog.talents()},
            consents=consents,
            models={n: d.model_label for n, d in live.items()},
            weights={n: d.weights_sha256 for n, d in live.items()},
            index_ids={n: m.checksum[:16] for n, (_, m) in indexes.items()},
            calibration=self.calibration.version,
            today=date.today(),
            detectors=live,
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
        jobs = []
        for name, det in ctx.detectors.items():
            index = ctx.indexes[name][0]
            batch = [g for g in segments if g.modality == det.modality and g.asset.error is None]
            if batch and len(index):  # else nothing registered for this detector: no query work
                jobs.append((det, index, batch))
        # Lanes: each one-thread detector (dlib's face finder, the voice model) in its own, beside one
        # lane of the others in turn, which use every core already (side by side they only oversubscribe
        # them: benchmarks/check_latency.py). Answers are read in detector order, so results are those of
        # running them one after another.
        if not jobs:  # e.g. audio in a delivery whose catalog holds images only
            return
        beside = [SIDE_BY_SIDE and det.one_thread for det, _, _ in jobs]
        rest = [j for j, b in zip(jobs, beside) if not b]
        lanes = [[j] for j, b in zip(jobs, beside) if b] + ([rest] if rest else [])
        stop = threading.Event()
        with ThreadPoolExecutor(len(lanes)) as pool:
            futures = [pool.submit(_run_lane, lane, stop) for lane in lanes]
            answers = {}
            try:
                for lane, future in zip(lanes, futures):
                    answers.update(zip((id(j) for j in lane), future.result()))
                for job in jobs:
                    self._take(job[0], job[2], answers[id(job)], ctx, found)
            except BaseException:  # Ctrl-C or a failure: wait only for the detectors already running
                stop.set()
                raise

    def _take(self, det: Detector, batch: list["Segment"], answers: list, ctx: "_ScanContext",
              found: dict[int, tuple[list[Match], list[str]]]) -> None:
        """One detector's answers for its batch into ``found`` (matches and notes per asset)."""
        for g, answer in zip(batch, answers):
            if g.asset.error is not None:  # an earlier detector failed on it: it is an error already
                continue
            if isinstance(answer, Exception):  # the model failed on this asset: it is not checked
                g.asset.error = f"{det.name} could not check this asset: {answer}"
                continue
            emb, hits = answer
            matches, notes = found[id(g.asset)]
            if emb.note and f"{g.label}{emb.note}" not in notes:  # once per asset, not once per frame
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
        live = {det.modality for det in ctx.detectors.values()}
        if IMAGE in live:
            report = SamplingReport()
            seq = video.info if isinstance(video.info, FrameSequenceInfo) else None  # frames of an image
            frames = (iter_image_frames(video.data, self.settings.max_pixels, report) if seq else
                      iter_frames(video.data, max_seconds=self.settings.max_audio_seconds,
                                  max_pixels=self.settings.max_pixels, report=report))
            for chunk in _chunks_iter(frames, self.settings.batch_size):
                self._match([Segment(d, IMAGE, f.image, {"time": round(f.time, 3), "timecode": f.timecode,
                                                         "frame": f.index}, f, "frame: ") for f in chunk], ctx, found)
            if seq:  # what was sampled; unseen frames make it incomplete; an image has no audio track
                notes.extend([*(f"{seq.format.lower()}: {n}" for n in report.notes), describe(report, seq)])
                d.incomplete = incomplete(report, seq)
                return
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
        used = [n for n, det in ctx.detectors.items() if det.modality in modalities]
        return AssetResult(verdict=verdict, findings=tuple(findings), models={n: ctx.models[n] for n in used},
                           indexes={n: ctx.index_ids[n] for n in used}, notes=tuple(notes), config=ctx.config,
                           **common)

    def reference_thumbnail(self, finding: dict) -> bytes | None:
        """Thumbnail of what a finding matched: the work, or the talent sample that matched."""
        if finding.get("reference_kind") == ReferenceKind.TALENT:
            sample_id = (finding.get("extra") or {}).get("sample_id")
            return self.catalog.sample_thumbnail(int(sample_id)) if sample_id is not None else None
        return self.catalog.thumbnail(int(finding["reference_id"]))


@dataclass
class _ScanContext:
    config: str
    indexes: dict[str, tuple[VectorIndex, Manifest]]
    thresholds: dict[str, Any]
    works: "_Works"
    samples: dict[int, TalentSample]
    talents: dict[int, Talent]
    consents: list[ConsentRecord]
    models: dict[str, str]
    weights: dict[str, str]
    index_ids: dict[str, str]
    calibration: str
    today: date
    fusion: Any = None  # the calibrated fused score for image detectors (policy.calibration.StageFusion)
    detectors: dict[str, Detector] = field(default_factory=dict)  # the detectors that run (something registered)

    def match(self, det: Detector, hit: Any, project: str, size: list[int] | None,
              duration: float | None = None) -> Match | None:
        """A policy ``Match`` for a detector hit, with its reference (and consent) resolved."""
        extra = dict(hit.extra)
        if size:
            extra.setdefault("asset_size", size)
        if duration:
            extra.setdefault("asset_duration", round(duration, 3))
        if det.references == ReferenceKind.TALENT:
            sample = self.samples.get(hit.ref_id)
            talent = self.talents.get(sample.talent_id) if sample else None
            if talent is None:
                return None
            extra["sample_id"] = sample.id
            records = [r for r in self.consents if r.talent_id == talent.id]
            consent = consent_status(records, det.consent_scopes, project, self.today)
            return Match(det.name, det.calibration_id, talent, hit.score, self.thresholds[det.name], extra, consent)
        ref = self.works.get(hit.ref_id)
        if ref is None:
            return None
        if ref.duration:
            extra.setdefault("ref_duration", round(ref.duration, 3))
        return Match(det.name, det.calibration_id, ref, hit.score, self.thresholds[det.name], extra)


class _Works:
    """The works a scan's hits name, read from the catalog when first named (an asset matches a few
    works, not the thousands registered) and kept for the rest of the scan."""

    def __init__(self, catalog: Catalog):
        self._catalog = catalog
        self._seen: dict[int, Reference | None] = {}

    def get(self, ref_id: int) -> Reference | None:
        if ref_id not in self._seen:
            self._seen[ref_id] = self._catalog.get(ref_id)
        return self._seen[ref_id]


def _run_lane(jobs: list[tuple[Detector, VectorIndex, list]], stop: threading.Event
              ) -> list[list[tuple[Any, list] | Exception]]:
    """``_embed_search`` of each (detector, index, segments) job in turn, none started once ``stop`` is set."""
    out = []
    for det, index, batch in jobs:
        if stop.is_set():
            raise KeyboardInterrupt  # the scan is ending: nobody reads these answers
        out.append(_embed_search(det, index, [g.media for g in batch]))
    return out


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

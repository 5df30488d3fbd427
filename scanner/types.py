"""Frozen value types shared by every layer."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum, StrEnum
from typing import Any


class Verdict(str, Enum):
    """Outcome for one asset. ``error`` means it could not be checked: never a pass."""

    PASS = "pass"
    REVIEW = "review"
    BLOCK = "block"
    ERROR = "error"


class Clearance(str, Enum):
    """Rights status of a registered work."""

    UNCLEARED = "uncleared"
    LICENSED = "licensed"
    OWNED = "owned"


class Stage(str, Enum):
    """Delivery stage; thresholds may differ between them."""

    IDEATION = "ideation"
    FINAL = "final"


class Modality(StrEnum):
    """Media a detector reads (a video is read as image frames plus an audio track)."""

    IMAGE = "image"
    AUDIO = "audio"


class ReferenceKind(StrEnum):
    """What a detector's index holds: registered works, or talent (likeness) samples."""

    WORK = "work"
    TALENT = "talent"


class ConsentAction(StrEnum):
    """A consent record grants use of a likeness or revokes an earlier grant."""

    GRANT = "grant"
    REVOKE = "revoke"


class FindingLevel(StrEnum):
    """How a finding weighs on the verdict: ``cleared`` (licensed/owned work) and ``consented``
    (valid talent consent) are reported but do not block."""

    BLOCK = "block"
    REVIEW = "review"
    CLEARED = "cleared"
    CONSENTED = "consented"


# Model-id mark of a score normalised per query (``image.sscd`` score_norm): a record's evidence says so, and
# reports word such a cosine as a normalised one.
SCORE_NORMALISED_MARK = "+snorm"


class Metric(str, Enum):
    """How a detector compares two signals."""

    HAMMING = "hamming"  # distance in bits, lower is closer
    COSINE = "cosine"  # similarity, higher is closer
    COUNT = "count"  # verified matches (keypoint inliers, landmarks), higher is closer
    PROBABILITY = "probability"  # calibrated fused score in [0, 1], higher is closer

    @property
    def lower_is_closer(self) -> bool:
        return self is Metric.HAMMING

    def closer_or_equal(self, score: float, threshold: float) -> bool:
        """True when ``score`` is at least as close as ``threshold``."""
        return score <= threshold if self.lower_is_closer else score >= threshold

    def closer(self, a: float, b: float) -> bool:
        """True when score ``a`` is strictly closer than score ``b``."""
        return a < b if self.lower_is_closer else a > b


@dataclass(frozen=True)
class Reference:
    """A registered work in the catalog."""

    id: int
    sha256: str
    title: str
    rights_holder: str
    clearance: Clearance
    media_type: str
    path: str
    added_at: str
    width: int = 0
    height: int = 0
    duration: float = 0.0  # seconds, for audio works


class ConsentScope(str, Enum):
    """What a consent record covers. ``digital-replica`` covers both face and voice."""

    FACE = "face"
    VOICE = "voice"
    DIGITAL_REPLICA = "digital-replica"


@dataclass(frozen=True)
class Talent:
    """A registered real person whose likeness needs documented consent."""

    id: int
    name: str
    union_covered: bool
    added_at: str
    notes: str = ""


@dataclass(frozen=True)
class TalentSample:
    """One reference photo or voice sample of a talent (the id its detector index uses)."""

    id: int
    talent_id: int
    kind: str  # "face" or "voice"
    sha256: str
    path: str
    added_at: str


@dataclass(frozen=True)
class ConsentRecord:
    """An append-only consent event: a grant, or a revocation of an earlier grant."""

    id: int
    talent_id: int
    action: ConsentAction
    scope: str
    project: str
    valid_from: str  # ISO date
    valid_until: str  # ISO date, "" for open-ended
    document: str
    revokes: int | None
    recorded_at: str
    recorded_by: str = ""


@dataclass(frozen=True)
class Finding:
    """One match between an asset and a reference, with the evidence a reviewer needs."""

    detector: str
    model: str
    reference_id: int
    reference_title: str
    rights_holder: str
    clearance: str
    score: float
    metric: str
    level: FindingLevel
    threshold_block: float
    threshold_review: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    reference_kind: ReferenceKind = ReferenceKind.WORK
    consent_id: int | None = None
    # Every detector's own score for this reference (one finding per reference): dicts with
    # detector, model, score, metric, threshold_block, threshold_review and that detector's level.
    evidence: tuple[dict[str, Any], ...] = ()

    @property
    def exhibits(self) -> tuple["Evidence", ...]:
        """The typed evidence in ``extra`` (boxes, polygons, spans, frame, notes, measurements)."""
        return evidence_from_json(self.extra)

    @property
    def scores(self) -> tuple["DetectorScore", ...]:
        """``evidence`` typed: every detector's own score for this reference."""
        return tuple(row for e in self.evidence if (row := DetectorScore.from_json(e)) is not None)


@dataclass(frozen=True)
class AssetResult:
    """The answer for one asset."""

    path: str
    sha256: str | None
    media_type: str | None
    verdict: Verdict
    findings: tuple[Finding, ...] = ()
    error: str | None = None
    models: dict[str, str] = field(default_factory=dict)
    stage: str = Stage.FINAL.value
    calibration: str = ""
    indexes: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    config: str = ""  # fingerprint of models, weights, indexes, calibration, stage, project

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AssetResult":
        """Inverse of ``to_dict`` (reads JSONL records back, e.g. to resume or merge)."""
        known = {f for f in cls.__dataclass_fields__}
        data = {k: v for k, v in d.items() if k in known}
        data["verdict"] = Verdict(d["verdict"])
        finding_fields = set(Finding.__dataclass_fields__)
        data["findings"] = tuple(Finding(**{k: (tuple(v) if k == "evidence" else v) for k, v in f.items()
                                            if k in finding_fields})
                                 for f in d.get("findings", []))
        data["notes"] = tuple(d.get("notes", ()))
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the JSONL/HTTP record format)."""
        d = asdict(self)
        d["verdict"] = self.verdict.value
        d["findings"] = [{**asdict(f), "evidence": [dict(e) for e in f.evidence]} for f in self.findings]
        d["notes"] = list(self.notes)
        return d


# --------------------------------------------------------------------------- typed evidence
# What a detector can show a reviewer about one match: where in each picture (``Box``, ``Polygon`` in
# the pixels of the named image), when in each recording (``Span``), which video frame (``FrameRef``),
# which notes (``Notes``), and the measurements behind the score. A finding's JSON ``extra`` is the
# merge of its evidence's ``to_json()`` fragments, with exactly the keys records had before evidence
# was typed; ``evidence_from_json`` reads such a dict (old or new, possibly hand-edited) back, keeping
# only well-formed values, so a report renders by type and never from a guessed key.

_IMAGES = ("asset", "ref")  # the two pictures/recordings of a match: the scanned asset and the reference


def _finite(x: Any) -> int | float | None:
    """``x`` when it is a finite int or float (not a bool), else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return x if math.isfinite(x) else None


def _finites(x: Any, n: int) -> tuple[int | float, ...] | None:
    """Exactly ``n`` finite numbers from a list or tuple, else None."""
    if not isinstance(x, (list, tuple)) or len(x) != n:
        return None
    out = tuple(_finite(v) for v in x)
    return None if any(v is None for v in out) else out  # type: ignore[return-value]


def _whole(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _points(x: Any) -> tuple[tuple[int | float, int | float], ...] | None:
    if not isinstance(x, (list, tuple)):
        return None
    out = [_finites(p, 2) for p in x]
    return None if any(p is None for p in out) else tuple(out)  # type: ignore[misc]


class Evidence:
    """Base of every evidence type: ``to_json`` gives the keys it adds to a finding's ``extra``;
    ``from_json(extra)`` returns the instances of the type found in such a dict (none when absent
    or malformed)."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["Evidence", ...]:
        raise NotImplementedError


@dataclass(frozen=True)
class Box(Evidence):
    """An axis-aligned box in the pixels of ``image`` (a detected face). JSON: ``box`` / ``ref_box``
    as [x0, y0, x1, y1]."""

    x: float
    y: float
    w: float
    h: float
    image: str = "asset"

    def to_json(self) -> dict[str, Any]:
        return {_key(self.image, "box", "ref_box"): [self.x, self.y, self.x + self.w, self.y + self.h]}

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["Box", ...]:
        out = []
        for image in _IMAGES:
            v = _finites(extra.get(_key(image, "box", "ref_box")), 4)
            if v and v[2] >= v[0] and v[3] >= v[1]:
                out.append(cls(v[0], v[1], v[2] - v[0], v[3] - v[1], image))
        return tuple(out)


def _key(image: str, asset_key: str, ref_key: str) -> str:
    if image not in _IMAGES:
        raise ValueError(f"evidence image must be one of {_IMAGES}, not {image!r}")
    return asset_key if image == "asset" else ref_key


# Polygon roles and their JSON keys per image: the matched region in both pictures, and (asset only)
# the verified keypoints' hull and the whole work's outline mapped into the asset.
_POLYGON_KEYS = {("region", "asset"): "asset_polygon", ("region", "ref"): "ref_polygon",
                 ("inlier_hull", "asset"): "inlier_hull", ("work_outline", "asset"): "work_outline"}


@dataclass(frozen=True)
class Polygon(Evidence):
    """A polygon in the pixels of ``image``: the matched ``region`` (drawn on the thumbnails), or the
    ``inlier_hull`` / ``work_outline`` a local-feature match also reports."""

    points: tuple[tuple[float, float], ...]
    image: str = "asset"
    role: str = "region"

    def to_json(self) -> dict[str, Any]:
        key = _POLYGON_KEYS.get((self.role, self.image))
        if key is None:
            raise ValueError(f"no JSON key for a {self.role!r} polygon on the {self.image!r} image")
        return {key: [list(p) for p in self.points]}

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["Polygon", ...]:
        out = []
        for (role, image), key in _POLYGON_KEYS.items():
            pts = _points(extra.get(key))
            if pts is not None:
                out.append(cls(pts, image, role))
        return tuple(out)


@dataclass(frozen=True)
class ImageSize(Evidence):
    """Pixel size of ``image``: the coordinate frame its boxes and polygons are in. JSON: ``asset_size``
    / ``ref_size``."""

    width: float
    height: float
    image: str = "asset"

    def to_json(self) -> dict[str, Any]:
        return {_key(self.image, "asset_size", "ref_size"): [self.width, self.height]}

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["ImageSize", ...]:
        out = []
        for image in _IMAGES:
            v = _finites(extra.get(_key(image, "asset_size", "ref_size")), 2)
            if v and v[0] > 0 and v[1] > 0:
                out.append(cls(v[0], v[1], image))
        return tuple(out)


@dataclass(frozen=True)
class Duration(Evidence):
    """Length in seconds of the asset's or the reference's audio (the frame its spans are in).
    JSON: ``asset_duration`` / ``ref_duration``."""

    seconds: float
    media: str = "asset"

    def to_json(self) -> dict[str, Any]:
        return {_key(self.media, "asset_duration", "ref_duration"): self.seconds}

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["Duration", ...]:
        out = []
        for media in _IMAGES:
            v = _finite(extra.get(_key(media, "asset_duration", "ref_duration")))
            if v is not None and v > 0:
                out.append(cls(v, media))
        return tuple(out)


# Key layouts of a span in records written before evidence was typed: the fingerprint's
# asset_start/asset_end/ref_start/ref_end, a voice segment's start/end (asset only), the melody's
# span/ref_span pairs. A span keeps its layout so its JSON keeps its keys.
SPAN_LAYOUTS = ("flat", "segment", "pairs")


@dataclass(frozen=True)
class Span(Evidence):
    """Matched time ranges in seconds: ``asset`` (start, end) and/or ``ref`` (start, end)."""

    asset: tuple[float, float] | None = None
    ref: tuple[float, float] | None = None
    layout: str = "flat"

    def __post_init__(self) -> None:
        if self.layout not in SPAN_LAYOUTS:
            raise ValueError(f"span layout must be one of {SPAN_LAYOUTS}, not {self.layout!r}")
        if self.layout == "segment" and self.ref is not None:
            raise ValueError("a 'segment' span has no reference range")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for which, rng in (("asset", self.asset), ("ref", self.ref)):
            if rng is None:
                continue
            if self.layout == "flat":
                out[f"{which}_start"], out[f"{which}_end"] = rng
            elif self.layout == "segment":
                out["start"], out["end"] = rng
            else:
                out["span" if which == "asset" else "ref_span"] = list(rng)
        return out

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["Span", ...]:
        def pair(a: Any, b: Any) -> tuple[float, float] | None:
            return _finites([a, b], 2)  # type: ignore[return-value]

        out = []
        flat = {w: pair(extra.get(f"{w}_start"), extra.get(f"{w}_end")) for w in _IMAGES}
        if flat["asset"] or flat["ref"]:
            out.append(cls(flat["asset"], flat["ref"], "flat"))
        segment = pair(extra.get("start"), extra.get("end"))
        if segment:
            out.append(cls(segment, None, "segment"))
        pairs = _finites(extra.get("span"), 2), _finites(extra.get("ref_span"), 2)
        if pairs[0] or pairs[1]:
            out.append(cls(pairs[0], pairs[1], "pairs"))  # type: ignore[arg-type]
        return tuple(out)


@dataclass(frozen=True)
class FrameRef(Evidence):
    """Which frame of a video (or page of a multi-frame image) matched: index, time in seconds and
    timecode as the scan wrote it ("00:00:02.500", "frame 4", "page 2")."""

    frame: int | None = None
    time: float | None = None
    timecode: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in (("frame", self.frame), ("time", self.time), ("timecode", self.timecode))
                if v is not None}

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["FrameRef", ...]:
        frame = _whole(extra.get("frame"))
        frame = frame if frame is not None and frame >= 0 else None
        time = _finite(extra.get("time"))
        timecode = extra.get("timecode") if isinstance(extra.get("timecode"), str) else None
        if frame is None and time is None and timecode is None:
            return ()
        return (cls(frame, time, timecode),)


@dataclass(frozen=True)
class Note:
    """One note: onset in seconds, MIDI pitch, and duration in seconds when the transcription kept it."""

    onset: float
    pitch: int
    duration: float | None = None

    def to_json(self) -> list[Any]:
        return [self.onset, self.pitch] if self.duration is None else [self.onset, self.pitch, self.duration]

    @classmethod
    def parse(cls, x: Any) -> "Note | None":
        if not isinstance(x, (list, tuple)) or len(x) not in (2, 3):
            return None
        onset, pitch = _finite(x[0]), _whole(x[1])
        duration = _finite(x[2]) if len(x) == 3 else None
        if onset is None or pitch is None or not 0 <= pitch <= 127:
            return None  # MIDI pitches only: a record's pitch also sizes the report's piano roll
        if len(x) == 3 and (duration is None or duration < 0):
            return None
        return cls(onset, pitch, duration)


@dataclass(frozen=True)
class Notes(Evidence):
    """A melody match: the aligned note sequences (``asset[i]`` pairs with ``ref[i]``), the transposition
    in semitones (asset = reference + transposition) and the tempo ratio (asset tempo / reference's).
    JSON: ``asset_notes``, ``ref_notes`` ([onset, pitch] or [onset, pitch, duration]), ``transposition``,
    ``tempo_ratio``, ``aligned_notes`` (how many notes aligned; the lists may be a sample of them)."""

    asset: tuple[Note, ...]
    ref: tuple[Note, ...]
    transposition: int | None = None
    tempo_ratio: float | None = None
    aligned: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"asset_notes": [n.to_json() for n in self.asset],
                               "ref_notes": [n.to_json() for n in self.ref]}
        for key, value in (("transposition", self.transposition), ("tempo_ratio", self.tempo_ratio),
                           ("aligned_notes", self.aligned)):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["Notes", ...]:
        seqs = []
        for key in ("asset_notes", "ref_notes"):
            raw = extra.get(key)
            notes = [Note.parse(n) for n in raw] if isinstance(raw, (list, tuple)) else None
            if notes is None or any(n is None for n in notes):
                return ()
            seqs.append(tuple(notes))
        tempo = _finite(extra.get("tempo_ratio"))
        shift = _whole(extra.get("transposition"))
        return (cls(seqs[0], seqs[1], shift if shift is not None and abs(shift) <= 127 else None,
                    tempo if tempo is not None and tempo > 0 else None, _whole(extra.get("aligned_notes"))),)


@dataclass(frozen=True)
class Landmarks(Evidence):
    """An audio-fingerprint match: landmark hashes aligned in time, the fitted time scale (asset time
    per reference time) and pitch shift in semitones, and how many landmarks the asset had."""

    matches: int
    time_scale: float | None = None
    pitch_shift: float | None = None
    asset_landmarks: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in (("matches", self.matches), ("time_scale", self.time_scale),
                                  ("pitch_shift", self.pitch_shift), ("asset_landmarks", self.asset_landmarks))
                if v is not None}

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["Landmarks", ...]:
        matches = _whole(extra.get("matches"))
        if matches is None:
            return ()
        return (cls(matches, _finite(extra.get("time_scale")), _finite(extra.get("pitch_shift")),
                    _whole(extra.get("asset_landmarks"))),)


@dataclass(frozen=True)
class Keypoints(Evidence):
    """A local-feature match: inliers of one homography (off the work's lettering; ``text_inliers`` on
    it), the share of the work's keypoints they span, the tentative matches tried, the share of the
    work visible in the asset, whether the asset is mirrored, the homography (reference -> asset
    pixels), whether the match rests on lettering only or mostly, and ``summary``: what it rests on,
    in words (JSON ``evidence``)."""

    inliers: int
    text_inliers: int | None = None
    coverage: float | None = None
    tentative: int | None = None
    ref_visible: float | None = None
    mirrored: bool | None = None
    homography: tuple[tuple[float, float, float], ...] | None = None
    text_only: bool = False
    mostly_text: bool = False
    summary: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"inliers": self.inliers}
        for key in ("text_inliers", "coverage", "tentative", "ref_visible", "mirrored"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.homography is not None:
            out["homography"] = [list(r) for r in self.homography]
        if self.summary:
            out["evidence"] = self.summary
        if self.text_only:
            out["text_only"] = True
        if self.mostly_text:
            out["mostly_text"] = True
        return out

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["Keypoints", ...]:
        inliers = _whole(extra.get("inliers"))
        if inliers is None:
            return ()
        h = extra.get("homography")
        rows = tuple(_finites(r, 3) for r in h) if isinstance(h, (list, tuple)) and len(h) == 3 else None
        mirrored = extra.get("mirrored")
        summary = extra.get("evidence")
        return (cls(inliers, _whole(extra.get("text_inliers")), _finite(extra.get("coverage")),
                    _whole(extra.get("tentative")), _finite(extra.get("ref_visible")),
                    mirrored if isinstance(mirrored, bool) else None,
                    rows if rows and all(rows) else None,  # type: ignore[arg-type]
                    extra.get("text_only") is True, extra.get("mostly_text") is True,
                    summary if isinstance(summary, str) else ""),)


@dataclass(frozen=True)
class Detection(Evidence):
    """A face detector's view of its box: the face's size in pixels and the detector's confidence.
    JSON: ``face_size``, ``det_score``."""

    size: float | None = None
    score: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in (("face_size", self.size), ("det_score", self.score)) if v is not None}

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["Detection", ...]:
        size, score = _finite(extra.get("face_size")), _finite(extra.get("det_score"))
        return () if size is None and score is None else (cls(size, score),)


@dataclass(frozen=True)
class Sample(Evidence):
    """The talent sample (reference photo or voice recording) a likeness match is closest to."""

    id: int

    def to_json(self) -> dict[str, Any]:
        return {"sample_id": self.id}

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["Sample", ...]:
        sid = _whole(extra.get("sample_id"))
        return () if sid is None else (cls(sid),)


@dataclass(frozen=True)
class Denoised(Evidence):
    """The asset side was compared after RNNoise. ``what`` = "speech": ``audio.voice`` compared the window's
    speech denoised, so music or noise covered the voice (JSON ``denoised`` true); "music": ``audio.melody``
    read the music under the dialogue, RNNoise's residual (JSON ``under_speech`` true). False or absent: as heard."""

    what: str = "speech"

    def to_json(self) -> dict[str, Any]:
        return {"denoised": True} if self.what == "speech" else {"under_speech": True}

    @classmethod
    def from_json(cls, extra: Mapping[str, Any]) -> tuple["Denoised", ...]:
        return tuple(cls(what) for key, what in (("denoised", "speech"), ("under_speech", "music"))
                     if extra.get(key) is True)


@dataclass(frozen=True)
class DetectorScore:
    """One detector's own score for a finding's reference, with its thresholds and the level the score
    alone reaches ("block", "review" or "below review"): the rows of ``Finding.evidence`` (JSON ``evidence``)."""

    detector: str
    model: str
    score: float
    metric: str
    threshold_block: float
    threshold_review: float
    level: str

    def to_json(self) -> dict[str, Any]:
        return {"detector": self.detector, "model": self.model, "score": self.score, "metric": self.metric,
                "threshold_block": self.threshold_block, "threshold_review": self.threshold_review,
                "level": self.level}

    @classmethod
    def from_json(cls, row: Any) -> "DetectorScore | None":
        """The row as written by ``to_json``; None when it is not a mapping or lacks a field."""
        if not isinstance(row, Mapping) or any(k not in row for k in cls.__dataclass_fields__):
            return None
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


EVIDENCE_TYPES: tuple[type[Evidence], ...] = (ImageSize, Duration, Box, Polygon, Span, FrameRef, Notes,
                                               Landmarks, Keypoints, Detection, Sample, Denoised)


def evidence_to_json(items: Iterable[Evidence]) -> dict[str, Any]:
    """The JSON ``extra`` fragment of ``items`` (two items writing one key: the later one wins)."""
    out: dict[str, Any] = {}
    for item in items:
        out.update(item.to_json())
    return out


def evidence_from_json(extra: Any) -> tuple[Evidence, ...]:
    """Typed evidence found in a finding's or hit's ``extra`` dict (anything else gives none)."""
    if not isinstance(extra, Mapping):
        return ()
    return tuple(item for cls in EVIDENCE_TYPES for item in cls.from_json(extra))

"""Frozen value types shared by every layer."""

from __future__ import annotations

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

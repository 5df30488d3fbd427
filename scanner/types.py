"""Frozen value types shared by every layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
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


class Metric(str, Enum):
    """How a detector compares two signals."""

    HAMMING = "hamming"  # lower is closer
    COSINE = "cosine"  # higher is closer

    def closer_or_equal(self, score: float, threshold: float) -> bool:
        """True when ``score`` is at least as close as ``threshold``."""
        return score <= threshold if self is Metric.HAMMING else score >= threshold

    def closer(self, a: float, b: float) -> bool:
        """True when score ``a`` is strictly closer than score ``b``."""
        return a < b if self is Metric.HAMMING else a > b


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
    level: str  # "block", "review" or "cleared"
    threshold_block: float
    threshold_review: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the JSONL/HTTP record format)."""
        d = asdict(self)
        d["verdict"] = self.verdict.value
        d["findings"] = [asdict(f) for f in self.findings]
        d["notes"] = list(self.notes)
        return d

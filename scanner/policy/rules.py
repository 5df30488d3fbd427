"""Verdict rules. Pure functions: no I/O, no models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from scanner.policy.calibration import Thresholds
from scanner.policy.consent import ConsentStatus
from scanner.types import Clearance, Finding, FindingLevel, Metric, Reference, ReferenceKind, Talent, Verdict
from scanner.types import DetectorScore, Evidence, evidence_from_json


@dataclass(frozen=True)
class Match:
    """A raw nearest-neighbour hit before policy. Talent matches carry their consent status."""

    detector: str
    model: str
    reference: Reference | Talent
    score: float
    thresholds: Thresholds
    extra: dict | None = None
    consent: ConsentStatus | None = None

    @property
    def exhibits(self) -> tuple[Evidence, ...]:
        """The typed evidence in ``extra``: the detector's (boxes, spans, notes...) and the scan's (the
        video frame, the media's size and duration); findings keep it as their ``extra``."""
        return evidence_from_json(self.extra)


def level_of(m: Match, union_review: bool = True) -> tuple[str, str] | None:
    """(level, note), or None when the score is not close enough to matter.

    Works: ``cleared`` when licensed/owned. Talent: ``consented`` with valid consent
    (``review`` for union-covered talent when ``union_review``), otherwise the score's level
    with the reason consent does not apply.
    """
    t = m.thresholds
    if t.metric.closer_or_equal(m.score, t.block):
        level = FindingLevel.BLOCK
    elif t.metric.closer_or_equal(m.score, t.review):
        level = FindingLevel.REVIEW
    else:
        return None
    ref = m.reference
    if isinstance(ref, Talent):
        consent = m.consent or ConsentStatus(False, "consent not checked")
        if not consent.valid:
            return level, consent.reason
        if ref.union_covered and union_review:
            return FindingLevel.REVIEW, f"union-covered talent: review required although {consent.reason}"
        return FindingLevel.CONSENTED, consent.reason
    if ref.clearance in (Clearance.LICENSED, Clearance.OWNED):
        return FindingLevel.CLEARED, f"reference is {ref.clearance.value}: cleared for use"
    return level, ""


class FusedScore(Protocol):
    """A calibrated combination of several detectors' scores for one (asset, reference) pair."""

    name: str
    model: str
    thresholds: Thresholds

    def covers(self, detector: str, model: str) -> bool:
        """Whether this fusion was calibrated with ``detector`` running ``model``."""

    def score(self, scores: dict[str, float]) -> float:
        """The fused score from the covered detectors' scores (missing ones imputed)."""


def _own_level(m: Match) -> str | None:
    t = m.thresholds
    if t.metric.closer_or_equal(m.score, t.block):
        return "block"
    if t.metric.closer_or_equal(m.score, t.review):
        return "review"
    return None


def _evidence(m: Match) -> dict:
    """The match's own score row for its finding's ``evidence`` (the JSON of a ``DetectorScore``)."""
    return DetectorScore(m.detector, m.model, round(float(m.score), 4), m.thresholds.metric.value, m.thresholds.block,
                         m.thresholds.review, _own_level(m) or "below review").to_json()


_SEVERITY = {FindingLevel.BLOCK: 0, FindingLevel.REVIEW: 1, None: 2}


def decide(matches: Iterable[Match], union_review: bool = True,
           fusion: FusedScore | None = None) -> tuple[Verdict, list[Finding]]:
    """One finding per matched reference (closest first) with every detector's evidence, and the verdict.

    Per detector, a reference keeps its closest match. When ``fusion`` covers several of those
    detectors, their scores are combined into one calibrated score whose levels decide for them;
    detectors it does not cover (faces, audio) keep their own levels. The reference's level is the
    most severe of these, then clearance (licensed/owned works) and consent (talent) apply.
    """
    best: dict[tuple[str, int], Match] = {}
    for m in matches:
        key = (m.detector, m.reference.id)
        cur = best.get(key)
        if cur is None or m.thresholds.metric.closer(m.score, cur.score):
            best[key] = m
    groups: dict[tuple[str, int], list[Match]] = {}
    for m in best.values():
        kind = ReferenceKind.TALENT if isinstance(m.reference, Talent) else ReferenceKind.WORK
        groups.setdefault((kind, m.reference.id), []).append(m)
    findings = [f for group in groups.values() if (f := _reference_finding(group, union_review, fusion))]
    order = {FindingLevel.BLOCK: 0, FindingLevel.REVIEW: 1, FindingLevel.CLEARED: 2, FindingLevel.CONSENTED: 2}
    findings.sort(key=lambda f: (order[f.level], f.detector, f.score if Metric(f.metric).lower_is_closer else -f.score))
    return verdict_of(findings), findings


def _reference_finding(group: list[Match], union_review: bool, fusion: FusedScore | None) -> Finding | None:
    """The one finding for a reference from its detectors' closest matches, or None if none matters."""
    fused = [m for m in group if fusion is not None and fusion.covers(m.detector, m.model)]
    lead: Match | None = None
    level: str | None = None
    if fused and fusion is not None:
        score = fusion.score({m.detector: m.score for m in fused})
        extra: dict = {}
        for m in sorted(fused, key=lambda m: len(m.extra or {})):
            extra.update(m.extra or {})  # every detector's located evidence (boxes, polygons) survives
        lead = Match(fusion.name, fusion.model, fused[0].reference, score, fusion.thresholds, extra,
                     fused[0].consent)
        level = _own_level(lead)
    for m in group:
        if m in fused:
            continue
        own = _own_level(m)
        if _SEVERITY[own] < _SEVERITY[level] or (own == level and lead is None):
            lead, level = m, own
    if lead is None or level is None:
        return None
    decided = level_of(lead, union_review)
    if decided is None:
        return None
    final, note = decided
    evidence = tuple(_evidence(m) for m in sorted(group, key=lambda m: m.detector))
    return _finding(lead, final, note, evidence)


def _finding(m: Match, level: str, note: str, evidence: tuple[dict, ...] = ()) -> Finding:
    ref = m.reference
    common = dict(detector=m.detector, model=m.model, reference_id=ref.id, score=round(float(m.score), 4),
                  metric=m.thresholds.metric.value, level=level, threshold_block=m.thresholds.block,
                  threshold_review=m.thresholds.review, note=note, extra=dict(m.extra or {}), evidence=evidence)
    if isinstance(ref, Talent):
        consent = m.consent
        return Finding(reference_title=ref.name, rights_holder=ref.name,
                       clearance="consent valid" if consent and consent.valid else "no valid consent",
                       reference_kind=ReferenceKind.TALENT, consent_id=consent.record.id if consent and consent.record else None,
                       **common)
    return Finding(reference_title=ref.title, rights_holder=ref.rights_holder, clearance=ref.clearance.value,
                   **common)


def verdict_of(findings: Sequence[Finding]) -> Verdict:
    levels = {f.level for f in findings}
    if "block" in levels:
        return Verdict.BLOCK
    if "review" in levels:
        return Verdict.REVIEW
    return Verdict.PASS

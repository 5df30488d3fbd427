"""Verdict rules. Pure functions: no I/O, no models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from scanner.policy.calibration import Thresholds
from scanner.policy.consent import ConsentStatus
from scanner.types import Clearance, Finding, Reference, Talent, Verdict


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


def level_of(m: Match, union_review: bool = True) -> tuple[str, str] | None:
    """(level, note), or None when the score is not close enough to matter.

    Works: ``cleared`` when licensed/owned. Talent: ``consented`` with valid consent
    (``review`` for union-covered talent when ``union_review``), otherwise the score's level
    with the reason consent does not apply.
    """
    t = m.thresholds
    if t.metric.closer_or_equal(m.score, t.block):
        level = "block"
    elif t.metric.closer_or_equal(m.score, t.review):
        level = "review"
    else:
        return None
    ref = m.reference
    if isinstance(ref, Talent):
        consent = m.consent or ConsentStatus(False, "consent not checked")
        if not consent.valid:
            return level, consent.reason
        if ref.union_covered and union_review:
            return "review", f"union-covered talent: review required although {consent.reason}"
        return "consented", consent.reason
    if ref.clearance in (Clearance.LICENSED, Clearance.OWNED):
        return "cleared", f"reference is {ref.clearance.value}: cleared for use"
    return level, ""


def decide(matches: Iterable[Match], union_review: bool = True) -> tuple[Verdict, list[Finding]]:
    """Findings (closest per detector and reference, closest first) and the verdict."""
    best: dict[tuple[str, int], Match] = {}
    for m in matches:
        key = (m.detector, m.reference.id)
        cur = best.get(key)
        if cur is None or m.thresholds.metric.closer(m.score, cur.score):
            best[key] = m
    findings: list[Finding] = []
    for m in best.values():
        decided = level_of(m, union_review)
        if decided is None:
            continue
        level, note = decided
        findings.append(_finding(m, level, note))
    order = {"block": 0, "review": 1, "cleared": 2, "consented": 2}
    findings.sort(key=lambda f: (order[f.level], f.detector, -f.score if f.metric == "cosine" else f.score))
    return verdict_of(findings), findings


def _finding(m: Match, level: str, note: str) -> Finding:
    ref = m.reference
    common = dict(detector=m.detector, model=m.model, reference_id=ref.id, score=round(float(m.score), 4),
                  metric=m.thresholds.metric.value, level=level, threshold_block=m.thresholds.block,
                  threshold_review=m.thresholds.review, note=note, extra=dict(m.extra or {}))
    if isinstance(ref, Talent):
        consent = m.consent
        return Finding(reference_title=ref.name, rights_holder=ref.name,
                       clearance="consent valid" if consent and consent.valid else "no valid consent",
                       reference_kind="talent", consent_id=consent.record.id if consent and consent.record else None,
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
